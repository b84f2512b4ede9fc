"""Global defaults of runner_core: `config`, data only."""

from __future__ import annotations

from runner_settings import Settings

__all__ = ["config"]

config = Settings(
    {
        "daemon_threads": True,
        "wait_at_exit": True,
        "default_jobrunner": None,
        "default_jobmanager": None,
        "kill_grace": 2.0,
        "grid_jobs_on_exit": "cancel",
    }
)
"""Global defaults of runner_core.

Keys:
    daemon_threads: job threads are daemon threads (default True).
    wait_at_exit: at interpreter exit, wait for the jobs of every live runner
        (default True); after an unhandled KeyboardInterrupt, Ctrl-C during that
        wait, or SIGTERM/SIGHUP at any time, every live runner is shut down with
        cancel=True instead.
    default_jobrunner: the runner `run()` uses when given none (a `JobRunner()`
        created on first use).
    default_jobmanager: the manager `run()` uses when given none (a `JobManager()`
        created on first use).
    kill_grace: seconds between SIGTERM and SIGKILL when a job's process group is
        killed (default 2.0).
    grid_jobs_on_exit: what Ctrl-C, SIGTERM or SIGHUP does to grid jobs in the
        scheduler's queue: "cancel" (default) cancels them; "keep" leaves the ones a
        run journal records in the queue, for `runner resume DIR` (or the script run
        again with `JobManager(..., resume=True)`) to pick up. Local jobs are always
        stopped: they cannot outlive the script.
"""
