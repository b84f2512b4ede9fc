"""Job ids as schedulers print them: the job's own part of an id; the id a submit printed."""

from __future__ import annotations

import re
from typing import Optional

__all__ = ["base_id", "expand_indices", "last_id", "task_key"]

_LEADING_DIGITS = re.compile(r"\d+")
# An array task as each scheduler names one: SLURM 123_4, PBS 9[4] (with or without the
# server: 9[4].srv), Grid Engine 123.4. PBS's 12.srv is a job, not a task: a server name is
# never all digits.
_TASK = re.compile(r"^(\d+)(?:_(\d+)|\[(\d+)\](?:\..*)?|\.(\d+))$")
# One piece of an index list: 7, 1-5, 1-9:2 (Grid Engine's step), 1-9%2 (SLURM's throttle).
_RANGE = re.compile(r"^(\d+)(?:-(\d+)(?::(\d+))?)?(?:%\d+)?$")


def base_id(jobid: str) -> str:
    """Return the part of a job id that names the job itself.

    Array and server decorations are dropped: ``123_[1-5]``, ``123_4``, ``123+1``, ``123.1-5:1``,
    ``123[].server`` and ``123.server.domain`` all give ``123``. An id that does not start with
    digits is returned unchanged.

    Args:
        jobid: an id as a scheduler prints it.

    Returns:
        The job's own id.
    """
    match = _LEADING_DIGITS.match(jobid)
    return match.group(0) if match else jobid


def last_id(output: str, *patterns: re.Pattern[str]) -> Optional[str]:
    """Return group 1 of the last line of `output` that one of `patterns` matches.

    Submit commands print the id last; site wrappers may print banners before it, so the
    search runs from the end.

    Args:
        output: everything the submit command wrote to standard output.
        *patterns: tried in order on each line; group 1 holds the id.

    Returns:
        The id, or None when no line matches (never an empty string).
    """
    for line in reversed(output.splitlines()):
        for pattern in patterns:
            match = pattern.match(line)
            if match and match.group(1):
                return match.group(1)
    return None


def task_key(jobid: str) -> Optional[str]:
    """Return the scheduler-neutral key of an array task's id, or None for a job that is no task.

    ``123_4`` (SLURM), ``123.4`` (Grid Engine) and ``9[4]`` / ``9[4].server`` (PBS) give
    ``"123_4"``, ``"123.4"`` and ``"9[4]"``: what the poller compares, so that one task of an
    array is told from its siblings. ``123``, ``12.server``, ``9[].server`` and ranges give None.

    Args:
        jobid: an id as a scheduler prints it.

    Returns:
        The task's key, or None.
    """
    match = _TASK.match(jobid)
    if match is None:
        return None
    job, slurm, pbs, sge = match.groups()
    if slurm is not None:
        return f"{job}_{slurm}"
    if pbs is not None:
        return f"{job}[{pbs}]"
    return f"{job}.{sge}"


def expand_indices(spec: str) -> list[int]:
    """Return the task indices an index list names, in order.

    Reads the forms schedulers print for the tasks of an array still pending: ``1-5``,
    ``1,3,7-9``, Grid Engine's step ``1-9:2`` and SLURM's throttle suffix ``1-9%2``.

    Args:
        spec: the list, without brackets.

    Returns:
        The indices.

    Raises:
        ValueError: a piece of the list is none of these forms.
    """
    indices: list[int] = []
    for piece in spec.split(","):
        match = _RANGE.match(piece.strip())
        if match is None:
            raise ValueError(f"{piece!r} is not an array index range (such as 1-5 or 1-9:2)")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) else first
        step = int(match.group(3)) if match.group(3) else 1
        if step < 1 or last < first:
            raise ValueError(f"{piece!r} is not an array index range (such as 1-5 or 1-9:2)")
        indices.extend(range(first, last + 1, step))
    return indices
