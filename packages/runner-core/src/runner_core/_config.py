"""Global defaults of runner_core (`config`) and the lazily created default runner and manager."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable

from runner_settings import Settings

if TYPE_CHECKING:
    from runner_core._manager import JobManager
    from runner_core._runner import JobRunner

config = Settings(
    {
        "daemon_threads": True,
        "wait_at_exit": True,
        "default_jobrunner": None,
        "default_jobmanager": None,
        "kill_grace": 2.0,
    }
)
"""Global defaults of runner_core.

Keys:
    daemon_threads: job threads are daemon threads (default True).
    wait_at_exit: at interpreter exit, wait for the jobs of every live runner
        (default True); after an unhandled KeyboardInterrupt, or Ctrl-C during that
        wait, every live runner is shut down with cancel=True instead.
    default_jobrunner: the runner `run()` uses when given none (a `JobRunner()`
        created on first use).
    default_jobmanager: the manager `run()` uses when given none (a `JobManager()`
        created on first use).
    kill_grace: seconds between SIGTERM and SIGKILL when a job's process group is
        killed (default 2.0).
"""

_defaults_lock = threading.Lock()


def _default(key: str, make: Callable[[], Any]) -> Any:
    """Return `config[key]`, storing `make()` there first if it is None (once, under a lock)."""
    value = config.get(key)
    if value is None:
        with _defaults_lock:
            value = config.get(key)
            if value is None:
                value = config[key] = make()
    return value


def default_jobrunner() -> JobRunner:
    """Return `config.default_jobrunner`, creating a serial `JobRunner()` on first use."""
    from runner_core._runner import JobRunner

    runner: JobRunner = _default("default_jobrunner", JobRunner)
    return runner


def default_jobmanager() -> JobManager:
    """Return `config.default_jobmanager`, creating a `JobManager()` on first use."""
    from runner_core._manager import JobManager

    manager: JobManager = _default("default_jobmanager", JobManager)
    return manager
