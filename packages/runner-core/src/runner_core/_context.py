"""The job of the current thread: `current_results()`, `report_failure()`, `detach_job()`."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Optional

from runner_core._log import logger

if TYPE_CHECKING:
    from collections.abc import Iterator

    from runner_core._results import Results
    from runner_core._runner import Completion

__all__ = [
    "can_detach",
    "current_results",
    "detach_job",
    "job_context",
    "journaled",
    "report_end",
    "report_failure",
    "report_jobid",
    "report_reason",
    "report_started",
    "report_tag",
]

# The job whose `call` runs in this thread; report_failure and runners' own `call`s
# find their job through it.
_current = threading.local()


def current_results() -> Optional[Results]:
    """Return the Results of the job whose `call` runs in this thread, or None."""
    return getattr(_current, "results", None)


@contextmanager
def job_context(
    results: Results,
    detach: Optional[Callable[[], Completion]] = None,
    owner: Optional[object] = None,
) -> Iterator[None]:
    """Make `results` the current job of this thread while the block runs (nestable).

    Args:
        results: the job's results.
        detach: what `detach_job()` calls inside the block (None: the job cannot be
            detached, for example in a runner's finalize step).
        owner: the runner whose job this is.
    """
    previous = (
        getattr(_current, "results", None),
        getattr(_current, "detach", None),
        getattr(_current, "owner", None),
    )
    _current.results, _current.detach, _current.owner = results, detach, owner
    try:
        yield
    finally:
        _current.results, _current.detach, _current.owner = previous


def can_detach(runner: object) -> bool:
    """True when this thread runs, inside `runner`'s call, a job of `runner` that may detach.

    False in a call made by user code (no job), from inside a job of another runner, or
    once the job is detached.
    """
    return (
        getattr(_current, "detach", None) is not None and getattr(_current, "owner", None) is runner
    )


def detach_job() -> Completion:
    """Detach the job whose `call` runs in this thread from the thread; see `runner_core.ext`.

    Returns:
        The job's Completion: call `complete()` or `fail()` on it once, from any thread.

    Raises:
        RuntimeError: no job's `call` runs in this thread, or the job is detached already.
    """
    detach: Optional[Callable[[], Completion]] = getattr(_current, "detach", None)
    if detach is None:
        raise RuntimeError(
            "detach_job() must be called from inside a runner's call(), in the job's thread"
        )
    _current.detach = None
    return detach()


def report_failure(message: str, reason: Optional[str] = None) -> None:
    """Say why the job running in this thread failed, although `call` returns an exit code.

    Call it from inside a runner's `call` (which runs in the job's own thread). The job
    then ends FAILED with `results.error == message` and `results.exit_code` set to
    what `call` returned. Outside a job's `call` the message is only logged.

    Args:
        message: what went wrong, for a person to read (name the file or command).
        reason: the job's end reason, one word of `runner_core.REASONS`
            (for example "submit_failed"), or None.

    Raises:
        ValueError: `reason` is not one of `REASONS`.
    """
    results = current_results()
    if results is None:
        logger().warning("report_failure() outside a job's call: %s", message)
        return
    results._note(failure=str(message), reason=reason)
    logger().debug("job %r failed: %s", results.job.name, message)


def report_reason(reason: str) -> None:
    """Say why the job running in this thread ended, for its final state (`results.reason`).

    For a runner that learns it from outside: a scheduler that killed the job for its
    time limit ("timeout"), or a job cancelled by someone else ("cancelled"). The job
    still ends SUCCESSFUL or CRASHED by its exit code, except "cancelled", which ends
    it CANCELLED. Outside a job's `call` it is only logged.

    Args:
        reason: one word of `runner_core.REASONS`.

    Raises:
        ValueError: `reason` is not one of `REASONS`.
    """
    results = current_results()
    if results is None:
        logger().warning("report_reason() outside a job's call: %s", reason)
        return
    results._note(reason=reason)


def report_tag(tag: str) -> None:
    """Record the tag of the job running in this thread, before submitting it.

    A grid runner gives each job a tag the scheduler keeps (a job name or comment,
    unique to the job) and reports it here before the submit command runs: if the
    driver dies before the job's id is on record, a resume still finds the job in
    the queue by its tag (`JobRecord.tag`) instead of submitting it again. Outside a
    job's `call`, or for a job without a journal, it does nothing.
    """
    results = current_results()
    if results is not None and results._journal is not None:
        results._journal.tag(str(tag))


def journaled(results: Results) -> bool:
    """True when `results`' job is recorded in a run journal (so a resume can find it)."""
    return results._journal is not None


def report_jobid(jobid: str, native_id: Optional[str] = None) -> None:
    """Record the scheduler's id of the job running in this thread (`results.jobid`).

    Call it from a grid runner's `call` as soon as the submit command printed the id:
    the job is then in the scheduler's queue, and a job that is QUEUED becomes
    SUBMITTED (a runner whose `scheduler_queue` is true keeps its jobs QUEUED until
    then). Outside a job's `call` it does nothing.

    Args:
        jobid: the id the runner uses (for an array task, the array form ``123_4``).
        native_id: the scheduler's own id of the job where it differs (`results.native_id`).
    """
    results = current_results()
    if results is not None:
        results._submitted(str(jobid), None if native_id is None else str(native_id))


def report_started(
    results: Results, at: Optional[float] = None, native_id: Optional[str] = None
) -> bool:
    """Say that a job in the scheduler's queue has started on a node; from any thread.

    A SUBMITTED job becomes RUNNING, `results.started_at` set to `at` (when the job
    itself recorded its start) or now. Whichever is seen first, the scheduler's
    "running" or the job's own record of its start, should report it; later reports,
    and reports for a job that has ended, change nothing.

    Returns:
        True when the job moved to RUNNING.
    """
    return results._started(at)


def report_end(
    *,
    own_end: bool = False,
    started_at: Optional[float] = None,
    finished_at: Optional[float] = None,
) -> None:
    """Say, from inside `call`, what the job itself recorded of its end (for a blocking call).

    Args:
        own_end: the exit code `call` returns is the job's own: it ran to its end before
            any cancel reached it, so a cancel requested meanwhile does not make it
            CANCELLED (its work is kept).
        started_at: when the runscript started, as the job recorded it.
        finished_at: when the runscript ended, as the job recorded it.
    """
    results = current_results()
    if results is not None:
        results._note(own_end=own_end, started_at=started_at, finished_at=finished_at)
