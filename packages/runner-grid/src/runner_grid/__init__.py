"""runner-grid: submit jobs to SLURM, PBS or Grid Engine through `GridRunner`."""

from __future__ import annotations

from runner_grid.__about__ import __version__
from runner_grid._commands import (
    SchedulerCommandError,
    build_submit_argv,
    format_command,
    old_names,
)
from runner_grid._detect import DetectionError
from runner_grid._gridrunner import GridRunner
from runner_grid._limits import Limits, QueueLimits
from runner_grid._remote import (
    SshAuthError,
    SshConnectError,
    SshError,
    SshHost,
    SshHostKeyError,
    SshMasterGoneError,
    SshTimeoutError,
    SshTransferError,
    SshUnknownHostError,
)
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
    "SshAuthError",
    "SshConnectError",
    "SshError",
    "SshHost",
    "SshHostKeyError",
    "SshMasterGoneError",
    "SshTimeoutError",
    "SshTransferError",
    "SshUnknownHostError",
    "__version__",
    "build_submit_argv",
    "format_command",
]


__getattr__ = old_names(__name__)  # CheckFailed, deprecated
