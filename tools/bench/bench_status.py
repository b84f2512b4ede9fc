"""Benchmark of a 100,000-job run: `runner status`, its `--json`, the resume check, memory per job.

- A journal of N_JOBS finished jobs in the current format, written by the journal's own
  writer (`open_journal`, `Journal.new_job`, the job's `_Entry`), as a driver writes it:
  a registration, the moves to SUBMITTED (grid jobs) and RUNNING, the scheduler's tag and
  id (grid) or the process group (local), the end; a tenth of them crashed or failed
  with a reason and an error. Every job's folder exists, so a resume restores them.
- `runner status DIR` in a new process (as from another shell), stdout to /dev/null: one
  with no snapshot (as after a driver killed by SIGKILL), which reads every record and
  leaves the reader's snapshot in `.runner/`; the snapshot a driver's exit leaves
  (`leave_snapshot`), and the first status after it; then, best of ROUNDS, those that
  start from the snapshot (the target), and `--json`;
  then again once N_LATE more jobs were appended (a live run: the snapshot and what
  follows it are read);
- the resume check: `JobManager(DIR, resume=True)` (the journal read back) and, for every
  job, the decision a `job.run()` asks of it (`Journal.take_previous` and the keep rule),
  with the snapshot and without it; and, beside it, the whole resume of N_JOBS jobs
  through `job.run()`, each restored;
- the driver's memory per job in flight: tracemalloc around making and running
  N_FLIGHT jobs on `JobRunner(parallel=True, maxjobs=1)` whose first job blocks, so every
  other job waits in the runner's queue; what dominates is listed by file and line.

Targets (issue 17): status < 1 s, --json < 2 s, resume check < 2 s, <= 2 KiB per job.
The status targets are for the reads that find the snapshot: every one after a driver that
ended (its exit leaves one), and every one after the first when a driver was killed.
"""

from __future__ import annotations

import gc
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any, Optional

from runner_core import JobManager, JobRunner, JobStatus, SingleJob, read_journal
from runner_core._journal import leave_snapshot, open_journal
from runner_core._snapshot import NAME as SNAPSHOT_NAME

N_JOBS = int(os.environ.get("BENCH_STATUS_JOBS", "100000"))
N_FLIGHT = 10_000
N_LATE = 2_000
ROUNDS = 3
TARGET_STATUS = 1.0
TARGET_JSON = 2.0
TARGET_RESUME = 2.0
TARGET_BYTES = 2048


def mark(ok: bool) -> str:
    return "PASS" if ok else "OVER"


class _Ended:
    """What `_Entry.moved` reads of a job's Results (the writer takes it as it is)."""

    def __init__(self, **fields: Any) -> None:
        self.exit_code: Optional[int] = None
        self.reason: Optional[str] = None
        self.error: Optional[str] = None
        self.submitted_at: Optional[float] = None
        self.started_at: Optional[float] = None
        self.finished_at: Optional[float] = None
        self.__dict__.update(fields)


def _job(i: int) -> SingleJob:
    return SingleJob(f"opt{i % 1000}", f"./simulate input{i}.xyz\n")


def _outcome(i: int) -> tuple[JobStatus, int, Optional[str], Optional[str]]:
    if i % 10 == 3:
        return JobStatus.CRASHED, 3, None, "Error: SCF did not converge\nabort"
    if i % 50 == 7:
        return JobStatus.CRASHED, 137, "out_of_memory", "slurmstepd: oom-kill event"
    if i % 50 == 9:
        return JobStatus.FAILED, 1, "timeout", "DUE TO TIME LIMIT"
    return JobStatus.SUCCESSFUL, 0, None, None


def write_journal(root: Path, count: int) -> None:
    """Write the journal of `count` finished jobs into `root` with the journal's writer."""
    journal = open_journal(str(root))
    local = journal.add_runner({"kind": "local", "parallel": True, "maxjobs": 8})
    grid = journal.add_runner({"kind": "grid", "scheme": "slurm", "sleepstep": 5})
    seen: dict[str, int] = {}
    pid = 40_000
    for i in range(count):
        job = _job(i)
        n = seen[job.name] = seen.get(job.name, 0) + 1
        folder = job.name if n == 1 else f"{job.name}.{n:03d}"
        os.mkdir(root / folder)
        on_grid = i % 3 == 0
        flags = {"cores": 4, "memory": "8G"} if on_grid else None
        if flags:
            job.settings.run.update(flags)
        entry = journal.new_job(
            job.name, folder, job.input_hash(), grid if on_grid else local, flags
        )
        t = time.time()  # submitted at once, after its registration
        status, code, reason, error = _outcome(i)
        if on_grid:
            entry.tag(f"runner-{os.getpid()}-{i}")
            submitted = _Ended(submitted_at=t)
            entry.flush(entry.moved(submitted, JobStatus.SUBMITTED))  # type: ignore[arg-type]
            entry.jobid(str(1_000_000 + i))
            t0 = t + 30.0
            entry.flush(entry.moved(_Ended(started_at=t0), JobStatus.RUNNING))  # type: ignore[arg-type]
        else:
            submitted, t0 = _Ended(), t + 0.01
            entry.flush(entry.moved(_Ended(started_at=t0), JobStatus.RUNNING))  # type: ignore[arg-type]
            journal.write({"k": "pid", "j": entry.number, "pid": pid + i, "ps": 1_000_000 + i})
        end = _Ended(
            exit_code=code,
            reason=reason,
            error=error,
            submitted_at=submitted.submitted_at,
            started_at=t0,
            finished_at=t0 + 120.0 + i % 17,
        )
        entry.flush(entry.moved(end, status))  # type: ignore[arg-type]
    journal.close()


def append_jobs(root: Path, count: int) -> None:
    """A later session appends `count` finished local jobs (`late0`...), as a live run does."""
    journal = open_journal(str(root))
    local = journal.add_runner({"kind": "local", "parallel": True, "maxjobs": 8})
    for i in range(count):
        job = SingleJob(f"late{i}", f"./simulate late{i}.xyz\n")
        os.mkdir(root / job.name)
        entry = journal.new_job(job.name, job.name, job.input_hash(), local, None)
        t0 = time.time()
        entry.flush(entry.moved(_Ended(started_at=t0), JobStatus.RUNNING))  # type: ignore[arg-type]
        end = _Ended(exit_code=0, started_at=t0, finished_at=t0 + 60.0)
        entry.flush(entry.moved(end, JobStatus.SUCCESSFUL))  # type: ignore[arg-type]
    journal.close()


def status_seconds(root: Path, *extra: str, rounds: int = ROUNDS) -> tuple[float, float]:
    """`runner status` run `rounds` times: the best wall time, and the least CPU time.

    The CPU time (user and system, of the process) is for a machine busy with other work,
    where the wall time says more about the neighbours than about the code.
    """
    best = least = float("inf")
    for _ in range(rounds):
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "runner_core", "status", str(root), *extra],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        best = min(best, time.perf_counter() - start)
        now = resource.getrusage(resource.RUSAGE_CHILDREN)
        least = min(least, now.ru_utime - used.ru_utime + now.ru_stime - used.ru_stime)
    return best, least


def resume_check(root: Path, jobs: list[SingleJob]) -> float:
    """The journal read back by a resuming JobManager and every job's decision from it."""
    start = time.perf_counter()
    manager = JobManager(root, resume=True)
    journal = manager._open_journal()
    kept = 0
    for job in jobs:
        record = journal.take_previous(job.name, job._input_hash)
        kept += record is not None and manager._keeps(record)
    elapsed = time.perf_counter() - start
    manager.close()
    assert kept == len(jobs) - sum(
        _outcome(i)[0] is not JobStatus.SUCCESSFUL for i in range(len(jobs))
    )
    return elapsed


class _Quick(JobRunner):
    """Runs nothing: a resume of finished jobs never calls it."""

    def call(self, runscript, workdir, out, err, runflags):  # type: ignore[no-untyped-def]
        return 0


def whole_resume(root: Path, count: int) -> float:
    """`job.run()` of every job on a resuming JobManager: successful ones come back restored."""
    jobs = [_job(i) for i in range(count)]
    for i, job in enumerate(jobs):
        if i % 3 == 0:
            job.settings.run.update({"cores": 4, "memory": "8G"})
    ok = [j for i, j in enumerate(jobs) if _outcome(i)[0] is JobStatus.SUCCESSFUL]
    runner = _Quick(parallel=True, maxjobs=4)
    start = time.perf_counter()
    with JobManager(root, resume="unfinished") as manager:
        results = [job.run(jobrunner=runner, jobmanager=manager) for job in ok]
    elapsed = time.perf_counter() - start
    assert all(r.restored for r in results)
    return elapsed


def memory_per_job(count: int) -> tuple[float, list[str]]:
    """Bytes the driver holds per job waiting in the runner, and the lines that hold most."""
    gate = threading.Event()

    class Blocking(JobRunner):
        def call(self, runscript, workdir, out, err, runflags):  # type: ignore[no-untyped-def]
            gate.wait()
            return 0

    with tempfile.TemporaryDirectory(prefix="bench_status_mem_") as name:
        runner = Blocking(parallel=True, maxjobs=1, maxthreads=count + 16)
        manager = JobManager(Path(name) / "w")
        # warm up: the journal, the runner's threads, first-use caches
        SingleJob("warm", "true\n").run(jobrunner=runner, jobmanager=manager)
        gc.collect()
        tracemalloc.start(3)
        before = tracemalloc.take_snapshot()
        base = tracemalloc.get_traced_memory()[0]
        results = [
            SingleJob(f"wait{i}", f"./simulate input{i}.xyz\n").run(
                jobrunner=runner, jobmanager=manager
            )
            for i in range(count)
        ]
        time.sleep(1.5)  # the journal thread writes the queued registrations
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - base
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        waiting = sum(r.status is not JobStatus.RUNNING for r in results)
        gate.set()
        runner.wait()
        manager.close()
    top = after.compare_to(before, "lineno")[:8]
    lines = [
        f"{stat.size_diff / count:7.0f} B/job  {stat.traceback[0].filename.rsplit('/', 2)[-1]}"
        f":{stat.traceback[0].lineno}"
        for stat in top
    ]
    assert waiting >= count - 1, waiting
    return held / count, lines


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench_status_") as name:
        root = Path(name) / "big"
        print(f"== a {N_JOBS}-job journal (finished; a third on a grid) ==")
        start = time.perf_counter()
        write_journal(root, N_JOBS)
        size = os.path.getsize(root / ".runner" / "journal.jsonl")
        print(
            f"  written in {time.perf_counter() - start:.1f} s: {size / 2**20:.1f} MiB, "
            f"{size / N_JOBS:.0f} bytes per job"
        )
        snapshot = root / ".runner" / SNAPSHOT_NAME
        start = time.perf_counter()
        state = read_journal(root, snapshot=False)
        print(f"  read_journal in-process, every record: {time.perf_counter() - start:.3f} s")
        assert len(state.jobs) == N_JOBS
        assert not state.dropped
        del state
        seconds, cpu = status_seconds(root, rounds=1)
        assert snapshot.exists()
        print(
            f"  runner status with no snapshot (a driver killed by SIGKILL leaves none: reads "
            f"every record, writes the snapshot, {snapshot.stat().st_size / 2**20:.1f} MiB): "
            f"{seconds:.3f} s (CPU {cpu:.3f} s)"
        )
        snapshot.unlink()
        start = time.perf_counter()
        leave_snapshot(str(root))  # what a driver's exit does (`close_all`)
        assert snapshot.exists()
        print(f"  the driver's exit leaves the snapshot: {time.perf_counter() - start:.3f} s")
        seconds, cpu = status_seconds(root, rounds=1)
        print(
            f"  runner status, the first after the run: {seconds:.3f} s (CPU {cpu:.3f} s) "
            f"(target < {TARGET_STATUS:g} s) {mark(seconds < TARGET_STATUS)}"
        )
        start = time.perf_counter()
        state = read_journal(root)
        print(f"  read_journal in-process, from the snapshot: {time.perf_counter() - start:.3f} s")
        assert len(state.jobs) == N_JOBS
        del state
        seconds, cpu = status_seconds(root)
        print(
            f"  runner status (new process, best of {ROUNDS}): {seconds:.3f} s (CPU {cpu:.3f} s) "
            f"(target < {TARGET_STATUS:g} s) {mark(seconds < TARGET_STATUS)}"
        )
        seconds, cpu = status_seconds(root, "--json")
        print(
            f"  runner status --json (new process, best of {ROUNDS}): {seconds:.3f} s "
            f"(CPU {cpu:.3f} s) (target < {TARGET_JSON:g} s) {mark(seconds < TARGET_JSON)}"
        )
        append_jobs(root, N_LATE)
        seconds, cpu = status_seconds(root, rounds=1)
        print(
            f"  runner status once {N_LATE} more jobs were appended (the snapshot and what "
            f"follows it): {seconds:.3f} s (CPU {cpu:.3f} s) (target < {TARGET_STATUS:g} s) "
            f"{mark(seconds < TARGET_STATUS)}"
        )
        jobs = [_job(i) for i in range(N_JOBS)]
        for i, job in enumerate(jobs):
            if i % 3 == 0:
                job.settings.run.update({"cores": 4, "memory": "8G"})
            job._input_hash = job.input_hash()
        for how in ("with the snapshot", "without it"):
            if how == "without it":
                snapshot.unlink()
            seconds = resume_check(root, jobs)
            print(
                f"  resume check (JobManager(resume=True) and each job's earlier try), {how}: "
                f"{seconds:.3f} s (target < {TARGET_RESUME:g} s) {mark(seconds < TARGET_RESUME)}"
            )
        del jobs
        seconds = whole_resume(root, N_JOBS)
        print(f"  (whole resume: every successful job's job.run(), restored: {seconds:.2f} s)")
    print(f"== memory per job in flight: {N_FLIGHT} jobs waiting for a slot (maxjobs=1) ==")
    per_job, lines = memory_per_job(N_FLIGHT)
    print(
        f"  {per_job:.0f} bytes per job (target <= {TARGET_BYTES} B) "
        f"{mark(per_job <= TARGET_BYTES)}; most of it:"
    )
    for line in lines:
        print("   ", line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
