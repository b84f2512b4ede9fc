"""Benchmark of remote runs: a campaign driven over ssh against the same campaign on the login node.

The private sshd of ``tools/sshd.sh`` (127.0.0.1) stands for a cluster's login node in front of
the real SLURM of ``tools/slurm.sh``. N jobs (default 500), each writing a small file into its
folder, run once as ``GridRunner(grid="slurm")`` here (the login node) and once as
``GridRunner(grid="slurm", host=...)`` through the sshd, every job's folder copied up before its
submission and back after its end. Rounds alternate which side goes first; printed: the median
of the per-round ratios remote / login node (target <= 1.2x), and per remote run the ssh logins
(target 1), the sessions the sshd opened (commands and transfers) per job, and the transfers.

Two forms of the campaign: plain jobs (one submit command, one copy up, per job) and one
``batch()`` (an array: one copy up and one submit for all).

Needs `tools/slurm.sh start` and `tools/sshd.sh start` (skipped with a note otherwise).

Usage: python tools/bench/bench_remote.py [--jobs 500] [--rounds 2]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench_grid import slurm_problem

from runner_core import JobManager, SingleJob
from runner_grid import GridRunner

TARGET_RATIO = 1.2
SLEEPSTEP = 1.0
ROOT = Path(__file__).resolve().parents[2]
SSHD_STATE = Path(os.environ.get("RUNNER_SSHD_DIR", "/run/runner-sshd"))
ALIAS = "runner-test"


def mark(ok: bool) -> str:
    return "OK" if ok else "OVER TARGET"


def sshd_problem() -> str | None:
    """Why the test sshd cannot be used, or None."""
    proc = subprocess.run(
        ["bash", str(ROOT / "tools" / "sshd.sh"), "status"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return (proc.stderr or proc.stdout).strip() or "tools/sshd.sh status failed"
    return None


def sessions_so_far() -> int:
    """Sessions the test sshd has opened (one per command or transfer over the master)."""
    with open(SSHD_STATE / "sshd.log", encoding="utf-8", errors="replace") as f:
        return f.read().count("Starting session:")


def campaign(runner: GridRunner, folder: Path, n: int, batch: bool) -> float:
    """Run n jobs through `runner` (in one batch() or plain); seconds until all ended."""
    manager = JobManager(str(folder))
    jobs = [SingleJob(f"t{i}", f'echo "{i}" > result.txt\n') for i in range(n)]
    start = time.perf_counter()
    with runner.batch() if batch else contextlib.nullcontext():
        for job in jobs:
            job.run(jobrunner=runner, jobmanager=manager)
    runner.wait()
    elapsed = time.perf_counter() - start
    bad = [j for j in jobs if not j.results.ok or not (folder / j.name / "result.txt").exists()]
    if bad:
        raise RuntimeError(f"{len(bad)} jobs failed, e.g. {bad[0].results.error}")
    return elapsed


def one_round(work: Path, n: int, batch: bool, remote_first: bool) -> dict[str, Any]:
    """Both sides once; the remote side's figures too."""
    figures: dict[str, Any] = {}
    root = f"bench-remote/{uuid.uuid4().hex[:8]}"
    sides = ["remote", "login"] if remote_first else ["login", "remote"]
    for side in sides:
        if side == "login":
            runner = GridRunner(grid="slurm", sleepstep=SLEEPSTEP)
            figures["login"] = campaign(runner, work / f"login-{uuid.uuid4().hex[:6]}", n, batch)
            runner.shutdown()
            continue
        sessions = sessions_so_far()
        runner = GridRunner(
            grid="slurm",
            sleepstep=SLEEPSTEP,
            host=ALIAS,
            ssh_config=str(SSHD_STATE / "ssh_config"),
            remote_root=root,
        )
        figures["remote"] = campaign(runner, work / f"remote-{uuid.uuid4().hex[:6]}", n, batch)
        site = runner._site
        assert site is not None
        figures["logins"] = site.host.logins
        figures["transfers"] = site.transfers
        figures["sessions"] = sessions_so_far() - sessions
        runner.shutdown()
        site.close()
    home = pwd.getpwnam("runnerssh").pw_dir
    shutil.rmtree(os.path.join(home, root), ignore_errors=True)
    return figures


def bench(n: int, rounds: int, work: Path, batch: bool) -> None:
    form = "one batch() (arrays)" if batch else "plain jobs"
    ratios: list[float] = []
    last: dict[str, Any] = {}
    for r in range(rounds):
        last = one_round(work, n, batch, remote_first=r % 2 == 0)
        ratios.append(last["remote"] / last["login"])
        print(
            f"   round {r + 1}: login node {last['login']:.2f} s, remote {last['remote']:.2f} s "
            f"({ratios[-1]:.2f}x)"
        )
    ratio = statistics.median(ratios)
    print(f"== {n} {form}: remote / login node {ratio:.2f}x (target <= {TARGET_RATIO}x) "
          f"{mark(ratio <= TARGET_RATIO)}")  # fmt: skip
    print(
        f"   remote run: {last['logins']} ssh login(s) (target 1), "
        f"{last['sessions'] / n:.3f} sshd sessions per job ({last['sessions']} in all), "
        f"{last['transfers']} transfers"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500, help="jobs per campaign")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per form")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    problem = slurm_problem() or sshd_problem()
    if problem:
        print(
            f"== remote runs: SKIPPED ({problem}); run: bash tools/slurm.sh start; "
            "bash tools/sshd.sh start"
        )
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-remote-") as tmp:
        work = Path(tmp)
        bench(args.jobs, args.rounds, work, batch=False)
        bench(args.jobs, args.rounds, work, batch=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
