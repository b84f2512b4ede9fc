"""Small pieces the predefined schemes share: the current user, ids, the shape of a job's end."""

from __future__ import annotations

import getpass
import os
import re
from typing import Optional

__all__ = ["End", "base_id", "current_user", "last_id"]

#: What ``commands.parse_end`` returns for a job that has ended: its exit code and its end reason
#: (None when it ended by itself, else one word of ``runner_core.REASONS``).
End = tuple[int, Optional[str]]

_LEADING_DIGITS = re.compile(r"\d+")


def current_user() -> str:
    """Return the name of the user this process runs as (what the scheduler files jobs under)."""
    try:
        import pwd  # noqa: PLC0415 - lazy stdlib import; only needed without $USER

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):  # pragma: no cover - no passwd entry (containers)
        return getpass.getuser()


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
