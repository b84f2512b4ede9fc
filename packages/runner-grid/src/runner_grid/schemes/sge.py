"""The Grid Engine scheme (SGE, Son of Grid Engine, OGS): qsub flags, qstat/qacct and parsers."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Optional

from runner_grid._command import batch_commands
from runner_grid.schemes._common import current_user, last_id

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "cancel_commands",
    "check_commands",
    "detect",
    "exitcode_commands",
    "getid",
    "parse_exitcode",
    "running",
    "scheme",
]

_SUBMITTED = re.compile(
    r"^\s*Your job(?:-array)? (\d+)(?:\.\d+-\d+:\d+)? \(.*\) has been submitted"
)
_TERSE = re.compile(r"^\s*(\d+)(?:\.\d+-\d+:\d+)?\s*$")
_JOB_LINE = re.compile(r"^\s*(\d+)\s+\d*\.?\d+\s")
_HEADER = re.compile(r"^\s*(job-ID\s|-{3,}\s*$)")
_XML_ID = re.compile(r"<JB_job_number>\s*(\d+)\s*</JB_job_number>")


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
    """Return the ids of the jobs in a qstat listing.

    Every job qstat lists is still in the queue, whatever its state (``qw``, ``hqw``, ``r``,
    ``t``, ``s``, ``Rr``, ``dr``, ``Eqw``...): finished jobs are not listed. The header
    (``job-ID prior name ...``), the dashes, blank lines and indented lines that do not start
    with a job number and priority (the details ``-r`` adds) are skipped; an array job's task
    lines give its number once. The ``-xml`` form (should a site's ``sge_qstat`` file ask for
    it) is read too.

    Args:
        output: standard output of qstat.

    Returns:
        Job numbers, in order, without repeats.

    Raises:
        ValueError: a line is neither a header nor a job line (the check then counts as failed).
    """
    if output.lstrip().startswith("<?xml"):
        return list(dict.fromkeys(_XML_ID.findall(output)))
    ids: dict[str, None] = {}
    for line in output.splitlines():
        if not line.strip() or _HEADER.match(line):
            continue
        match = _JOB_LINE.match(line)
        if match:
            ids[match.group(1)] = None
        elif not line[:1].isspace():
            raise ValueError(f"qstat line {line!r} is neither a header nor a job line")
    return list(ids)


def cancel_commands(ids: Sequence[str]) -> list[list[str]]:
    """Return the qdel commands that cancel the given jobs (batched to keep lines short)."""
    return batch_commands(["qdel"], list(ids))


def exitcode_commands(jobid: str) -> list[list[str]]:
    """Return the query for a job's exit code: ``qacct -j N``.

    qacct knows a job only once the accounting file has been flushed (``flush_time``), so the
    runner asks again until the scheme's ``exitcode_wait`` has passed.
    """
    return [["qacct", "-j", jobid]]


_EXIT_STATUS = re.compile(r"^exit_status\s+(\d+)", re.MULTILINE)
_FAILED = re.compile(r"^failed\s+(\d+)", re.MULTILINE)


def parse_exitcode(output: str) -> Optional[int]:
    """Return the exit code a ``qacct -j`` answer reports, or None.

    The first non-zero ``exit_status`` of the job's records wins (a job killed by a signal shows
    128 + signal); with every status 0, a non-zero ``failed`` (the job could not start, or was
    killed by the execution daemon) gives 1.

    Args:
        output: standard output of qacct.

    Returns:
        The exit code, or None when the output holds no record of the job.
    """
    statuses = [int(s) for s in _EXIT_STATUS.findall(output)]
    if not statuses:
        return None
    for status in statuses:
        if status:
            return status
    if any(int(f) for f in _FAILED.findall(output)):
        return 1
    return 0


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


def scheme() -> dict[str, Any]:
    """Return a fresh copy of the Grid Engine scheme (what ``GridRunner.config.sge`` holds).

    ``qsub -S /bin/sh`` makes Grid Engine run the job wrapper with sh whatever the queue's
    ``shell`` and ``shell_start_mode`` say; the wrapper then starts the runscript through its own
    interpreter line.
    """
    return {
        "workdir": "-wd",
        "output": "-o",
        "error": "-e",
        "special": {
            "name": "-N ",
            "walltime": "-l h_rt=",
            "memory": "-l h_vmem=",
            "queue": "-q ",
            "smp": "-pe smp ",
            "project": "-P ",
        },
        "commands": {
            "submit": ["qsub", "-S", "/bin/sh"],
            "getid": getid,
            "check": check_commands,
            "running": running,
            "cancel": cancel_commands,
            "exitcode": exitcode_commands,
            "parse_exitcode": parse_exitcode,
            "probe": ["qsub", "-help"],
            "detect": detect,
        },
        "check_timeout": 60,
        "exitcode_wait": 30,
        "unset_env": [],
    }
