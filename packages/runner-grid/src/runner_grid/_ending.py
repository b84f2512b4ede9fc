"""The jobs in the scheduler's queue: matching polls, asking how each ended, completing it.

One `JobsInQueue` per runner owns every job of it that is in the queue, plain jobs and
array tasks alike. The poller checks the queue for all of them; a job that has left it
goes to the finisher thread, which asks how it ended (`end_step`: its exit-code and
times files, then the scheduler) and hands the whole answer, an `End`, to the job's
sink in one call: a detached job's `Completion`, or the `Waiter` a blocking `call()`
waits on. So there is one way a job ends, whether or not a thread waits for it.

Lock order: `JobsInQueue._lock` is taken last. Nothing else is locked, no scheduler
command runs and no callback is called while it is held; `Batches._lock` (see
`runner_grid._batch`) may be held while it is taken, never the other way round.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Callable, NamedTuple, Optional, Union

from runner_core import JobStatus
from runner_core.ext import (
    Completion,
    RecordedState,
    journaled,
    report_started,
    tail_of,
    wait_event,
)
from runner_grid._commands import SchedulerCommandError
from runner_grid._poller import QueuePoller, SchemeCheck, listed_ids
from runner_grid._worker import Worker
from runner_grid._wrapper import (
    Times,
    exitcode_path,
    read_exitcode,
    read_times,
    remove_leftovers,
    times_for,
)

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from runner_core import Results
    from runner_core.ext import JobRecord
    from runner_grid.schemes._base import Scheduler

__all__ = ["End", "JobsInQueue", "Waiter", "end_step", "observe_records"]

logger = logging.getLogger(__name__)

#: Longest wait between two looks at a job whose end is not known yet, in seconds.
MAX_LOOK_DELAY = 5.0

#: Longest wait between two tries to copy back the folders of ended jobs, in seconds.
MAX_FETCH_DELAY = 60.0

#: Seconds the finisher waits before it copies back the folders of jobs that left the queue
#: on another host, so that all the jobs one check found gone come back in one transfer.
FETCH_GATHER = 0.05


class End(NamedTuple):
    """How a job that left the queue ended: everything its completion needs, together."""

    code: int
    reason: Optional[str] = None
    own_end: bool = False  # the exit code is the job's own: it ran to its end before any cancel
    started_at: Optional[float] = None  # what its wrapper recorded of its run
    finished_at: Optional[float] = None
    error: Optional[str] = None  # why its end could not be found: the job ends FAILED with it


class Waiter:
    """Where the end of a job arrives that a blocking `call()` waits for."""

    __slots__ = ("end", "event")

    def __init__(self) -> None:
        """Nothing has arrived yet."""
        self.event = threading.Event()
        self.end: Optional[End] = None

    def wait(self) -> End:
        """Wait for the job's end (a Ctrl-C in the main thread interrupts it)."""
        wait_event(self.event)
        assert self.end is not None
        return self.end


#: Who is told a job's end: the Completion of a detached job, or a blocking call's Waiter.
Sink = Union[Completion, Waiter]


def deliver(sink: Sink, end: End) -> None:
    """Hand `end` to `sink` in one call."""
    if isinstance(sink, Waiter):
        sink.end = end
        sink.event.set()
    elif end.error is not None:
        sink.fail(end.error, end.code, reason=end.reason)
    else:
        sink.complete(
            end.code,
            end.reason,
            own_end=end.own_end,
            started_at=end.started_at,
            finished_at=end.finished_at,
        )


def _end(code: int, reason: Optional[str], own_end: bool, times: Times) -> End:
    return End(code, reason, own_end, times.started, times.finished)


def _stderr_tail(exit_file: str) -> str:
    """The last lines of the job's stderr file (``<name>.err`` beside ``<name>.exitcode``)."""
    stem = exit_file[: -len(".exitcode")] if exit_file.endswith(".exitcode") else exit_file
    return tail_of(stem + ".err") or ""


def end_step(
    scheduler: Scheduler, jobid: str, exit_file: str, cancelled: bool, last: bool
) -> Optional[End]:
    """One look at how a job that left the queue ended; None when nothing tells yet.

    The job's own exit-code file first; when it is missing or non-zero, or zero with a
    note in the job's stderr that the scheduler killed part of it
    (`Scheduler.ended_in_part`), the scheduler's records (`Scheduler.how_ended`).
    Accounting may be written late (Grid Engine's flush_time), so until the `last` look
    a missing record means "ask again". At the
    last look with nothing known, the exit code is 1 (see the docs page on exit codes).
    The times are what the job's wrapper recorded.

    An exit code the job wrote is its own end (its work is kept even when a cancel came
    meanwhile) unless the scheduler says the job was cancelled, or a cancel was requested
    and nothing says why a non-zero code came.
    """
    code = read_exitcode(exit_file)
    times = read_times(times_for(exit_file))
    if code == 0:
        if scheduler.tells_reasons and scheduler.ended_in_part(_stderr_tail(exit_file)):
            told = scheduler.how_ended(jobid)
            if told is None and not last:
                return None  # its end is not on record yet: look again
            if told is not None and told[1] not in (None, "cancelled"):
                logger.info("job %s exited 0, but the scheduler ended it %s", jobid, told[1])
                return _end(told[0], told[1], True, times)
        return _end(0, None, True, times)
    if code is not None:  # the runscript's own code; the scheduler may know why
        if not scheduler.tells_reasons:
            return _end(code, None, not cancelled, times)
        told = scheduler.how_ended(jobid)
        if told is not None:
            return _end(code, told[1], told[1] != "cancelled", times)
        return _end(code, None, not cancelled, times) if last else None
    told = scheduler.how_ended(jobid)
    if told is not None:
        logger.info("job %s wrote no exit code; the scheduler reports %d", jobid, told[0])
        return _end(told[0], told[1], told[0] == 0 and told[1] is None, times)
    if not last:
        return None
    if cancelled:
        logger.info("job %s was cancelled before it wrote an exit code; reporting 1", jobid)
        return _end(1, "cancelled", False, times)
    logger.warning(
        "exit code of job %s is unknown: it wrote no %s (killed, cancelled or its node "
        "failed) and the scheduler no longer reports it; reporting 1",
        jobid,
        exit_file,
    )
    return _end(1, None, False, times)


class _Job:
    """A job of the runner in the scheduler's queue."""

    __slots__ = ("array", "cancel_sent", "ended_first", "exit_file", "results", "sink")

    def __init__(
        self, results: Optional[Results], exit_file: str, sink: Sink, array: Optional[str]
    ) -> None:
        self.results = results  # None for a call made by code outside a job
        self.exit_file = exit_file
        self.sink = sink
        self.array = array  # the id of the array it is a task of, or None
        self.ended_first = False  # it wrote its exit code before a cancel of the runner
        self.cancel_sent = False


class JobsInQueue:
    """The runner's jobs in the scheduler's queue, and the threads that see them leave it.

    Args:
        scheduler: gives the scheduler to use, read anew for every end (settings change).
        sleepstep: seconds between two queue checks.
        name: the runner's scheme name, for thread names.

    Attributes:
        on_gone: called with a job's id, and its array's id once the array's last task
            has gone (else None), after the job was forgotten; must return quickly.
        fetch: for jobs that ran on another host: copies back the folders of ended jobs,
            given their exit-code files (`runner_grid._site.RemoteSite.fetch_ended`), in the
            finisher's thread before they end: one call for the jobs that left in one check.
            It returns False when the copy failed: it is tried again later (back-off up to
            `MAX_FETCH_DELAY`), the jobs ending only once their folders are here, or the
            runner stops (then with what is here).
    """

    def __init__(
        self,
        scheduler: Callable[[], Scheduler],
        sleepstep: float,
        name: str,
    ) -> None:
        """Create the registry; its threads start with the first job."""
        self._scheduler = scheduler
        self.on_gone: Callable[[str, Optional[str]], object] = lambda jobid, array: None
        self.fetch: Optional[Callable[[Sequence[str]], bool]] = None
        self._left: list[str] = []  # left the queue, waiting for `fetch` (guarded by _lock)
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self._arrays: dict[str, set[str]] = {}  # array id -> its tasks still in the queue
        self.stopped = threading.Event()  # cancelling: one last look at each end, no waits
        self.check = SchemeCheck(scheduler)
        self.poller = QueuePoller(
            self.check, sleepstep, name=f"runner-grid-poller:{name}", on_round=self.look_for_starts
        )
        self._finisher = Worker(f"runner-grid-finish:{name}")

    # --- adding and removing jobs ----------------------------------------------------

    def add(self, jobid: str, results: Optional[Results], exit_file: str, sink: Sink) -> None:
        """Watch a submitted job until it leaves the queue; then its end goes to `sink`."""
        with self._lock:
            self._jobs[jobid] = _Job(results, exit_file, sink, None)
        self._watch(jobid)

    def add_array(self, array_id: str, tasks: Sequence[tuple[str, Completion, str]]) -> None:
        """Watch the tasks of a submitted array: (task id, its job's Completion, exit file)."""
        with self._lock:
            self._arrays[array_id] = {jobid for jobid, _c, _f in tasks}
            for jobid, completion, exit_file in tasks:
                self._jobs[jobid] = _Job(completion.results, exit_file, completion, array_id)
        for jobid, _completion, _file in tasks:
            self._watch(jobid)

    def _watch(self, jobid: str) -> None:
        self.poller.watch(jobid, lambda: self._has_left(jobid))

    def _has_left(self, jobid: str) -> None:
        """In the poller's thread: a job left the queue; the finisher ends it."""
        if self.fetch is None:
            self._finisher.put(lambda: self._finish(jobid))
            return
        with self._lock:
            self._left.append(jobid)
            first = len(self._left) == 1
        if first:  # the other jobs of the same check join it meanwhile
            self._finisher.put(self._fetch_and_finish, after=FETCH_GATHER)

    def _fetch_and_finish(self, ids: Optional[list[str]] = None, delay: float = 1.0) -> None:
        """In the finisher: copy back the folders of the jobs that left, in one go; end them.

        A copy that failed is tried again in `delay` seconds (doubled each time), so that
        no job ends without its files while the link is only down for a while.
        """
        with self._lock:
            if ids is None:
                ids, self._left = self._left, []
            ids = [jobid for jobid in ids if jobid in self._jobs]  # not forgotten meanwhile
            files = [self._jobs[jobid].exit_file for jobid in ids]
        fetched = self.fetch is None or not files or self.fetch(files)
        if not fetched and not self.stopped.is_set():
            again = min(delay * 2, MAX_FETCH_DELAY)
            self._finisher.put(lambda: self._fetch_and_finish(ids, again), after=delay)
            return
        for jobid in ids:
            self._finish(jobid)

    def forget(self, jobid: str) -> None:
        """Stop owning a job (it ended, or a blocking call gave up on it)."""
        with self._lock:
            job = self._jobs.pop(jobid, None)
            emptied = None
            if job is not None and job.array is not None:
                tasks = self._arrays.get(job.array)
                if tasks is not None:
                    tasks.discard(jobid)
                    if not tasks:
                        del self._arrays[job.array]
                        emptied = job.array
        if job is None:
            return
        self.poller.forget([jobid])
        self.on_gone(jobid, emptied)
        remove_leftovers(job.exit_file)  # an older wrapper, killed while it wrote, left one

    def leave_journaled(self) -> int:
        """Let go of every detached job a journal records (`Completion.leave`); how many.

        The runner stops watching them and cancels none of them, so a resume waits for them
        again. Jobs of a blocking call are kept.
        """
        with self._lock:
            left = [
                (jobid, job.sink)
                for jobid, job in self._jobs.items()
                if isinstance(job.sink, Completion) and journaled(job.sink.results)
            ]
            for jobid, _sink in left:
                del self._jobs[jobid]
        self.poller.forget([jobid for jobid, _sink in left])
        for _jobid, sink in left:
            assert isinstance(sink, Completion)
            sink.leave()
        return len(left)

    # --- what the runner asks ----------------------------------------------------------

    def ids(self) -> list[str]:
        """The ids of the jobs in the queue."""
        with self._lock:
            return list(self._jobs)

    def ids_of(self, results: Results) -> list[str]:
        """The ids in the queue that belong to the job of `results` (one, or none)."""
        with self._lock:
            return [jobid for jobid, job in self._jobs.items() if job.results is results]

    def holds(self, jobid: str) -> bool:
        """Whether `jobid` (a job, a task or an array) is in the queue still."""
        with self._lock:
            return jobid in self._jobs or jobid in self._arrays

    def count_plain(self, excluding: Collection[str]) -> int:
        """How many jobs in the queue are no array's task and not among `excluding`."""
        with self._lock:
            return sum(
                1
                for jobid, job in self._jobs.items()
                if job.array is None and jobid not in excluding
            )

    def claim_cancels(self, ids: Sequence[str]) -> list[str]:
        """Of `ids`, those no cancel was sent for yet (ids not in the queue count too)."""
        with self._lock:
            fresh = []
            for jobid in ids:
                job = self._jobs.get(jobid)
                if job is None or not job.cancel_sent:
                    fresh.append(jobid)
                    if job is not None:
                        job.cancel_sent = True
            return fresh

    def release_cancels(self, ids: Sequence[str]) -> None:
        """Forget that a cancel was sent for `ids`: its command could not run."""
        with self._lock:
            for jobid in ids:
                if (job := self._jobs.get(jobid)) is not None:
                    job.cancel_sent = False

    def ended_by_themselves(self, ids: Sequence[str]) -> set[str]:
        """The ids among `ids` whose job has written its exit code: it ended by itself.

        Such a job is not cancelled (the cancel would come after its end): it keeps its
        real state and exit code when the poller sees it gone. A stat per job.
        """
        with self._lock:
            files = [(jobid, job.exit_file) for jobid in ids if (job := self._jobs.get(jobid))]
        ended = {jobid for jobid, path in files if os.path.exists(path)}
        if ended:
            with self._lock:
                for jobid in ended:
                    job = self._jobs.get(jobid)
                    if job is not None:
                        job.ended_first = True
            logger.info("not cancelling %d job(s) that have ended by themselves", len(ended))
        return ended

    def whole_arrays(self, ids: Sequence[str]) -> list[str]:
        """`ids`, an array's tasks replaced by the array's id where all of them are in.

        So cancelling a batch of a thousand tasks is ``scancel 123``, not a thousand ids.
        """
        wanted = set(ids)
        with self._lock:
            whole = [array for array, tasks in self._arrays.items() if tasks and tasks <= wanted]
            covered = set().union(*(self._arrays[array] for array in whole))
        return [jobid for jobid in ids if jobid not in covered] + whole

    def stop(self) -> None:
        """The runner is cancelling: ends are looked at once more without waiting."""
        self.stopped.set()
        self.wake()

    def wake(self) -> None:
        """Check the queue now, and look at pending ends now."""
        self.poller.wake()
        if self.stopped.is_set():
            self._finisher.hurry()

    def later(self, fn: Callable[[], object], after: float) -> None:
        """Run `fn` in the finisher's thread in `after` seconds."""
        self._finisher.put(fn, after=after)

    # --- the poller's and the finisher's work ------------------------------------------

    def look_for_starts(self, ids: Sequence[str]) -> None:
        """After a queue check: the jobs still queued that have started become RUNNING.

        A job has started when its wrapper recorded its start (``<name>.times``; its real
        start time is taken from there) or when the scheduler's listing shows it running,
        whichever is seen first: a node's file system may show the file late. Runs in
        the poller's thread; a stat per job that has not started yet.
        """
        begun = self.check.started
        with self._lock:
            pending = [
                (job.results, job.exit_file)
                for jobid in ids
                if (job := self._jobs.get(jobid)) is not None
                and job.results is not None
                and job.results.status is JobStatus.SUBMITTED
            ]
        listed = listed_ids(begun)  # once per round: built per job, a round was O(n^2)
        for results, exit_file in pending:
            times = read_times(times_for(exit_file))
            if times.started is not None:
                report_started(results, at=times.started, native_id=times.native_id)
            elif results.jobid is not None and results.jobid in listed:
                report_started(results)

    def _finish(self, jobid: str, deadline: Optional[float] = None, delay: float = 0.25) -> None:
        """End a job that left the queue, or look again later (within ``exitcode_wait``).

        Runs in the finisher. When nothing tells how the job ended yet, it is put back to
        be looked at again later, so the finisher never waits on one job while others are
        ready.
        """
        with self._lock:
            job = self._jobs.get(jobid)
        if job is None:  # forgotten meanwhile (left in the queue, or a call gave up)
            return
        try:
            scheduler = self._scheduler()
            results = job.results
            cancelled = self.stopped.is_set() or (results is not None and results.cancel_requested)
            now = time.monotonic()
            due: float = deadline if deadline is not None else now
            if deadline is None and not cancelled:
                due += scheduler.exitcode_wait
            last = now >= due or self.stopped.is_set()
            fetch = self.fetch
            if fetch is not None and deadline is not None:  # a later look: fetch again
                fetch([job.exit_file])
            end = end_step(scheduler, jobid, job.exit_file, cancelled, last)
            if (
                end is not None
                and fetch is not None
                and deadline is None  # not fetched in this look yet
                and not os.path.exists(job.exit_file)
            ):
                # Told by the scheduler: the job may have written its files since the copy.
                fetch([job.exit_file])
                if os.path.exists(job.exit_file):
                    end = end_step(scheduler, jobid, job.exit_file, cancelled, last)
        except Exception as exc:
            logger.exception("could not find out how job %s ended", jobid)
            end = End(1, error=f"could not find out how job {jobid} ended: {exc!r}")
        if end is None:
            again, after = min(delay * 2, MAX_LOOK_DELAY), min(delay, due - now)
            self._finisher.put(lambda: self._finish(jobid, due, again), after=after)
            return
        if job.ended_first and end.code == 0 and not end.own_end:
            end = end._replace(own_end=True)
        self.forget(jobid)
        deliver(job.sink, end)


def recorded_state(code: int, reason: Optional[str], times: Times) -> RecordedState:
    """How a job ended, as a record shows it: CANCELLED, SUCCESSFUL (0, no reason) or CRASHED."""
    if reason == "cancelled":
        status = JobStatus.CANCELLED
    elif code == 0 and reason is None:
        status = JobStatus.SUCCESSFUL
    else:
        status = JobStatus.CRASHED
    return RecordedState(status, code, reason, times.started, times.finished)


def observe_records(
    records: Sequence[JobRecord], scheduler: Optional[Scheduler]
) -> dict[int, RecordedState]:
    """Where recorded jobs of one scheme are now: from their folders, and `scheduler` if given.

    A job whose wrapper wrote its exit code has ended by itself: SUCCESSFUL (0) or, with
    the scheduler's reason, CRASHED or CANCELLED. One that recorded its start and no end
    is RUNNING. With a scheduler, a job that wrote nothing and is no longer in the queue
    ended as the scheduler's records say (if they say).
    """
    seen: dict[int, RecordedState] = {}
    unknown: list[tuple[JobRecord, Times]] = []
    for record in records:
        exit_file = exitcode_path(record.path, record.name + ".run")
        times = read_times(times_for(exit_file))
        code = read_exitcode(exit_file)
        if code is None:
            unknown.append((record, times))
            continue
        told = None
        if code != 0 and scheduler is not None and record.jobid:
            told = scheduler.how_ended(record.jobid)
        seen[record.number] = recorded_state(code, None if told is None else told[1], times)
    gone: set[str] = set()
    ids = [record.jobid for record, _times in unknown if record.jobid]
    if scheduler is not None and ids:
        try:
            still = SchemeCheck(lambda: scheduler)(ids)
        except SchedulerCommandError as exc:
            logger.error("could not ask which jobs are still queued: %s", exc)
        else:
            gone = {jobid for jobid in ids if jobid not in listed_ids(still)}
    for record, times in unknown:
        if scheduler is not None and record.jobid in gone:
            told = scheduler.how_ended(record.jobid)
            if told is not None:
                seen[record.number] = recorded_state(told[0], told[1], times)
                continue
        if times.started is not None:
            seen[record.number] = RecordedState(JobStatus.RUNNING, started_at=times.started)
    return seen
