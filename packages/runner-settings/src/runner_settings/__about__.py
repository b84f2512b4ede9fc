"""Version of the runner-settings distribution."""

__version__ = "0.1.0"
