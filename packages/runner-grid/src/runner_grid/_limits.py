"""A cluster's queue limits (`Limits`), the refusal of a request above them, and the run's cache.

Lock order: `LimitsCache._lock` is held alone: no other lock of runner-grid or runner-core
is taken while it is held (it is held while the limits are read, so that jobs asking at
once wait for the one answer instead of asking again).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, NamedTuple, Optional

from runner_core import format_memory, format_walltime

if TYPE_CHECKING:
    from collections.abc import Mapping

    from runner_core import Resources
    from runner_grid.schemes._base import Scheduler

__all__ = ["Limits", "LimitsCache", "QueueLimits", "refusal"]

logger = logging.getLogger(__name__)


class QueueLimits(NamedTuple):
    """The most one job may ask of one queue (partition); None: no limit."""

    walltime: Optional[int] = None
    """Seconds."""
    memory: Optional[int] = None
    """Bytes per node, per slot or per job (see `Limits.memory_per`)."""


class Limits(NamedTuple):
    """A cluster's limits as its scheduler tells them, with the words its messages use.

    Attributes:
        queues: queue (partition) name -> its limits, in the scheduler's order.
        default: the queue a job that names none goes to, or None (not known).
        queue_word: what the scheduler calls a queue (``"partition"``).
        walltime_name, memory_name: the scheduler's names of the two limits (``MaxTime``).
        memory_per: what the memory limit counts: ``"node"`` (SLURM), ``"slot"`` (Grid
            Engine: the memory over the cores) or ``"job"`` (PBS: the job's total).
    """

    queues: Mapping[str, QueueLimits]
    default: Optional[str] = None
    queue_word: str = "queue"
    walltime_name: str = "walltime"
    memory_name: str = "memory"
    memory_per: str = "node"


def _memory_asked(resources: Resources, per: str) -> Optional[int]:
    """The memory compared with a queue's limit: per node, per slot or the job's total."""
    if resources.memory is None or per == "job":
        return resources.memory
    if per == "slot":
        return -(-resources.memory // (resources.cores or 1))
    return resources.per_node("memory")


def _over(asked: Optional[int], most: Optional[int]) -> bool:
    return asked is not None and most is not None and asked > most


def refusal(resources: Resources, limits: Limits) -> Optional[str]:
    """Return why `resources` can never run under `limits`, naming a queue that fits, or None.

    A job naming no queue is compared with the default queue; a queue the limits do not
    list, or no default, is not checked (the scheduler decides).

    Args:
        resources: the job's request.
        limits: the cluster's limits.

    Returns:
        The message (``walltime 48:00:00 exceeds partition 'short' MaxTime 0:05:00 (use
        partition 'debug', or less walltime)``), or None when the request fits.
    """
    name = resources.queue if resources.queue is not None else limits.default
    queue = None if name is None else limits.queues.get(name)
    if queue is None:
        return None
    memory = _memory_asked(resources, limits.memory_per)
    word = limits.queue_word
    walltime, most_walltime, most_memory = resources.walltime, queue.walltime, queue.memory
    if walltime is not None and most_walltime is not None and walltime > most_walltime:
        what = "walltime"
        problem = (
            f"walltime {format_walltime(walltime)} exceeds {word} {name!r} "
            f"{limits.walltime_name} {format_walltime(most_walltime)}"
        )
    elif memory is not None and most_memory is not None and memory > most_memory:
        what = "memory"
        problem = (
            f"memory {format_memory(memory)} per {limits.memory_per} exceeds {word} {name!r} "
            f"{limits.memory_name} {format_memory(most_memory)}"
        )
    else:
        return None
    fits = [
        other
        for other, its in limits.queues.items()
        if other != name
        and not _over(resources.walltime, its.walltime)
        and not _over(memory, its.memory)
    ]
    if fits:
        return f"{problem} (use {word} {fits[0]!r}, or less {what})"
    return f"{problem} (no {word} allows it: ask for less {what})"


class LimitsCache:
    """A runner's cluster limits: read once, by the first job that needs them, kept for its life.

    A limit that cannot be read is not guessed: it is logged once at WARNING and jobs are
    submitted (the scheduler decides).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._read = False
        self._limits: Optional[Limits] = None

    def get(self, scheduler: Scheduler) -> Optional[Limits]:
        """Return the limits, asking `scheduler` the first time only (None: not known)."""
        with self._lock:
            if not self._read:
                self._limits = scheduler.limits()
                self._read = True
            return self._limits

    def check(self, scheduler: Scheduler, resources: Resources) -> None:
        """Refuse a request above the cluster's limits; only walltime and memory are compared.

        Raises:
            ValueError: the request can never run, naming the limit and what to do.
        """
        if resources.walltime is None and resources.memory is None:
            return
        if not scheduler.reads_limits:
            return
        limits = self.get(scheduler)
        message = None if limits is None else scheduler.check_limits(resources, limits)
        if message is not None:
            raise ValueError(message)
