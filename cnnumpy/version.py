"""The version, in one place (model files and the CLI record it)."""

__version__ = "0.1.0"
