"""Changing the test cluster's state for a test and restoring it: QOS limits, the node, max_u_jobs.

What tools/slurm.sh and tools/sge.sh set up (see their headers): SLURM's QOS ``limited`` (jobs
ask for it with ``--qos=limited``, so a limit on it touches no other test's jobs), its node
``localhost`` and partitions ``debug`` (default), ``short``, ``long``, ``high``; Grid Engine's
global ``max_u_jobs``; held jobs outside any runner. Each context manager here puts back what it
changed even when the test fails inside it.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Union

from integration._schedulers import ORIGINAL_PATH, tool, wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator

#: The QOS tests put limits on (tools/slurm.sh creates it without any).
TEST_QOS = "limited"
#: The single node of the test SLURM.
NODE = "localhost"
#: Seconds an admin command may take.
ADMIN_TIMEOUT = 30.0


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run a scheduler command from the original PATH; any exit status, output captured."""
    return subprocess.run(
        [tool(argv[0]) or argv[0], *argv[1:]],
        capture_output=True,
        text=True,
        timeout=ADMIN_TIMEOUT,
        env=_env(),
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _env() -> dict[str, str]:
    """Ours, without the user's output-format variables, with the original PATH."""
    formats = ("SQUEUE_", "SBATCH_", "SACCT_", "SINFO_", "SGE_QSTAT")
    return {k: v for k, v in os.environ.items() if not k.startswith(formats)} | {
        "PATH": ORIGINAL_PATH
    }


def admin(*argv: str) -> str:
    """Run an admin command that must succeed; return its standard output.

    Raises:
        AssertionError: it exited non-zero (with what it said).
    """
    proc = run(*argv)
    assert proc.returncode == 0, f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr}"
    return proc.stdout


# --- SLURM ----------------------------------------------------------------------------------


def partition(name: str) -> dict[str, str]:
    """Return ``scontrol show partition NAME``'s fields (``MaxTime``, ``MaxMemPerNode``...)."""
    return dict(re.findall(r"(\w+)=(\S*)", admin("scontrol", "show", "partition", name, "-o")))


def node_state() -> str:
    """Return the node's state as sinfo prints it (``idle``, ``down*``...), "" when not listed."""
    out = run("sinfo", "--noheader", f"--nodes={NODE}", "--format=%T").stdout.split()
    return out[0] if out else ""


@contextlib.contextmanager
def slurm_qos_limits(**limits: Union[int, str]) -> Iterator[None]:
    """Set limits (``MaxSubmitJobsPerUser=1``, ``MaxWall="00:10:00"``...) on QOS `TEST_QOS`;
    clear them (-1) after."""
    modify = ["sacctmgr", "-i", "modify", "qos", TEST_QOS, "set"]
    try:
        admin(*modify, *_settings(limits))
        yield
    finally:
        admin(*modify, *_settings(dict.fromkeys(limits, -1)))


def _settings(limits: dict[str, Union[int, str]]) -> list[str]:
    return [f"{key}={value}" for key, value in limits.items()]


@contextlib.contextmanager
def slurm_node_down(reason: str = "integration test") -> Iterator[None]:
    """Set the node DOWN (its running jobs end NODE_FAIL); resume it after and wait until usable.

    The node stays down until resumed (``ReturnToService=1``).
    """
    try:
        admin("scontrol", "update", f"nodename={NODE}", "state=down", f"reason={reason}")
        yield
    finally:
        if not node_state().startswith(("idle", "mix", "alloc", "completing")):
            admin("scontrol", "update", f"nodename={NODE}", "state=resume")
        wait_for(
            lambda: node_state().startswith(("idle", "mix", "alloc")),
            f"node {NODE} usable again after state=resume",
        )


# --- Grid Engine ----------------------------------------------------------------------------


def max_u_jobs() -> int:
    """Return Grid Engine's global ``max_u_jobs`` (0: no limit)."""
    match = re.search(r"^max_u_jobs\s+(\d+)\s*$", admin("qconf", "-sconf", "global"), re.MULTILINE)
    assert match, "qconf -sconf global shows no max_u_jobs"
    return int(match.group(1))


def _set_max_u_jobs(value: int) -> None:
    conf = admin("qconf", "-sconf", "global")
    conf = re.sub(r"^max_u_jobs\s+\d+\s*$", f"max_u_jobs {value}", conf, flags=re.MULTILINE)
    with tempfile.TemporaryDirectory() as folder:
        # qconf -Mconf takes the configuration's name from the file's name.
        path = Path(folder) / "global"
        path.write_text(conf)
        admin("qconf", "-Mconf", str(path))


@contextlib.contextmanager
def sge_max_u_jobs(value: int) -> Iterator[None]:
    """Set the global ``max_u_jobs`` (jobs a user may have in the system); put it back after."""
    before = max_u_jobs()
    try:
        _set_max_u_jobs(value)
        yield
    finally:
        _set_max_u_jobs(before)


def user_job_count(user: str) -> int:
    """Return how many jobs `user` has in Grid Engine (pending or running)."""
    lines = admin("qstat", "-u", user).splitlines()
    return sum(1 for line in lines if re.match(r"^\s*\d+\s", line))


# --- jobs outside the runners ---------------------------------------------------------------


@contextlib.contextmanager
def held_jobs(scheduler: str, count: int, *flags: str) -> Iterator[list[str]]:
    """Submit `count` held jobs of the user's outside any runner (``sbatch --hold``, ``qsub -h``),
    filling part of a submit limit; cancel them after, by their ids only (other tests' jobs of
    the same user stay)."""
    ids: list[str] = []
    try:
        for _ in range(count):
            if scheduler == "slurm":
                out = admin(
                    "sbatch", "--parsable", "--hold", "-o", "/dev/null", *flags, "--wrap", "true"
                )
                ids.append(out.strip().split(";")[0])
            else:
                out = admin(
                    "qsub", "-h", "-o", "/dev/null", "-e", "/dev/null", "-b", "y", *flags, "true"
                )
                found = re.search(r"Your job (\d+)", out)
                assert found, f"qsub printed no job id: {out!r}"
                ids.append(found.group(1))
        yield ids
    finally:
        if ids:
            run("scancel" if scheduler == "slurm" else "qdel", *ids)
