"""The package version (one place: the package, the warmup stamp and the docs read it)."""
__version__ = "0.1.0"
