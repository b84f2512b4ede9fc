"""Helpers for the runner_core tests: await a state, count waiters, a runner with a gate."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from runner_core import JobRunner

if TYPE_CHECKING:
    from runner_settings import Settings

# Only a safety net against a hang: no assertion depends on how long anything takes.
TIMEOUT = 30.0


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Block until `predicate()` holds (re-checked every millisecond); fail after `timeout`."""
    deadline = time.monotonic() + timeout
    event = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"never reached: {what}")
        event.wait(0.001)


def slot_waiters(runner: JobRunner) -> int:
    """How many jobs wait for a maxjobs slot: queued ones, and calls blocked on a slot."""
    snap = runner.snapshot()
    return snap.queued + snap.slot_waiters


def busy_threads(runner: JobRunner) -> int:
    """Job threads that run a job (alive and not idle: an idle one waits for the next job)."""
    snap = runner.snapshot()
    return snap.threads - snap.idle


def thread_waiters(runner: JobRunner) -> int:
    """How many callers are blocked on the maxthreads cap."""
    return runner.snapshot().room_waiters


def join_job_threads() -> list[threading.Thread]:
    """Join the job threads (they end just after freeing their slot); return those left."""
    for thread in threading.enumerate():
        if thread.name.startswith("runner:"):
            thread.join(TIMEOUT)
    return [t for t in threading.enumerate() if t.name.startswith("runner:") and t.is_alive()]


class GateRunner(JobRunner):
    """A runner whose call counts how many run at once and blocks until `gate` opens."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cond = threading.Condition()
        self.active = 0
        self.peak = 0
        self.calls = 0
        self.gate = threading.Event()
        self.runflags: list[Settings] = []
        self.daemons: list[bool] = []

    def call(
        self, runscript: str, workdir: str, out: str | None, err: str, runflags: Settings
    ) -> int:
        with self.cond:
            self.active += 1
            self.calls += 1
            self.peak = max(self.peak, self.active)
            self.runflags.append(runflags)
            self.daemons.append(threading.current_thread().daemon)
            self.cond.notify_all()
        try:
            if not self.gate.wait(TIMEOUT):
                raise AssertionError("gate never opened")
        finally:
            with self.cond:
                self.active -= 1
                self.cond.notify_all()
        return int(runflags.get("code", 0))
