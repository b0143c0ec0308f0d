"""The guard: a server that runs :mod:`redline.defences` in front of a model endpoint (issue 16)."""
