"""runner-grid: submit jobs to SLURM, PBS or Grid Engine through `GridRunner`."""

from __future__ import annotations

import warnings
from typing import Any

from runner_grid.__about__ import __version__
from runner_grid._commands import SchedulerCommandError, build_submit_argv, format_command
from runner_grid._detect import DetectionError
from runner_grid._gridrunner import GridRunner
from runner_grid._limits import Limits, QueueLimits
from runner_grid.schemes._base import Listing, Scheduler
from runner_grid.schemes._settings import Scheme, SchemeError

__all__ = [
    "DetectionError",
    "GridRunner",
    "Limits",
    "Listing",
    "QueueLimits",
    "Scheduler",
    "SchedulerCommandError",
    "Scheme",
    "SchemeError",
    "__version__",
    "build_submit_argv",
    "format_command",
]


def __getattr__(name: str) -> Any:
    # CheckFailed: the name runner_grid exported before SchedulerCommandError, kept as an alias.
    if name == "CheckFailed":
        warnings.warn(
            "runner_grid.CheckFailed is deprecated; use runner_grid.SchedulerCommandError",
            DeprecationWarning,
            stacklevel=2,
        )
        return SchedulerCommandError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
