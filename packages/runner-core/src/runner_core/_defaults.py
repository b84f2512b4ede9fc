"""The default runner and manager of `config`, each made on first use."""

from __future__ import annotations

import threading
from typing import Any, Callable

from runner_core._config import config
from runner_core._manager import JobManager
from runner_core._runner import JobRunner

__all__ = ["default_jobmanager", "default_jobrunner"]

_lock = threading.Lock()


def _default(key: str, make: Callable[[], Any]) -> Any:
    """Return `config[key]`, storing `make()` there first if it is None (once, under a lock)."""
    value = config.get(key)
    if value is None:
        with _lock:
            value = config.get(key)
            if value is None:
                value = config[key] = make()
    return value


def default_jobrunner() -> JobRunner:
    """Return `config.default_jobrunner`, creating a serial `JobRunner()` on first use."""
    runner: JobRunner = _default("default_jobrunner", JobRunner)
    return runner


def default_jobmanager() -> JobManager:
    """Return `config.default_jobmanager`, creating a `JobManager()` on first use."""
    manager: JobManager = _default("default_jobmanager", JobManager)
    return manager
