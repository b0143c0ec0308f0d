"""Privacy checks (FM03 model inversion, FM04 membership inference) and their helpers."""
