"""The package version, kept in one place for setup.py and `se-keras --version`."""

__version__ = "0.1.0"
