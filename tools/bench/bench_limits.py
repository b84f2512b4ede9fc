"""Benchmark of submit-limit back-pressure on the real SLURM: a campaign bigger than the limit.

N trivial jobs (default 300) under the test QOS's ``MaxSubmitJobsPerUser=20``: through a
GridRunner, which reads the limit in advance (``sacctmgr``'s MaxSubmitPU) and holds the jobs
over it back until room frees (refusals by sbatch, waited out, only where it could not know),
against the ideal a person would write by hand: waves of 20 sbatch calls, each wave waited
out with ``squeue`` every ``sleepstep`` before the next. Both poll at the same interval.
Rounds alternate which side goes first; printed as the median of the per-round ratios
(target <= 1.2x), with the runner's refusals per round (0 with nothing else queued).

Needs `tools/slurm.sh start` (the QOS ``limited`` and accounting; skipped with a note
otherwise). The limit is reset even when a round fails.

Usage: python tools/bench/bench_limits.py [--jobs 300] [--limit 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench_arrays import SubmitCounter, mark
from bench_grid import slurm_problem, wait_until_gone

from runner_core import JobManager, SingleJob
from runner_grid import GridRunner

if TYPE_CHECKING:
    from collections.abc import Iterator

TARGET_RATIO = 1.2
SLEEPSTEP = 0.5
QOS = "limited"  # made by tools/slurm.sh for limits that touch no other work


@contextlib.contextmanager
def submit_limit(limit: int) -> Iterator[None]:
    modify = ["sacctmgr", "-i", "modify", "qos", QOS, "set"]
    subprocess.run([*modify, f"MaxSubmitJobsPerUser={limit}"], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run([*modify, "MaxSubmitJobsPerUser=-1"], check=True, capture_output=True)


def waves(root: Path, n: int, limit: int) -> float:
    """The ideal by hand: sbatch `limit` jobs, wait until they are gone, then the next wave."""
    root.mkdir(parents=True)
    script = root / "job.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    start = time.perf_counter()
    for first in range(0, n, limit):
        ids = []
        for i in range(first, min(first + limit, n)):
            folder = root / f"j{i}"
            folder.mkdir()
            out = subprocess.run(
                ["sbatch", "--parsable", f"--qos={QOS}", "-D", str(folder), "-o", "out",
                 "-e", "err", str(script)],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            ids.append(out.strip().split(";")[0])
        wait_until_gone(ids, SLEEPSTEP)
    return time.perf_counter() - start


def through_runner(root: Path, n: int, refusals: SubmitCounter) -> tuple[float, int]:
    """The same jobs through a GridRunner at the limit: (seconds, refusals)."""
    runner = GridRunner(grid="slurm", sleepstep=SLEEPSTEP)
    manager = JobManager(root)
    before = refusals.count
    start = time.perf_counter()
    results = [
        SingleJob(name=f"j{i}", runscript="exit 0\n").run(
            jobrunner=runner, jobmanager=manager, qos=QOS
        )
        for i in range(n)
    ]
    runner.wait()
    elapsed = time.perf_counter() - start
    runner.shutdown()
    manager.close()
    bad = [r for r in results if not r.ok]
    if bad:
        raise RuntimeError(f"{len(bad)} jobs failed, e.g. {bad[0].status} {bad[0].error}")
    if len({r.jobid for r in results}) != n:
        raise RuntimeError("a job was submitted twice or not at all")
    return elapsed, refusals.count - before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300, help="jobs in the campaign")
    parser.add_argument("--limit", type=int, default=20, help="MaxSubmitJobsPerUser")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of both sides")
    args, _ = parser.parse_known_args()
    problem = slurm_problem()
    if problem is not None:
        print(f"bench_limits: skipped, no usable SLURM ({problem}); run tools/slurm.sh start")
        return 0
    refusals = SubmitCounter("submit limit:")  # the refusals runner_grid logs
    logging.getLogger("runner_grid").addHandler(refusals)
    logging.getLogger("runner_grid").setLevel(logging.INFO)
    logging.getLogger("runner_grid").propagate = False
    print(
        f"== real SLURM: {args.jobs} trivial jobs under MaxSubmitJobsPerUser={args.limit}, "
        f"{args.rounds} rounds"
    )
    ratios = []
    with tempfile.TemporaryDirectory() as tmp, submit_limit(args.limit):
        for r in range(args.rounds):
            times: dict[str, float] = {}
            for side in ("waves", "runner") if r % 2 == 0 else ("runner", "waves"):
                folder = Path(tmp) / f"{side}{r}"
                if side == "waves":
                    times[side] = waves(folder, args.jobs, args.limit)
                    detail = f"(waves of {args.limit} by hand)"
                    label = "hand-written waves + squeue"
                else:
                    times[side], refused = through_runner(folder, args.jobs, refusals)
                    detail = f"({refused} sbatch refusals waited out)"
                    label = "GridRunner at the limit"
                print(f"  round {r + 1} {label:30s} {times[side]:7.2f} s {detail}")
            ratios.append(times["runner"] / times["waves"])
    ratio = statistics.median(ratios)
    print(
        f"  median of the per-round ratios runner / waves: {ratio:.2f}x "
        f"({', '.join(f'{x:.2f}' for x in ratios)}) (target <= {TARGET_RATIO}x) "
        f"{mark(ratio <= TARGET_RATIO)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
