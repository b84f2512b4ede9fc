"""What a job used against what it asked for, as a scheduler's accounting tells it (`Usage`)."""

from __future__ import annotations

from typing import NamedTuple, Optional

__all__ = ["Usage", "UsageReport"]


class Usage(NamedTuple):
    """One job's (one try's) use of the resources it was given, from the scheduler's accounting.

    Every field is None where the accounting does not say.

    Attributes:
        memory: the peak memory used, in bytes (SLURM's MaxRSS, Grid Engine's maxvmem).
        cpu: CPU seconds used, user and system, summed over every core.
        elapsed: wall-clock seconds from start to end.
        memory_requested: the memory the job asked for, in bytes (the job's total).
        cores: the cores the job was given.
        walltime_requested: the time limit, in seconds.
        state: the scheduler's own word for how the job ended (``COMPLETED``, ``OUT_OF_MEMORY``).
    """

    memory: Optional[float] = None
    cpu: Optional[float] = None
    elapsed: Optional[float] = None
    memory_requested: Optional[float] = None
    cores: Optional[int] = None
    walltime_requested: Optional[float] = None
    state: Optional[str] = None


class UsageReport(NamedTuple):
    """What `JobRunner.usage_recorded` found: the use of each job, or why there is none.

    Attributes:
        usage: scheduler job id -> its Usage, for the ids the accounting knows.
        absent_because: why some or all of the jobs have no figures (no accounting on
            this cluster, a runner that measures nothing, a scheduler not supported
            yet); None when nothing is missing for a reason worth telling.
    """

    usage: dict[str, Usage]
    absent_because: Optional[str] = None
