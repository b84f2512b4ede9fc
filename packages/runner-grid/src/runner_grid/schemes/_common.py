"""Small pieces the predefined schemes share: the current user's name and id normalisation."""

from __future__ import annotations

import getpass
import os
import re

__all__ = ["base_id", "current_user"]

_LEADING_DIGITS = re.compile(r"\d+")


def current_user() -> str:
    """Return the name of the user this process runs as (what the scheduler files jobs under)."""
    try:
        import pwd

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
