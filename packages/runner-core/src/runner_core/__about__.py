"""Version of the runner-core distribution."""

__version__ = "0.1.0"
