"""Cancelling: one job (``job.cancel()``), every job of a runner, or a dead driver's jobs.

A job that has written its exit code is never cancelled: it ended by itself, and its end
is kept (see `JobsInQueue.ended_by_themselves`). The tasks of an array all being
cancelled go out as the array's id, one short command. Every command runs through the
scheduler's `Scheduler.cancel`.

Lock order: `Canceller._lock` is held only to swap its list of pending ids; nothing else
is locked, and no command runs, while it is held.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Callable

from runner_grid._submitter import find_recorded
from runner_grid._worker import Worker

if TYPE_CHECKING:
    from collections.abc import Sequence

    from runner_core import Results
    from runner_core.ext import JobRecord
    from runner_grid._ending import JobsInQueue
    from runner_grid.schemes._base import Scheduler

__all__ = ["Canceller", "cancel_records"]

logger = logging.getLogger(__name__)

#: Seconds after a cancel command at which the queue is checked again: a scheduler takes a
#: moment to remove a cancelled job, and the job should end within seconds whatever the
#: runner's sleepstep.
RECHECKS = (1.0, 3.0, 7.0)


class Canceller:
    """Sends the cancel commands of one runner.

    ``job.cancel()`` must return at once, so its cancel command runs in the canceller's
    own thread: one thread for every cancel of the runner, each command carrying every
    id asked for since the last one.

    Args:
        queue: the runner's jobs in the queue.
        scheduler: gives the scheduler to cancel with (it must not raise: a runner whose
            settings went bad mid-run cancels with the last good ones).
        name: the runner's scheme name, for the thread's name.
    """

    def __init__(self, queue: JobsInQueue, scheduler: Callable[[], Scheduler], name: str) -> None:
        """Create the canceller; its thread starts with the first `job.cancel()`."""
        self._queue = queue
        self._scheduler = scheduler
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._worker = Worker(f"runner-grid-cancel:{name}")

    def cancel_job(self, results: Results) -> None:
        """Cancel the job of `results` if it is in the queue; returns at once."""
        ids = self._queue.ids_of(results)
        ended = self._queue.ended_by_themselves(ids)
        ids = self._queue.claim_cancels([jobid for jobid in ids if jobid not in ended])
        if not ids:
            return
        with self._lock:
            self._pending.extend(ids)
        self._worker.put(self._drain)

    def cancel_all(self) -> None:
        """Cancel every job of the runner in the queue, but those that ended by themselves.

        The queue stops first, so a job submitted from now on cancels itself (see
        `GridRunner.call`); the ends of the jobs cancelled are looked at without waiting.
        """
        self._queue.stop()
        with self._lock:  # cancels `job.cancel()` queued go now, in this one command
            pending, self._pending = self._pending, []
        queued = self._queue.ids()
        ended = self._queue.ended_by_themselves(queued)
        ids = self._queue.whole_arrays([jobid for jobid in queued if jobid not in ended])
        self._send(list(dict.fromkeys(pending + self._queue.claim_cancels(ids))))
        self._queue.wake()

    def cancel_ids(self, ids: Sequence[str]) -> bool:
        """Run the cancel command now for those of `ids` no cancel was sent for yet.

        A job's cancel may be asked for twice at once (``job.cancel()`` while its thread
        sees the cancel after the submission): the scheduler gets one.

        Returns:
            False when a command could not run.
        """
        return self._send(self._queue.claim_cancels(ids))

    def _send(self, ids: Sequence[str]) -> bool:
        """Run the cancel command for `ids`, claimed already; a failed one may be tried again."""
        if not ids:
            return True
        if self._scheduler().cancel(ids):
            return True
        self._queue.release_cancels(ids)
        return False

    def _drain(self) -> None:
        """Run one cancel command for every id `cancel_job` queued since the last one."""
        with self._lock:
            ids, self._pending = self._pending, []
        if not ids:
            return
        try:
            self._send(ids)
        finally:
            self._queue.wake()
            for after in RECHECKS:
                self._worker.put(self._queue.wake, after=after)


def cancel_records(scheduler: Scheduler, records: Sequence[JobRecord]) -> list[JobRecord]:
    """Cancel recorded jobs of one scheme with no live runner; the records now stopped.

    A job whose id never reached the record is looked up by its tag first; one never
    found never reached the queue, and one the scheduler no longer knows has ended: both
    count as stopped. None counts when the cancel command could not run.
    """
    stopped: list[JobRecord] = []
    ids: dict[str, JobRecord] = {}
    for record in records:
        try:
            jobid = record.jobid or find_recorded(scheduler, record.tag)
        except RuntimeError as exc:
            logger.error("%s", exc)
            continue
        if jobid is None:
            stopped.append(record)  # never reached the queue
        else:
            ids[jobid] = record
    if ids and scheduler.cancel(list(ids)):
        stopped.extend(ids.values())
    return stopped
