"""runner-grid: submit jobs to SLURM, PBS or Grid Engine through `GridRunner`."""

from runner_grid.__about__ import __version__
from runner_grid._commands import (
    CheckFailed,
    SchedulerCommandError,
    build_submit_argv,
    format_command,
)
from runner_grid._detect import DetectionError
from runner_grid._gridrunner import GridRunner
from runner_grid._scheme import Scheme, SchemeError

__all__ = [
    "CheckFailed",
    "DetectionError",
    "GridRunner",
    "SchedulerCommandError",
    "Scheme",
    "SchemeError",
    "__version__",
    "build_submit_argv",
    "format_command",
]
