"""Benchmark of runner_grid: throughput on the real SLURM, and cost at 10,000 active jobs.

Part 1 (needs `tools/slurm.sh start`; skipped with a note otherwise): 300 trivial jobs through
GridRunner(grid="slurm", sleepstep=1) against a plain loop of `sbatch` calls followed by polling
`squeue` every second until none is left, in 3 rounds that alternate which side goes first.
Printed as the median of the per-round ratios (target <= 1.1x), with the number of check commands
the runner issued per poll round and per sleepstep (target exactly one).

Part 1b: 1,000 held jobs (`H=True`) through GridRunner(grid="slurm") with default arguments:
the job.run() loop time, the time until all are in the queue, how many squeue lists at once
(target: all of them; it used to stop at 256, one thread each), and the peak thread count.

Part 2 (no scheduler needed): 10,000 jobs active at once against a fake, instant SLURM (an
`sbatch` and a `squeue` script put first on PATH; squeue lists every job as RUNNING until told to
release them): check commands per interval, the time one check takes and the time to parse one
10,000-line check output, and the Python memory per active job (tracemalloc).

Usage: python tools/bench/bench_grid.py [--jobs 300] [--scale-jobs 10000] [--skip-real]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

from runner_core import JobManager, SingleJob
from runner_grid import GridRunner

TARGET_RATIO = 1.1
REAL_ROUNDS = 3
SLEEPSTEP = 1.0
SCALE_SLEEPSTEP = 0.5
TARGET_THREADS = 16  # driver threads with 10,000 jobs in flight (issue 8)
TARGET_KIB_PER_JOB = 10
TARGET_ROUND_MS = 50.0
SCRIPT = "#!/bin/sh\nexit 0\n"


def mark(ok: bool) -> str:
    return "PASS" if ok else "OVER"


def slurm_problem() -> str | None:
    """Return why the real SLURM cannot be used, or None."""
    if shutil.which("sbatch") is None or shutil.which("squeue") is None:
        return "sbatch/squeue not on PATH"
    try:
        proc = subprocess.run(
            ["sinfo", "--noheader", "--format=%T"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sinfo failed: {exc}"
    states = proc.stdout.split()
    if proc.returncode != 0 or not any(s.startswith(("idle", "mix", "alloc")) for s in states):
        return f"no usable node (sinfo: {proc.stdout.strip() or proc.stderr.strip()!r})"
    return None


class RoundCounter:
    """Counts the poller's rounds by wrapping the check it calls once per round."""

    def __init__(self, runner: GridRunner) -> None:
        self.rounds = 0
        self.seconds = 0.0
        self.first: float | None = None
        self.last: float | None = None
        poller = getattr(runner, "_poller", None)
        inner: Callable[..., Any] | None = getattr(poller, "_check", None)
        if poller is None or inner is None:
            print("  (cannot count poll rounds: GridRunner has no _poller._check)")
            return

        def counted(ids: Any) -> Any:
            start = time.perf_counter()
            try:
                return inner(ids)
            finally:
                end = time.perf_counter()
                self.rounds += 1
                self.seconds += end - start
                self.first = start if self.first is None else self.first
                self.last = end

        poller._check = counted  # type: ignore[union-attr]


# --- part 1: the real SLURM ---------------------------------------------------------------


def plain_loop(root: Path, n: int, sleepstep: float) -> tuple[float, int]:
    """sbatch n scripts one after the other, then poll squeue every sleepstep until none is left."""
    root.mkdir(parents=True)
    start = time.perf_counter()
    ids = []
    for i in range(n):
        folder = root / f"t{i}"
        folder.mkdir()
        script = folder / f"t{i}.run"
        script.write_text(SCRIPT)
        script.chmod(0o755)
        out = subprocess.run(
            [
                "sbatch",
                "--parsable",
                "-D",
                str(folder),
                "-o",
                str(folder / f"t{i}.out"),
                "-e",
                str(folder / f"t{i}.err"),
                str(script),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        ids.append(out.strip().split(";")[0])
    polls = wait_until_gone(ids, sleepstep)
    return time.perf_counter() - start, polls


def wait_until_gone(ids: list[str], sleepstep: float) -> int:
    """Poll squeue every sleepstep until none of the jobs (or arrays) is left; the polls made."""
    polls = 0
    while True:
        polls += 1
        proc = subprocess.run(
            ["squeue", "--noheader", "--format=%i", f"--jobs={','.join(ids)}"],
            capture_output=True,
            text=True,
            check=False,
        )
        gone = proc.returncode != 0 and "Invalid job id" in proc.stderr
        if proc.returncode != 0 and not gone:
            raise RuntimeError(f"squeue failed: {proc.stderr}")
        if gone or not proc.stdout.strip():
            return polls
        time.sleep(sleepstep)


def gridrunner_loop(root: Path, n: int, sleepstep: float) -> tuple[float, int, RoundCounter]:
    """The same n scripts through GridRunner(grid="slurm")."""
    runner = GridRunner(grid="slurm", sleepstep=sleepstep, parallel=True)
    rounds = RoundCounter(runner)
    manager = JobManager(root)
    start = time.perf_counter()
    results = [
        SingleJob(name=f"t{i}", runscript="exit 0\n").run(jobrunner=runner, jobmanager=manager)
        for i in range(n)
    ]
    runner.wait()
    elapsed = time.perf_counter() - start
    bad = [r for r in results if not r.ok]
    if bad:
        raise RuntimeError(f"{len(bad)} jobs failed, e.g. {bad[0].status} {bad[0].error}")
    return elapsed, runner.check_count, rounds


def bench_real(n: int, work: Path) -> None:
    print(f"== real SLURM: {n} trivial jobs, sleepstep {SLEEPSTEP:g} s, {REAL_ROUNDS} rounds")
    problem = slurm_problem()
    if problem:
        print(f"  SKIPPED: SLURM is not usable here ({problem}); run: bash tools/slurm.sh start")
        return
    # One round is noisy: both sides end on a poll, so a second of polling granularity is
    # 10% of a run. Alternate who goes first and take the median of the per-round ratios.
    ratios = []
    checks = poll_rounds = 0
    steps = 0.0  # sleepsteps the polling spanned, over all rounds
    for r in range(REAL_ROUNDS):
        times: dict[str, float] = {}
        for side in ("plain", "grid") if r % 2 == 0 else ("grid", "plain"):
            folder = work / f"{side}{r}"
            if side == "plain":
                times[side], polls = plain_loop(folder, n, SLEEPSTEP)
                detail = f"({polls} squeue calls)"
            else:
                times[side], round_checks, rounds = gridrunner_loop(folder, n, SLEEPSTEP)
                checks += round_checks
                poll_rounds += rounds.rounds
                if rounds.rounds:
                    steps += ((rounds.last or 0) - (rounds.first or 0)) / SLEEPSTEP + 1
                detail = f"({round_checks} check commands in {rounds.rounds} poll rounds)"
            label = "plain sbatch loop + squeue polling" if side == "plain" else "GridRunner"
            print(f"  round {r + 1} {label:34s} {times[side]:7.2f} s {detail}")
        ratios.append(times["grid"] / times["plain"])
    ratio = statistics.median(ratios)
    print(
        f"  median of the per-round ratios GridRunner / plain: {ratio:.2f}x "
        f"({', '.join(f'{x:.2f}' for x in ratios)}) (target <= {TARGET_RATIO}x) "
        f"{mark(ratio <= TARGET_RATIO)}"
    )
    if poll_rounds:
        per_round = checks / poll_rounds
        print(
            f"  check commands: {checks} in {poll_rounds} poll rounds = {per_round:.2f} per round "
            f"(target 1) {mark(per_round == 1)}; {checks / steps:.2f} per sleepstep"
        )
    else:
        print(f"  check commands: {checks}")


def bench_held(n: int, work: Path) -> None:
    """`n` held jobs (H=True) on the real SLURM with default arguments: all in the queue at once."""
    print(f"== real SLURM: {n} held jobs (H=True), GridRunner(grid='slurm') default arguments")
    problem = slurm_problem()
    if problem:
        print(f"  SKIPPED: SLURM is not usable here ({problem}); run: bash tools/slurm.sh start")
        return
    peak = 0
    sampling = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not sampling.is_set():
            peak = max(peak, threading.active_count() - 1)  # not the sampler
            sampling.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    runner = GridRunner(grid="slurm", sleepstep=SLEEPSTEP)
    manager = JobManager(work)
    try:
        start = time.perf_counter()
        results = [
            SingleJob(name=f"held{i}", runscript="exit 0\n").run(
                jobrunner=runner, jobmanager=manager, H=True
            )
            for i in range(n)
        ]
        loop = time.perf_counter() - start
        while len(runner.queued) < n and not any(r.done for r in results):
            time.sleep(0.05)
        queued_after = time.perf_counter() - start
        listed = subprocess.run(
            ["squeue", "--noheader", "--format=%i", "--states=PENDING", "--user=root"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        ours = set(runner.queued) & set(listed)
        print(f"  job.run() loop: {loop:.2f} s for {n} jobs (returns at once: no thread per job)")
        print(
            f"  all {len(runner.queued)} in the queue after {queued_after:.1f} s; squeue lists "
            f"{len(ours)} of them at once {mark(len(ours) == n)}"
        )
        print(
            f"  peak threads of this process, main included: {peak} (target <= {TARGET_THREADS}) "
            f"{mark(peak <= TARGET_THREADS)}"
        )
    finally:
        t = time.perf_counter()
        runner.shutdown(cancel=True)
        sampling.set()
        sampler.join()
        print(f"  shutdown(cancel=True) took every job out in {time.perf_counter() - t:.1f} s")


# --- part 2: 10,000 active jobs against a fake instant SLURM ---------------------------------


FAKE_SBATCH = """#!/bin/sh
# Fake sbatch: job id from the job folder's name (j<digits>); writes the exit-code file the
# runner's wrapper would write, so the job ends SUCCESSFUL once squeue stops listing it.
dir=""
script=""
while [ $# -gt 0 ]; do
    case "$1" in
        -D) dir="$2"; shift ;;
        -o|-e) shift ;;
        *) script="$1" ;;
    esac
    shift
done
echo 0 > "${script%.grid}.exitcode"
echo "Submitted batch job ${dir##*/j}"
"""

FAKE_SQUEUE = """#!/bin/sh
# Fake squeue: every job RUNNING until the release file exists, then none.
[ -e "{release}" ] && exit 0
exec cat "{listing}"
"""


def listing_line(jobid: int, fmt: str) -> str:
    """One squeue line in the runner's pinned format for a RUNNING job."""
    return fmt.replace("%i", str(jobid)).replace("%T", "RUNNING").replace("%t", "R")


def bench_scale(n: int, work: Path) -> None:
    print(f"== scale: {n} active jobs, fake instant SLURM, sleepstep {SCALE_SLEEPSTEP:g} s")
    try:
        from runner_grid.schemes.slurm import SQUEUE_FORMAT  # noqa: PLC0415 - optional: older trees lack it
    except ImportError:
        SQUEUE_FORMAT = "%i|%T"
    fakebin = work / "fakebin"
    fakebin.mkdir(parents=True)
    listing = work / "listing.txt"
    release = work / "release"
    first = 1_000_000
    text = "".join(listing_line(first + i, SQUEUE_FORMAT) + "\n" for i in range(n))
    listing.write_text(text)
    for name, body in (
        ("sbatch", FAKE_SBATCH),
        ("squeue", FAKE_SQUEUE.format(release=release, listing=listing)),
    ):
        path = fakebin / name
        path.write_text(body)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    old_path = os.environ["PATH"]
    os.environ["PATH"] = f"{fakebin}{os.pathsep}{old_path}"
    peak_threads = 0
    sampling = threading.Event()

    def sample() -> None:
        nonlocal peak_threads
        while not sampling.is_set():
            peak_threads = max(peak_threads, threading.active_count() - 1)  # not the sampler
            sampling.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        runner = GridRunner(grid="slurm", sleepstep=SCALE_SLEEPSTEP)  # default arguments
        rounds = RoundCounter(runner)
        running = runner.settings["commands"]["running"]

        parse_times = []
        for _ in range(5):
            t = time.perf_counter()
            parsed = running(text)
            parse_times.append(time.perf_counter() - t)
        assert len(parsed) == n, f"parser found {len(parsed)} of {n} jobs"
        parse = min(parse_times)
        print(
            f"  parse one {n}-line check output: {parse * 1e3:.1f} ms "
            f"({parse / n * 1e6:.2f} us/line)"
        )

        manager = JobManager(work / "jobs")
        results = []
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        start = time.perf_counter()
        for i in range(n):
            job = SingleJob(name=f"j{first + i}", runscript="exit 0\n")
            results.append(job.run(jobrunner=runner, jobmanager=manager))
        loop = time.perf_counter() - start
        print(
            f"  job.run() loop over {n} jobs: {loop:.2f} s ({loop / n * 1e6:.0f} us per call; "
            "the submissions go on in the runner's submit workers)"
        )
        while len(runner.queued) < n:
            time.sleep(0.2)
            if any(r.done for r in results[:50]):
                bad = next(r for r in results if r.done)
                raise RuntimeError(f"a job ended early: {bad.status} {bad.error}")
        submitted = time.perf_counter() - start
        memory = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        per_job = memory / n / 1024
        print(f"  {n} jobs submitted and active after {submitted:.1f} s")
        print(
            f"  Python memory per active job: {per_job:.1f} KiB (tracemalloc; target <= "
            f"{TARGET_KIB_PER_JOB} KiB) {mark(per_job <= TARGET_KIB_PER_JOB)}"
        )

        c0, r0, s0, t0 = runner.check_count, rounds.rounds, rounds.seconds, time.perf_counter()
        time.sleep(SCALE_SLEEPSTEP * 10)
        c1, r1, s1, t1 = runner.check_count, rounds.rounds, rounds.seconds, time.perf_counter()
        intervals = (t1 - t0) / SCALE_SLEEPSTEP
        per_round = (c1 - c0) / max(1, r1 - r0)
        print(
            f"  check commands: {c1 - c0} in {intervals:.1f} intervals = "
            f"{(c1 - c0) / intervals:.2f} per interval; {per_round:.2f} per poll round "
            f"(target 1) {mark(per_round == 1)}"
        )
        if r1 > r0:
            round_ms = (s1 - s0) / (r1 - r0) * 1e3
            print(
                f"  one check round (command + parse of {n} lines): {round_ms:.1f} ms "
                f"(target < {TARGET_ROUND_MS:g} ms) {mark(round_ms < TARGET_ROUND_MS)}"
            )

        release.touch()
        t = time.perf_counter()
        runner.wait()
        print(f"  all {n} released and finished {time.perf_counter() - t:.1f} s after release")
        ok = sum(r.ok for r in results)
        if ok != n:
            print(f"  WARNING: only {ok} of {n} jobs ended SUCCESSFUL")
        print(
            f"  peak threads of this process, main included: {peak_threads} "
            f"(target <= {TARGET_THREADS}) {mark(peak_threads <= TARGET_THREADS)}"
        )
    finally:
        sampling.set()
        sampler.join()
        os.environ["PATH"] = old_path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300, help="jobs on the real SLURM")
    parser.add_argument("--scale-jobs", type=int, default=10_000, help="active jobs, fake SLURM")
    parser.add_argument("--held", type=int, default=1000, help="held jobs on the real SLURM")
    parser.add_argument("--skip-real", action="store_true", help="only the fake-scheduler part")
    parser.add_argument("--skip-scale", action="store_true", help="only the real-SLURM part")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="bench-grid-") as tmp:
        work = Path(tmp)
        if not args.skip_real:
            bench_real(args.jobs, work / "real")
            bench_held(args.held, work / "held")
        if not args.skip_scale:
            bench_scale(args.scale_jobs, work / "scale")
    return 0


if __name__ == "__main__":
    sys.exit(main())
