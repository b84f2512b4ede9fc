"""JobStatus, the order in which one state may follow another, and the end reasons."""

from __future__ import annotations

import enum

__all__ = ["REASONS", "JobStatus"]


class JobStatus(enum.Enum):
    """Where a job is in its life.

    CREATED until a runner takes the job; QUEUED while it waits in the runner for
    a `maxjobs` slot, a thread or a submission; SUBMITTED while a grid job is in
    the scheduler's queue and has not started; RUNNING while the runner's `call`
    runs a local job, or once a grid job has started on a node (the scheduler or
    the job's wrapper said so, whichever was seen first). Local jobs go from QUEUED
    straight to RUNNING; a grid job may end straight from SUBMITTED (cancelled while
    pending, or it ran too briefly for a poll to see it running). The last four are
    final, and a final state is never left: SUCCESSFUL (exit code 0), CRASHED
    (non-zero exit code), FAILED (could not be run, raised, or `report_failure` was
    called) and CANCELLED.
    """

    CREATED = "created"
    QUEUED = "queued"
    SUBMITTED = "submitted"
    RUNNING = "running"
    SUCCESSFUL = "successful"
    CRASHED = "crashed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def done(self) -> bool:
        """True for the final states (SUCCESSFUL, CRASHED, FAILED, CANCELLED)."""
        return self._value_ in _FINAL_VALUES  # a str's hash is cached; a member's is a Python call

    def may_become(self, other: JobStatus) -> bool:
        """True when a job in this state may move to `other` (the state machine's table)."""
        return other in _NEXT[self]


_FINAL = frozenset({JobStatus.SUCCESSFUL, JobStatus.CRASHED, JobStatus.FAILED, JobStatus.CANCELLED})
_FINAL_VALUES = frozenset(status.value for status in _FINAL)

# The state machine as data: which state may follow which. A job may end from any
# state that is not final (a run refused at once ends from CREATED); it never goes
# back, and a final state has no successor.
_NEXT: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.CREATED: _FINAL | {JobStatus.QUEUED},
    JobStatus.QUEUED: _FINAL | {JobStatus.SUBMITTED, JobStatus.RUNNING},
    JobStatus.SUBMITTED: _FINAL | {JobStatus.RUNNING},
    JobStatus.RUNNING: _FINAL,
    **{final: frozenset() for final in _FINAL},
}

#: The words `Results.reason` may hold, with what each means. None means the job
#: ended by itself (its exit code tells the rest).
REASONS: dict[str, str] = {
    "cancelled": "cancelled: by the user, by the runner shutting down, or from outside",
    "timeout": "killed by the scheduler for exceeding its time limit",
    "out_of_memory": "killed by the scheduler for exceeding its memory limit",
    "node_fail": "its node failed",
    "preempted": "preempted by the scheduler for a job of higher priority",
    "submit_failed": "the submission to the scheduler failed; the job never ran",
}
