"""The errors runner_core raises itself: JobError and its subclasses."""

from __future__ import annotations

__all__ = ["JobError", "JobStateError"]


class JobError(Exception):
    """An error the job layer raises itself (for example: running a job twice)."""


class JobStateError(JobError):
    """A move between two job states that the state machine does not allow.

    Raised where the illegal move is attempted, naming the job and both states, so a
    runner that drives a job wrongly fails at the place of the mistake.
    """
