"""runner-core: run computational jobs locally, serially or in parallel."""

from runner_core.__about__ import __version__
from runner_core._config import config
from runner_core._context import report_failure
from runner_core._errors import JobError, JobStateError
from runner_core._interrupts import Terminated
from runner_core._jobs import SingleJob
from runner_core._journal import JobRecord, JournalLocked, JournalState, read_journal
from runner_core._manager import CancelOutcome, JobManager, cancel_run
from runner_core._resources import (
    GROWABLE,
    RESOURCE_KEYS,
    Resources,
    format_memory,
    format_walltime,
    megabytes,
    parse_memory,
    parse_walltime,
)
from runner_core._results import Results, as_completed
from runner_core._retry import RETRY_REASONS, Attempt, Retry
from runner_core._runner import JobRunner
from runner_core._status import REASONS, JobStatus

__all__ = [
    "GROWABLE",
    "REASONS",
    "RESOURCE_KEYS",
    "RETRY_REASONS",
    "Attempt",
    "CancelOutcome",
    "JobError",
    "JobManager",
    "JobRecord",
    "JobRunner",
    "JobStateError",
    "JobStatus",
    "JournalLocked",
    "JournalState",
    "Resources",
    "Results",
    "Retry",
    "SingleJob",
    "Terminated",
    "__version__",
    "as_completed",
    "cancel_run",
    "config",
    "format_memory",
    "format_walltime",
    "megabytes",
    "parse_memory",
    "parse_walltime",
    "read_journal",
    "report_failure",
]
