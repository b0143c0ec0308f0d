"""redline's version, in a module of its own so that any layer can read it without
importing the package root (whose lazy exports reach up to the API)."""

__version__ = "0.1.0"
