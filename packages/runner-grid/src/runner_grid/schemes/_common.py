"""Pieces the predefined schemes share: the current user, a job's end, refusals, directive words."""

from __future__ import annotations

import getpass
import os
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["TRANSIENT_REFUSALS", "End", "combine_ends", "current_user", "directive_words"]

#: What ``commands.parse_end`` returns for a job that has ended: its exit code and its end reason
#: (None when it ended by itself, else one word of ``runner_core.REASONS``).
End = tuple[int, Optional[str]]

#: What a submit command of any scheduler may print when it queued nothing and the same
#: submission may work a moment later (the "retry" kind of a scheme's ``submit_faults``): the
#: server or a resource is temporarily unavailable, it asks to try again later (a site's
#: submit filter, a server starting up), or it cannot be reached at all. Every predefined
#: scheme adds its own messages to these.
TRANSIENT_REFUSALS = (
    r"(?i)temporarily unavailable",
    r"(?i)try again later",
    r"Connection refused",
    r"No route to host",
    r"Network is unreachable",
)


def current_user() -> str:
    """Return the name of the user this process runs as (what the scheduler files jobs under)."""
    try:
        import pwd  # noqa: PLC0415 - lazy stdlib import; only needed without $USER

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):  # pragma: no cover - no passwd entry (containers)
        return getpass.getuser()


def combine_ends(ends: Sequence[Optional[End]]) -> Optional[End]:
    """Return how a job with several records (array tasks, reruns) ended, or None.

    None while any record is not final (a task still runs, the job was requeued) or
    when there is no record at all; else the first record that did not succeed, or
    the first record when all did.
    """
    if not ends or any(end is None for end in ends):
        return None
    final = [end for end in ends if end is not None]
    return next((end for end in final if end != (0, None)), final[0])


def directive_words(line: str, prefix: str, *, spaced: bool = True) -> list[str]:
    """Return the words of a directive line after `prefix` (``#SBATCH``), up to a ``#`` comment.

    [] when the line is not such a directive: another prefix, or with `spaced` no white
    space after it (``#SBATCHX``; Grid Engine reads ``#$-l ...`` too: ``spaced=False``).
    """
    if not line.startswith(prefix) or (spaced and line[len(prefix) : len(prefix) + 1].strip()):
        return []
    words = line[len(prefix) :].split()
    cut = next((i for i, word in enumerate(words) if word.startswith("#")), len(words))
    return words[:cut]
