"""The PBS scheme (PBS Pro / OpenPBS and Torque): qsub flags, qstat queries and their parsers."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Optional

from runner_grid._command import batch_commands
from runner_grid.schemes._common import base_id, last_id

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "FINISHED_STATES",
    "cancel_commands",
    "check_commands",
    "detect",
    "exitcode_commands",
    "getid",
    "parse_exitcode",
    "running",
    "scheme",
]

#: qstat state letters of jobs that have left the queue: C (Torque keeps completed jobs for
#: keep_completed seconds), F (PBS Pro finished, shown with -x) and X (finished array subjob).
#: Every other letter (Q, R, H, W, T, S, E, B, U, M...) counts as still queued.
FINISHED_STATES = frozenset({"C", "F", "X"})

_ID = re.compile(r"^\s*(\d+(?:\[\d*\])?(?:\.[A-Za-z0-9_.\-]+)?)\s*$")
_JOB_LINE = re.compile(r"^(\d+(?:\[\d*\])?(?:\.\S*)?)\s")
_HEADER = re.compile(r"^\s*(Job ?ID|Job id|-{3,}|[A-Za-z0-9_.\-]+:\s*$|\s+Req'd)", re.IGNORECASE)


def getid(output: str) -> Optional[str]:
    """Return the job id qsub printed, or None.

    PBS prints the id alone on a line: ``N.server`` (with the server's domain, or ``N[].server``
    for an array) or, on some sites, a bare ``N``. Lines are read from the last one up, so
    banners printed before the id do not matter.

    Args:
        output: everything qsub wrote to standard output.

    Returns:
        The id as printed, or None when the output holds none.
    """
    return last_id(output, _ID)


def check_commands(ids: Sequence[str]) -> list[list[str]]:
    """Return the qstat command: the whole queue in qstat's default format.

    qstat's plain listing has no way to ask for several ids at once without failing on the ones
    that have finished ("Unknown Job Id"), so the whole queue is listed and the poller picks its
    own jobs out of it.

    Args:
        ids: the runner's jobs still believed to be queued (unused).

    Returns:
        A list with one argv.
    """
    del ids
    return [["qstat"]]


def running(output: str) -> list[str]:
    """Return the ids of the jobs still in the queue according to a qstat listing.

    Reads the default format (``Job ID  Name  User  Time Use S Queue``) and the alternative one
    of ``-a``/``-u`` (the state is the next-to-last column in both); header, separator, server
    and blank lines are skipped; ids lose their array brackets and server suffix
    (``123[].server`` -> ``123``).

    Args:
        output: standard output of qstat.

    Returns:
        The ids of jobs whose state is not one of `FINISHED_STATES`, in order, without repeats.

    Raises:
        ValueError: a line is neither a header nor a job line (the check then counts as failed).
    """
    ids: dict[str, None] = {}
    for line in output.splitlines():
        if not line.strip() or _HEADER.match(line):
            continue
        match = _JOB_LINE.match(line)
        fields = line.split()
        if not match or len(fields) < 3:
            raise ValueError(f"qstat line {line!r} is neither a header nor a job line")
        state = fields[-2]
        if state not in FINISHED_STATES:
            ids[base_id(match.group(1))] = None
    return list(ids)


def cancel_commands(ids: Sequence[str]) -> list[list[str]]:
    """Return the qdel commands that cancel the given jobs (batched to keep lines short)."""
    return batch_commands(["qdel"], list(ids))


def exitcode_commands(jobid: str) -> list[list[str]]:
    """Return the query for a job's exit code: ``qstat -x -f``.

    PBS Pro reads ``-x`` as "include finished jobs" (job history) and prints ``Exit_status = N``;
    Torque reads it as "XML output" and prints ``<exit_status>N</exit_status>`` while it keeps the
    completed job. `parse_exitcode` reads both.
    """
    return [["qstat", "-x", "-f", jobid]]


_EXIT_STATUS = re.compile(r"exit_status\s*(?:=\s*|>\s*)(-?\d+)", re.IGNORECASE)


def parse_exitcode(output: str) -> Optional[int]:
    """Return the exit status a ``qstat -x -f`` answer reports, or None.

    A negative status (PBS's codes for a job that could not start or was killed by the server)
    gives 1; a status above 256 (PBS Pro's 256 + signal) gives 128 + signal, like a shell.

    Args:
        output: standard output of `exitcode_commands`.

    Returns:
        The exit code, or None when the output holds no exit status (the job has not ended).
    """
    match = _EXIT_STATUS.search(output)
    if not match:
        return None
    status = int(match.group(1))
    if status < 0:
        return 1
    if status > 256:
        return 128 + status - 256
    return status


def detect(returncode: int, output: str) -> bool:
    """Return True when ``qsub --version`` printed a PBS version line.

    PBS Pro / OpenPBS print ``pbs_version = 2022.1.1``; Torque prints ``Version: 6.1.3``. Grid
    Engine's qsub rejects ``--version`` (and prints ``SGE``/``GE`` banners), so it never matches.
    """
    if returncode != 0 or re.search(r"\b(SGE|Grid ?Engine)\b", output):
        return False
    return bool(re.search(r"^\s*(pbs_version\s*=|Version:)\s*\d", output, re.MULTILINE))


def scheme() -> dict[str, Any]:
    """Return a fresh copy of the PBS scheme (what ``GridRunner.config.pbs`` holds).

    PBS Pro has no working-directory flag (Torque's is ``-d``), so ``workdir`` is None here and
    the job wrapper changes into the job's folder itself; Torque users may set it to ``"-d"``.
    """
    return {
        "workdir": None,
        "output": "-o",
        "error": "-e",
        "special": {
            "nodes": "-l nodes=",
            "select": "-l select=",
            "walltime": "-l walltime=",
            "memory": "-l mem=",
            "queue": "-q ",
            "name": "-N ",
            "account": "-A ",
        },
        "commands": {
            "submit": "qsub",
            "getid": getid,
            "check": check_commands,
            "running": running,
            "cancel": cancel_commands,
            "exitcode": exitcode_commands,
            "parse_exitcode": parse_exitcode,
            "probe": ["qsub", "--version"],
            "detect": detect,
        },
        "check_timeout": 60,
        "exitcode_wait": 5,
        "unset_env": [],
    }
