"""runner-settings: a nested dict with attribute access (`Settings`)."""

from runner_settings.__about__ import __version__
from runner_settings._settings import Settings

__all__ = ["Settings", "__version__"]
