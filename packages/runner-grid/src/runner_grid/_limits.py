"""A cluster's queue limits (`Limits`), the refusal of a request above them, the run's cache,
and the room the cluster's submit limits leave the runner (`SubmitRoom`).

Lock order: `LimitsCache._lock` is held alone: no other lock of runner-grid or runner-core
is taken while it is held (it is held while the limits are read, so that jobs asking at
once wait for the one answer instead of asking again). `SubmitRoom._lock` is innermost:
it is taken under `Batches._lock` and takes no other lock.
"""

from __future__ import annotations

import logging
import threading
import types
from typing import TYPE_CHECKING, NamedTuple, Optional

from runner_core import Resources, format_memory, format_walltime

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from runner_grid.schemes._base import Scheduler

__all__ = [
    "Limits",
    "LimitsCache",
    "QueueLimits",
    "SubmitRoom",
    "clamp",
    "refusal",
    "submit_pools",
]

logger = logging.getLogger(__name__)


class QueueLimits(NamedTuple):
    """The most one job may ask of one queue (partition); None: no limit."""

    walltime: Optional[int] = None
    """Seconds."""
    memory: Optional[int] = None
    """Bytes per node, per slot or per job (see `Limits.memory_per`)."""


_NO_QOS: Mapping[str, QueueLimits] = types.MappingProxyType({})
_NO_SUBMIT: Mapping[str, int] = types.MappingProxyType({})


class Limits(NamedTuple):
    """A cluster's limits as its scheduler tells them, with the words its messages use.

    Attributes:
        queues: queue (partition) name -> its limits, in the scheduler's order.
        default: the queue a job that names none goes to, or None (not known).
        queue_word: what the scheduler calls a queue (``"partition"``).
        walltime_name, memory_name: the scheduler's names of the two limits (``MaxTime``).
        memory_per: what the memory limit counts: ``"node"`` (SLURM), ``"slot"`` (Grid
            Engine: the memory over the cores) or ``"job"`` (PBS: the job's total).
        qos: SLURM's quality-of-service name -> its limits per job (``MaxWall``, the
            memory of ``MaxTRES``, the job's total); empty where there is none or the
            accounting cannot be asked. A job over its QOS's limit would pend forever.
        default_qos: the QOS of a job that names none (the user's association's), or None.
        submit: the submit limits: a pool of the user's jobs -> the most of them queued at
            once (pending or running), where the scheduler tells it. A job counts in the
            pools `submit_pools` names: ``"user"`` (all the user's jobs: Grid Engine's
            ``max_u_jobs``, a PBS server's ``max_queued``), ``"queue:NAME"`` (a PBS queue's),
            ``"qos:NAME"`` (a SLURM QOS's ``MaxSubmitPU``) and ``"account:NAME"`` (a SLURM
            association's ``MaxSubmitJobs``; ``"account:"`` for a job naming no account).
        submit_counts_tasks: whether an array counts in a pool as its tasks (SLURM, PBS), or
            as one job (Grid Engine's ``max_u_jobs``).
    """

    queues: Mapping[str, QueueLimits]
    default: Optional[str] = None
    queue_word: str = "queue"
    walltime_name: str = "walltime"
    memory_name: str = "memory"
    memory_per: str = "node"
    qos: Mapping[str, QueueLimits] = _NO_QOS
    default_qos: Optional[str] = None
    submit: Mapping[str, int] = _NO_SUBMIT
    submit_counts_tasks: bool = True


def _memory_asked(resources: Resources, per: str) -> Optional[int]:
    """The memory compared with a queue's limit: per node, per slot or the job's total."""
    if resources.memory is None or per == "job":
        return resources.memory
    if per == "slot":
        return -(-resources.memory // (resources.cores or 1))
    return resources.per_node("memory")


def _over(asked: Optional[int], most: Optional[int]) -> bool:
    return asked is not None and most is not None and asked > most


def _fitting(
    limits: Mapping[str, QueueLimits],
    name: Optional[str],
    walltime: Optional[int],
    memory: Optional[int],
) -> list[str]:
    """The queues (or QOS) other than `name` whose limits `walltime` and `memory` fit."""
    return [
        other
        for other, its in limits.items()
        if other != name and not _over(walltime, its.walltime) and not _over(memory, its.memory)
    ]


def refusal(resources: Resources, limits: Limits, qos: Optional[str] = None) -> Optional[str]:
    """Return why `resources` can never run under `limits`, naming a queue that fits, or None.

    A job naming no queue is compared with the default queue; a queue the limits do not
    list, or no default, is not checked (the scheduler decides). Then its QOS (`qos`, else
    the default one), where the limits list QOS.

    Args:
        resources: the job's request.
        limits: the cluster's limits.
        qos: the QOS the job names (SLURM's ``qos`` run flag), or None.

    Returns:
        The message (``walltime 48:00:00 exceeds partition 'short' MaxTime 0:05:00 (use
        partition 'debug', or less walltime)``), or None when the request fits.
    """
    return _queue_refusal(resources, limits) or _qos_refusal(resources, limits, qos)


def _qos_refusal(resources: Resources, limits: Limits, qos: Optional[str]) -> Optional[str]:
    """Why `resources` is over the limits of the job's QOS (it would pend forever), or None."""
    name = qos if qos is not None else limits.default_qos
    most = None if name is None else limits.qos.get(name)
    if most is None:
        return None
    walltime, memory = resources.walltime, resources.memory
    if walltime is not None and most.walltime is not None and walltime > most.walltime:
        asked, limit, what = format_walltime(walltime), "MaxWall", "walltime"
        allowed = format_walltime(most.walltime)
    elif memory is not None and most.memory is not None and memory > most.memory:
        asked, limit, what = format_memory(memory), "MaxTRES mem", "memory"
        allowed = format_memory(most.memory)
    else:
        return None
    fits = _fitting(limits.qos, name, resources.walltime, resources.memory)
    hint = f"use QOS {fits[0]!r} if your account may, or less {what}" if fits else f"less {what}"
    return f"{what} {asked} exceeds QOS {name!r} {limit} {allowed} ({hint})"


def _queue_refusal(resources: Resources, limits: Limits) -> Optional[str]:
    """`refusal` by the job's queue alone."""
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
    fits = _fitting(limits.queues, name, resources.walltime, memory)
    if fits:
        return f"{problem} (use {word} {fits[0]!r}, or less {what})"
    return f"{problem} (no {word} allows it: ask for less {what})"


def clamp(
    resources: Resources, limits: Limits, qos: Optional[str] = None
) -> tuple[Resources, list[str]]:
    """Lower `resources` to the most its queue and its QOS allow: the request of a job run again.

    Only walltime and memory are lowered (memory counted as the limit counts it: per
    node, per slot or the job's total); a queue the limits do not list is not known.

    Returns:
        The request, and for each value lowered a note (``memory 4G is more than
        partition 'short' MaxMemPerNode 2000M``).
    """
    resources, notes = _clamp_queue(resources, limits)
    name = qos if qos is not None else limits.default_qos
    most = None if name is None else limits.qos.get(name)
    if most is None:
        return resources, notes
    changes: dict[str, int] = {}
    walltime, memory = resources.walltime, resources.memory
    if walltime is not None and most.walltime is not None and walltime > most.walltime:
        changes["walltime"] = most.walltime
        notes.append(
            f"walltime {format_walltime(walltime)} is more than QOS {name!r} MaxWall "
            f"{format_walltime(most.walltime)}"
        )
    if memory is not None and most.memory is not None and memory > most.memory:
        changes["memory"] = most.memory
        notes.append(
            f"memory {format_memory(memory)} is more than QOS {name!r} MaxTRES mem "
            f"{format_memory(most.memory)}"
        )
    return resources.replace(**changes), notes


def _clamp_queue(resources: Resources, limits: Limits) -> tuple[Resources, list[str]]:
    """`clamp` by the job's queue alone."""
    name = resources.queue if resources.queue is not None else limits.default
    queue = None if name is None else limits.queues.get(name)
    if queue is None:
        return resources, []
    changes: dict[str, int] = {}
    notes: list[str] = []
    word = limits.queue_word
    walltime, most_walltime = resources.walltime, queue.walltime
    if walltime is not None and most_walltime is not None and walltime > most_walltime:
        changes["walltime"] = most_walltime
        notes.append(
            f"walltime {format_walltime(walltime)} is more than {word} {name!r} "
            f"{limits.walltime_name} {format_walltime(most_walltime)}"
        )
    per, most_memory = limits.memory_per, queue.memory
    if (
        resources.memory is not None
        and most_memory is not None
        and _over(_memory_asked(resources, per), most_memory)
    ):
        if per == "slot":
            times = resources.cores or 1
        else:
            times = 1 if per == "job" else resources.nodes or 1
        changes["memory"] = most_memory * times
        notes.append(
            f"memory {format_memory(resources.memory)} is more than {word} {name!r} "
            f"{limits.memory_name} {format_memory(most_memory)} per {per}"
        )
    return resources.replace(**changes), notes


def submit_pools(
    limits: Optional[Limits], resources: Resources, qos: Optional[str] = None
) -> dict[str, int]:
    """Return the submit limits a job counts against: pool name -> its most (`Limits.submit`).

    Args:
        limits: the cluster's limits, or None (not known: no pool).
        resources: the job's request (its queue and account; none named: the default queue,
            and the pool ``"account:"`` of the default account).
        qos: the QOS the job names, or None (the default QOS).

    Returns:
        The pools the limits know, of ``"user"``, ``"queue:Q"``, ``"qos:Q"``, ``"account:A"``.
    """
    if limits is None or not limits.submit:
        return {}
    queue = resources.queue if resources.queue is not None else limits.default
    qos = qos if qos is not None else limits.default_qos
    names = ["user", f"account:{resources.account or ''}"]
    names += [f"queue:{queue}"] if queue is not None else []
    names += [f"qos:{qos}"] if qos is not None else []
    return {name: limits.submit[name] for name in names if name in limits.submit}


def _pool_words(pool: str) -> str:
    """How a log line names a pool: ``QOS 'normal'``, ``the association of account 'chem'``."""
    kind, _, name = pool.partition(":")
    if kind == "qos":
        return f"QOS {name!r}"
    if kind == "queue":
        return f"queue {name!r}"
    if kind == "account":
        return f"the association of account {name!r}" if name else "the default association"
    return "the user's limit"


class SubmitRoom:
    """The runner's own jobs in the queue counted against the cluster's submit limits.

    A submission first takes its places in the job's pools (`take`: one for a job, one per
    task for an array where the scheduler counts tasks, else one), so that submit workers
    running at once cannot go over a limit together; the job keeps them (`keep`) until it
    leaves the queue (`free`), and a submission that queued nothing gives them back
    (`give_back`). The user's jobs that this runner did not submit are not counted: the
    scheduler refuses a submission they leave no room for, and the runner waits for room
    as after any refusal (`runner_grid._batch`). Without limits, or where they cannot be
    read, every take succeeds: nothing is guessed.

    Args:
        cache: the runner's limits, asked once per run.
    """

    def __init__(self, cache: LimitsCache) -> None:
        """Create an empty room: none of the runner's jobs is queued."""
        self._cache = cache
        self._lock = threading.Lock()
        self._used: dict[str, int] = {}  # pool -> places taken (jobs queued, or submitting)
        self._kept: dict[str, tuple[str, ...]] = {}  # job, task or array id -> its pools
        self._refusals = 0  # submit-limit refusals so far, for the log
        self._told: set[str] = set()  # pools whose limit the log has named already

    def limits(self, scheduler: Scheduler) -> Optional[Limits]:
        """The cluster's limits (asked the first time only), or None; call with no lock held."""
        return self._cache.get(scheduler) if scheduler.reads_limits else None

    @staticmethod
    def pools(
        scheduler: Scheduler, limits: Optional[Limits], runflags: Mapping[str, Any]
    ) -> dict[str, int]:
        """The submit limits a job of these run flags counts against (`submit_pools`)."""
        if limits is None or not limits.submit:
            return {}
        try:
            resources = scheduler.split_runflags(runflags)[0]
        except (ValueError, TypeError):  # refused at job.run(); here: counted as the default
            resources = Resources()
        return submit_pools(limits, resources, scheduler.qos_of(runflags))

    def take(self, pools: Mapping[str, int], count: int) -> int:
        """Take up to `count` places in every one of `pools`; return how many (0: no room)."""
        if not pools:
            return count
        with self._lock:
            free = min(most - self._used.get(pool, 0) for pool, most in pools.items())
            taken = max(0, min(count, free))
            for pool in pools:
                self._used[pool] = self._used.get(pool, 0) + taken
        return taken

    def give_back(self, pools: Mapping[str, int], count: int) -> None:
        """Give back places taken for a submission that queued nothing (or fewer jobs)."""
        if not pools or count <= 0:
            return
        with self._lock:
            for pool in pools:
                self._used[pool] = max(0, self._used.get(pool, 0) - count)

    def keep(self, ids: Sequence[str], pools: Mapping[str, int]) -> None:
        """The jobs (or tasks, or an array) `ids` were queued, each in one place taken before.

        Call it before the queue watches them, so that `free` always finds them.
        """
        if pools:
            with self._lock:
                for jobid in ids:
                    self._kept[jobid] = tuple(pools)

    def free(self, jobid: str) -> bool:
        """A job, task or array left the queue: free its place; whether it held one."""
        with self._lock:
            pools = self._kept.pop(jobid, None)
            for pool in pools or ():
                self._used[pool] = max(0, self._used.get(pool, 0) - 1)
        return pools is not None

    def refused(self) -> int:
        """Count a refusal for a submit limit; return how many this runner has had."""
        with self._lock:
            self._refusals += 1
            return self._refusals

    def full(self, pools: Mapping[str, int]) -> Optional[str]:
        """Say, once per pool, which limit keeps a job back (for the log); None: said already."""
        with self._lock:
            full = [
                pool for pool, most in pools.items() if self._used.get(pool, 0) >= most
            ] or list(pools)
            if not full or full[0] in self._told:
                return None
            self._told.add(full[0])
        return f"{_pool_words(full[0])} lets {pools[full[0]]} jobs be queued"


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

    def check(self, scheduler: Scheduler, resources: Resources, qos: Optional[str] = None) -> None:
        """Refuse a request above the cluster's limits; only walltime and memory are compared.

        Args:
            scheduler: the runner's scheduler (asked for its limits once).
            resources: the job's request.
            qos: the QOS the job names (`Scheduler.qos_of`), or None.

        Raises:
            ValueError: the request can never run, naming the limit and what to do.
        """
        if resources.walltime is None and resources.memory is None:
            return
        if not scheduler.reads_limits:
            return
        limits = self.get(scheduler)
        message = None if limits is None else scheduler.check_limits(resources, limits, qos)
        if message is not None:
            raise ValueError(message)

    def clamp(
        self, scheduler: Scheduler, runflags: Mapping[str, Any], grown: Mapping[str, Any]
    ) -> tuple[dict[str, Any], Optional[str]]:
        """Clamp a grown request (`JobRunner.grow_request`) to the cluster's limits.

        Args:
            scheduler: the runner's scheduler (asked for its limits once).
            runflags: the request of the attempt that ended.
            grown: the run flags that grew (``{"memory": "200M"}``).

        Returns:
            The run flags of the next attempt that change, and None; or ``{}`` and why
            the request cannot grow: each value that grew is at its limit already.
        """
        limits = self.get(scheduler) if scheduler.reads_limits else None
        if limits is None:
            return dict(grown), None
        before = Resources.of(runflags)
        after, notes = clamp(
            Resources.of({**runflags, **grown}), limits, scheduler.qos_of(runflags)
        )
        changed = {
            key: getattr(after, key) for key in grown if getattr(after, key) != getattr(before, key)
        }
        if not changed:
            return {}, f"the request is at the cluster's limit ({'; '.join(notes)})"
        for note in notes:
            logger.warning("a job run again asks for less than it would: %s", note)
        flags = after.as_runflags()
        return {key: flags[key] for key in changed}, None
