"""Single source of the package version (read by setuptools and stamped into model files)."""

__version__ = "0.1.0"
