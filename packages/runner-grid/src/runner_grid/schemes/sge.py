"""Grid Engine (SGE, SoGE, OGS): the `GridEngine` class, qsub flags, qstat/qacct, their parsers."""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Optional

from runner_core import format_walltime, megabytes
from runner_grid._commands import batch_commands
from runner_grid._ids import expand_indices, last_id
from runner_grid._limits import Limits, QueueLimits
from runner_grid.schemes._base import Listing, Scheduler, scheme_keys
from runner_grid.schemes._common import (
    TRANSIENT_REFUSALS,
    End,
    combine_ends,
    current_user,
    directive_words,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from runner_core import Resources

__all__ = [
    "AFTER_JOB_FAILED",
    "ARRAY_INDEX_VAR",
    "LIMIT_FAILED",
    "PARALLEL_ENVIRONMENT",
    "REQUEUED_FAILED",
    "SUBMIT_FAULTS",
    "GridEngine",
    "array_args",
    "array_limit_commands",
    "cancel_commands",
    "check_commands",
    "detect",
    "directive_resources",
    "exitcode_commands",
    "find_tag_commands",
    "getid",
    "limit_commands",
    "parse_array_limit",
    "parse_end",
    "parse_exitcode",
    "parse_limits",
    "parse_tag",
    "resource_args",
    "running",
    "scheme",
    "task_id",
]

_SUBMITTED = re.compile(
    r"^\s*Your job(?:-array)? (\d+)(?:\.\d+-\d+:\d+)? \(.*\) has been submitted"
)
_TERSE = re.compile(r"^\s*(\d+)(?:\.\d+-\d+:\d+)?\s*$")
_JOB_LINE = re.compile(r"^\s*(\d+)\s+\d*\.?\d+\s")
_HEADER = re.compile(r"^\s*(job-ID\s|-{3,}\s*$)")
_XML_JOB = re.compile(r"<job_list\b(.*?)</job_list>", re.DOTALL)
_XML_ID = re.compile(r"<JB_job_number>\s*(\d+)\s*</JB_job_number>")
_XML_TASKS = re.compile(r"<tasks>\s*([^<]+?)\s*</tasks>")
_DATE, _TIME = re.compile(r"^\d+/\d+/\d+$"), re.compile(r"^\d+:\d+:\d+$")


def getid(output: str) -> Optional[str]:
    """Return the job id qsub printed, or None.

    Reads ``Your job N ("name") has been submitted``, the array form ``Your job-array
    N.1-5:1 ("name") has been submitted`` and the ``-terse`` forms ``N`` / ``N.1-5:1``. Lines are
    read from the last one up, so banners printed before the id do not matter.

    Args:
        output: everything qsub wrote to standard output.

    Returns:
        The job number, or None when the output holds none.
    """
    return last_id(output, _SUBMITTED, _TERSE)


def check_commands(ids: Sequence[str]) -> list[list[str]]:
    """Return the qstat command: the current user's jobs in qstat's plain format.

    Plain qstat cannot list chosen jobs (``-j`` prints a different, long format per job), so the
    current user's jobs are listed with ``-u`` and the poller picks its own out of them.

    Args:
        ids: the runner's jobs still believed to be queued (unused).

    Returns:
        A list with one argv.
    """
    del ids
    return [["qstat", "-u", current_user()]]


def running(output: str) -> list[str]:
    """Return the ids of the jobs and array tasks in a qstat listing.

    Every job qstat lists is still in the queue, whatever its state (``qw``, ``hqw``, ``r``,
    ``t``, ``s``, ``Rr``, ``dr``, ``Eqw``...): finished jobs are not listed. The header
    (``job-ID prior name ...``), the dashes, blank lines and indented lines that do not start
    with a job number and priority (the details ``-r`` adds) are skipped. A line with a
    ``ja-task-ID`` is an array's task (``56 ... 1 3``: ``56.3``) or its pending tasks
    (``58 ... 1 1-5:1``: ``58.1`` to ``58.5``). The ``-xml`` form (should a site's
    ``sge_qstat`` file ask for it) is read too.

    Args:
        output: standard output of qstat.

    Returns:
        Job numbers (``N``) and task ids (``N.T``), in order, without repeats (the poller
        counts a task for its array's job too).

    Raises:
        ValueError: a line is neither a header nor a job line (the check then counts as failed).
    """
    ids: dict[str, None] = {}
    if output.lstrip().startswith("<?xml"):
        for chunk in _XML_JOB.findall(output):
            number = _XML_ID.search(chunk)
            if number is not None:
                tasks = _XML_TASKS.search(chunk)
                for jobid in _listed(number.group(1), tasks.group(1) if tasks else None):
                    ids[jobid] = None
        return list(ids)
    for line in output.splitlines():
        if not line.strip() or _HEADER.match(line):
            continue
        match = _JOB_LINE.match(line)
        if match:
            for jobid in _listed(match.group(1), _task_column(line)):
                ids[jobid] = None
        elif not line[:1].isspace():
            raise ValueError(f"qstat line {line!r} is neither a header nor a job line")
    return list(ids)


def started(output: str) -> list[str]:
    """Return the ids of the jobs and tasks that have started, from a plain qstat listing.

    A job's state (the fifth column) with ``r`` (running, also ``Rr``, ``dr``) or ``t``
    (being transferred to its node) in it has started; ``qw``, ``hqw``, ``Eqw`` have not.
    A pending range of tasks never has. The ``-xml`` form says nothing here (an empty list:
    the runner then waits for the job's own record of its start).
    """
    ids: dict[str, None] = {}
    if output.lstrip().startswith("<?xml"):
        return []
    for line in output.splitlines():
        if not line.strip() or _HEADER.match(line):
            continue
        match = _JOB_LINE.match(line)
        fields = line.split()
        if not match or len(fields) < 5:
            continue
        state = fields[4]
        if "r" in state or "t" in state:
            tasks = _task_column(line)
            if tasks is None or tasks.isdigit():
                for jobid in _listed(match.group(1), tasks):
                    ids[jobid] = None
    return list(ids)


def _task_column(line: str) -> Optional[str]:
    """The ``ja-task-ID`` of a plain qstat job line, or None for a job that is no array.

    After the submit or start date and time come the queue (only once the job is
    scheduled), the slots, and the task id or range of an array job.
    """
    fields = line.split()
    for i in range(len(fields) - 1):
        if _DATE.match(fields[i]) and _TIME.match(fields[i + 1]):
            rest = fields[i + 2 :]
            if rest and not rest[0].isdigit():
                rest = rest[1:]  # the queue: all.q@host
            return rest[1] if len(rest) >= 2 else None
    return None


def _listed(number: str, tasks: Optional[str]) -> list[str]:
    """The ids one qstat entry stands for: the job, or each task of its ja-task-ID."""
    if tasks is None:
        return [number]
    try:
        return [f"{number}.{index}" for index in expand_indices(tasks)]
    except ValueError:
        return [number]  # a task column of an unknown form: the job counts as a whole


def cancel_commands(ids: Sequence[str]) -> list[list[str]]:
    """Return the qdel commands that cancel the given jobs (batched to keep lines short)."""
    return batch_commands(["qdel"], list(ids))


def exitcode_commands(jobid: str) -> list[list[str]]:
    """Return the query for how a job ended: ``qacct -j N`` (``qacct -j N -t T`` for a task).

    qacct knows a job only once the accounting file has been flushed (``flush_time``), so the
    runner asks again until the scheme's ``exitcode_wait`` has passed.

    Args:
        jobid: the job number, or ``N.T`` for task T of array job N.

    Returns:
        A list with one argv.
    """
    match = _TASK_ID.match(jobid)
    if match:
        return [["qacct", "-j", match.group(1), "-t", match.group(2)]]
    return [["qacct", "-j", jobid]]


_TASK_ID = re.compile(r"^(\d+)\.(\d+)$")
_SEPARATOR = re.compile(r"^={10,}\s*$", re.MULTILINE)
_FIELD = re.compile(r"^(\w+)[ \t]+([^\n]*?)[ \t]*$", re.MULTILINE)
_NUMBER = re.compile(r"^\s*(\d+(?:\.\d*)?)")
_BYTES = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([KMGTP]?)B?\s*$", re.IGNORECASE)
_LIMIT = re.compile(r"\b([hs]_(?:rt|cpu|vmem))=([^,\s]+)")
_SIGKILL, _SIGTERM = 9, 15

#: ``failed`` codes after which Grid Engine keeps the job in its queue: it could not start
#: (1-11), was migrated or rescheduled (24, 25: ``qmod -rj``, exit 99), or went into the error
#: state Eqw because of its own request (26-35, 38: output file, shell, working folder...).
#: Its next run writes the next record.
REQUEUED_FAILED = frozenset({*range(1, 12), *range(24, 36), 38})
#: ``failed`` 37: the qmaster killed the job for a hard limit (h_rt, h_cpu or h_vmem).
LIMIT_FAILED = 37
#: ``failed`` 100 ("assumedly after job"): the job's top process ended by a signal.
AFTER_JOB_FAILED = 100


def _records(output: str) -> dict[str, dict[str, str]]:
    """The last accounting record of each task in a qacct answer, by task id."""
    tasks: dict[str, dict[str, str]] = {}
    for chunk in _SEPARATOR.split(output):
        fields = dict(_FIELD.findall(chunk))
        if "failed" in fields and "exit_status" in fields:
            tasks[fields.get("taskid", "undefined")] = fields
    return tasks


def _number(text: Optional[str]) -> Optional[float]:
    match = _NUMBER.match(text or "")
    return float(match.group(1)) if match else None


def _seconds(spec: str) -> Optional[float]:
    """A Grid Engine time specifier (``90``, ``1:30``, ``0:1:30``) in seconds."""
    total = 0.0
    for part in spec.split(":"):
        value = _number(part) if part else 0.0
        if value is None:
            return None
        total = total * 60 + value
    return total


def _bytes(spec: str, binary_units: bool) -> Optional[float]:
    """A memory amount in bytes: qacct's ``4.770MB`` (powers of 1024), or a request's ``1G``.

    In a request (``binary_units`` False) ``k``, ``m``, ``g`` are powers of 1000 and ``K``,
    ``M``, ``G`` powers of 1024, as in sge_types(1).
    """
    match = _BYTES.match(spec)
    if not match:
        return None
    unit = match.group(2)
    power = "KMGTP".find(unit.upper()) + 1 if unit else 0
    base = 1024 if binary_units or unit.isupper() else 1000
    return float(match.group(1)) * float(base**power)


def _limit_reached(fields: dict[str, str]) -> Optional[str]:
    """Return "timeout" or "out_of_memory" when the job's use reached a limit it asked for.

    The job's requests are in ``category`` (``-l h_rt=5,h_vmem=1G``); its use in
    ``ru_wallclock``, ``cpu`` and ``maxvmem``.
    """
    limits = dict(_LIMIT.findall(fields.get("category", "")))
    used = {
        "rt": _number(fields.get("ru_wallclock")),
        "cpu": _number(fields.get("cpu")),
    }
    for kind in ("rt", "cpu"):
        for key in (f"h_{kind}", f"s_{kind}"):
            limit = _seconds(limits[key]) if key in limits else None
            value = used[kind]
            if limit is not None and value is not None and value >= limit:
                return "timeout"
    maxvmem = _bytes(fields.get("maxvmem", ""), binary_units=True)
    for key in ("h_vmem", "s_vmem"):
        limit = _bytes(limits[key], binary_units=False) if key in limits else None
        if limit is not None and maxvmem is not None and maxvmem >= limit:
            return "out_of_memory"
    return None


def _nearest_limit(fields: dict[str, str]) -> str:
    """The limit the qmaster most likely enforced when the accounting shows none reached.

    ``maxvmem`` is sampled (a short job's peak is often missed) and ``ru_wallclock`` is
    whole seconds: the limit the job came nearest to, as a fraction of it; a job that asked
    for memory limits only ran out of memory. "timeout" when nothing tells.
    """
    limits = dict(_LIMIT.findall(fields.get("category", "")))
    used_time = _number(fields.get("ru_wallclock")) or 0.0
    used_memory = _bytes(fields.get("maxvmem", ""), binary_units=True) or 0.0
    time_share = memory_share = -1.0
    for key in ("h_rt", "s_rt"):
        limit = _seconds(limits[key]) if key in limits else None
        if limit:
            time_share = max(time_share, used_time / limit)
    for key in ("h_vmem", "s_vmem"):
        limit = _bytes(limits[key], binary_units=False) if key in limits else None
        if limit:
            memory_share = max(memory_share, used_memory / limit)
    return "out_of_memory" if memory_share > time_share else "timeout"


def _end(fields: dict[str, str]) -> Optional[End]:
    """(exit code, reason) of one task's last accounting record, or None when it was requeued."""
    failed = int(_number(fields["failed"]) or 0)
    status = int(_number(fields["exit_status"]) or 0)
    if failed in REQUEUED_FAILED:
        return None
    if failed == 0:
        return status, None
    code = status or 1
    if failed == LIMIT_FAILED:
        return code, _limit_reached(fields) or _nearest_limit(fields)
    if failed == AFTER_JOB_FAILED and status > 128:
        reached = _limit_reached(fields)
        if reached is not None:
            return code, reached
        if status - 128 in (_SIGKILL, _SIGTERM):
            return code, "cancelled"
    return code, None


def parse_end(output: str) -> Optional[End]:
    """Return how a job ended according to a ``qacct -j`` answer, or None.

    Each task's last record counts (a rescheduled job has one record per run). ``failed`` 0:
    the job ended by itself, ``exit_status`` is its code. ``failed`` 37, the qmaster enforced a
    hard limit: "out_of_memory" when ``maxvmem`` reached the job's ``h_vmem`` request,
    "timeout" when its run time reached ``h_rt``; when neither shows (``maxvmem`` is
    sampled), the limit the job came nearest to (a job asking only for memory ran out of
    it). ``failed`` 100 with a signal status (128 + signal): "timeout" or
    "out_of_memory" when the job's use reached what it asked for (``-l h_rt``, ``s_rt``,
    ``h_cpu``, ``s_cpu``, ``h_vmem``, ``s_vmem`` in ``category``), else "cancelled" for SIGKILL
    and SIGTERM, the signals qdel sends. Grid Engine records a qdel exactly as any other kill
    of the job's top process; under GridRunner that process is the job wrapper, which outlives
    its runscript (a runscript killed by a signal gives ``failed`` 0), so only something from
    outside the job (qdel, an administrator) kills it. The exit code is ``exit_status``, or 1
    when that is 0 and ``failed`` is not. For a job array, every task with a record must have
    ended (qacct knows nothing of tasks that have not run); the first task that did not
    succeed then speaks for it.

    Args:
        output: standard output of qacct.

    Returns:
        ``(exit code, reason)``, or None when the output holds no record of the job (not yet
        flushed to the accounting file, or deleted before it ran) or the last record of a task
        is one after which Grid Engine queued it again (`REQUEUED_FAILED`).
    """
    records = _records(output)
    if not records:
        return None
    return combine_ends([_end(fields) for fields in records.values()])


def parse_exitcode(output: str) -> Optional[int]:
    """Return the exit code `parse_end` reads from a ``qacct -j`` answer, or None.

    Args:
        output: standard output of qacct.

    Returns:
        The exit code, or None when the output holds no final record of the job.
    """
    end = parse_end(output)
    return None if end is None else end[0]


_BANNER = re.compile(
    r"^\s*(SGE|GE|OGS/GE|OGE|UGE|Univa Grid Engine|Altair Grid Engine|Open Grid Scheduler)"
    r"[\s/]*\d"
)


def detect(returncode: int, output: str) -> bool:
    """Return True when ``qsub -help`` printed a Grid Engine banner (``SGE 8.1.9``, ``GE 6.2u5``).

    Args:
        returncode: the probe's exit status (Grid Engine's is 0 for ``-help``).
        output: what it printed; only its first non-blank line is read.
    """
    lines = [line for line in output.splitlines() if line.strip()]
    return returncode == 0 and bool(lines) and _BANNER.match(lines[0]) is not None


# --- finding a job by its tag (a submission whose reply was lost) ---------------------------

#: What qsub prints when it queued nothing and trying again later may work, and when its
#: reply was lost so the job may be queued all the same (then it is looked up by its tag).
SUBMIT_FAULTS = {
    "retry": [
        *TRANSIENT_REFUSALS,  # "Connection refused" among them
        r"unable to contact qmaster",
        r"commlib error: (can't connect|got select error|access denied)",
    ],
    "uncertain": [
        r"commlib error: (read error|timeout)",
        r"unable to send message to qmaster",
        r"[Tt]imed? ?out",
    ],
    "limit": [  # max_u_jobs, max_jobs: "job rejected: only 5 jobs are allowed per user"
        r"jobs are allowed per (user|cluster)",
    ],
}


def find_tag_commands(tag: str) -> list[list[str]]:
    """Return the commands that find the job named `tag` (the tag is the job's name).

    ``qstat -j`` for a job still pending or running, then ``qacct -j`` for one that
    has ended already (a short job may be gone from qstat before the lookup runs).
    """
    return [["qstat", "-j", tag], ["qacct", "-j", tag]]


def parse_tag(tag: str, returncode: int, stdout: str, stderr: str) -> Optional[str]:
    """Return the job number ``qstat -j TAG`` or ``qacct -j TAG`` shows, or None for none.

    Raises:
        ValueError: the command failed otherwise, so its answer tells nothing.
    """
    match = re.search(r"^job_?number:?\s+(\d+)", stdout, re.MULTILINE)
    if returncode == 0 and match:
        return match.group(1)
    said = stdout + stderr
    if "do not exist" in said or f"job name {tag} not found" in said:
        return None
    raise ValueError(stderr.strip() or f"exited {returncode}")


# --- resources ------------------------------------------------------------------------------

#: The parallel environment `resource_args` asks for cores with, unless told another.
PARALLEL_ENVIRONMENT = "smp"


def resource_args(
    resources: Resources,
    *,
    parallel_environment: str = PARALLEL_ENVIRONMENT,
    gpu_resource: Optional[str] = None,
) -> list[str]:
    """Return the qsub flags asking for a job's resources.

    ``-q`` queue, ``-A`` account, ``-pe <parallel_environment> N`` the cores (slots),
    ``-l h_vmem=<MB>M`` the memory of each slot (Grid Engine counts ``h_vmem`` per slot:
    the job's memory divided by its cores, in megabytes of 1024**2 bytes, rounded up),
    ``-l h_rt=H:MM:SS``, and ``-l <gpu_resource>=N`` for GPUs where the site has such a
    resource (a consumable whose ``consumable`` is ``JOB`` counts it per job).

    Args:
        resources: the job's resources.
        parallel_environment: the parallel environment giving the cores (``smp`` keeps
            them on one host); to use another, wrap this function:
            ``functools.partial(resource_args, parallel_environment="mpi")``.
        gpu_resource: the site's GPU resource (``qconf -sc`` lists them), or None.

    Raises:
        ValueError: more than one node (Grid Engine places slots by the parallel
            environment), or GPUs without a `gpu_resource`.
    """
    if resources.nodes is not None and resources.nodes > 1:
        raise ValueError(
            f"run flag nodes={resources.nodes}: Grid Engine places a job's slots by its "
            f"parallel environment ({parallel_environment!r}), not by nodes; give cores "
            "alone, with a parallel environment that spans hosts where the site has one"
        )
    if resources.gpus is not None and gpu_resource is None:
        raise ValueError(
            f"run flag gpus={resources.gpus}: Grid Engine has no standard GPU resource; "
            "name your site's (qconf -sc lists them) in GridEngine.gpu_resource, or set "
            "runner.settings.commands.resources = functools.partial("
            "runner_grid.schemes.sge.resource_args, gpu_resource='gpu'), or pass it as a "
            f"plain run flag: l='gpu={resources.gpus}'"
        )
    args: list[str] = []
    if resources.queue is not None:
        args += ["-q", resources.queue]
    if resources.account is not None:
        args += ["-A", resources.account]
    if resources.cores is not None:
        args += ["-pe", parallel_environment, str(resources.cores)]
    if resources.memory is not None:
        per_slot = -(-resources.memory // (resources.cores or 1))
        args += ["-l", f"h_vmem={megabytes(per_slot)}M"]
    if resources.walltime is not None:
        args += ["-l", f"h_rt={format_walltime(resources.walltime)}"]
    if resources.gpus is not None:
        args += ["-l", f"{gpu_resource}={resources.gpus}"]
    return args


def directive_resources(line: str, *, gpu_resource: Optional[str] = None) -> list[str]:
    """Return the resources a ``#$`` line sets (``#$ -l h_vmem=2G`` -> ``["memory"]``).

    ``-pe`` sets cores, ``-l`` the memory (``h_vmem``), walltime (``h_rt``) and GPUs
    (`gpu_resource`), ``-q`` the queue and ``-A`` the account.
    """
    named = {"h_vmem": "memory", "h_rt": "walltime"}
    if gpu_resource:
        named[gpu_resource] = "gpus"
    found: list[str] = []
    words = directive_words(line, "#$", spaced=False)
    for option, value in zip(words, [*words[1:], ""]):
        keys = {"-pe": ["cores"], "-q": ["queue"], "-A": ["account"]}.get(option, [])
        if option == "-l":
            names = {part.split("=", 1)[0].strip() for part in value.split(",")}
            keys = [key for name, key in named.items() if name in names]
        found += [key for key in keys if key not in found]
    return found


# --- job arrays ---------------------------------------------------------------------------

#: The variable that holds a task's index inside an array job.
ARRAY_INDEX_VAR = "SGE_TASK_ID"
_MAX_AJ_TASKS = re.compile(r"^max_aj_tasks\s+(\d+)\s*$", re.MULTILINE)


def array_args(size: int, throttle: int) -> list[str]:
    """Return the qsub flags of an array of tasks 1 to `size`, at most `throttle` at once.

    Args:
        size: the number of tasks (``-t 1-N``).
        throttle: the most tasks running at once (``-tc T``), 0 for no limit.
    """
    return ["-t", f"1-{size}", *(["-tc", str(throttle)] if throttle else [])]


def task_id(array_id: str, index: int) -> str:
    """Return the id of task `index` of the array qsub printed as `array_id`: ``123.4``."""
    return f"{array_id.partition('.')[0]}.{index}"


def array_limit_commands() -> list[list[str]]:
    """Return the query for the largest array Grid Engine takes: the global ``qconf -sconf``."""
    return [["qconf", "-sconf"]]


def parse_array_limit(output: str) -> Optional[int]:
    """Return ``max_aj_tasks`` from ``qconf -sconf``, or None (0 means no limit: None too)."""
    match = _MAX_AJ_TASKS.search(output)
    if match is None or int(match.group(1)) == 0:
        return None
    return int(match.group(1))


# --- limits ---------------------------------------------------------------------------------

_QUEUE_RECORD = re.compile(r"^(?=qname\s)", re.MULTILINE)
_QUEUE_FIELD = re.compile(r"^(\w+)[ \t]+(.*?)\s*$", re.MULTILINE)


#: A line of the global configuration (``qconf -sconf``) with a limit on jobs in the system.
_JOB_LIMIT = re.compile(r"^(max_u_jobs|max_jobs)[ \t]+(\d+)\s*$", re.MULTILINE)


def limit_commands() -> list[list[str]]:
    """Return the queries for the limits: every queue's (``qconf -sq '*'``), then the global
    configuration's (``qconf -sconf``: ``max_u_jobs``), left out where it cannot be read."""
    return [["qconf", "-sq", "*"], ["qconf", "-sconf"]]


def _queue_limit(name: str, key: str, value: str) -> Optional[int]:
    """One queue's ``h_rt`` in seconds or ``h_vmem`` in bytes; None: no limit.

    A value with host overrides (``1:00:00,[node1=2:00:00]``) counts its largest: a job
    can run where that one holds.

    Raises:
        ValueError: a value is not understood.
    """
    found: list[float] = []
    for part in value.split(","):
        spec = part.strip().strip("[]").rpartition("=")[2].strip()
        if spec.upper() in {"INFINITY", "NONE", ""}:
            return None
        amount = _seconds(spec) if key == "h_rt" else _bytes(spec, binary_units=False)
        if amount is None:
            raise ValueError(f"queue {name!r}: {key} {value!r} is not understood")
        found.append(amount)
    return int(max(found))


def parse_limits(output: str) -> Limits:
    """Return each queue's ``h_rt`` and ``h_vmem`` (per slot) from ``qconf -sq``.

    ``INFINITY`` is no limit. Grid Engine has no default queue: a job naming none is
    checked only where there is one queue. After the queues, the global configuration's
    ``max_u_jobs`` (and ``max_jobs``, all users' jobs, the lower; 0: none) is the submit
    limit of all the user's jobs (`Limits.submit` ``"user"``); Grid Engine counts an array
    as one job there (seen on Grid Engine 8.1.9).

    Raises:
        ValueError: the output names no queue, or a limit is not understood.
    """
    queues: dict[str, QueueLimits] = {}
    for record in _QUEUE_RECORD.split(output):
        fields = dict(_QUEUE_FIELD.findall(record))
        name = fields.get("qname")
        if not name:
            continue
        queues[name] = QueueLimits(
            _queue_limit(name, "h_rt", fields.get("h_rt", "INFINITY")),
            _queue_limit(name, "h_vmem", fields.get("h_vmem", "INFINITY")),
        )
    if not queues:
        raise ValueError(f"qconf -sq named no queue: {output[:200]!r}")
    default = next(iter(queues)) if len(queues) == 1 else None
    counts = [int(n) for _key, n in _JOB_LIMIT.findall(output) if int(n) > 0]
    submit = {"user": min(counts)} if counts else {}
    return Limits(
        queues,
        default,
        "queue",
        "h_rt",
        "h_vmem",
        "slot",
        submit=MappingProxyType(submit),
        submit_counts_tasks=False,
    )


def scheme() -> dict[str, Any]:
    """Return a fresh copy of the Grid Engine scheme (what ``GridRunner.config.sge`` holds).

    Its keys come from `GridEngine`'s attributes and its commands are this module's functions.
    ``qsub -S /bin/sh`` makes Grid Engine run the job wrapper with sh whatever the queue's
    ``shell`` and ``shell_start_mode`` say; the wrapper then starts the runscript through its own
    interpreter line. ``commands.resources`` maps the resource run flags (`resource_args`,
    with the ``smp`` parallel environment and no GPU resource) and
    ``commands.directive_resources`` reads ``#$`` lines for them.
    ``commands.limits`` and ``commands.parse_limits`` read the queues' limits (`parse_limits`).
    """
    return {
        **scheme_keys(GridEngine),
        "commands": {
            "submit": list(GridEngine.submit_command),
            "getid": getid,
            "check": check_commands,
            "running": running,
            "started": started,
            "cancel": cancel_commands,
            "exitcode": exitcode_commands,
            "parse_exitcode": parse_exitcode,
            "parse_end": parse_end,
            "probe": GridEngine().probe_argv(),
            "detect": detect,
            "find_tag": find_tag_commands,
            "parse_tag": parse_tag,
            "array": array_args,
            "task_id": task_id,
            "array_limit": array_limit_commands,
            "parse_array_limit": parse_array_limit,
            "resources": resource_args,
            "directive_resources": directive_resources,
            "limits": limit_commands,
            "parse_limits": parse_limits,
        },
    }


class GridEngine(Scheduler):
    """Grid Engine (SGE, Son of Grid Engine, OGS): qsub, qstat, qacct, qdel; this module's parsers.

    Subclass it to change one part for a site; every composed method of
    `runner_grid.Scheduler` then uses the override.

    Attributes:
        parallel_environment: the parallel environment asking for cores (``-pe smp N``).
        gpu_resource: the site's GPU resource (``-l gpu=N``), or None: GPUs are refused.
    """

    name = "sge"
    parallel_environment: str = PARALLEL_ENVIRONMENT
    gpu_resource: Optional[str] = None
    submit_command: Sequence[str] = ("qsub", "-S", "/bin/sh")
    workdir_flag: Optional[str] = "-wd"
    output_flag: Optional[str] = "-o"
    error_flag: Optional[str] = "-e"
    special: Mapping[str, str] = MappingProxyType(
        {
            "name": "-N ",
            "smp": "-pe smp ",
            "project": "-P ",
        }
    )
    tag_flag: Optional[str] = "-N "
    probe_command: Optional[Sequence[str]] = ("qsub", "-help")
    check_timeout: float = 60.0
    exitcode_wait: float = 30.0
    submit_faults: Mapping[str, tuple[str, ...]] = MappingProxyType(
        {kind: tuple(patterns) for kind, patterns in SUBMIT_FAULTS.items()}
    )
    array_index: tuple[str, ...] = (ARRAY_INDEX_VAR,)
    array_output_index: Optional[str] = "$TASK_ID"
    array_throttle: bool = True

    def parse_id(self, output: str) -> Optional[str]:
        """`getid`."""
        return getid(output)

    def check_argvs(self, ids: Sequence[str]) -> list[list[str]]:
        """`check_commands`."""
        return check_commands(ids)

    def parse_listing(self, output: str) -> Listing:
        """`running` and `started` of the same listing."""
        return Listing(running(output), started(output))

    def end_argvs(self, jobid: str) -> list[list[str]]:
        """`exitcode_commands`: qacct."""
        return exitcode_commands(jobid)

    def parse_end(self, output: str) -> Optional[End]:
        """`parse_end`."""
        return parse_end(output)

    def cancel_argvs(self, ids: Sequence[str]) -> list[list[str]]:
        """`cancel_commands`."""
        return cancel_commands(ids)

    def find_tag_argvs(self, tag: str) -> list[list[str]]:
        """`find_tag_commands`."""
        return find_tag_commands(tag)

    def parse_tag(self, tag: str, returncode: int, stdout: str, stderr: str) -> Optional[str]:
        """`parse_tag`."""
        return parse_tag(tag, returncode, stdout, stderr)

    def array_args(self, count: int, throttle: int) -> list[str]:
        """`array_args`."""
        return array_args(count, throttle)

    def task_id(self, array_id: str, index: int) -> str:
        """`task_id`."""
        return task_id(array_id, index)

    def array_limit_argvs(self) -> list[list[str]]:
        """`array_limit_commands`."""
        return array_limit_commands()

    def parse_array_limit(self, output: str) -> Optional[int]:
        """`parse_array_limit`."""
        return parse_array_limit(output)

    def detect(self, returncode: int, output: str) -> bool:
        """`detect`."""
        return detect(returncode, output)

    def resource_args(self, resources: Resources) -> list[str]:
        """`resource_args` with `parallel_environment` and `gpu_resource`."""
        return resource_args(
            resources,
            parallel_environment=self.parallel_environment,
            gpu_resource=self.gpu_resource,
        )

    def directive_resources(self, line: str) -> list[str]:
        """`directive_resources` with `gpu_resource`."""
        return directive_resources(line, gpu_resource=self.gpu_resource)

    def limit_argvs(self) -> list[list[str]]:
        """`limit_commands`."""
        return limit_commands()

    def parse_limits(self, output: str) -> Limits:
        """`parse_limits`."""
        return parse_limits(output)
