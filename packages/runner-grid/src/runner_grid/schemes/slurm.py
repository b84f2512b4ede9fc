"""SLURM: the `Slurm` scheduler class, sbatch flags, squeue/scontrol/sacct queries and parsers."""

from __future__ import annotations

import getpass
import re
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Optional

from runner_core import format_walltime, megabytes, parse_memory, parse_walltime
from runner_grid._commands import MAX_COMMAND_CHARS, batch_commands
from runner_grid._ids import base_id, expand_indices, last_id, task_key
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
    from collections.abc import Iterator, Mapping, Sequence

    from runner_core import Resources

__all__ = [
    "ARRAY_INDEX_VAR",
    "DIRECTIVE_OPTIONS",
    "END_REASONS",
    "FINISHED_STATES",
    "SUBMIT_FAULTS",
    "Slurm",
    "array_args",
    "array_limit_commands",
    "cancel_commands",
    "check_commands",
    "check_error",
    "detect",
    "directive_resources",
    "ended_in_part",
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

#: The job states a job ends in, each with the end reason it gives (None: the job ended by itself,
#: its exit code tells the rest). DEADLINE (the job could not end before its ``--deadline``) counts
#: as "timeout" and BOOT_FAIL (its node failed to boot, the job never ran) as "node_fail".
END_REASONS: dict[str, Optional[str]] = {
    "COMPLETED": None,
    "FAILED": None,
    "CANCELLED": "cancelled",
    "TIMEOUT": "timeout",
    "DEADLINE": "timeout",
    "OUT_OF_MEMORY": "out_of_memory",
    "NODE_FAIL": "node_fail",
    "BOOT_FAIL": "node_fail",
    "PREEMPTED": "preempted",
}

#: Job states after which a job is no longer in the queue (squeue keeps showing such jobs for
#: MinJobAge seconds when asked with --states=all), as the compact codes of ``%t`` and the long
#: names of ``%T``. Every other state, known or new, counts as still queued, so an unknown state
#: never releases a job early: a requeued job (PENDING again, or REQUEUED, REQUEUE_HOLD,
#: REQUEUE_FED, SPECIAL_EXIT, COMPLETING on its way back) is still queued, and so is a REVOKED
#: federation sibling (the job runs on another cluster of the federation).
FINISHED_STATES = frozenset(
    {
        "BF", "BOOT_FAIL",
        "CA", "CANCELLED",
        "CD", "COMPLETED",
        "DL", "DEADLINE",
        "F", "FAILED",
        "NF", "NODE_FAIL",
        "OOM", "OUT_OF_MEMORY",
        "PR", "PREEMPTED",
        "TO", "TIMEOUT",
    }
)  # fmt: skip

_SUBMITTED = re.compile(r"^\s*Submitted batch job (\d+)\b")
_PARSABLE = re.compile(r"^\s*(\d+)(?:;\S+)?\s*$")
_LINE = re.compile(r"^(\S+) +([A-Z_]+)$")
_CLUSTER = re.compile(r"^CLUSTER: \S+\s*$")
_INVALID_ID = "Invalid job id specified"
#: What slurmstepd writes to a job's stderr when the cgroup out-of-memory killer killed a process
#: of the job (``slurmstepd: error: Detected 1 oom-kill event(s) in StepId=7.batch. ...``).
OOM_NOTE = "oom-kill event(s)"

#: The pinned squeue output: job id and compact state code, one job per line, no header.
SQUEUE_FORMAT = "%i %t"


def getid(output: str) -> Optional[str]:
    """Return the job id sbatch printed, or None.

    Reads ``Submitted batch job N`` and the ``--parsable`` forms ``N`` and ``N;cluster``. Lines
    are read from the last one up, so banners printed before the id do not matter.

    Args:
        output: everything sbatch wrote to standard output.

    Returns:
        The id (digits only), or None when the output holds none.
    """
    return last_id(output, _SUBMITTED, _PARSABLE)


def check_commands(ids: Sequence[str]) -> list[list[str]]:
    """Return the squeue command that lists the given jobs in the pinned format.

    The runner's own jobs are asked for with ``--jobs`` (an array task by its array's id, once
    for all its tasks); when they would make the command line longer than
    `MAX_COMMAND_CHARS`, the current user's jobs are listed instead (still one command), and
    the poller picks its own out of them. ``--array`` puts every task of an array on a line of
    its own, pending ones too, so each task is released when it ends.

    Args:
        ids: the runner's jobs still believed to be queued.

    Returns:
        A list with one argv.
    """
    argv = ["squeue", "--noheader", "--array", f"--format={SQUEUE_FORMAT}", "--states=all"]
    joined = ",".join(dict.fromkeys(base_id(jobid) for jobid in ids))
    if ids and len(joined) + sum(len(a) + 1 for a in argv) + 8 <= MAX_COMMAND_CHARS:
        return [[*argv, f"--jobs={joined}"]]
    return [[*argv, f"--user={current_user()}"]]


def running(output: str) -> list[str]:
    """Return the ids of the jobs still in the queue according to a pinned squeue listing.

    Lines in the ``%i %T`` form (long state names) are read too.

    Args:
        output: standard output of the command from `check_commands` (``%i %t`` lines; an
            array task ``123_4`` is listed as it is, a pending range ``123_[1-5%2]`` as
            ``123_1`` ... ``123_5``; ``CLUSTER:`` lines of multi-cluster listings are skipped).

    Returns:
        The ids of jobs and array tasks whose state is not one of `FINISHED_STATES`, in order,
        without repeats (the poller counts a task for its array's job too).

    Raises:
        ValueError: a line is not in the pinned format (the check then counts as failed).
    """
    ids: dict[str, None] = {}
    for listed, state in _listing(output):
        if state not in FINISHED_STATES:
            for jobid in _task_ids(listed):
                ids[jobid] = None
    return list(ids)


def _listing(output: str) -> Iterator[tuple[str, str]]:
    """(``%i``, state) for each line of a pinned squeue listing; ``CLUSTER:`` lines skipped.

    Raises:
        ValueError: a line is not in the pinned format.
    """
    for line in output.splitlines():
        if not line.strip() or _CLUSTER.match(line):
            continue
        match = _LINE.match(line.strip())
        if not match:
            raise ValueError(f"squeue line {line!r} is not in the pinned format {SQUEUE_FORMAT!r}")
        yield match.group(1), match.group(2)


#: States of a job that has started on a node (running, finishing, suspended or stopped).
STARTED_STATES = frozenset(
    {"R", "RUNNING", "CG", "COMPLETING", "S", "SUSPENDED", "ST", "STOPPED", "SO", "STAGE_OUT"}
)


def started(output: str) -> list[str]:
    """Return the ids of the jobs that have started, from the same squeue listing as `running`.

    A job whose state is one of `STARTED_STATES` has started on a node; PENDING ones have
    not. A pending range of tasks has not started. The runner takes this, or the job's own
    record of its start, whichever it sees first.

    Raises:
        ValueError: a line is not in the pinned format.
    """
    ids = {
        listed: None
        for listed, state in _listing(output)
        if state in STARTED_STATES and _PENDING_TASKS.match(listed) is None
    }
    return list(ids)


_PENDING_TASKS = re.compile(r"^(\d+)_\[([^\]]+)\]$")


def _task_ids(listed: str) -> list[str]:
    """The ids one squeue ``%i`` stands for: a job, a task, or the tasks of a pending range."""
    match = _PENDING_TASKS.match(listed)
    if match is None:
        return [listed if task_key(listed) is not None else base_id(listed)]
    return [f"{match.group(1)}_{index}" for index in expand_indices(match.group(2))]


def check_error(
    ids: Sequence[str], returncode: int, stdout: str, stderr: str
) -> Optional[list[str]]:
    """Tell squeue's "Invalid job id specified" answer apart from a real failure.

    squeue asked about a single job that SLURM has already purged exits non-zero with that
    message: it is an answer (the job has left the queue), not a failed check. Asked about
    several jobs, squeue leaves the unknown ones out and exits 0, so the message is only taken as
    an answer for a single job (the tasks of one array count as one: squeue is asked for the
    array), with nothing on standard output and nothing else on standard error.

    Args:
        ids: the ids the failed command asked about.
        returncode: its exit status.
        stdout: its standard output.
        stderr: its standard error.

    Returns:
        An empty list (none of ``ids`` is queued) when the failure is exactly that answer, else
        None (the check failed).
    """
    if returncode == 0 or stdout.strip() or len({base_id(jobid) for jobid in ids}) != 1:
        return None
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if lines and all(line.endswith(_INVALID_ID) for line in lines):
        return []
    return None


def cancel_commands(ids: Sequence[str]) -> list[list[str]]:
    """Return the scancel commands that cancel the given jobs (batched to keep lines short)."""
    return batch_commands(["scancel"], list(ids))


def exitcode_commands(jobid: str) -> list[list[str]]:
    """Return the queries tried in turn for how a job ended: scontrol, then sacct.

    ``scontrol show job`` answers without accounting for MinJobAge seconds after the job ended;
    ``sacct`` answers later where slurmdbd keeps accounting. Both print the job's state, which
    `parse_end` reads the end reason from, and its exit code.
    """
    return [
        ["scontrol", "show", "job", jobid],
        [
            "sacct",
            "--noheader",
            "--parsable2",
            "--allocations",
            "--format=JobID,State,ExitCode",
            f"--jobs={jobid}",
        ],
    ]


#: Final states of jobs SLURM ended before they ran (past their deadline, node boot failed).
_NEVER_RAN = frozenset({"DEADLINE", "BOOT_FAIL"})
_RECORD = re.compile(r"^(?=JobId=)", re.MULTILINE)
_STATE = re.compile(r"\bJobState=(\S+)")
_EXITCODE = re.compile(r"\bExitCode=(\d+):(\d+)")
# sacct --parsable2: JobID|State|ExitCode; the state may go on ("CANCELLED by 0").
_SACCT = re.compile(r"^\s*[^|\s]+\|([A-Z_]+)[^|]*\|(\d+):(\d+)\s*$")


def _end(state: str, status: int, signal: int) -> Optional[End]:
    """(exit code, reason) of one job record, or None while its state is not final."""
    if state not in END_REASONS:
        return None
    if state in _NEVER_RAN:
        # SLURM sets the raw wait status 1 for a job it fails before it runs, which prints as
        # ExitCode=0:1: not a SIGHUP.
        code = status or 1
    elif status:
        code = status
    elif signal:
        code = 128 + signal
    else:
        code = 0 if state == "COMPLETED" else 1
    return code, END_REASONS[state]


def _records(output: str) -> list[tuple[str, int, int]]:
    """(state, status, signal) of every job record in a scontrol or sacct answer."""
    records = []
    for chunk in _RECORD.split(output):
        state, code = _STATE.search(chunk), _EXITCODE.search(chunk)
        if state and code:
            records.append((state.group(1), int(code.group(1)), int(code.group(2))))
    if records:
        return records
    for line in output.splitlines():
        match = _SACCT.match(line)
        if match:
            records.append((match.group(1), int(match.group(2)), int(match.group(3))))
    return records


def parse_end(output: str) -> Optional[End]:
    """Return how a job ended according to a ``scontrol show job`` or ``sacct`` answer, or None.

    The state gives the reason (`END_REASONS`): TIMEOUT and DEADLINE "timeout", OUT_OF_MEMORY
    "out_of_memory", NODE_FAIL and BOOT_FAIL "node_fail", PREEMPTED "preempted", CANCELLED (by
    anyone) "cancelled"; COMPLETED and FAILED none. ``ExitCode=a:b`` (the batch script's status
    ``a``, the signal ``b`` that killed it) gives the exit code: ``a`` when non-zero, else
    ``128 + b`` when a signal ended the job, else 0 for COMPLETED and 1 for any other final state
    (cancelled before it ran, node failure...); DEADLINE and BOOT_FAIL jobs never ran and give 1
    (SLURM prints their status as ``0:1``). A job array's records (one per task) end only
    when every task has; the first task that did not succeed then speaks for the array.

    Args:
        output: standard output of one of `exitcode_commands`.

    Returns:
        ``(exit code, reason)``, or None while the job (or a task of it) is pending, running,
        requeued or completing, and when the output names no job (purged, no accounting).
    """
    return combine_ends([_end(*record) for record in _records(output)])


def ended_in_part(stderr_tail: str) -> bool:
    """Whether a job's stderr ends with slurmstepd's note of an out-of-memory kill in its cgroup.

    ``slurmstepd: error: Detected 1 oom-kill event(s) in StepId=7.batch. ...``: SLURM ends such
    a job OUT_OF_MEMORY even when its script went on and exited 0.
    """
    return OOM_NOTE in stderr_tail


def parse_exitcode(output: str) -> Optional[int]:
    """Return the exit code `parse_end` reads from the same answer, or None.

    Args:
        output: standard output of one of `exitcode_commands`.

    Returns:
        The exit code, or None while the job has not ended or the output names no job.
    """
    end = parse_end(output)
    return None if end is None else end[0]


def detect(returncode: int, output: str) -> bool:
    """Return True when ``sbatch --version`` printed SLURM's version line (``slurm 22.05.8``)."""
    return returncode == 0 and re.match(r"\s*slurm(-wlm)?\s+\d", output) is not None


# --- finding a job by its tag (a submission whose reply was lost) ---------------------------

#: What sbatch prints when it queued nothing and trying again later may work, and when its
#: reply was lost so the job may be queued all the same (then it is looked up by its tag).
SUBMIT_FAULTS = {
    "retry": [
        *TRANSIENT_REFUSALS,  # "Resource temporarily unavailable" (EAGAIN) among them
        r"Unable to contact slurm controller",
        r"temporarily unable to accept job",
        r"backup controller in standby mode",
    ],
    "uncertain": [
        r"Socket timed out on send/recv operation",
        r"Zero Bytes were transmitted or received",
        r"Transport endpoint is not connected",
    ],
    "limit": [  # a QOS's or an association's cap on queued jobs: wait for room
        r"Max\w*SubmitJob\w*Limit",  # QOSMaxSubmitJobPerUserLimit, AssocMaxSubmitJobLimit...
        r"Grp\w*SubmitJob\w*Limit",  # QOSGrpSubmitJobsLimit, AssocGrpSubmitJobsLimit
    ],
}


def find_tag_commands(tag: str) -> list[list[str]]:
    """Return the squeue command that lists the user's jobs with their comment (``--comment``)."""
    return [
        [
            "squeue",
            "--noheader",
            "--format=%i|%k",
            "--states=all",
            f"--user={current_user()}",
        ]
    ]


def parse_tag(tag: str, returncode: int, stdout: str, stderr: str) -> Optional[str]:
    """Return the id of the job whose comment is `tag` in a `find_tag_commands` listing.

    Raises:
        ValueError: squeue failed, so the listing tells nothing.
    """
    if returncode != 0:
        raise ValueError(stderr.strip() or f"squeue exited {returncode}")
    for line in stdout.splitlines():
        jobid, sep, comment = line.strip().partition("|")
        if sep and comment == tag:
            return base_id(jobid)
    return None


# --- resources ------------------------------------------------------------------------------


def resource_args(resources: Resources) -> list[str]:
    """Return the sbatch flags asking for a job's resources.

    ``-p`` queue, ``-A`` account, ``-N`` nodes, ``--cpus-per-task`` the cores of each node
    (one task per node, sbatch's default), ``--mem=<MB>M`` the memory of each node
    (``--mem`` counts per node; megabytes of 1024**2 bytes, rounded up), ``--time`` in
    SLURM's ``[D-]HH:MM:SS``, ``--gpus`` the job's GPUs.

    Raises:
        ValueError: cores are not a multiple of nodes.
    """
    args: list[str] = []
    if resources.queue is not None:
        args += ["-p", resources.queue]
    if resources.account is not None:
        args += ["-A", resources.account]
    if resources.nodes is not None:
        args += ["-N", str(resources.nodes)]
    cores = resources.per_node("cores")
    if cores is not None:
        args.append(f"--cpus-per-task={cores}")
    memory = resources.per_node("memory")
    if memory is not None:
        args.append(f"--mem={megabytes(memory)}M")
    if resources.walltime is not None:
        args.append(f"--time={format_walltime(resources.walltime, days=True)}")
    if resources.gpus is not None:
        args.append(f"--gpus={resources.gpus}")
    return args


#: sbatch options that set a resource, by the resource (abbreviations of long options aside).
DIRECTIVE_OPTIONS = {
    "-c": "cores",
    "--cpus-per-task": "cores",
    "-N": "nodes",
    "--nodes": "nodes",
    "--mem": "memory",
    "--mem-per-cpu": "memory",
    "--mem-per-gpu": "memory",
    "-t": "walltime",
    "--time": "walltime",
    "-G": "gpus",
    "--gpus": "gpus",
    "--gpus-per-node": "gpus",
    "--gpus-per-task": "gpus",
    "-p": "queue",
    "--partition": "queue",
    "-A": "account",
    "--account": "account",
}


def directive_resources(line: str) -> list[str]:
    """Return the resources an ``#SBATCH`` line sets (``#SBATCH --mem=4G`` -> ``["memory"]``).

    ``--gres=gpu:...`` counts as GPUs. Lines of other schedulers set none.
    """
    found: list[str] = []
    for word in directive_words(line, "#SBATCH"):
        if not word.startswith("-"):
            continue
        option = word.split("=", 1)[0] if word.startswith("--") else word[:2]
        key = DIRECTIVE_OPTIONS.get(option)
        if option == "--gres" and "gpu" in word:
            key = "gpus"
        if key is not None and key not in found:
            found.append(key)
    return found


# --- job arrays ---------------------------------------------------------------------------

#: The variable that holds a task's index inside an array job.
ARRAY_INDEX_VAR = "SLURM_ARRAY_TASK_ID"
_MAX_ARRAY_SIZE = re.compile(r"^\s*MaxArraySize\s*=\s*(\d+)\s*$", re.MULTILINE)


def array_args(size: int, throttle: int) -> list[str]:
    """Return the sbatch flag that makes an array of tasks 1 to `size`, `throttle` at once.

    Args:
        size: the number of tasks.
        throttle: the most tasks running at once, 0 for no limit (``--array=1-N%T``).
    """
    return [f"--array=1-{size}" + (f"%{throttle}" if throttle else "")]


def task_id(array_id: str, index: int) -> str:
    """Return the id of task `index` of the array sbatch printed as `array_id`: ``123_4``."""
    return f"{base_id(array_id)}_{index}"


def array_limit_commands() -> list[list[str]]:
    """Return the query for the largest array SLURM takes: ``scontrol show config``."""
    return [["scontrol", "show", "config"]]


def parse_array_limit(output: str) -> Optional[int]:
    """Return the most tasks one array may have, from ``scontrol show config``, or None.

    ``MaxArraySize = N`` allows task indices 0 to N - 1; the runner numbers tasks from 1, so an
    array holds at most N - 1 tasks.
    """
    match = _MAX_ARRAY_SIZE.search(output)
    if match is None:
        return None
    return max(int(match.group(1)) - 1, 1)


# --- limits ---------------------------------------------------------------------------------

_PARTITION = re.compile(r"^(?=\s*PartitionName=)", re.MULTILINE)
_FIELD = re.compile(r"(\w+)=(\S*)")
_NO_LIMIT = frozenset({"UNLIMITED", "INFINITE", "NONE", ""})


#: The pinned answers of the accounting's limit queries, told apart by their number of fields:
#: a QOS's name, MaxWall, MaxTRES and MaxSubmitPU (four; three in answers read before it was
#: asked), and one association of the user: user, account, default QOS, the QOS it may use,
#: its partition, MaxSubmitJobs and GrpSubmitJobs (seven; five before). A job naming no QOS
#: gets the default QOS every association of the user shares.
QOS_FORMAT = "Name,MaxWall,MaxTRES,MaxSubmitPU"
ASSOC_FORMAT = "User,Account,DefaultQOS,QOS,Partition,MaxSubmitJobs,GrpSubmitJobs"


def limit_commands() -> list[list[str]]:
    """Return the queries for the limits: the partitions' (``scontrol --oneliner show
    partition``), then the QOS' and the user's associations' from the accounting
    (``sacctmgr``), which a cluster without slurmdbd does not answer (they are then left out).
    """
    sacctmgr = ["sacctmgr", "--noheader", "--parsable2", "show"]
    return [
        ["scontrol", "--oneliner", "show", "partition"],
        [*sacctmgr, "qos", f"format={QOS_FORMAT}"],
        [*sacctmgr, "assoc", f"user={getpass.getuser()}", f"format={ASSOC_FORMAT}"],
    ]


def _is_qos(fields: list[str]) -> bool:
    return len(fields) in {3, 4}


def _is_assoc(fields: list[str]) -> bool:
    return len(fields) in {5, 7}


def _count(value: str) -> Optional[int]:
    """A submit limit's count; None for none set, or one not understood (not guessed)."""
    value = value.strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def _qos_limits(lines: list[list[str]]) -> dict[str, QueueLimits]:
    """Each QOS's MaxWall and the memory of its MaxTRES (per job); a field not understood
    leaves that limit out (the scheduler decides)."""
    found: dict[str, QueueLimits] = {}
    for name, wall, tres in (fields[:3] for fields in lines if _is_qos(fields)):
        walltime = memory = None
        if wall.strip().upper() not in _NO_LIMIT:
            try:
                walltime = parse_walltime(wall.strip(), "MaxWall")
            except ValueError:
                walltime = None
        mem = dict(part.split("=", 1) for part in tres.split(",") if "=" in part).get("mem")
        if mem:
            try:
                memory = parse_memory(mem if mem[-1].isalpha() else mem + "M", "MaxTRES mem")
            except ValueError:
                memory = None
        found[name] = QueueLimits(walltime, memory)
    return found


def _default_qos(lines: list[list[str]], qos: dict[str, QueueLimits]) -> Optional[str]:
    """The QOS of a job naming none: the default QOS all the user's associations share;
    none set means SLURM's "normal" where the associations allow it."""
    defaults = set()
    for _user, _account, default, allowed, partition in (f[:5] for f in lines if _is_assoc(f)):
        if partition:
            continue  # an association of one partition only
        if default:
            defaults.add(default)
        elif "normal" in allowed.split(",") and "normal" in qos:
            defaults.add("normal")
        else:
            return None
    return defaults.pop() if len(defaults) == 1 else None


def _submit_limits(lines: list[list[str]]) -> dict[str, int]:
    """The submit limits of `Limits.submit`: each QOS's MaxSubmitPU (``"qos:NAME"``), and each
    of the user's associations' MaxSubmitJobs or GrpSubmitJobs, the lower (``"account:NAME"``).

    A job naming no account counts in ``"account:"``, known only where every association of
    the user (but those of one partition) has the same limit: which one is the default
    account's, the accounting's answers here do not say. SLURM counts each task of an array
    against these limits (seen on SLURM 22.05).
    """
    found: dict[str, int] = {}
    for fields in lines:
        if len(fields) == 4 and _count(fields[3]) is not None:
            found[f"qos:{fields[0]}"] = int(fields[3])
    accounts: dict[str, Optional[int]] = {}
    for _user, account, _default, _allowed, partition, most, group in (
        f for f in lines if len(f) == 7
    ):
        if partition:
            continue  # an association of one partition only: the scheduler decides
        counts = [n for n in (_count(most), _count(group)) if n is not None]
        accounts[account] = min(counts) if counts else None
    for account, count in accounts.items():
        if count is not None:
            found[f"account:{account}"] = count
    shared = set(accounts.values())
    if len(shared) == 1:
        only = shared.pop()
        if only is not None:
            found["account:"] = only
    return found


def _partition_limit(fields: Mapping[str, str], key: str) -> Optional[int]:
    """MaxTime in seconds or MaxMemPerNode in bytes of one partition; None: no limit."""
    value = fields.get(key, "UNLIMITED")
    if value.upper() in _NO_LIMIT:
        return None
    if key == "MaxMemPerNode":
        if not value.isdigit():
            raise ValueError(f"partition {fields.get('PartitionName')!r}: MaxMemPerNode={value}")
        return int(value) * 1024**2
    return parse_walltime(value, "MaxTime")


def parse_limits(output: str) -> Limits:
    """Return each partition's MaxTime and MaxMemPerNode from ``scontrol show partition``.

    Reads the one-line and the multi-line forms; MaxMemPerNode is in megabytes, ``UNLIMITED`` no
    limit, and the partition with ``Default=YES`` is the default. ``MaxMemPerCPU`` is not read.
    After them, the accounting's answers (`QOS_FORMAT`, `ASSOC_FORMAT`): each QOS's limits,
    the default QOS and the submit limits (`Limits.submit`, per QOS and per association).

    Raises:
        ValueError: the output names no partition, or a limit is not understood.
    """
    queues: dict[str, QueueLimits] = {}
    default = None
    accounting = [line.split("|") for line in output.splitlines() if "|" in line]
    output = "\n".join(line for line in output.splitlines() if "|" not in line)
    for record in _PARTITION.split(output):
        fields = dict(_FIELD.findall(record))
        name = fields.get("PartitionName")
        if not name:
            continue
        queues[name] = QueueLimits(
            _partition_limit(fields, "MaxTime"), _partition_limit(fields, "MaxMemPerNode")
        )
        if fields.get("Default") == "YES":
            default = name
    if not queues:
        raise ValueError(f"scontrol show partition named no partition: {output[:200]!r}")
    qos = _qos_limits(accounting)
    return Limits(
        queues,
        default,
        "partition",
        "MaxTime",
        "MaxMemPerNode",
        "node",
        qos=MappingProxyType(qos),
        default_qos=_default_qos(accounting, qos),
        submit=MappingProxyType(_submit_limits(accounting)),
    )


def scheme() -> dict[str, Any]:
    """Return a fresh copy of the SLURM scheme (what ``GridRunner.config.slurm`` holds).

    Its keys come from `Slurm`'s attributes and its commands are this module's functions.
    sbatch's options of one dash are all one letter, so ``long_flags`` is on: a runflag of
    several letters that is not a special key becomes ``--key=value`` (``mem`` -> ``--mem=4G``;
    ``-mem 4G`` would read as ``-m em``). ``commands.resources`` maps the resource run flags
    (`resource_args`) and ``commands.directive_resources`` reads ``#SBATCH`` lines for them.
    ``commands.limits`` and ``commands.parse_limits`` read the partitions' limits (`parse_limits`).
    """
    return {
        **scheme_keys(Slurm),
        "commands": {
            "submit": Slurm.submit_command,
            "getid": getid,
            "check": check_commands,
            "running": running,
            "started": started,
            "check_error": check_error,
            "cancel": cancel_commands,
            "exitcode": exitcode_commands,
            "parse_exitcode": parse_exitcode,
            "parse_end": parse_end,
            "ended_in_part": ended_in_part,
            "probe": Slurm().probe_argv(),
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


class Slurm(Scheduler):
    """SLURM: sbatch, squeue, scontrol and sacct, scancel; through this module's functions.

    Subclass it to change one part for a site (``class MySlurm(Slurm)``); every composed
    method of `runner_grid.Scheduler` then uses the override.
    """

    name = "slurm"
    submit_command: Sequence[str] = "sbatch"
    workdir_flag: Optional[str] = "-D"
    output_flag: Optional[str] = "-o"
    error_flag: Optional[str] = "-e"
    special: Mapping[str, str] = MappingProxyType(
        {
            "ntasks": "-n ",
            "cpus": "--cpus-per-task=",
            "name": "-J ",
            "export": "--export=",
            "exclusive": "--exclusive",
            "gres": "--gres=",
            "constraint": "--constraint=",
            "qos": "--qos=",
        }
    )
    long_flags: bool = True
    tag_flag: Optional[str] = "--comment="
    probe_command: Optional[Sequence[str]] = ("sbatch", "--version")
    check_timeout: float = 60.0
    exitcode_wait: float = 5.0
    unset_env: tuple[str, ...] = ("SQUEUE_*", "SACCT_*")
    submit_faults: Mapping[str, tuple[str, ...]] = MappingProxyType(
        {kind: tuple(patterns) for kind, patterns in SUBMIT_FAULTS.items()}
    )
    array_index: tuple[str, ...] = (ARRAY_INDEX_VAR,)
    array_output_index: Optional[str] = "%a"
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

    def check_error(
        self, ids: Sequence[str], returncode: int, stdout: str, stderr: str
    ) -> Optional[list[str]]:
        """`check_error`: "Invalid job id specified" for a single id is an answer."""
        return check_error(ids, returncode, stdout, stderr)

    def ended_in_part(self, stderr_tail: str) -> bool:
        """`ended_in_part`."""
        return ended_in_part(stderr_tail)

    def end_argvs(self, jobid: str) -> list[list[str]]:
        """`exitcode_commands`: scontrol, then sacct."""
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
        """`resource_args`."""
        return resource_args(resources)

    def directive_resources(self, line: str) -> list[str]:
        """`directive_resources`."""
        return directive_resources(line)

    def limit_argvs(self) -> list[list[str]]:
        """`limit_commands`."""
        return limit_commands()

    def parse_limits(self, output: str) -> Limits:
        """`parse_limits`."""
        return parse_limits(output)
