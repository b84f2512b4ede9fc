"""Job ids as schedulers print them: the job's own part of an id; the id a submit printed."""

from __future__ import annotations

import re
from typing import Optional

__all__ = ["base_id", "last_id"]

_LEADING_DIGITS = re.compile(r"\d+")


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
