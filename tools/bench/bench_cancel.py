"""Benchmark of `job.cancel()`: how long the call takes, and how long the job then takes to end.

The target (issue 7) is that `job.cancel()` returns at once on every runner: under 1 ms per
call, even when the scheduler's cancel command takes seconds. Three cases, each many times:

a. a job of `JobRunner(parallel=True, maxjobs=1)` waiting in the queue behind a running one;
b. a local job in `call` running `sleep 30` (its process group is killed in the background);
c. a `GridRunner` job in the scheduler's queue whose cancel command takes 3 s, against a fake
   scheduler put first on PATH (skipped with a note when runner_grid is not installed).

Each case prints the median and the max of the call in microseconds and the ratio to a
baseline measured in the same run: `threading.Event().set()` plus starting one daemon thread,
the least a cancel that hands its work to another thread can cost. It also prints how long the
job then took to end CANCELLED, which shows where the slow work went: in case c about the
cancel command's 3 s, none of it in the caller.

Every call, baseline and cases alike, comes PACE seconds after the previous one has ended: a
thread start right after another costs a third of one on a process that has been idle for a
few milliseconds (the CPUs leave their idle states), so a back-to-back baseline would flatter
itself against cases that must wait for their jobs. The back-to-back figure is printed too.

Usage: python tools/bench/bench_cancel.py
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from runner_core import JobManager, JobRunner, JobStatus, SingleJob
from runner_settings import Settings

try:
    from runner_grid import GridRunner
    from runner_grid.schemes import slurm
except ImportError:  # runner-core installed alone: case c is skipped
    GridRunner = None  # type: ignore[assignment,misc]
    slurm = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from runner_core import Results

TARGET_US = 1000.0
PACE = 0.02  # seconds of quiet before every timed call
BASELINE_REPS, BASELINE_HOT_REPS = 300, 2000
QUEUED_ROUNDS, QUEUED_JOBS = 2, 100
RUNNING_ROUNDS, RUNNING_JOBS = 5, 10
GRID_JOBS = 60
GRID_CANCEL_SECONDS = 3
GRID_SLEEPSTEP = 0.05
TIMEOUT = 30.0


def mark(ok: bool) -> str:
    return "PASS" if ok else "OVER"


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll a condition only the file system or the runner's public state reveals."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {TIMEOUT:g} s waiting for {what}")
        time.sleep(0.002)


class Probe:
    """One timed `job.cancel()`: when it was called, when it returned, when the job ended."""

    __slots__ = ("called", "ended", "job", "returned")

    def __init__(self, job: SingleJob) -> None:
        self.job = job
        self.called = self.returned = self.ended = 0
        job.results.add_done_callback(self._end)

    def _end(self, _results: Results) -> None:
        self.ended = time.perf_counter_ns()

    def cancel(self) -> Probe:
        self.called = time.perf_counter_ns()
        self.job.cancel()
        self.returned = time.perf_counter_ns()
        return self

    @property
    def call_us(self) -> float:
        return (self.returned - self.called) / 1e3

    @property
    def end_s(self) -> float:
        return (self.ended - self.called) / 1e9


def _nothing() -> None:
    pass


def least_cancel(reps: int, pace: float) -> list[float]:
    """Time `threading.Event().set()` + starting one daemon thread `reps` times, in us."""
    samples = []
    for _ in range(reps):
        if pace:
            time.sleep(pace)
        start = time.perf_counter_ns()
        threading.Event().set()
        thread = threading.Thread(target=_nothing, daemon=True)
        thread.start()
        samples.append((time.perf_counter_ns() - start) / 1e3)
        thread.join()
    return samples


def baseline() -> float:
    """Print the baseline, paced like the cases and back to back; return the paced median."""
    print("== baseline: threading.Event().set() + one daemon thread started")
    paced = least_cancel(BASELINE_REPS, PACE)
    hot = least_cancel(BASELINE_HOT_REPS, 0.0)
    median = statistics.median(paced)
    print(
        f"  {BASELINE_REPS} calls {PACE * 1e3:g} ms apart (used for the ratios): "
        f"median {median:.1f} us, max {max(paced):.1f} us"
    )
    print(
        f"  {BASELINE_HOT_REPS} calls back to back: median {statistics.median(hot):.1f} us, "
        f"max {max(hot):.1f} us"
    )
    return median


def report(probes: list[Probe], base_us: float, end_unit: str = "ms") -> None:
    calls = [p.call_us for p in probes]
    median, worst = statistics.median(calls), max(calls)
    print(
        f"  job.cancel(): {len(calls)} calls, median {median:.1f} us, max {worst:.1f} us; "
        f"ratio to the baseline {median / base_us:.2f}x (median), {worst / base_us:.2f}x (max)"
    )
    print(
        f"  target < {TARGET_US:.0f} us per cancel: median {mark(median < TARGET_US)}, "
        f"max {mark(worst < TARGET_US)}"
    )
    slow = sorted(calls, reverse=True)[:3]
    print(f"  slowest calls: {', '.join(f'{us:.0f} us' for us in slow)}")
    ends = [p.end_s for p in probes if p.ended]
    scale = 1e3 if end_unit == "ms" else 1.0
    if ends:
        print(
            f"  then ended CANCELLED after a median of {statistics.median(ends) * scale:.1f} "
            f"{end_unit} (max {max(ends) * scale:.1f} {end_unit}) from the call"
        )
    wrong = [p.job for p in probes if p.job.results.status is not JobStatus.CANCELLED]
    if wrong:
        print(f"  WARNING: {len(wrong)} jobs did not end CANCELLED, e.g. {wrong[0].results!r}")


def case_queued(work: Path, base_us: float) -> None:
    print(
        f"== a. local job waiting in the queue: JobRunner(parallel=True, maxjobs=1), "
        f"{QUEUED_ROUNDS} rounds of {QUEUED_JOBS} jobs queued behind one running `sleep 30`"
    )
    runner = JobRunner(parallel=True, maxjobs=1)
    manager = JobManager(work / "queued")
    probes: list[Probe] = []
    try:
        for r in range(QUEUED_ROUNDS):
            blocker = SingleJob(f"blocker{r}", "exec sleep 30\n")
            blocker.run(jobrunner=runner, jobmanager=manager)
            running = blocker.results
            wait_for(lambda r=running: r.status is JobStatus.RUNNING, "the running job")
            jobs = [SingleJob(f"q{r}.{i}", "exit 0\n") for i in range(QUEUED_JOBS)]
            for job in jobs:
                job.run(jobrunner=runner, jobmanager=manager)
            queued = sum(job.results.status is JobStatus.QUEUED for job in jobs)
            if queued != QUEUED_JOBS:
                print(f"  WARNING: only {queued} of {QUEUED_JOBS} jobs were still queued")
            for job in jobs:
                time.sleep(PACE)
                probes.append(Probe(job).cancel())
                job.results.wait(TIMEOUT)
            blocker.cancel()
            blocker.results.wait(TIMEOUT)
        runner.wait(TIMEOUT)
    finally:
        runner.shutdown(cancel=True, timeout=TIMEOUT)
    report(probes, base_us)


def case_running(work: Path, base_us: float) -> None:
    print(
        f"== b. local job in call running `sleep 30`: JobRunner(parallel=True), "
        f"{RUNNING_ROUNDS} rounds of {RUNNING_JOBS} jobs"
    )
    runner = JobRunner(parallel=True, maxjobs=RUNNING_JOBS)
    manager = JobManager(work / "running")
    probes: list[Probe] = []
    try:
        for r in range(RUNNING_ROUNDS):
            jobs = [
                SingleJob(f"r{r}.{i}", ": > started\nexec sleep 30\n") for i in range(RUNNING_JOBS)
            ]
            for job in jobs:
                job.run(jobrunner=runner, jobmanager=manager)

            def started(jobs: list[SingleJob] = jobs) -> bool:
                return all(j.path is not None and (j.path / "started").exists() for j in jobs)

            wait_for(started, "the sleep processes to start")
            # the script runs before the runner has recorded its process: let it catch up, so
            # the cancel finds a process to kill instead of a flag for a process not yet seen
            time.sleep(0.05)
            for job in jobs:
                time.sleep(PACE)
                probes.append(Probe(job).cancel())
                job.results.wait(TIMEOUT)
        runner.wait(TIMEOUT)
    finally:
        runner.shutdown(cancel=True, timeout=TIMEOUT)
    report(probes, base_us)


# Fake scheduler for case c. Jobs never run: a queued job is a file named after its id in the
# state folder, and only the cancel command removes it. The id is the digits of the job
# folder's name (c<digits>), which the runner passes after -D.
FAKE_SUBMIT = """#!/bin/sh
# fake submit: queue the job as {state}/<id>
dir=""
while [ $# -gt 1 ]; do
    [ "$1" = -D ] && dir="$2"
    shift
done
id="${{dir##*/c}}"
: > "{state}/$id"
echo "Submitted batch job $id"
"""

FAKE_CHECK = """#!/bin/sh
# fake check: every queued job as "<id> PD", the pinned squeue format
cd "{state}" || exit 1
for id in *; do
    [ -e "$id" ] && echo "$id PD"
done
exit 0
"""

FAKE_CANCEL = """#!/bin/sh
# fake cancel: a slow scheduler: {seconds} s, then the jobs leave the queue
sleep {seconds}
for id in "$@"; do
    rm -f "{state}/$id"
done
"""


def fake_scheme(work: Path) -> tuple[Settings, Path]:
    """Write the fake scheduler's commands; return the scheme and the folder to put on PATH."""
    state = work / "sched"
    state.mkdir(parents=True)
    fakebin = work / "fakebin"
    fakebin.mkdir()
    for name, body in (
        ("bench-submit", FAKE_SUBMIT),
        ("bench-check", FAKE_CHECK),
        ("bench-cancel", FAKE_CANCEL),
    ):
        path = fakebin / name
        path.write_text(body.format(state=state, seconds=GRID_CANCEL_SECONDS))
        path.chmod(0o755)
    scheme = Settings(
        {
            "workdir": "-D",
            "output": "-o",
            "error": "-e",
            "commands": {
                "submit": "bench-submit",
                "getid": slurm.getid,
                "check": ["bench-check"],
                "running": slurm.running,
                "cancel": "bench-cancel",
            },
            "exitcode_wait": 0,
        }
    )
    return scheme, fakebin


def case_grid(work: Path, base_us: float) -> None:
    print(
        f"== c. GridRunner job in the scheduler's queue, cancel command taking "
        f"{GRID_CANCEL_SECONDS} s (fake scheduler), {GRID_JOBS} jobs, "
        f"sleepstep {GRID_SLEEPSTEP:g} s"
    )
    if GridRunner is None:
        print("  SKIPPED: runner_grid is not importable (install runner-grid for this case)")
        return
    scheme, fakebin = fake_scheme(work / "grid")
    old_path = os.environ["PATH"]
    os.environ["PATH"] = f"{fakebin}{os.pathsep}{old_path}"
    runner: Optional[JobRunner] = None
    probes: list[Probe] = []
    try:
        grid = GridRunner(grid=scheme, sleepstep=GRID_SLEEPSTEP)
        runner = grid
        manager = JobManager(work / "grid" / "jobs")
        jobs = [SingleJob(f"c{1000 + i}", "exit 0\n") for i in range(GRID_JOBS)]
        for job in jobs:
            job.run(jobrunner=runner, jobmanager=manager)
        wait_for(lambda: len(grid.queued) == GRID_JOBS, "every job to be in the fake queue")
        for job in jobs:  # not waiting for each to end: that takes the cancel command's 3 s
            time.sleep(PACE)
            probes.append(Probe(job).cancel())
        start = time.perf_counter()
        runner.wait(TIMEOUT)
        after = time.perf_counter() - start
        print(f"  runner.wait() returned {after:.2f} s after the last cancel")
    finally:
        if runner is not None:
            runner.shutdown(cancel=True, timeout=TIMEOUT)
        os.environ["PATH"] = old_path
    report(probes, base_us, end_unit="s")
    ends = [p.end_s for p in probes if p.ended]
    if ends:
        near = statistics.median(ends) - GRID_CANCEL_SECONDS
        print(
            f"  (the cancel command takes {GRID_CANCEL_SECONDS} s: the job ended "
            f"{near:+.2f} s from that, so the command ran outside the caller)"
        )


def children() -> list[int]:
    """Pids of this process's children still alive (Linux /proc; empty elsewhere)."""
    me = str(os.getpid())
    found = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == me and fields[0] != "Z":
            found.append(int(entry.parent.name))
    return found


def cleanup() -> None:
    """Wait for our own child processes to go; kill, by pid, any still there after 5 s."""
    deadline = time.monotonic() + 5
    left = children()
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = children()
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    print(f"== processes left at the end: {len(left)}" + (" (killed)" if left else ""))


def main() -> int:
    logging.basicConfig(level=logging.ERROR)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-cancel-") as tmp:
        work = Path(tmp)
        try:
            base_us = baseline()
            case_queued(work, base_us)
            case_running(work, base_us)
            case_grid(work, base_us)
        finally:
            cleanup()
    print(f"== bench_cancel took {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
