"""Benchmark of the run journal: its writer's own cost, a 10,000-job journal read and resumed.

(The journal's cost per local job, on against off and against a plain thread pool, with
its records, bytes and writes per job, is measured by bench_core.py.)

- the writer alone: the records of a local job's life (registration, start, pid, end),
  encoded and written as the runner does, against writing the same bytes with bare
  `os.write` calls, in one thread: what the journal adds that no thread or process
  start hides;
- `runner status DIR` on a 10,000-job journal (a new process, as from another shell);
- a resume's check of 10,000 finished jobs (JobManager(resume=True), each job.run()
  restored, none run);
- the journal's bytes per job.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from runner_core import JobManager, JobRunner, JobStatus, SingleJob, read_journal
from runner_core._journal import open_journal

N_JOBS = 10_000
ROUNDS = 3
WRITER_ROUNDS = 7
TARGET_STATUS = 1.0
TARGET_RESUME = 2.0


def mark(ok: bool) -> str:
    return "PASS" if ok else "OVER"


class Quick(JobRunner):
    """Runs nothing: the bench times the journal, not process starts."""

    def call(self, runscript, workdir, out, err, runflags):  # type: ignore[no-untyped-def]
        return 0


def make_journal(root: Path) -> float:
    """Run N_JOBS jobs (no process each) with the journal on; return the seconds."""
    start = time.perf_counter()
    runner = Quick(parallel=True, maxjobs=4)
    with JobManager(root) as manager:
        for i in range(N_JOBS):
            SingleJob(f"job{i % 100}", f"./simulate input{i}.dat\n").run(
                jobrunner=runner, jobmanager=manager, cores=4
            )
        runner.wait()
    return time.perf_counter() - start


def resume_check(root: Path) -> float:
    start = time.perf_counter()
    runner = Quick(parallel=True, maxjobs=4)
    with JobManager(root, resume=True) as manager:
        results = [
            SingleJob(f"job{i % 100}", f"./simulate input{i}.dat\n").run(
                jobrunner=runner, jobmanager=manager, cores=4
            )
            for i in range(N_JOBS)
        ]
    elapsed = time.perf_counter() - start
    restored = sum(r.restored for r in results)
    assert restored == N_JOBS, restored
    return elapsed


def writer_cost(root: Path) -> None:
    """Time the journal's records of N_JOBS local job lives against bare writes of their bytes."""
    journal = open_journal(str(root))
    runner = journal.add_runner({"kind": "local", "parallel": True, "maxjobs": 2})
    results = SingleJob("job", "exit 0").results
    results.exit_code = 0
    journal.tick()  # writes the queued runner record: the file then grows by job lives only
    fd = journal._fd
    assert fd is not None
    start_of_file = os.fstat(fd).st_size

    def lives() -> float:
        start = time.perf_counter()
        for i in range(N_JOBS):
            entry = journal.new_job(
                "job", f"job.{i:05d}", "2d10c5319fc3e3a5689bd83acfffcf4c", runner, None
            )
            results.started_at = time.time()
            entry.flush(entry.moved(results, JobStatus.RUNNING))  # with the registration
            entry.pid(4242, 123456)  # the start time as the clock gives it: no /proc
            results.finished_at = time.time()
            entry.flush(entry.moved(results, JobStatus.SUCCESSFUL))
        return time.perf_counter() - start

    lives()  # warm-up; also the bytes the bare writes write
    data = os.pread(fd, 1 << 24, start_of_file)
    lines = data.splitlines(keepends=True)
    per_job = len(lines) // N_JOBS
    # the three writes of a job's life: its registration with its start, its pid, its end
    chunks = []
    for i in range(0, len(lines), per_job):
        job, start, pid, end = lines[i : i + per_job]
        chunks += [job + start, pid, end]
    assert all(c.startswith((b'{"k":"job"', b'{"k":"pid"', b'{"k":"end"')) for c in chunks)

    def bare() -> float:
        start = time.perf_counter()
        for chunk in chunks:
            os.write(fd, chunk)
        return time.perf_counter() - start

    ours, plain = [], []
    for _ in range(WRITER_ROUNDS):
        os.ftruncate(fd, start_of_file)
        ours.append(lives())
        os.ftruncate(fd, start_of_file)
        plain.append(bare())
    journal.close()
    us = statistics.median(ours) / N_JOBS * 1e6
    bare_us = statistics.median(plain) / N_JOBS * 1e6
    print(
        f"  a local job's records ({per_job} records, {len(chunks) / N_JOBS:.0f} writes, "
        f"{len(data) / N_JOBS:.0f} bytes): {us:.1f} us per job, of which bare os.write of "
        f"the same bytes {bare_us:.1f} us (median of {WRITER_ROUNDS}, one thread)"
    )


def status_seconds(root: Path) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "runner_core", "status", str(root), "--json"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench_journal_") as name:
        tmp = Path(name)
        print(f"== the writer alone, {N_JOBS} job lives, in {tempfile.gettempdir()} ==")
        writer_cost(tmp / "writer")
        print(f"== a {N_JOBS}-job journal ==")
        root = tmp / "big"
        made = make_journal(root)
        size = os.path.getsize(root / ".runner" / "journal.jsonl")
        state = read_journal(root)
        assert len(state.jobs) == N_JOBS
        assert not state.dropped
        print(
            f"  written in {made:.2f} s ({made / N_JOBS * 1e6:.0f} us/job, no process started); "
            f"{size / N_JOBS:.0f} bytes per job ({size / 2**20:.2f} MiB)"
        )
        start = time.perf_counter()
        read_journal(root)
        print(f"  read_journal in-process: {time.perf_counter() - start:.3f} s")
        seconds = status_seconds(root)
        print(
            f"  runner status --json (new process, best of {ROUNDS}): {seconds:.3f} s "
            f"(target < {TARGET_STATUS:g} s) {mark(seconds < TARGET_STATUS)}"
        )
        seconds = resume_check(root)
        print(
            f"  resume check of {N_JOBS} finished jobs (all restored): {seconds:.3f} s "
            f"(target < {TARGET_RESUME:g} s) {mark(seconds < TARGET_RESUME)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
