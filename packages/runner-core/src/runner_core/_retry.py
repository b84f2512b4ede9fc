"""Retry: run a job again when it ended for a reason another attempt can fix.

A policy (`Retry`) names the end reasons worth another attempt and how each grows the
request (out of memory: twice the memory). `decide` applies it to one ended attempt;
the runner (`JobRunner._job_life`, `_end_detached`) acts on the decision, the job layer
keeps each attempt's output, and `Results.attempts` and the journal keep the record.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Callable, NamedTuple, Optional, Union

from runner_core._resources import GROWABLE
from runner_core._status import REASONS

__all__ = ["DEFAULT_ON", "RETRY_REASONS", "Attempt", "Decision", "Retry", "decide"]

#: The growth of the request per reason when `Retry(on=None)`: a job out of memory gets
#: twice the memory, one out of time twice the walltime, one whose node failed or that
#: was preempted the same request again.
DEFAULT_ON: Mapping[str, Mapping[str, float]] = {
    "out_of_memory": {"memory": 2},
    "timeout": {"walltime": 2},
    "node_fail": {},
    "preempted": {},
}

#: What `Retry(on=...)` may name: the end reasons, and ``"crashed"`` for a job that ended
#: by itself with a non-zero exit code (never retried unless named).
RETRY_REASONS: tuple[str, ...] = (*sorted(REASONS), "crashed")

#: A job preempted again and again is run again at most this often by default.
PREEMPTIONS = 10

OnSpec = Union[Mapping[str, Optional[Mapping[str, float]]], Iterable[str], str, None]


class Attempt(NamedTuple):
    """One ended attempt of a job that was run again (an item of `Results.attempts`).

    Attributes:
        number: the attempt's number, 1 for the first run.
        jobid: the scheduler's id of the attempt (None for a local job).
        exit_code: what `call` returned.
        reason: why it ended (a word of `runner_core.REASONS`, or ``"crashed"``).
        error: the last lines of its stderr or its failure, or None.
        request: the resource run flags it asked for (``{"memory": "100M"}``).
        submitted_at, started_at, finished_at: its times (epoch seconds) or None.
    """

    number: int
    jobid: Optional[str]
    exit_code: Optional[int]
    reason: str
    error: Optional[str]
    request: Mapping[str, Any]
    submitted_at: Optional[float]
    started_at: Optional[float]
    finished_at: Optional[float]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], number: int) -> Attempt:
        """The attempt `as_dict` gave (a journal's record of it); `number` where it has none."""
        return cls(
            int(data.get("attempt", number)),
            data.get("jobid"),
            data.get("exit_code"),
            str(data.get("reason")),
            data.get("error"),
            dict(data.get("request") or {}),
            data.get("submitted_at"),
            data.get("started_at"),
            data.get("finished_at"),
        )

    def as_dict(self) -> dict[str, Any]:
        """The attempt as a JSON-ready dict (as the journal and `runner status --json` give it)."""
        return {
            "attempt": self.number,
            "jobid": self.jobid,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "error": self.error,
            "request": dict(self.request),
            "submitted_at": self.submitted_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


def _check_growth(reason: str, growth: object) -> dict[str, float]:
    if growth is None:
        return {}
    if not isinstance(growth, Mapping):
        raise TypeError(
            f"Retry(on=...): the growth of {reason!r} must be a mapping such as "
            f"{{'memory': 2}}, or None for the same request; not {growth!r}"
        )
    checked: dict[str, float] = {}
    for key, factor in growth.items():
        if key not in GROWABLE:
            raise ValueError(
                f"Retry(on=...): {reason!r} grows {key!r}, but only "
                f"{', '.join(GROWABLE)} grow; e.g. on={{{reason!r}: {{'memory': 2}}}}"
            )
        if (
            isinstance(factor, bool)
            or not isinstance(factor, (int, float))
            or not math.isfinite(factor)
            or factor < 1
        ):
            raise ValueError(
                f"Retry(on=...): growth factor {key}={factor!r} of {reason!r} is not a "
                f"number >= 1; give e.g. {{{key!r}: 2}}"
            )
        checked[key] = factor
    return checked


def _check_on(on: OnSpec) -> dict[str, dict[str, float]]:
    if on is None:
        return {reason: dict(growth) for reason, growth in DEFAULT_ON.items()}
    if isinstance(on, str):
        on = [part.strip() for part in on.split(",") if part.strip()]
    pairs: Iterable[tuple[str, object]]
    if isinstance(on, Mapping):
        pairs = on.items()
    else:
        pairs = [(reason, DEFAULT_ON.get(reason, {})) for reason in on]
    checked: dict[str, dict[str, float]] = {}
    for reason, growth in pairs:
        if reason not in RETRY_REASONS:
            raise ValueError(
                f"{reason!r} is not an end reason to retry on; name some of "
                f"{', '.join(RETRY_REASONS)}"
            )
        checked[reason] = _check_growth(reason, growth)
    if not checked:
        raise ValueError(
            "Retry(on=...) names no reason, so nothing would be retried; name some of "
            f"{', '.join(RETRY_REASONS)}, or pass retry=None"
        )
    return checked


def _check_count(name: str, value: object, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"Retry({name}=...) must be an int, not {type(value).__name__} {value!r}")
    if value < least:
        raise ValueError(f"Retry({name}={value}) must be at least {least}")
    return value


class Retry:
    """When to run a job again, and with how much more: by the reason it ended.

    ``Retry()`` runs a job up to 3 times in all: out of memory with twice the memory, out
    of time with twice the walltime, after a node failure or a preemption with the same
    request. A preemption uses no attempt (the job did nothing wrong), up to
    `preemptions` times. A job cancelled by the user or the runner is never run again,
    and a plain non-zero exit (``"crashed"``) only when named. A grown request is
    clamped to the cluster's limits; a job whose request cannot grow any more ends with
    its last reason, its error saying why it was not run again.

    Every attempt runs in the job's own folder (restart files a program writes stay
    where the next attempt finds them); the stdout and stderr of attempt N are kept as
    ``<name>.attemptN.out`` and ``<name>.attemptN.err`` before the next one starts.

    Give it to a runner (a default for its jobs), to ``job.run(retry=...)``, or on the
    command line (``runner run --retry out_of_memory,timeout --attempts 3``).

    Args:
        attempts: the most runs of one job in all, the first one included (1: no retry).
        on: the reasons to retry and how each grows the request: a mapping such as
            ``{"out_of_memory": {"memory": 2}, "crashed": {}}``, or reasons alone
            (``["timeout"]``, ``"timeout,node_fail"``) which grow as `DEFAULT_ON` says;
            None for `DEFAULT_ON`.
        preemptions: the most runs again after preemptions, which use no attempt.

    Raises:
        TypeError, ValueError: a count that is not an int >= 1 (preemptions >= 0), a
            reason not in `RETRY_REASONS`, a growth of a resource that cannot grow or by a
            factor below 1.
    """

    __slots__ = ("attempts", "on", "preemptions")

    def __init__(self, attempts: int = 3, on: OnSpec = None, *, preemptions: int = PREEMPTIONS):
        """Create a policy; see the class docstring."""
        self.attempts = _check_count("attempts", attempts, 1)
        self.on: Mapping[str, Mapping[str, float]] = _check_on(on)
        self.preemptions = _check_count("preemptions", preemptions, 0)

    def __repr__(self) -> str:
        return f"Retry(attempts={self.attempts}, on={dict(self.on)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Retry):
            return NotImplemented
        return (self.attempts, dict(self.on), self.preemptions) == (
            other.attempts,
            dict(other.on),
            other.preemptions,
        )

    def __hash__(self) -> int:
        return hash((self.attempts, tuple(sorted(self.on)), self.preemptions))

    def as_dict(self) -> dict[str, Any]:
        """The policy as JSON-ready data; `Retry.from_dict` gives it back."""
        return {
            "attempts": self.attempts,
            "on": {reason: dict(growth) for reason, growth in self.on.items()},
            "preemptions": self.preemptions,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Retry:
        """The policy `as_dict` gave."""
        return cls(
            data.get("attempts", 3),
            data.get("on"),
            preemptions=data.get("preemptions", PREEMPTIONS),
        )


class Decision(NamedTuple):
    """What to do with an attempt that ended: run it again with `request`, or not (`note`).

    Attributes:
        again: True to run the job again.
        reason: the reason the attempt ended, as `Retry.on` names it (``"crashed"``).
        request: the run flags of the next attempt (only those that change), when again.
        note: why the job is not run again, for its error.
    """

    again: bool
    reason: Optional[str] = None
    request: Mapping[str, Any] = {}
    note: Optional[str] = None


NO = Decision(False)


def _used(attempts: Iterable[Attempt]) -> tuple[int, int]:
    """How many attempts were used, and how many runs again came after preemptions."""
    used = preempted = 0
    for attempt in attempts:
        if attempt.reason == "preempted":
            preempted += 1
        else:
            used += 1
    return used, preempted


def decide(
    retry: Retry,
    reason: Optional[str],
    attempts: Iterable[Attempt],
    runflags: Mapping[str, Any],
    grow: Callable[[Mapping[str, Any], Mapping[str, float]], tuple[dict[str, Any], Optional[str]]],
) -> Decision:
    """Decide whether an attempt that ended for `reason` is run again, and with what.

    Args:
        retry: the policy.
        reason: why the attempt ended: an end reason, ``"crashed"`` for a non-zero exit
            code of its own, None for a success (never run again).
        attempts: the earlier attempts of the job, oldest first.
        runflags: the run flags of the attempt that ended.
        grow: the runner's `JobRunner.grow_request`: the grown run flags (those that
            change) and, when the request could not grow as asked, why.

    Returns:
        The decision; `Decision.again` False with a `note` when the reason is one to
        retry but the job is not run again.
    """
    if reason is None or reason not in retry.on:
        return NO
    used, preempted = _used(attempts)
    if reason == "preempted":
        if preempted >= retry.preemptions:
            return Decision(False, reason, note=f"not run again: preempted {preempted + 1} times")
    elif used + 1 >= retry.attempts:
        return Decision(
            False,
            reason,
            note=f"not run again: {reason} on attempt {used + 1} of {retry.attempts}",
        )
    growth = retry.on[reason]
    if not growth:
        return Decision(True, reason)
    request, refused = grow(runflags, growth)
    if refused is not None:
        return Decision(False, reason, note=f"not run again after {reason}: {refused}")
    return Decision(True, reason, request)
