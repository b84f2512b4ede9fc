"""A worker: one daemon thread that runs the callables handed to it, started on demand."""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Callable

__all__ = ["Worker"]

logger = logging.getLogger(__name__)


class Worker:
    """Runs callables in order in one daemon thread, started on demand, ended when idle.

    A runner uses one for the work that must not run in the thread that asks for it:
    ending jobs that left the queue (their exit-code queries), without holding up the
    poller. The thread ends after `idle` seconds without work and starts again with
    the next `put()`, so an idle runner holds no thread.

    Args:
        name: the thread's name.
        idle: seconds without work after which the thread ends.
    """

    def __init__(self, name: str, idle: float = 5.0) -> None:
        """Create the worker; no thread starts before the first `put()`."""
        self._name = name
        self._idle = idle
        self._lock = threading.Lock()
        self._work: deque[Callable[[], object]] = deque()
        self._wanted = threading.Condition(self._lock)
        self._running = False

    def put(self, fn: Callable[[], object]) -> None:
        """Run `fn()` in the worker's thread after what was put before. Returns at once."""
        with self._lock:
            self._work.append(fn)
            self._wanted.notify()
            if self._running:
                return
            self._running = True
        threading.Thread(target=self._loop, name=self._name, daemon=True).start()

    def pending(self) -> int:
        """How many callables wait to run."""
        with self._lock:
            return len(self._work)

    def _loop(self) -> None:
        while True:
            with self._lock:
                if not self._work:
                    self._wanted.wait(self._idle)
                if not self._work:
                    self._running = False
                    return
                fn = self._work.popleft()
            try:
                fn()
            except Exception:
                logger.exception("%s: a task raised", self._name)
