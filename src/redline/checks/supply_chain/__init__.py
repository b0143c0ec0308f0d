"""Supply-chain checks run against a loaded target (FM11 dependency fuzzing). FM09's static
scan of model files lives in ``redline.filescan`` and runs before any loading."""
