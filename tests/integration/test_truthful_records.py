"""Records that tell the truth, on the real SLURM and Grid Engine.

A job that has ended keeps its end when the run is cancelled (with its driver dead or
alive); a job waiting in the scheduler's queue is SUBMITTED with no start time until it
starts; times come from the job itself; ``maxjobs`` caps the tasks of several arrays
together; a run flag of more than one letter works on SLURM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import TYPE_CHECKING, Callable

import pytest

from integration._schedulers import PATIENCE, SCHEDULERS, queue_ids, wait_for
from runner_core import JobManager, JobStatus, SingleJob, read_journal

if TYPE_CHECKING:
    from pathlib import Path

    from runner_grid import GridRunner

pytestmark = pytest.mark.integration

# Four quick jobs that end by themselves and one that waits for a gate file; the driver
# reports when all are queued, then is SIGKILLed ("kill") or waits ("live", with a poll so
# slow that the quick jobs have ended without the driver noticing when the cancel comes).
DRIVER = textwrap.dedent(
    """
    import logging, os, signal, sys, time
    from runner_core import JobManager, SingleJob
    from runner_grid import GridRunner

    folder, scheduler, mode, gate = sys.argv[1:5]
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    grid = GridRunner(grid=scheduler, sleepstep=600 if mode == "live" else 0.5)
    manager = JobManager(folder, resume=mode == "resume")
    jobs = [SingleJob(f"quick{i}", "sleep 1\\nexit 0\\n") for i in range(4)]
    jobs.append(SingleJob("slow", f"while [ ! -e {gate} ]; do sleep 0.2; done\\n"))
    with grid.batch():
        results = [job.run(jobrunner=grid, jobmanager=manager) for job in jobs]
    while not all(r.jobid for r in results):
        time.sleep(0.05)
    print("QUEUED", flush=True)
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    grid.wait(300)
    print("ENDED", flush=True)
    """
)


def _driver(tmp_path: Path, scheduler: str, mode: str) -> subprocess.Popen[str]:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    return subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "run"), scheduler, mode,
         str(tmp_path / "gate")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _quick_jobs_ended(tmp_path: Path) -> bool:
    return all((tmp_path / "run" / f"quick{i}" / f"quick{i}.exitcode").exists() for i in range(4))


def _runner_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner_core", *args],
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        check=False,
    )


def _end(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=PATIENCE)


@pytest.mark.parametrize("mode", ["kill", "live"])
def test_runner_cancel_keeps_the_jobs_that_ended_and_a_resume_reruns_none_of_them(
    scheduler: str, tmp_path: Path, mode: str
) -> None:
    driver = _driver(tmp_path, scheduler, mode)
    try:
        assert driver.stdout is not None
        assert driver.stdout.readline().strip() == "QUEUED"
        if mode == "kill":
            driver.wait(timeout=PATIENCE)
        wait_for(lambda: _quick_jobs_ended(tmp_path), "the quick jobs to write their exit codes")

        cancelled = _runner_cli("cancel", str(tmp_path / "run"))
        assert cancelled.returncode == 0, cancelled.stderr
        if mode == "live":
            out, err = driver.communicate(timeout=PATIENCE)
            assert "ENDED" in out, err
            # The driver had not polled (sleepstep 600): the cancel found the quick jobs
            # ended by themselves and left them alone; the polls after the cancel ended them.
            assert err.count("job(s) that have ended by themselves") == 4, err

        state = read_journal(tmp_path / "run")
        ends = {r.name: (r.status, r.exit_code, r.reason) for r in state.jobs}
        for i in range(4):
            assert ends[f"quick{i}"] == (JobStatus.SUCCESSFUL, 0, None), ends
        assert ends["slow"][0] is JobStatus.CANCELLED
        assert ends["slow"][2] == "cancelled"
        assert "ended by themselves" in cancelled.stderr

        (tmp_path / "gate").touch()
        if mode == "kill":  # `runner resume` rebuilds the recorded runner
            resumed = _runner_cli("resume", str(tmp_path / "run"), "--json")
            assert resumed.returncode == 0, resumed.stderr
            jobs = {job["name"]: job for job in json.loads(resumed.stdout)["jobs"]}
            assert all(jobs[f"quick{i}"]["restored"] for i in range(4)), jobs
            assert not jobs["slow"]["restored"]
            assert jobs["slow"]["status"] == "SUCCESSFUL"
        else:  # the live driver's runner polled every 600 s: resume with the script instead
            again = _driver(tmp_path, scheduler, "resume")
            out, err = again.communicate(timeout=PATIENCE)
            assert "ENDED" in out, err
            assert err.count("submitting") == 1, err  # the slow job only
        state = read_journal(tmp_path / "run")
        assert all(r.status is JobStatus.SUCCESSFUL for r in state.jobs), state.jobs
    finally:
        (tmp_path / "gate").touch()
        _end(driver)


def _hold_flags(scheduler: str) -> dict[str, object]:
    return {"hold": True} if scheduler == "slurm" else {"h": True}


def _release(scheduler: str, jobid: str) -> None:
    argv = ["scontrol", "release", jobid] if scheduler == "slurm" else ["qrls", jobid]
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


def test_a_held_job_is_submitted_not_running_then_runs_with_its_own_times(
    scheduler: str, make_runner: Callable[..., GridRunner], tmp_path: Path
) -> None:
    runner = make_runner()
    job = SingleJob("held", "sleep 2\n")
    job.settings.run.update(_hold_flags(scheduler))
    results = job.run(jobrunner=runner, jobmanager=JobManager(tmp_path / "run"))
    wait_for(lambda: results.jobid is not None, "the job to be submitted")
    assert results.jobid is not None
    wait_for(lambda: results.jobid.split(".")[0] in queue_ids(scheduler), "the job in the queue")
    time.sleep(2)  # several polls: a held job must not look started

    assert results.status is JobStatus.SUBMITTED
    assert results.started_at is None
    assert results.submitted_at is not None
    record = read_journal(tmp_path / "run").jobs[0]
    assert record.status is JobStatus.SUBMITTED

    _release(scheduler, results.jobid)
    wait_for(lambda: results.status is not JobStatus.SUBMITTED, "the job to start")
    assert results.status in (JobStatus.RUNNING, JobStatus.SUCCESSFUL)
    results.wait(timeout=PATIENCE)

    assert results.ok
    assert results.started_at is not None
    assert results.finished_at is not None
    assert results.submitted_at <= results.started_at
    assert results.run_time == pytest.approx(2.0, abs=1.0)
    assert results.wait_time is not None
    assert results.wait_time >= 2.0  # it was held at least that long
    record = read_journal(tmp_path / "run").jobs[0]
    assert (record.submitted_at, record.started_at) == pytest.approx(
        (results.submitted_at, results.started_at), abs=0.01
    )
    assert sorted(os.listdir(job.path)) == [
        "held.err",
        "held.exitcode",
        "held.grid",
        "held.out",
        "held.run",
        "held.times",
    ]


def test_two_arrays_under_maxjobs_4_never_run_more_than_4_tasks_at_once(
    scheduler: str, make_runner: Callable[..., GridRunner], tmp_path: Path
) -> None:
    runner = make_runner(maxjobs=4)
    manager = JobManager(tmp_path / "run")
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    body = f"date +%s.%N > {stamps}/$$.start\nsleep 2\ndate +%s.%N > {stamps}/$$.end\n"
    jobs = []
    for i in range(12):
        job = SingleJob(f"t{i}", body)
        if i % 2:  # two groups of equal submissions: two arrays
            job.settings.run.update({"nice": "0"} if scheduler == "slurm" else {"p": "0"})
        jobs.append(job)
    with runner.batch(name="campaign"):
        results = [job.run(jobrunner=runner, jobmanager=manager) for job in jobs]
    runner.wait(timeout=PATIENCE * 2)

    assert all(r.ok for r in results), [(r.job.name, r.status, r.error) for r in results]
    spans = []
    for start in stamps.glob("*.start"):
        end = start.with_suffix(".end")
        spans.append((float(start.read_text()), float(end.read_text())))
    assert len(spans) == 12
    most = max(sum(1 for a, b in spans if a <= t < b) for t, _end in spans)
    assert most <= 4, f"{most} tasks ran at once under maxjobs=4"


@pytest.mark.parametrize("scheduler", [SCHEDULERS["slurm"]], indirect=True)
@pytest.mark.parametrize("flag", ["mem=100M", "time=5"])
def test_a_long_run_flag_works_on_slurm(scheduler: str, tmp_path: Path, flag: str) -> None:
    """`runner run --flag mem=...` (the docs' example) used to become `-mem ...`: FAILED.

    SLURM only: multi-letter run flags become ``--key=value`` there; Grid Engine keeps
    ``-key value``.
    """
    script = tmp_path / "flagged.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    proc = _runner_cli(
        "run", "--grid", "slurm", "--json", "--flag", flag,
        "--workdir", str(tmp_path / "run"), str(script),
    )  # fmt: skip
    (job,) = json.loads(proc.stdout)["jobs"]
    assert (job["status"], job["exit_code"]) == ("SUCCESSFUL", 0), job["error"]
    assert proc.returncode == 0


@pytest.mark.parametrize("form", ["table", "json"])
def test_a_job_cancelled_from_outside_shows_reason_cancelled_in_the_cli(
    scheduler: str, tmp_path: Path, form: str
) -> None:
    script = tmp_path / "long.sh"
    script.write_text("#!/bin/sh\nsleep 120\n")
    json_flag = ["--json"] if form == "json" else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner_core", "run", "--grid", scheduler, *json_flag,
         "--workdir", str(tmp_path / "run"), str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: _recorded_id(tmp_path) is not None, "the job's id on record")
        jobid = _recorded_id(tmp_path)
        assert jobid is not None
        cancel = ["scancel", jobid] if scheduler == "slurm" else ["qdel", jobid]
        subprocess.run(cancel, check=True, capture_output=True, timeout=30)
        out, err = proc.communicate(timeout=PATIENCE)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=PATIENCE)
    if form == "json":
        (job,) = json.loads(out)["jobs"]
        assert job["status"] == "CANCELLED", err
        assert job["reason"] == "cancelled"
        return
    header, row = out.splitlines()[:2]
    assert header.split()[:5] == ["job", "jobid", "status", "reason", "exit"], out
    assert row.split()[:4] == ["long", jobid, "CANCELLED", "cancelled"], out
    assert "long (job " in out
    assert "cancelled from outside the runner" in out


def _recorded_id(tmp_path: Path) -> str | None:
    state = read_journal(tmp_path / "run")
    return state.jobs[0].jobid if state.jobs else None
