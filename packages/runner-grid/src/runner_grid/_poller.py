"""The queue poller: one thread per runner asks the scheduler which of its jobs are still queued.

Lock order: `QueuePoller._lock` and `SchemeCheck._lock` are leaves. No other lock is taken,
no scheduler command runs and no callback is called while either is held.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Callable, Optional

from runner_grid._commands import SchedulerCommandError, format_command, old_names
from runner_grid._ids import base_id, task_key

if TYPE_CHECKING:
    from collections.abc import Collection, Container, Sequence

    from runner_grid.schemes._base import Scheduler

__all__ = ["QueuePoller", "SchemeCheck", "listed_ids"]

logger = logging.getLogger(__name__)


__getattr__ = old_names(__name__)  # CheckFailed, deprecated


class SchemeCheck:
    """Ask the scheduler, through its check commands, which jobs are still queued.

    Args:
        source: a callable returning the scheduler to use (called anew at every check, so
            changes to ``runner.settings`` take effect at the next one).
    """

    def __init__(self, source: Callable[[], Scheduler]) -> None:
        self._source = source
        self._lock = threading.Lock()
        self._count = 0
        self.started: set[str] = set()  # ids the last check listed as started (running)

    @property
    def count(self) -> int:
        """Number of check commands run so far."""
        return self._count

    def __call__(self, ids: Sequence[str]) -> set[str]:
        """Return the ids (as the scheduler's parser gives them) of jobs still in the queue.

        Args:
            ids: the jobs being waited for.

        Returns:
            Ids the scheduler lists as queued or running.

        Raises:
            SchedulerCommandError: a command failed, timed out or printed something the
                parser refused.
        """
        scheduler = self._source()
        queued: set[str] = set()
        begun: set[str] = set()
        for argv in scheduler.check_argvs(ids):
            with self._lock:
                self._count += 1
            proc = scheduler.run(argv)
            if proc.returncode != 0:
                answer = scheduler.check_error(ids, proc.returncode, proc.stdout, proc.stderr)
                if answer is None:
                    raise SchedulerCommandError(
                        f"{format_command(argv)} exited with status {proc.returncode}: "
                        f"{proc.stderr.strip() or proc.stdout.strip() or '(no output)'}"
                    )
                queued.update(answer)
                continue
            try:
                listing = scheduler.parse_listing(proc.stdout)
            except (ValueError, TypeError) as exc:
                raise SchedulerCommandError(
                    f"{format_command(argv)} printed what the parser refused: {exc}"
                ) from exc
            queued.update(listing.queued)
            begun.update(listing.started)
        self.started = begun
        return queued


class _Listed:
    """The ids a check listed, to ask whether a job or an array task is among them."""

    __slots__ = ("_jobs", "_tasks")

    def __init__(self, listed: Collection[str]) -> None:
        self._jobs = {base_id(str(q)) for q in listed}
        self._tasks = {key for key in map(task_key, map(str, listed)) if key is not None}

    def __contains__(self, jobid: object) -> bool:
        key = task_key(str(jobid))
        return key in self._tasks if key is not None else base_id(str(jobid)) in self._jobs


def listed_ids(listed: Collection[str]) -> Container[str]:
    """What a check listed, as a container asking for jobs and array tasks as the poller does."""
    return _Listed(listed)


class QueuePoller:
    """One thread that checks the queue every ``sleepstep`` seconds for all registered jobs.

    The thread starts with the first registration and ends when no job is left; deciding to end
    and registering happen under one lock, so a job registered at any moment is always polled.
    A failed check releases nothing: it is logged and retried after an exponential back-off
    (``sleepstep`` doubled per failure, at most ``backoff_max``). Only a successful check that no
    longer lists a job releases it.

    Args:
        check: callable given the registered ids, returning the ids still queued, raising
            `SchedulerCommandError` when it cannot tell. A job's id is queued while a listed id has
            the same `base_id` (its array tasks count for it); an array task's id (`task_key`)
            only while that task itself is listed.
        sleepstep: seconds between two checks.
        backoff_max: longest wait after failed checks (never below ``sleepstep``).
        name: name of the thread, for debugging.
        on_round: called in the poller's thread after each successful check with the ids
            still waited for (to look at jobs that are still queued, such as whether they
            started); it must return quickly, and an exception in it is logged.
    """

    def __init__(
        self,
        check: Callable[[Sequence[str]], Collection[str]],
        sleepstep: float,
        backoff_max: float = 60.0,
        name: str = "runner-grid-poller",
        on_round: Optional[Callable[[Sequence[str]], object]] = None,
    ) -> None:
        self._check = check
        self._on_round = on_round
        self.sleepstep = float(sleepstep)
        self.backoff_max = float(backoff_max)
        self._name = name
        self._lock = threading.Lock()
        self._jobs: dict[str, list[Callable[[], object]]] = {}
        self._events: dict[str, threading.Event] = {}  # register()'s, one per id
        self._thread: Optional[threading.Thread] = None
        self._wake = threading.Event()
        self.failures = 0

    def register(self, jobid: str) -> threading.Event:
        """Start waiting for a job: return an event set once it has left the queue.

        Args:
            jobid: the id the submit command gave.

        Returns:
            The job's event (the same one if the id is registered already).
        """
        with self._lock:
            event = self._events.get(jobid)
            if event is None:
                event = self._events[jobid] = threading.Event()
                self._watch(jobid, event.set)
        return event

    def watch(self, jobid: str, on_left: Callable[[], object]) -> None:
        """Call `on_left()` in the poller's thread once the job has left the queue.

        `on_left` must return quickly (hand slow work to another thread): every job of
        the runner waits for the same thread. An exception in it is logged.

        Args:
            jobid: the id the submit command gave (registering it twice calls both).
            on_left: what to call.
        """
        with self._lock:
            self._watch(jobid, on_left)

    def _watch(self, jobid: str, on_left: Callable[[], object]) -> None:
        """`watch()` with the lock held."""
        self._jobs.setdefault(jobid, []).append(on_left)
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
            self._thread.start()

    def forget(self, ids: Collection[str]) -> None:
        """Stop waiting for the given jobs: their callbacks are never called."""
        with self._lock:
            for jobid in ids:
                self._jobs.pop(jobid, None)
                self._events.pop(jobid, None)

    def active(self) -> list[str]:
        """Return the ids still waited for."""
        with self._lock:
            return list(self._jobs)

    def wake(self) -> None:
        """Check now instead of at the end of the current interval (used after cancelling)."""
        self._wake.set()

    @property
    def running(self) -> bool:
        """True while the polling thread is alive."""
        with self._lock:
            return self._thread is not None

    def _exited(self) -> None:
        """Hook run by the thread right after it has decided to end (tests use it)."""

    def _loop(self) -> None:
        delay = self.sleepstep
        while True:
            self._wake.wait(delay)
            self._wake.clear()
            with self._lock:
                ids = list(self._jobs)
            try:
                queued = self._check(ids)
            except Exception as exc:
                self.failures += 1
                delay = min(
                    self.sleepstep * 2**self.failures, max(self.backoff_max, self.sleepstep)
                )
                if isinstance(exc, SchedulerCommandError):
                    logger.warning(
                        "queue check failed (%s); no job released, next try in %g s", exc, delay
                    )
                else:
                    logger.exception("queue check raised; no job released, next try in %g s", delay)
                continue
            self.failures = 0
            delay = self.sleepstep
            still = _Listed(queued)
            left: list[Callable[[], object]] = []
            staying: list[str] = []
            with self._lock:
                for jobid in ids:
                    if jobid not in still:
                        logger.debug("job %s has left the queue", jobid)
                        left.extend(self._jobs.pop(jobid, ()))
                        self._events.pop(jobid, None)
                    else:
                        staying.append(jobid)
                last = not self._jobs
                if last:
                    self._thread = None
            if self._on_round is not None and staying:
                try:
                    self._on_round(staying)
                except Exception:
                    logger.exception("the poller's round hook raised")
            for on_left in left:
                try:
                    on_left()
                except Exception:
                    logger.exception("the callback of a job that left the queue raised")
            if last:
                break
        self._exited()
