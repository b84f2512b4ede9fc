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
10,000-line check output, and the Python memory per active job (tracemalloc). Before it, against
the same fake SLURM: the threads a burst of 1,000 `job.run()` calls starts (every
`threading.Thread.start` counted until all are submitted; target at most 16), and the `job.run()`
loop over 10,000 made jobs (target at most 0.9 s), also as a ratio to the same loop over a plain
`JobRunner(parallel=True)` whose `call` does nothing.

Usage: python tools/bench/bench_grid.py [--jobs 300] [--scale-jobs 10000] [--burst 1000]
       [--loop-jobs 10000] [--skip-real] [--skip-scale]
"""

from __future__ import annotations

import argparse
import collections
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
from typing import TYPE_CHECKING, Any, Callable

from runner_core import JobManager, JobRunner, SingleJob
from runner_grid import GridRunner

if TYPE_CHECKING:
    from runner_core import Results
    from runner_settings import Settings

TARGET_RATIO = 1.1
REAL_ROUNDS = 3
SLEEPSTEP = 1.0
SCALE_SLEEPSTEP = 0.5
TARGET_THREADS = 16  # driver threads with 10,000 jobs in flight (issue 8)
TARGET_KIB_PER_JOB = 10
TARGET_ROUND_MS = 50.0
TARGET_THREAD_STARTS = 16  # threads started by a burst of 1,000 submissions (issue 15)
TARGET_LOOP_SECONDS = 0.9  # the job.run() loop over 10,000 fake-SLURM jobs (issue 15)
PACED_BURST = 10  # jobs per burst when the submissions come in bursts
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


def find_poller(runner: GridRunner) -> Any:
    """The runner's QueuePoller: an attribute of the runner, or of one of its parts."""
    seen: list[Any] = [runner]
    for depth in range(3):
        found = []
        for obj in seen:
            for value in getattr(obj, "__dict__", {}).values():
                if type(value).__name__ == "QueuePoller":
                    return value
                if depth < 2 and type(value).__module__.startswith("runner_grid"):
                    found.append(value)
        seen = found
    return None


class RoundCounter:
    """Counts the poller's rounds by wrapping the check it calls once per round."""

    def __init__(self, runner: GridRunner) -> None:
        self.rounds = 0
        self.seconds = 0.0
        self.first: float | None = None
        self.last: float | None = None
        poller = find_poller(runner)
        inner: Callable[..., Any] | None = getattr(poller, "_check", None)
        if poller is None or inner is None:
            print("  (cannot count poll rounds: no QueuePoller with a _check found in GridRunner)")
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

        poller._check = counted


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


FIRST_ID = 1_000_000  # job j<id> gets the fake id <id> (from its folder's name)


def fake_jobs(n: int) -> list[SingleJob]:
    """`n` trivial jobs named j<FIRST_ID + i>, not run yet."""
    return [SingleJob(name=f"j{FIRST_ID + i}", runscript="exit 0\n") for i in range(n)]


class FakeSlurm:
    """A fake instant SLURM, first on PATH while the `with` block runs.

    `sbatch` returns at once; `squeue` lists jobs FIRST_ID .. FIRST_ID + n - 1 as RUNNING
    until `release()`, then none (they end SUCCESSFUL: sbatch wrote their exit code);
    `scancel` does nothing, so a cancel never reaches the real SLURM of this machine.
    """

    def __init__(self, work: Path, n: int) -> None:
        try:
            from runner_grid.schemes.slurm import SQUEUE_FORMAT  # noqa: PLC0415 - optional: older trees lack it
        except ImportError:
            SQUEUE_FORMAT = "%i|%T"
        self.n = n
        fakebin = work / "fakebin"
        fakebin.mkdir(parents=True)
        listing = work / "listing.txt"
        self.release_file = work / "release"
        self.text = "".join(listing_line(FIRST_ID + i, SQUEUE_FORMAT) + "\n" for i in range(n))
        listing.write_text(self.text)
        for name, body in (
            ("sbatch", FAKE_SBATCH),
            ("squeue", FAKE_SQUEUE.format(release=self.release_file, listing=listing)),
            ("scancel", "#!/bin/sh\nexit 0\n"),
        ):
            path = fakebin / name
            path.write_text(body)
            path.chmod(path.stat().st_mode | stat.S_IXUSR)
        self.fakebin = fakebin
        self.old_path = os.environ["PATH"]

    def jobs(self) -> list[SingleJob]:
        """The n jobs this scheduler lists, not run yet."""
        return fake_jobs(self.n)

    def release(self) -> None:
        """Every job leaves the queue."""
        self.release_file.touch()

    def __enter__(self) -> FakeSlurm:
        os.environ["PATH"] = f"{self.fakebin}{os.pathsep}{self.old_path}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()  # a runner shut down after an error must not wait for ever
        os.environ["PATH"] = self.old_path


def wait_submitted(runner: GridRunner, results: list[Results]) -> None:
    """Wait until every job of `results` is in the (fake) queue; RuntimeError if one ended."""
    while len(runner.queued) < len(results):
        time.sleep(0.05)
        if any(r.done for r in results[:50]):
            bad = next(r for r in results if r.done)
            raise RuntimeError(f"a job ended early: {bad.status} {bad.error}")


def bench_scale(n: int, work: Path) -> None:
    print(f"== scale: {n} active jobs, fake instant SLURM, sleepstep {SCALE_SLEEPSTEP:g} s")
    peak_threads = 0
    sampling = threading.Event()

    def sample() -> None:
        nonlocal peak_threads
        while not sampling.is_set():
            peak_threads = max(peak_threads, threading.active_count() - 1)  # not the sampler
            sampling.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with FakeSlurm(work, n) as fake:
        try:
            runner = GridRunner(grid="slurm", sleepstep=SCALE_SLEEPSTEP)  # default arguments
            rounds = RoundCounter(runner)
            running = runner.settings["commands"]["running"]

            parse_times = []
            for _ in range(5):
                t = time.perf_counter()
                parsed = running(fake.text)
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
            for job in fake.jobs():
                results.append(job.run(jobrunner=runner, jobmanager=manager))
            loop = time.perf_counter() - start
            print(
                f"  job.run() loop over {n} jobs, jobs made in the loop, under tracemalloc: "
                f"{loop:.2f} s ({loop / n * 1e6:.0f} us per call; the submissions go on in the "
                "runner's submit workers)"
            )
            wait_submitted(runner, results)
            submitted = time.perf_counter() - start
            memory = tracemalloc.get_traced_memory()[0] - base
            tracemalloc.stop()
            per_job = memory / n / 1024
            print(f"  {n} jobs submitted and active after {submitted:.1f} s (under tracemalloc)")
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

            fake.release()
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
            if tracemalloc.is_tracing():
                tracemalloc.stop()
            sampling.set()
            sampler.join()


class StartCounter:
    """Counts `threading.Thread.start` calls (by thread name) while the `with` block runs."""

    def __init__(self) -> None:
        self.names: collections.Counter[str] = collections.Counter()
        self._original = threading.Thread.start

    @property
    def starts(self) -> int:
        """Threads started so far."""
        return sum(self.names.values())

    def __enter__(self) -> StartCounter:
        original = self._original
        names = self.names

        def start(thread: threading.Thread) -> None:
            names[thread.name] += 1
            original(thread)

        threading.Thread.start = start  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        threading.Thread.start = self._original  # type: ignore[method-assign]


def count_thread_starts(work: Path, n: int, burst: int) -> tuple[StartCounter, float]:
    """Thread starts while `n` jobs are run in bursts of `burst` and submitted; and the seconds.

    After each burst the next waits until the runner has submitted every job so far (its
    submit workers are idle then: the pattern of a script that prepares each few jobs
    between its `job.run()` calls).
    """
    with FakeSlurm(work, n) as fake:
        jobs = fake.jobs()
        manager = JobManager(work / "jobs")
        runner = GridRunner(grid="slurm", sleepstep=SCALE_SLEEPSTEP)
        try:
            with StartCounter() as counter:
                start = time.perf_counter()
                results: list[Results] = []
                for first in range(0, n, burst):
                    for job in jobs[first : first + burst]:
                        results.append(job.run(jobrunner=runner, jobmanager=manager))
                    if burst < n:
                        wait_detached(runner)
                wait_submitted(runner, results)
                seconds = time.perf_counter() - start
            fake.release()
            runner.wait()
        finally:
            runner.shutdown(cancel=True)
    return counter, seconds


def wait_detached(runner: GridRunner) -> None:
    """Wait until every job the runner took is submitted (detached from its submit worker)."""
    while True:
        snap = runner.snapshot()
        if snap.tasks == snap.detached:
            return
        time.sleep(0.001)


def bench_thread_starts(n: int, work: Path) -> None:
    """Threads started by `n` submissions to the instant fake SLURM: in one burst, and paced."""
    print(f"== thread starts: {n} job.run() to a fake instant SLURM, GridRunner default arguments")
    paced = f"in bursts of {PACED_BURST}, each after the last was submitted"
    for i, (label, burst) in enumerate((("in one burst", n), (paced, PACED_BURST))):
        counter, seconds = count_thread_starts(work / f"run{i}", n, burst)
        by_name = ", ".join(f"{name} {count}" for name, count in counter.names.most_common())
        print(
            f"  {label}: {counter.starts} threads started in "
            f"{seconds:.1f} s ({by_name}) (target <= {TARGET_THREAD_STARTS}) "
            f"{mark(counter.starts <= TARGET_THREAD_STARTS)}"
        )


class NoWork(JobRunner):
    """A parallel local runner whose call does nothing: what `job.run()` costs by itself."""

    def call(
        self, runscript: str, workdir: str, out: str | None, err: str, runflags: Settings
    ) -> int:
        return 0


def timed_loop(jobs: list[SingleJob], runner: JobRunner, manager: JobManager) -> float:
    """Seconds the loop `for job in jobs: job.run(...)` takes (the jobs are made before)."""
    start = time.perf_counter()
    for job in jobs:
        job.run(jobrunner=runner, jobmanager=manager)
    return time.perf_counter() - start


def bench_run_loop(n: int, work: Path) -> None:
    """The job.run() loop over `n` fake-SLURM jobs, against a plain runner doing no work."""
    print(f"== job.run() loop over {n} jobs: fake instant SLURM against a do-nothing JobRunner")
    plain = NoWork(parallel=True)
    try:
        base = timed_loop(fake_jobs(n), plain, JobManager(work / "plain"))
        plain.wait()
    finally:
        plain.shutdown(cancel=True)
    with FakeSlurm(work / "grid", n) as fake:
        jobs = fake.jobs()
        runner = GridRunner(grid="slurm", sleepstep=SCALE_SLEEPSTEP)
        try:
            loop = timed_loop(jobs, runner, JobManager(work / "grid" / "jobs"))
        finally:
            # Not waiting for 10,000 submissions saves half a minute: the jobs still in
            # the runner's queue end CANCELLED unsubmitted; the others leave the fake
            # queue once released (its scancel does nothing).
            fake.release()
            t = time.perf_counter()
            runner.shutdown(cancel=True)
            shutdown = time.perf_counter() - t
    submitted = sum(job.results.jobid is not None for job in jobs)
    print(f"  plain JobRunner(parallel=True) doing no work: {base:.2f} s")
    print(
        f"  ({submitted} of the GridRunner's jobs were submitted when shutdown(cancel=True) "
        f"took them all out in {shutdown:.1f} s)"
    )
    print(
        f"  GridRunner, fake instant SLURM: {loop:.2f} s ({loop / n * 1e6:.0f} us per call), "
        f"{loop / base:.2f}x the plain loop (target <= {TARGET_LOOP_SECONDS:g} s) "
        f"{mark(loop <= TARGET_LOOP_SECONDS)}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300, help="jobs on the real SLURM")
    parser.add_argument("--scale-jobs", type=int, default=10_000, help="active jobs, fake SLURM")
    parser.add_argument("--held", type=int, default=1000, help="held jobs on the real SLURM")
    parser.add_argument("--skip-real", action="store_true", help="only the fake-scheduler part")
    parser.add_argument("--burst", type=int, default=1000, help="jobs whose thread starts count")
    parser.add_argument("--loop-jobs", type=int, default=10_000, help="jobs of the run() loop")
    parser.add_argument("--skip-scale", action="store_true", help="only the real-SLURM part")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="bench-grid-") as tmp:
        work = Path(tmp)
        if not args.skip_real:
            bench_real(args.jobs, work / "real")
            bench_held(args.held, work / "held")
        if not args.skip_scale:
            bench_thread_starts(args.burst, work / "burst")
            bench_run_loop(args.loop_jobs, work / "loop")
            bench_scale(args.scale_jobs, work / "scale")
    return 0


if __name__ == "__main__":
    sys.exit(main())
