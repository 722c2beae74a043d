"""The package version (one place: the package and telemetry read it here)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
