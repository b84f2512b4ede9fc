"""Benchmark of job arrays on the real SLURM: GridRunner.batch() against a hand-written array.

Part 1: N trivial jobs (default 1,000, one array at this SLURM's MaxArraySize of 1001) in one
``with runner.batch():`` block, each job its own folder, runscript, output and exit code,
against one hand-written ``sbatch --array=1-N`` of a script that changes into the task's own
folder, followed by ``squeue`` every second until the array has left the queue. Rounds
alternate which side goes first; printed as the median of the per-round ratios (target
<= 1.1x), with the runner's number of submit commands (target: one per array).

Part 2: the submission alone, with held jobs (``H=True``, nothing runs): N jobs in one
``batch()`` until the block returns, against a plain loop of N ``sbatch -H`` calls.

Needs `tools/slurm.sh start` (skipped with a note otherwise).

Usage: python tools/bench/bench_arrays.py [--jobs 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_grid import slurm_problem, wait_until_gone

from runner_core import JobManager, SingleJob
from runner_grid import GridRunner

TARGET_RATIO = 1.1
SLEEPSTEP = 1.0


def mark(ok: bool) -> str:
    return "OK" if ok else "OVER TARGET"


class SubmitCounter(logging.Handler):
    """Counts the messages runner_grid logs that start with `prefix` (submit commands)."""

    def __init__(self, prefix: str = "submitting") -> None:
        super().__init__(logging.INFO)
        self.prefix = prefix
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(self.prefix):
            self.count += 1


def hand_written(root: Path, n: int) -> float:
    """One sbatch --array=1-n of a script that runs in task i's own folder, then squeue polls."""
    root.mkdir(parents=True)
    start = time.perf_counter()
    for i in range(1, n + 1):
        (root / f"t{i}").mkdir()
    script = root / "array.sh"
    script.write_text(f'#!/bin/sh\ncd {root}/t"$SLURM_ARRAY_TASK_ID" || exit 1\nexit 0\n')
    out = subprocess.run(
        [
            "sbatch",
            "--parsable",
            f"--array=1-{n}",
            "-D",
            str(root),
            "-o",
            f"{root}/t%a/out",
            "-e",
            f"{root}/t%a/err",
            str(script),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    wait_until_gone([out.strip().split(";")[0]], SLEEPSTEP)
    return time.perf_counter() - start


def through_batch(root: Path, n: int, counter: SubmitCounter) -> tuple[float, int]:
    """The same n jobs through GridRunner(grid="slurm").batch(); (seconds, submit commands)."""
    runner = GridRunner(grid="slurm", sleepstep=SLEEPSTEP)
    manager = JobManager(root)
    before = counter.count
    start = time.perf_counter()
    with runner.batch():
        results = [
            SingleJob(name=f"t{i}", runscript="exit 0\n").run(jobrunner=runner, jobmanager=manager)
            for i in range(n)
        ]
    runner.wait()
    elapsed = time.perf_counter() - start
    runner.shutdown()
    manager.close()
    bad = [r for r in results if not r.ok]
    if bad:
        raise RuntimeError(f"{len(bad)} jobs failed, e.g. {bad[0].status} {bad[0].error}")
    return elapsed, counter.count - before


def bench_drain(n: int, rounds: int, work: Path, counter: SubmitCounter) -> None:
    print(f"== real SLURM: {n} trivial jobs as one array, {rounds} rounds")
    ratios = []
    for r in range(rounds):
        times: dict[str, float] = {}
        for side in ("hand", "batch") if r % 2 == 0 else ("batch", "hand"):
            folder = work / f"{side}{r}"
            if side == "hand":
                times[side] = hand_written(folder, n)
                detail = "(1 sbatch --array)"
            else:
                times[side], submits = through_batch(folder, n, counter)
                detail = f"({submits} submit command{'s' if submits != 1 else ''})"
            label = (
                "hand-written sbatch --array + squeue" if side == "hand" else "GridRunner.batch()"
            )
            print(f"  round {r + 1} {label:38s} {times[side]:7.2f} s {detail}")
        ratios.append(times["batch"] / times["hand"])
    ratio = statistics.median(ratios)
    print(
        f"  median of the per-round ratios batch() / hand-written: {ratio:.2f}x "
        f"({', '.join(f'{x:.2f}' for x in ratios)}) (target <= {TARGET_RATIO}x) "
        f"{mark(ratio <= TARGET_RATIO)}"
    )


def bench_submit(n: int, work: Path, counter: SubmitCounter) -> None:
    print(f"== real SLURM: submitting {n} held jobs (H=True): one batch() against an sbatch loop")
    runner = GridRunner(grid="slurm", sleepstep=SLEEPSTEP)
    manager = JobManager(work / "batch")
    before = counter.count
    start = time.perf_counter()
    with runner.batch():
        for i in range(n):
            SingleJob(name=f"h{i}", runscript="exit 0\n").run(
                jobrunner=runner, jobmanager=manager, H=True
            )
    batch_time = time.perf_counter() - start
    submits = counter.count - before
    runner.shutdown(cancel=True)
    manager.close()

    loop_root = work / "loop"
    loop_root.mkdir()
    script = loop_root / "held.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    ids = []
    start = time.perf_counter()
    for _ in range(n):
        out = subprocess.run(
            ["sbatch", "--parsable", "-H", "-D", str(loop_root), "-o", "/dev/null", str(script)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        ids.append(out.strip().split(";")[0])
    loop_time = time.perf_counter() - start
    for i in range(0, len(ids), 500):
        subprocess.run(["scancel", *ids[i : i + 500]], check=False)
    print(f"  batch() of {n} held jobs: {batch_time:.2f} s, {submits} submit command(s)")
    print(f"  loop of {n} sbatch -H calls: {loop_time:.2f} s")
    print(f"  ratio batch() / loop: {batch_time / loop_time:.3f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000, help="jobs in the batch")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the drain comparison")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    counter = SubmitCounter()
    grid_logger = logging.getLogger("runner_grid")
    grid_logger.setLevel(logging.INFO)
    grid_logger.addHandler(counter)
    grid_logger.propagate = False
    problem = slurm_problem()
    if problem:
        print(
            f"== job arrays on the real SLURM: SKIPPED ({problem}); run: bash tools/slurm.sh start"
        )
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-arrays-") as tmp:
        work = Path(tmp)
        bench_drain(args.jobs, args.rounds, work / "drain", counter)
        bench_submit(args.jobs, work / "submit", counter)
    return 0


if __name__ == "__main__":
    sys.exit(main())
