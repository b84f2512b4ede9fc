"""Job arrays on the real SLURM and Grid Engine: `GridRunner.batch()` end to end.

Each job of a batch is a task of one array: its own folder, output, error and exit code; the
throttle from ``maxjobs``; cancelling one job (by the runner, or with scancel/qdel from
outside) ends that job only; splitting at a size; the scheduler's largest array read from it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Callable

import pytest

from integration._schedulers import PATIENCE, SubmittedIds, queue_ids, tool, wait_for
from runner_core import JobManager, JobStatus, SingleJob

if TYPE_CHECKING:
    from pathlib import Path

    from runner_grid import GridRunner

pytestmark = pytest.mark.integration

RunnerFactory = Callable[..., "GridRunner"]
CANCEL = {"slurm": "scancel", "sge": "qdel"}


def _array_of(jobid: str | None) -> str:
    assert jobid is not None
    return jobid.replace(".", "_").split("_")[0]


def test_a_batch_is_one_array_and_each_job_keeps_its_own_files_and_exit_code(
    scheduler: str, make_runner: RunnerFactory, submitted: SubmittedIds, tmp_path: Path
) -> None:
    runner = make_runner()
    manager = JobManager(tmp_path / "jobs")
    jobs = [
        SingleJob(f"task {i}", f"echo out {i}\necho err {i} >&2\nexit {i % 3}\n") for i in range(6)
    ]
    with runner.batch():
        results = [job.run(jobrunner=runner, jobmanager=manager) for job in jobs]
    runner.wait(timeout=PATIENCE)

    assert len(submitted.snapshot()) == 1  # one submit command
    assert len({_array_of(r.jobid) for r in results}) == 1
    assert len({r.jobid for r in results}) == 6
    for i, r in enumerate(results):
        assert r.exit_code == i % 3, (r.status, r.error)
        assert r.status is (JobStatus.SUCCESSFUL if i % 3 == 0 else JobStatus.CRASHED)
        assert r.reason is None
        assert (r.job.path / f"task {i}.out").read_text() == f"out {i}\n"
        assert (r.job.path / f"task {i}.err").read_text() == f"err {i}\n"
    assert not set(submitted.snapshot()) & queue_ids(scheduler)


def test_maxjobs_throttles_the_tasks_running_at_once(
    scheduler: str, make_runner: RunnerFactory, submitted: SubmittedIds, tmp_path: Path
) -> None:
    runner = make_runner(maxjobs=2)
    manager = JobManager(tmp_path / "jobs")
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    jobs = [
        SingleJob(
            f"t{i}",
            f"date +%s.%N > {stamps}/{i}.start\nsleep 1\ndate +%s.%N > {stamps}/{i}.end\n",
        )
        for i in range(5)
    ]
    with runner.batch():
        results = [job.run(jobrunner=runner, jobmanager=manager) for job in jobs]
    runner.wait(timeout=PATIENCE)

    assert all(r.status is JobStatus.SUCCESSFUL for r in results), [r.error for r in results]
    assert len(submitted.snapshot()) == 1
    spans = [
        (float((stamps / f"{i}.start").read_text()), float((stamps / f"{i}.end").read_text()))
        for i in range(5)
    ]
    for start, _end in spans:
        running = sum(1 for s, e in spans if s <= start < e)
        assert running <= 2, spans


def test_cancelling_one_job_and_one_cancelled_from_outside_end_only_their_tasks(
    scheduler: str, make_runner: RunnerFactory, submitted: SubmittedIds, tmp_path: Path
) -> None:
    runner = make_runner()
    manager = JobManager(tmp_path / "jobs")
    gate = tmp_path / "gate"
    jobs = [
        SingleJob(
            f"g{i}",
            f"touch {tmp_path}/started{i}\n"
            f"while [ ! -e {gate} ]; do sleep 0.2; done\necho done {i}\n",
        )
        for i in range(4)
    ]
    with runner.batch():
        results = [job.run(jobrunner=runner, jobmanager=manager) for job in jobs]
    jobs[1].cancel()
    # From outside, once the task runs: a task cancelled before it started leaves no record
    # on SLURM without accounting (see the docs page on exit codes).
    wait_for((tmp_path / "started2").exists, "task 3 to start")
    outside = results[2].jobid
    assert outside is not None
    proc = subprocess.run(
        [tool(CANCEL[scheduler]) or CANCEL[scheduler], outside],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    wait_for(lambda: results[1].done and results[2].done, "the two cancelled tasks to end")
    assert not results[0].done
    assert not results[3].done
    gate.touch()
    runner.wait(timeout=PATIENCE)

    assert [r.status for r in results] == [
        JobStatus.SUCCESSFUL,
        JobStatus.CANCELLED,
        JobStatus.CANCELLED,
        JobStatus.SUCCESSFUL,
    ], [(r.exit_code, r.reason, r.error) for r in results]
    assert results[1].reason == "cancelled"
    assert results[2].reason == "cancelled"
    assert (results[3].job.path / "g3.out").read_text() == "done 3\n"
    assert not set(submitted.snapshot()) & queue_ids(scheduler)


def test_arrays_split_at_max_size_and_the_largest_array_comes_from_the_scheduler(
    scheduler: str, make_runner: RunnerFactory, submitted: SubmittedIds, tmp_path: Path
) -> None:
    runner = make_runner()
    # What this machine's tools/ set up: MaxArraySize = 1001 (tasks 1-1000), max_aj_tasks 75000.
    assert runner.scheduler().max_array_size() == {"slurm": 1000, "sge": 75000}[scheduler]
    runner.settings.array.max_size = 3
    manager = JobManager(tmp_path / "jobs")
    jobs = [SingleJob(f"s{i}", "exit 0\n") for i in range(7)]
    start = time.monotonic()
    with runner.batch():
        results = [job.run(jobrunner=runner, jobmanager=manager) for job in jobs]
    runner.wait(timeout=PATIENCE)
    assert time.monotonic() - start < PATIENCE

    assert all(r.status is JobStatus.SUCCESSFUL for r in results), [r.error for r in results]
    assert len(submitted.snapshot()) == 3  # 3 + 3 + a plain job
    sizes = sorted(
        sum(1 for r in results if _array_of(r.jobid) == base)
        for base in {_array_of(r.jobid) for r in results}
    )
    assert sizes == [1, 3, 3]


@pytest.mark.parametrize("option", [[], ["--no-array"]])
def test_runner_run_grid_submits_one_array_unless_no_array(
    scheduler: str, tmp_path: Path, option: list[str]
) -> None:
    scripts = []
    for i in range(3):
        script = tmp_path / f"s{i}.sh"
        script.write_text(f"echo from {i}\nexit {1 if i == 2 else 0}\n")
        scripts.append(str(script))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "runner_core",
            "run",
            "--grid",
            scheduler,
            *option,
            "--json",
            "--workdir",
            str(tmp_path / "work"),
            *scripts,
        ],
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr  # s2 exits 1
    jobs = json.loads(proc.stdout)["jobs"]
    assert [j["exit_code"] for j in jobs] == [0, 0, 1]
    arrays = {_array_of(j["jobid"]) for j in jobs}
    assert len(arrays) == (1 if not option else 3)
    assert (tmp_path / "work" / "s0" / "s0.out").read_text() == "from 0\n"
