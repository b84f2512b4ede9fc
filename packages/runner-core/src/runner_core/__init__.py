"""runner-core: run computational jobs locally, serially or in parallel."""

from runner_core.__about__ import __version__
from runner_core._config import config
from runner_core._jobs import JobError, JobStatus, Results, SingleJob, report_failure
from runner_core._manager import JobManager
from runner_core._runner import JobRunner

__all__ = [
    "JobError",
    "JobManager",
    "JobRunner",
    "JobStatus",
    "Results",
    "SingleJob",
    "__version__",
    "config",
    "report_failure",
]
