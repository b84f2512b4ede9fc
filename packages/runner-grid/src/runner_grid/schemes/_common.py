"""Small pieces the predefined schemes share: the current user, the shape of a job's end."""

from __future__ import annotations

import getpass
import os
from typing import Optional

__all__ = ["End", "current_user"]

#: What ``commands.parse_end`` returns for a job that has ended: its exit code and its end reason
#: (None when it ended by itself, else one word of ``runner_core.REASONS``).
End = tuple[int, Optional[str]]


def current_user() -> str:
    """Return the name of the user this process runs as (what the scheduler files jobs under)."""
    try:
        import pwd  # noqa: PLC0415 - lazy stdlib import; only needed without $USER

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):  # pragma: no cover - no passwd entry (containers)
        return getpass.getuser()
