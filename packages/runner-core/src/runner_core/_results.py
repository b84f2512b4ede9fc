"""Results: the one state machine of a job, its callbacks, and `as_completed`."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from runner_core._errors import JobStateError
from runner_core._interrupts import in_main_thread, wait_event, wait_slice
from runner_core._log import logger
from runner_core._status import REASONS, JobStatus

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from runner_core._jobs import SingleJob
    from runner_core._journal import _Entry
    from runner_core._retry import Attempt

__all__ = ["Results", "as_completed"]

# One lock for every job's state: a move is a few assignments long, so sharing it costs
# nothing measurable and saves a lock per job (10,000 jobs in flight is the target).
# Nothing is called while it is held (no callback, no hook, no other lock) but the job's
# journal entry: it queues the move's record (a list append under the journal's queue
# lock, which is innermost and calls nothing), so the journal has the moves in the
# order they happened. A move to a final state is also written here, under this lock
# (`flush`: one `os.write` under the journal's write lock, which calls nothing else), so
# that ends reach the journal, the waiters and the callbacks in one order; any other
# move is written once this lock is let go. Either way a step is on record before any
# waiter, callback or process learns of it.
_lock = threading.Lock()


def _check_reason(reason: Optional[str]) -> None:
    if reason is not None and reason not in REASONS:
        raise ValueError(
            f"reason {reason!r} is not one of {', '.join(sorted(REASONS))}; "
            "add it to runner_core.REASONS with what it means"
        )


class Results:
    """The outcome of one job: status, exit code, reason, error, times; can be waited on.

    The job's state changes here only, through one method under one lock, along
    CREATED -> QUEUED -> (SUBMITTED, grid jobs) -> RUNNING -> one final state; a
    final state is never left (see `JobStatus`). Read the attributes at any time from
    any thread.

    Times are epoch seconds (`time.time()`), None while unknown. For a grid job they
    come from the job itself where it can tell: its wrapper records when the
    runscript started and ended on the node.

    Attributes:
        job: the job these results belong to.
        status: a JobStatus.
        exit_code: what the runner's `call` returned, or None while unknown.
        reason: None for a job that ended by itself; else why it was ended, one word
            of `runner_core.REASONS` ("cancelled", "timeout", "submit_failed", ...).
        error: why the job did not succeed, else None: the failure message or
            formatted traceback when it FAILED, the last lines of its stderr when it
            CRASHED (what the runscript printed last), a note when it was CANCELLED.
        submitted_at: when a grid job was first handed to the scheduler (kept across
            resumes), or None (local jobs are never submitted).
        started_at: when the runscript started (a local job: when `call` started).
        finished_at: when the job ended (the runscript's end where it is known).
        jobid: the scheduler's id of a grid job once submitted, else None. For an
            array task, the array form (``4031_1``).
        native_id: the scheduler's own id of an array task where it differs from
            `jobid` (SLURM gives each task a job id of its own, ``4052``, which its
            messages use), else None.
        restored: True when a resumed JobManager found the job ended in an earlier
            run with the same input, and gave back its results without running it
            again.
        attempts: the earlier attempts of a job run again by a `runner_core.Retry`,
            oldest first (`runner_core.Attempt`: id, exit code, reason, request,
            times); empty for a job run once. The fields above are the last attempt's.
    """

    __slots__ = (
        "_callbacks",
        "_cancel_requested",
        "_end_reason",
        "_event",
        "_failure",
        "_journal",
        "_on_cancel",
        "_own_end",
        "_retry_note",
        "_stamps",
        "attempts",
        "error",
        "exit_code",
        "finished_at",
        "job",
        "jobid",
        "native_id",
        "reason",
        "restored",
        "started_at",
        "status",
        "submitted_at",
    )

    def __init__(self, job: SingleJob) -> None:
        """Create the results of `job`, in state CREATED."""
        self.job = job
        self.status = JobStatus.CREATED
        self.exit_code: Optional[int] = None
        self.reason: Optional[str] = None
        self.error: Optional[str] = None
        self.submitted_at: Optional[float] = None
        self.started_at: Optional[float] = None
        self.finished_at: Optional[float] = None
        self.jobid: Optional[str] = None
        self.native_id: Optional[str] = None
        # Made by the first `wait()` on a job not ended yet (most jobs are never waited
        # on one by one; an Event and its Condition are about 1 KiB per job in flight).
        self._event: Optional[threading.Event] = None
        self._callbacks: Optional[list[Callable[[Results], object]]] = None
        self._failure: Optional[str] = None
        self._end_reason: Optional[str] = None
        self._cancel_requested = False
        self._own_end = False
        self._stamps: Optional[tuple[Optional[float], Optional[float]]] = None
        self._on_cancel: Optional[Callable[[Results], None]] = None
        self._journal: Optional[_Entry] = None
        self._retry_note: Optional[str] = None
        self.restored = False
        self.attempts: tuple[Attempt, ...] = ()

    def __repr__(self) -> str:
        reason = f" ({self.reason})" if self.reason else ""
        return (
            f"<Results of {self.job.name!r}: {self.status.name}{reason}, "
            f"exit code {self.exit_code}>"
        )

    @property
    def ok(self) -> bool:
        """True when the job ended SUCCESSFUL."""
        return self.status is JobStatus.SUCCESSFUL

    @property
    def done(self) -> bool:
        """True once the job has ended (successful, crashed, failed or cancelled)."""
        return self.status.done

    @property
    def attempt(self) -> int:
        """The number of the job's current (or last) attempt: 1 until it is run again."""
        return len(self.attempts) + 1

    @property
    def cancel_requested(self) -> bool:
        """True once `job.cancel()` was called on a job that had not ended yet."""
        return self._cancel_requested

    @property
    def elapsed(self) -> Optional[float]:
        """Seconds the runscript ran (so far, while running); None before it started."""
        start = self.started_at
        if start is None:
            return None
        end = self.finished_at
        return max(0.0, (time.time() if end is None else end) - start)

    @property
    def run_time(self) -> Optional[float]:
        """Seconds from the runscript's start to the job's end; None until both are known."""
        start, end = self.started_at, self.finished_at
        if start is None or end is None:
            return None
        return max(0.0, end - start)

    @property
    def wait_time(self) -> Optional[float]:
        """Seconds a grid job waited in the scheduler's queue before it started.

        None for a local job, and until it started; a job cancelled while it waited
        has waited until it was cancelled.
        """
        submitted = self.submitted_at
        if submitted is None:
            return None
        start = self.started_at
        if start is None:
            start = self.finished_at
        if start is None:
            return None
        return max(0.0, start - submitted)

    def wait(self, timeout: Optional[float] = None) -> Results:
        """Block until the job has ended.

        Args:
            timeout: seconds to wait at most; None waits for as long as it takes.

        Returns:
            These results.

        Raises:
            TimeoutError: the timeout passed before the job ended.
        """
        with _lock:
            event = self._event
            if event is None:
                if self.status.done:
                    return self
                event = self._event = threading.Event()
        if not wait_event(event, timeout):
            raise TimeoutError(
                f"job {self.job.name!r} has not ended within {timeout} s "
                f"(status {self.status.name}); wait longer or cancel it"
            )
        return self

    def add_done_callback(self, fn: Callable[[Results], object]) -> None:
        """Call `fn(results)` once the job has ended; at once (here) if it has already.

        Callbacks run in the thread that ended the job, in the order they were added,
        after `wait()` has been released. An exception in one is logged (with its
        traceback, on the `runner_core` logger) and does not stop the others.

        Args:
            fn: a callable taking these results; keep it short, it runs in a job's
                or the runner's own thread.
        """
        with _lock:
            if not self.status.done:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(fn)
                return
        self._run_callback(fn)

    # --- the state machine: used by runners, never by scripts -----------------------

    def _move(
        self,
        to: JobStatus,
        *,
        exit_code: Optional[int] = None,
        error: Optional[str] = None,
        reason: Optional[str] = None,
        once: bool = False,
        if_allowed: bool = False,
        at: Optional[float] = None,
        started_at: Optional[float] = None,
    ) -> bool:
        """Move the job to state `to`; the only place where a job's state changes.

        Moving to SUBMITTED stamps `submitted_at` (unless it holds a first submit
        time already), to RUNNING `started_at`; moving to a final state stamps
        `finished_at`, sets exit code, error and reason, releases every waiter and
        runs the callbacks. `at` is when the move happened (default: now), as the job
        itself recorded it; `started_at`, with a final move, corrects the start time
        to the one the job recorded. With `once`, a move to a final state of a job that has
        ended already changes nothing and returns False (for two parties that may
        both end a job, such as a thread and a Ctrl-C in `run()`). With `if_allowed`, a
        move the state machine refuses changes nothing and returns False (a grid job
        seen started by the poller after it had ended, or twice).

        Returns:
            True when the state changed.

        Raises:
            JobStateError: the state machine does not allow the move (naming both states).
            ValueError: `reason` is not one of `REASONS`.
        """
        _check_reason(reason)
        done = to.done
        failure: Optional[BaseException] = None
        with _lock:
            current = self.status
            if not current.may_become(to):
                if if_allowed or (once and done and current.done):
                    return False
                raise JobStateError(
                    f"job {self.job.name!r} cannot move from {current.name} to {to.name}"
                    + (" (a final state is never left)" if current.done else "")
                )
            now = time.time() if at is None else at
            if to is JobStatus.SUBMITTED:
                if self.submitted_at is None:
                    self.submitted_at = now
            elif to is JobStatus.RUNNING and (at is not None or self.started_at is None):
                self.started_at = now
            entry = self._journal
            event = self._event  # read with the move: a waiter that comes later sees the end
            if not done:
                self.status = to
            else:
                if exit_code is not None:
                    self.exit_code = exit_code
                if started_at is not None:
                    self.started_at = started_at
                self.error = error
                self.reason = reason
                self.finished_at = now
                self._on_cancel = None
                callbacks, self._callbacks = self._callbacks, None
                self.status = to  # last: a reader that sees a final state sees its fields
            ticket = 0 if entry is None else entry.moved(self, to)
            if entry is not None and ticket and done:
                try:
                    entry.flush(ticket)
                except BaseException as exc:  # a journal that cannot be written: say so,
                    failure = exc  # after releasing the waiters, which must not hang
        if not done:
            if entry is not None and ticket:
                entry.flush(ticket)
            return True
        if event is not None:
            event.set()
        for fn in callbacks or ():
            self._run_callback(fn)
        if failure is not None:
            raise failure
        return True

    def _again(self, attempt: Attempt, following: Mapping[str, Any]) -> bool:
        """The job runs again: keep `attempt` (the one that ended) and go back to QUEUED.

        `following`: the run flags the next attempt changes (for the journal).

        The one way back in the state machine: the job has not ended (a final state is
        still never left), its attempt did. Its scheduler id, times and end notes are
        cleared for the next attempt; the attempt is on record first.

        Returns:
            False when the job ended meanwhile (a Ctrl-C): it is not run again.
        """
        with _lock:
            if self.status.done or self._cancel_requested:
                return False
            self.attempts = (*self.attempts, attempt)
            self.status = JobStatus.QUEUED
            self.jobid = self.native_id = None
            self.submitted_at = self.started_at = None
            self._failure = self._end_reason = self._stamps = None
            self._own_end = False
            entry = self._journal
            ticket = 0 if entry is None else entry.attempt(attempt, following)
        if entry is not None and ticket:
            entry.flush(ticket)
        return True

    def _carry(self, attempts: tuple[Attempt, ...]) -> None:
        """A resumed job goes on from the attempts an earlier driver made."""
        with _lock:
            if not self.attempts:
                self.attempts = attempts

    def _submitted(self, jobid: str, native_id: Optional[str] = None) -> None:
        """A grid job is in the scheduler's queue under `jobid`: record it, move to SUBMITTED."""
        self._note(jobid=jobid, native_id=native_id)
        self._move(JobStatus.SUBMITTED, if_allowed=True)

    def _started(self, at: Optional[float] = None, native_id: Optional[str] = None) -> bool:
        """A grid job started on a node (at `at`, as it recorded): move to RUNNING if not yet.

        `native_id`, the scheduler's own id of the job as the job read it, is recorded
        where it differs from `jobid`.
        """
        if native_id not in (None, self.jobid, self.native_id) and self.jobid is not None:
            self._note(jobid=self.jobid, native_id=native_id)
        return self._move(JobStatus.RUNNING, if_allowed=True, at=at)

    def _attach(self, on_cancel: Callable[[Results], None]) -> None:
        """Tell the job how to cancel it: `on_cancel(results)` runs on `job.cancel()`.

        The runner that takes the job calls this first. A cancel requested before is
        handed over at once.
        """
        with _lock:
            if self.status.done:
                return
            self._on_cancel = on_cancel
            pending = self._cancel_requested
        if pending:
            on_cancel(self)

    def _request_cancel(self) -> None:
        """Mark the job cancelled and hand it to its runner's cancel hook (if attached)."""
        with _lock:
            if self.status.done or self._cancel_requested:
                return
            self._cancel_requested = True
            hook = self._on_cancel
        if hook is not None:
            hook(self)

    def _note(
        self,
        *,
        failure: Optional[str] = None,
        reason: Optional[str] = None,
        jobid: Optional[str] = None,
        own_end: Optional[bool] = None,
        native_id: Optional[str] = None,
        started_at: Optional[float] = None,
        finished_at: Optional[float] = None,
    ) -> None:
        """Remember, for the end, why the job failed or was ended; record its scheduler id.

        `own_end` True says the exit code is the job's own (it ran to its end, before
        any cancel reached it): a cancel requested meanwhile does not make it CANCELLED.
        """
        _check_reason(reason)
        if failure is not None:
            self._failure = failure
        if reason is not None:
            self._end_reason = reason
        if own_end is not None:
            self._own_end = own_end
        if started_at is not None or finished_at is not None:
            self._stamps = (started_at, finished_at)
        if jobid is not None:
            self.jobid = jobid
            if native_id == jobid:
                native_id = None
            self.native_id = native_id
            entry = self._journal
            if entry is not None:
                entry.jobid(jobid, native_id)

    def _restore(
        self,
        status: JobStatus,
        *,
        exit_code: Optional[int],
        reason: Optional[str] = None,
        error: Optional[str] = None,
        started_at: Optional[float],
        finished_at: Optional[float],
        jobid: Optional[str],
        submitted_at: Optional[float] = None,
        native_id: Optional[str] = None,
    ) -> None:
        """End a job that has not started as an earlier run of it ended (a resume).

        The job moves from CREATED straight to the final `status` with that run's
        exit code, reason, error, times and scheduler id, `restored` True; waiters and
        callbacks see those, never the time of the restore.

        Raises:
            JobStateError: the job has left CREATED, or `status` is not a final state.
            ValueError: `reason` is not one of `REASONS`.
        """
        if not status.done:
            raise JobStateError(
                f"job {self.job.name!r} cannot be restored as {status.name}: "
                "only an earlier run's final state is restored"
            )
        _check_reason(reason)  # before `restored` is set: a refused restore is no restore
        with _lock:
            if self.status is not JobStatus.CREATED:
                raise JobStateError(
                    f"job {self.job.name!r} cannot be restored from {self.status.name}"
                )
            self.jobid = jobid
            self.native_id = native_id
            self.submitted_at = submitted_at
            self.restored = True
        self._move(
            status,
            exit_code=exit_code,
            error=error,
            reason=reason,
            at=finished_at,
            started_at=started_at,
        )

    def _run_callback(self, fn: Callable[[Results], object]) -> None:
        try:
            fn(self)
        except Exception:
            logger().exception("done-callback %r of job %r raised", fn, self.job.name)


def as_completed(results: Iterable[Results], timeout: Optional[float] = None) -> Iterator[Results]:
    """Yield each of `results` as its job ends, first ended first.

    Jobs that have ended already come first. Like `concurrent.futures.as_completed`,
    duplicates are yielded once.

    Args:
        results: the Results to watch.
        timeout: seconds, from the call, until TimeoutError; None waits for as long as
            it takes.

    Yields:
        Each Results once its job is final.

    Raises:
        TimeoutError: the timeout passed with jobs still not ended (naming how many).
    """
    import queue  # noqa: PLC0415 - lazy stdlib import keeps `import runner_core` fast

    deadline = None if timeout is None else time.monotonic() + timeout
    pending = {id(r): r for r in results}
    ended: queue.SimpleQueue[Results] = queue.SimpleQueue()
    for r in pending.values():
        r.add_done_callback(ended.put)
    main = in_main_thread()
    while pending:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise TimeoutError(
                f"{len(pending)} of the jobs have not ended within {timeout} s; "
                "wait longer or cancel them"
            )
        try:
            r = ended.get(timeout=wait_slice(remaining) if main else remaining)
        except queue.Empty:
            continue
        if pending.pop(id(r), None) is not None:
            yield r
