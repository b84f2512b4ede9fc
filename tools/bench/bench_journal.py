"""Benchmark of the run journal: a 10,000-job journal read by `runner status`, checked by a resume.

(The journal's cost per local job, on against off and against a plain thread pool, with
its records, bytes and writes per job, is measured by bench_core.py.)

- `runner status DIR` on a 10,000-job journal (a new process, as from another shell);
- a resume's check of 10,000 finished jobs (JobManager(resume=True), each job.run()
  restored, none run);
- the journal's bytes per job.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from runner_core import JobManager, JobRunner, SingleJob, read_journal

N_JOBS = 10_000
ROUNDS = 3
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
