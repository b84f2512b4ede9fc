"""The SLURM scheme: sbatch flags, squeue/scontrol/sacct queries and their parsers."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Optional

from runner_grid._command import MAX_COMMAND_CHARS, batch_commands
from runner_grid.schemes._common import base_id, current_user, last_id

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "FINISHED_STATES",
    "cancel_commands",
    "check_commands",
    "check_error",
    "detect",
    "exitcode_commands",
    "getid",
    "parse_exitcode",
    "running",
    "scheme",
]

#: Job states after which a job is no longer in the queue (squeue keeps showing such jobs for
#: MinJobAge seconds when asked with --states=all), as the compact codes of ``%t`` and the long
#: names of ``%T``. Every other state, known or new, counts as still queued, so an unknown state
#: never releases a job early.
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
        "RV", "REVOKED",
        "TO", "TIMEOUT",
    }
)  # fmt: skip

_SUBMITTED = re.compile(r"^\s*Submitted batch job (\d+)\b")
_PARSABLE = re.compile(r"^\s*(\d+)(?:;\S+)?\s*$")
_LINE = re.compile(r"^(\S+) +([A-Z_]+)$")
_CLUSTER = re.compile(r"^CLUSTER: \S+\s*$")
_INVALID_ID = "Invalid job id specified"
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

    The runner's own ids are asked for with ``--jobs``; when they would make the command line
    longer than `MAX_COMMAND_CHARS`, the current user's jobs are listed instead (still one
    command), and the poller picks its own out of them.

    Args:
        ids: the runner's jobs still believed to be queued.

    Returns:
        A list with one argv.
    """
    argv = ["squeue", "--noheader", f"--format={SQUEUE_FORMAT}", "--states=all"]
    joined = ",".join(ids)
    if ids and len(joined) + sum(len(a) + 1 for a in argv) + 8 <= MAX_COMMAND_CHARS:
        return [[*argv, f"--jobs={joined}"]]
    return [[*argv, f"--user={current_user()}"]]


def running(output: str) -> list[str]:
    """Return the ids of the jobs still in the queue according to a pinned squeue listing.

    Lines in the ``%i %T`` form (long state names) are read too.

    Args:
        output: standard output of the command from `check_commands` (``%i %t`` lines; array
            tasks such as ``123_[1-5]`` or ``123_4`` count for job ``123``; ``CLUSTER:`` lines of
            multi-cluster listings are skipped).

    Returns:
        The ids of jobs whose state is not one of `FINISHED_STATES`, in order, without repeats.

    Raises:
        ValueError: a line is not in the pinned format (the check then counts as failed).
    """
    ids: dict[str, None] = {}
    for line in output.splitlines():
        if not line.strip() or _CLUSTER.match(line):
            continue
        match = _LINE.match(line.strip())
        if not match:
            raise ValueError(f"squeue line {line!r} is not in the pinned format {SQUEUE_FORMAT!r}")
        if match.group(2) not in FINISHED_STATES:
            ids[base_id(match.group(1))] = None
    return list(ids)


def check_error(
    ids: Sequence[str], returncode: int, stdout: str, stderr: str
) -> Optional[list[str]]:
    """Tell squeue's "Invalid job id specified" answer apart from a real failure.

    squeue asked about a single job that SLURM has already purged exits non-zero with that
    message: it is an answer (the job has left the queue), not a failed check. Asked about
    several jobs, squeue leaves the unknown ones out and exits 0, so the message is only taken as
    an answer for a single id, with nothing on standard output and nothing else on standard error.

    Args:
        ids: the ids the failed command asked about.
        returncode: its exit status.
        stdout: its standard output.
        stderr: its standard error.

    Returns:
        An empty list (none of ``ids`` is queued) when the failure is exactly that answer, else
        None (the check failed).
    """
    if returncode == 0 or stdout.strip() or len(ids) != 1:
        return None
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if lines and all(line.endswith(_INVALID_ID) for line in lines):
        return []
    return None


def cancel_commands(ids: Sequence[str]) -> list[list[str]]:
    """Return the scancel commands that cancel the given jobs (batched to keep lines short)."""
    return batch_commands(["scancel"], list(ids))


def exitcode_commands(jobid: str) -> list[list[str]]:
    """Return the queries tried in turn for a job's exit code: scontrol, then sacct.

    ``scontrol show job`` answers without accounting for MinJobAge seconds after the job ended;
    ``sacct`` answers later where slurmdbd keeps accounting.
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


_STATE = re.compile(r"\bJobState=(\S+)")
_EXITCODE = re.compile(r"\bExitCode=(\d+):(\d+)")
_SACCT = re.compile(r"^\s*[^|\s]+\|([A-Z_]+)[^|]*\|(\d+):(\d+)\s*$")


def _code(state: str, status: int, signal: int) -> Optional[int]:
    if state not in FINISHED_STATES:
        return None
    if status:
        return status
    if signal:
        return 128 + signal
    return 0 if state == "COMPLETED" else 1


def parse_exitcode(output: str) -> Optional[int]:
    """Return the exit code a ``scontrol show job`` or ``sacct`` answer reports, or None.

    ``ExitCode=a:b`` is the batch script's status ``a`` and the signal ``b`` that killed it. A
    job that ended gives ``a`` when non-zero, else ``128 + b`` when a signal killed it, else 0
    for COMPLETED and 1 for any other final state (cancelled before it ran, node failure...).

    Args:
        output: standard output of one of `exitcode_commands`.

    Returns:
        The exit code, or None while the job has not ended or the output names no job.
    """
    state = _STATE.search(output)
    code = _EXITCODE.search(output)
    if state and code:
        return _code(state.group(1), int(code.group(1)), int(code.group(2)))
    for line in output.splitlines():
        match = _SACCT.match(line)
        if match:
            return _code(match.group(1), int(match.group(2)), int(match.group(3)))
    return None


def detect(returncode: int, output: str) -> bool:
    """Return True when ``sbatch --version`` printed SLURM's version line (``slurm 22.05.8``)."""
    return returncode == 0 and re.match(r"\s*slurm(-wlm)?\s+\d", output) is not None


def scheme() -> dict[str, Any]:
    """Return a fresh copy of the SLURM scheme (what ``GridRunner.config.slurm`` holds)."""
    return {
        "workdir": "-D",
        "output": "-o",
        "error": "-e",
        "special": {
            "nodes": "-N ",
            "ntasks": "-n ",
            "cpus": "--cpus-per-task=",
            "walltime": "-t ",
            "memory": "--mem=",
            "queue": "-p ",
            "partition": "-p ",
            "account": "-A ",
            "name": "-J ",
            "export": "--export=",
            "exclusive": "--exclusive",
            "gres": "--gres=",
            "constraint": "--constraint=",
            "qos": "--qos=",
        },
        "commands": {
            "submit": "sbatch",
            "getid": getid,
            "check": check_commands,
            "running": running,
            "check_error": check_error,
            "cancel": cancel_commands,
            "exitcode": exitcode_commands,
            "parse_exitcode": parse_exitcode,
            "probe": ["sbatch", "--version"],
            "detect": detect,
        },
        "check_timeout": 60,
        "exitcode_wait": 5,
        "unset_env": ["SQUEUE_*", "SACCT_*"],
    }
