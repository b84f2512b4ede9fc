"""Version of the runner-grid distribution."""

__version__ = "0.1.0"
