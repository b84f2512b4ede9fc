"""The `runner_core` logger, imported on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging

__all__ = ["logger"]


def logger() -> logging.Logger:
    """Return the `runner_core` logger.

    logging costs ~10 ms to import; only failures and odd cases log, so it is imported
    the first time something is logged.
    """
    import logging  # noqa: PLC0415 - lazy stdlib import keeps `import runner_core` fast

    return logging.getLogger("runner_core")
