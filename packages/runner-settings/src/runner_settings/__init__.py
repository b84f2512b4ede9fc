"""runner-settings: a nested dict with attribute access (`Settings`)."""

from runner_settings.__about__ import __version__

__all__ = ["__version__"]
