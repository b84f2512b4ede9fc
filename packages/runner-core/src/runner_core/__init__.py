"""runner-core: run computational jobs locally, serially or in parallel."""

from runner_core.__about__ import __version__

__all__ = ["__version__"]
