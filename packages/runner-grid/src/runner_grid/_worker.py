"""A worker: one daemon thread that runs the callables handed to it, at once or later."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Callable

__all__ = ["Worker"]

logger = logging.getLogger(__name__)


class Worker:
    """Runs callables in one daemon thread, each when it is due; started on demand, ended when idle.

    A runner uses one for each kind of work that must not run in the thread that asks
    for it: ending jobs that left the queue (their exit-code queries) without holding up
    the poller, and running the cancel commands `job.cancel()` asks for. A job whose end
    is not known yet is looked at again later (`put(fn, after=...)`) instead of keeping
    the thread waiting, so one slow job never holds up the others. The thread ends after
    `idle` seconds without work and starts again with the next `put()`, so an idle
    runner holds no thread.

    Args:
        name: the thread's name.
        idle: seconds without work after which the thread ends.
    """

    def __init__(self, name: str, idle: float = 5.0) -> None:
        """Create the worker; no thread starts before the first `put()`."""
        self._name = name
        self._idle = idle
        self._lock = threading.Lock()
        self._wanted = threading.Condition(self._lock)
        self._work: list[tuple[float, int, Callable[[], object]]] = []  # a heap by due time
        self._order = itertools.count()  # first put, first run among those due together
        self._running = False

    def put(self, fn: Callable[[], object], after: float = 0.0) -> None:
        """Run `fn()` in the worker's thread in `after` seconds (at once by default).

        Returns at once. Callables due at the same time run in the order they were put.
        """
        with self._lock:
            heapq.heappush(self._work, (time.monotonic() + after, next(self._order), fn))
            self._wanted.notify()
            if self._running:
                return
            self._running = True
        threading.Thread(target=self._loop, name=self._name, daemon=True).start()

    def hurry(self) -> None:
        """Make everything put for later due now (the runner is cancelling: stop waiting)."""
        with self._lock:
            now = time.monotonic()
            self._work = [(min(due, now), n, fn) for due, n, fn in self._work]
            heapq.heapify(self._work)
            self._wanted.notify()

    def pending(self) -> int:
        """How many callables wait to run, now or later."""
        with self._lock:
            return len(self._work)

    def _loop(self) -> None:
        while True:
            with self._lock:
                while True:
                    if not self._work:
                        self._wanted.wait(self._idle)
                        if not self._work:
                            self._running = False
                            return
                        continue
                    due = self._work[0][0] - time.monotonic()
                    if due <= 0:
                        _, _, fn = heapq.heappop(self._work)
                        break
                    self._wanted.wait(due)
            try:
                fn()
            except Exception:
                logger.exception("%s: a task raised", self._name)
