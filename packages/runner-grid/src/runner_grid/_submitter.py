"""Submitting one job: retries on transient faults; a tag lookup so no job is queued twice.

A submit command can fail in three ways, told apart by the scheduler's ``submit_faults``
(regular expressions matched against what the command printed):

- "retry": the scheduler refused for now ("try again later", controller unreachable)
  and queued nothing. The submission is tried again after a back-off.
- "uncertain": the command may have queued the job before it failed (its reply was
  lost: a socket time-out, a dropped connection, or our own time-out killing it). The
  job is first looked up by its tag, a name unique to the job that the runner put in
  the submission (``tag_flag``); found (`Scheduler.find_tag`), it is taken as
  submitted, else it is tried again. Without a way to look the tag up, it is not
  tried again: a job must never be queued twice.
- "limit": the scheduler refused because of a limit on how many jobs may be queued
  (SLURM's ``QOSMaxSubmitJobPerUserLimit``, Grid Engine's ``max_u_jobs``, a PBS queue's
  ``max_queued``). Nothing is queued and nothing failed: the outcome says so
  (`SubmitOutcome.limited`) and the runner holds the job until its own jobs leave the
  queue (back-pressure; see `runner_grid._batch`).
- anything else (a bad option, an unknown partition, no id printed) fails the job at
  once.
"""

from __future__ import annotations

import logging
import re
import subprocess
from typing import TYPE_CHECKING, Callable, NamedTuple, Optional

from runner_grid._commands import LinkError, SchedulerCommandError, format_command, new_tag

if TYPE_CHECKING:
    import threading
    from collections.abc import Mapping, Sequence

    from runner_grid.schemes._base import Scheduler

__all__ = [
    "TASK_TAG",
    "SubmitOutcome",
    "classify_refusal",
    "find_recorded",
    "new_tag",
    "submit_job",
    "submit_logged",
]

logger = logging.getLogger(__name__)

#: Longest back-off between two tries, in seconds.
MAX_BACKOFF = 60.0
#: Between an array's tag and a task's index in the tag the journal records for the task
#: (``job-1a2b3c4d/3``): a resume finds the array by its tag, then the task by its index.
TASK_TAG = "/"


class SubmitOutcome(NamedTuple):
    """What a submission came to: the job's id, or why there is none."""

    jobid: Optional[str]
    error: Optional[str]
    limited: bool = False  # refused for a submit limit: nothing queued, try again when room frees


def _matches(patterns: Sequence[str], text: str) -> bool:
    return any(re.search(p, text) for p in patterns)


def classify_refusal(faults: Mapping[str, Sequence[str]], said: str) -> str:
    """Return what a failed submit command's output means: uncertain, limit, retry or fail.

    "uncertain" wins over the others: when the output holds it too (a refusal after a
    lost connection), the job may be queued, so it is looked up by its tag before any
    retry. "limit" wins over "retry".

    Args:
        faults: the scheme's ``submit_faults`` (``{"retry": [...], "uncertain": [...],
            "limit": [...]}``).
        said: what the command printed, standard output and error.

    Returns:
        "uncertain" (it may have queued the job), "limit" (a limit on queued jobs refused
        it: wait for room), "retry" (it queued nothing; try again) or "fail" (a permanent
        refusal).
    """
    if _matches(faults.get("uncertain", ()), said):
        return "uncertain"
    if _matches(faults.get("limit", ()), said):
        return "limit"
    if _matches(faults.get("retry", ()), said):
        return "retry"
    return "fail"


def _attempt(scheduler: Scheduler, argv: list[str]) -> tuple[str, Optional[str], str]:
    """One run of the submit command: (kind, job id, message); kind is ok/retry/uncertain/fail."""
    command = format_command(argv)
    try:
        proc = scheduler.run(argv, timeout=scheduler.submit_timeout)
    except SchedulerCommandError as exc:
        if isinstance(exc, LinkError) or isinstance(exc.__cause__, subprocess.TimeoutExpired):
            return "uncertain", None, f"the submit command did not complete: {exc}"
        return "fail", None, f"the submit command did not complete: {exc}"
    stderr = proc.stderr.strip()
    if proc.returncode != 0:
        # The scheduler's own words first: the first line is what a summary shows.
        said_last = next(
            (line.strip() for line in reversed(stderr.splitlines()) if line.strip()),
            proc.stdout.strip().splitlines()[-1].strip() if proc.stdout.strip() else "",
        )
        message = (
            f"the submit command failed with exit status {proc.returncode}: "
            f"{said_last or '(it printed nothing)'}\n"
            f"command: {command}\n"
            f"{stderr or '(nothing on stderr)'}"
        )
        kind = classify_refusal(scheduler.submit_faults, f"{proc.stdout}\n{proc.stderr}")
        return kind, None, message
    try:
        found = scheduler.parse_id(proc.stdout)
    except Exception as exc:  # a user's parser: its failure is the job's failure
        return (
            "fail",
            None,
            f"reading the job id (commands.getid, or parse_id) from the output of {command} "
            f"raised {exc!r}",
        )
    if not found:
        return (
            "fail",
            None,
            f"the submit command printed no job id: {command}\n"
            f"stdout: {proc.stdout.strip() or '(empty)'}\nstderr: {stderr or '(empty)'}",
        )
    return "ok", found, ""


def find_recorded(scheduler: Scheduler, tag: Optional[str]) -> Optional[str]:
    """The id of the job (or array task) a journal record's tag names; None when none is queued.

    A task's tag is its array's tag, `TASK_TAG` and its index: the array is found by its
    tag (`Scheduler.find_tag`), and the task's id made with `Scheduler.task_id`.

    Raises:
        RuntimeError: the lookup could not tell (a failed command); the job must then not
            be submitted again, or it could run twice.
    """
    if not tag:
        return None
    array_tag, sep, index = tag.partition(TASK_TAG)
    try:
        found = scheduler.find_tag(array_tag)
    except SchedulerCommandError as exc:
        raise RuntimeError(
            f"cannot tell whether the job tagged {tag!r} is still queued ({exc}); it is not "
            "submitted again, so it cannot run twice: try the resume again"
        ) from exc
    if found is None or not sep:
        return found
    return scheduler.task_id(found, int(index))


def _look_up(
    scheduler: Scheduler, tag: str, delay: float, wait: Callable[[float], bool]
) -> tuple[str, Optional[str]]:
    """Search the queue for `tag`: ("found", id), ("absent", None) or ("unknown", None).

    A failing search is tried again, with the same back-off, `submit_retries` times.
    """
    tries_left = scheduler.submit_retries
    while True:
        try:
            found = scheduler.find_tag(tag)
        except SchedulerCommandError as exc:
            logger.warning("could not search the queue for tag %s: %s", tag, exc)
            if not tries_left or wait(delay):
                return "unknown", None
            tries_left -= 1
            delay = min(delay * 2, MAX_BACKOFF)
            continue
        return ("found", found) if found is not None else ("absent", None)


def submit_job(
    scheduler: Scheduler,
    argv: list[str],
    tag: Optional[str],
    wait: Callable[[float], bool],
) -> SubmitOutcome:
    """Submit one job, retrying transient faults; an uncertain one is looked up by `tag` first.

    Args:
        scheduler: the scheduler (``submit_retries``, ``submit_backoff``, ``submit_faults``,
            `Scheduler.parse_id`, `Scheduler.find_tag`); the command runs through its
            `Scheduler.run`, in its environment.
        argv: the submit command, its tag flag included when `tag` is given.
        tag: the job's tag, or None when the submission carries none.
        wait: sleeps the given seconds; returns True when the runner is cancelling (stop).

    Returns:
        The job's id; or, refused for a submit limit, ``limited`` and the scheduler's words;
        else the error that ends the job FAILED (reason "submit_failed").
    """
    tries = scheduler.submit_retries + 1
    delay = scheduler.submit_backoff
    last = ""
    for attempt in range(1, tries + 1):
        kind, jobid, message = _attempt(scheduler, argv)
        if jobid is not None:
            return SubmitOutcome(jobid, None)
        if kind == "fail":
            return SubmitOutcome(None, message)
        if kind == "limit":
            return SubmitOutcome(None, message, limited=True)
        last = message
        if kind == "uncertain":
            if tag is None or not scheduler.can_find_tags:
                return SubmitOutcome(
                    None,
                    f"{message}\nThe job may have been queued all the same; it is not submitted "
                    "again (it could run twice) because the scheme cannot look it up by a tag. "
                    "Look for it in the queue.",
                )
            state, found = _look_up(scheduler, tag, delay, wait)
            if state == "found":
                logger.warning(
                    "the submission failed, but job %s is queued under tag %s", found, tag
                )
                return SubmitOutcome(found, None)
            if state == "unknown":
                return SubmitOutcome(
                    None,
                    f"{message}\nThe job may have been queued all the same (tag {tag!r}), and the "
                    "queue could not be searched for it; it is not submitted again. Look for it "
                    "in the queue.",
                )
        if attempt == tries:
            break
        logger.warning(
            "submit failed (try %d of %d), trying again in %g s: %s", attempt, tries, delay, last
        )
        if wait(delay):
            return SubmitOutcome(None, f"not submitted again: the runner is cancelling. {last}")
        delay = min(delay * 2, MAX_BACKOFF)
    return SubmitOutcome(None, f"gave up after {tries} tries: {last}")


def submit_logged(
    scheduler: Scheduler,
    argv: list[str],
    tag: Optional[str],
    stop: threading.Event,
    *,
    wait_for_room: Optional[Callable[[], float]] = None,
) -> SubmitOutcome:
    """`submit_job`, logged; with `wait_for_room`, a submit limit's refusal is waited out.

    Args:
        scheduler, argv, tag: as for `submit_job`.
        stop: set when the runner is cancelling (no more tries, no more waits).
        wait_for_room: for a call that blocks until its job ends anyway: gives the seconds
            to wait before trying again after a refusal for a submit limit (the runner's
            ``sleepstep``). Stopped meanwhile, the refusal comes back as a failure.

    Returns:
        The outcome; ``limited`` only without `wait_for_room`.
    """
    command = format_command(argv)
    logger.info("submitting: %s", command)
    outcome = submit_job(scheduler, argv, tag, stop.wait)
    while outcome.limited and wait_for_room is not None:
        if stop.wait(wait_for_room()):
            return outcome._replace(limited=False)
        outcome = submit_job(scheduler, argv, tag, stop.wait)
    if outcome.jobid is not None:
        logger.info("submitted job %s: %s", outcome.jobid, command)
    return outcome
