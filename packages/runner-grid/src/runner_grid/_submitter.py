"""Submitting one job: retries on transient faults; a tag lookup so no job is queued twice.

A submit command can fail in three ways, told apart by the scheme's ``submit_faults``
(regular expressions matched against what the command printed):

- "retry": the scheduler refused for now ("try again later", controller unreachable)
  and queued nothing. The submission is tried again after a back-off.
- "uncertain": the command may have queued the job before it failed (its reply was
  lost: a socket time-out, a dropped connection, or our own time-out killing it). The
  job is first looked up by its tag, a name unique to the job that the runner put in
  the submission (``tag_flag``); found, it is taken as submitted, else it is tried
  again. Without a way to look the tag up, it is not tried again: a job must never
  be queued twice.
- anything else (a bad option, an unknown partition, no id printed) fails the job at
  once.
"""

from __future__ import annotations

import logging
import re
import secrets
import subprocess
from typing import TYPE_CHECKING, Callable, NamedTuple, Optional

from runner_grid._commands import CheckFailed, format_command, run_query, split_command
from runner_grid._poller import query_env

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from runner_grid._scheme import Scheme

__all__ = [
    "TASK_TAG",
    "SubmitOutcome",
    "classify_refusal",
    "find_by_tag",
    "find_recorded",
    "new_tag",
    "submit_job",
]

logger = logging.getLogger(__name__)

#: Longest back-off between two tries, in seconds.
MAX_BACKOFF = 60.0
#: Between an array's tag and a task's index in the tag the journal records for the task
#: (``job-1a2b3c4d/3``): a resume finds the array by its tag, then the task by its index.
TASK_TAG = "/"

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class SubmitOutcome(NamedTuple):
    """What a submission came to: the job's id, or why there is none."""

    jobid: Optional[str]
    error: Optional[str]


def new_tag(name: str) -> str:
    """Return a tag unique to one job: a short, safe form of its name and 8 random hex digits.

    It is valid as a job name on SLURM, Grid Engine (no leading digit, no ``/:@\\*?``) and
    PBS (at most 15 characters, as old Torque servers require).
    """
    stem = _UNSAFE.sub("_", name)[:6] or "job"
    if not stem[0].isalpha():
        stem = "j" + stem[:5]
    return f"{stem}-{secrets.token_hex(4)}"


def _matches(patterns: Sequence[str], text: str) -> bool:
    return any(re.search(p, text) for p in patterns)


def classify_refusal(faults: Mapping[str, Sequence[str]], said: str) -> str:
    """Return what a failed submit command's output means: "uncertain", "retry" or "fail".

    "uncertain" wins over "retry": when the output holds both (a refusal after a lost
    connection), the job may be queued, so it is looked up by its tag before any retry.

    Args:
        faults: the scheme's ``submit_faults`` (``{"retry": [...], "uncertain": [...]}``).
        said: what the command printed, standard output and error.

    Returns:
        "uncertain" (it may have queued the job), "retry" (it queued nothing; try again) or
        "fail" (a permanent refusal).
    """
    if _matches(faults.get("uncertain", ()), said):
        return "uncertain"
    if _matches(faults.get("retry", ()), said):
        return "retry"
    return "fail"


def _attempt(
    scheme: Scheme, argv: list[str], env: Mapping[str, str]
) -> tuple[str, Optional[str], str]:
    """One run of the submit command: (kind, job id, message); kind is ok/retry/uncertain/fail."""
    command = format_command(argv)
    faults = scheme.submit_faults
    try:
        proc = run_query(argv, env, scheme.submit_timeout)
    except CheckFailed as exc:
        if isinstance(exc.__cause__, subprocess.TimeoutExpired):
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
        return classify_refusal(faults, f"{proc.stdout}\n{proc.stderr}"), None, message
    try:
        found = scheme.commands["getid"](proc.stdout)
    except Exception as exc:  # a user's parser: its failure is the job's failure
        return "fail", None, f"commands.getid raised {exc!r} on the output of {command}"
    if not found:
        return (
            "fail",
            None,
            f"the submit command printed no job id: {command}\n"
            f"stdout: {proc.stdout.strip() or '(empty)'}\nstderr: {stderr or '(empty)'}",
        )
    return "ok", str(found), ""


def find_by_tag(scheme: Scheme, tag: str) -> Optional[str]:
    """Return the id of the job queued under `tag`, or None when none is.

    ``commands.find_tag(tag)`` gives the commands to run; ``commands.parse_tag(tag,
    returncode, stdout, stderr)`` reads each one's answer: the id, None for "no such
    job", or ValueError when the answer does not tell (a failed command).

    Raises:
        CheckFailed: the lookup command failed: it cannot tell.
    """
    find = scheme.get("find_tag")
    parse = scheme.get("parse_tag")
    if find is None or parse is None:
        raise CheckFailed(f"scheme {scheme.name!r} has no commands.find_tag/parse_tag")
    env = query_env(scheme)
    for query in find(tag):
        argv = split_command(query, "commands.find_tag")
        proc = run_query(argv, env, scheme.check_timeout)
        try:
            found = parse(tag, proc.returncode, proc.stdout, proc.stderr)
        except ValueError as exc:
            raise CheckFailed(
                f"{format_command(argv)} exited {proc.returncode} and did not tell: {exc}"
            ) from exc
        if found:
            return str(found)
    return None


def find_recorded(scheme: Scheme, tag: Optional[str]) -> Optional[str]:
    """The id of the job (or array task) a journal record's tag names; None when none is queued.

    A task's tag is its array's tag, `TASK_TAG` and its index: the array is found by its
    tag, and the task's id made with ``commands.task_id``.

    Raises:
        RuntimeError: the lookup could not tell (a failed command); the job must then not
            be submitted again, or it could run twice.
    """
    if not tag:
        return None
    array_tag, sep, index = tag.partition(TASK_TAG)
    try:
        found = find_by_tag(scheme, array_tag)
    except CheckFailed as exc:
        raise RuntimeError(
            f"cannot tell whether the job tagged {tag!r} is still queued ({exc}); it is not "
            "submitted again, so it cannot run twice: try the resume again"
        ) from exc
    if found is None or not sep:
        return found
    return str(scheme.commands["task_id"](found, int(index)))


def _look_up(
    scheme: Scheme, tag: str, delay: float, wait: Callable[[float], bool]
) -> tuple[str, Optional[str]]:
    """Search the queue for `tag`: ("found", id), ("absent", None) or ("unknown", None).

    A failing search is tried again, with the same back-off, `submit_retries` times.
    """
    tries_left = scheme.submit_retries
    while True:
        try:
            found = find_by_tag(scheme, tag)
        except CheckFailed as exc:
            logger.warning("could not search the queue for tag %s: %s", tag, exc)
            if not tries_left or wait(delay):
                return "unknown", None
            tries_left -= 1
            delay = min(delay * 2, MAX_BACKOFF)
            continue
        return ("found", found) if found is not None else ("absent", None)


def submit_job(
    scheme: Scheme,
    argv: list[str],
    env: Mapping[str, str],
    tag: Optional[str],
    wait: Callable[[float], bool],
) -> SubmitOutcome:
    """Submit one job, retrying transient faults; an uncertain one is looked up by `tag` first.

    Args:
        scheme: the scheme (``submit_retries``, ``submit_backoff``, ``submit_faults``,
            ``commands.getid``, ``commands.find_tag``/``parse_tag``).
        argv: the submit command, its tag flag included when `tag` is given.
        env: its environment.
        tag: the job's tag, or None when the submission carries none.
        wait: sleeps the given seconds; returns True when the runner is cancelling (stop).

    Returns:
        The job's id, or the error that ends the job FAILED (reason "submit_failed").
    """
    tries = scheme.submit_retries + 1
    delay = scheme.submit_backoff
    last = ""
    for attempt in range(1, tries + 1):
        kind, jobid, message = _attempt(scheme, argv, env)
        if jobid is not None:
            return SubmitOutcome(jobid, None)
        if kind == "fail":
            return SubmitOutcome(None, message)
        last = message
        if kind == "uncertain":
            if tag is None or scheme.get("find_tag") is None:
                return SubmitOutcome(
                    None,
                    f"{message}\nThe job may have been queued all the same; it is not submitted "
                    "again (it could run twice) because the scheme cannot look it up by a tag. "
                    "Look for it in the queue.",
                )
            state, found = _look_up(scheme, tag, delay, wait)
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
