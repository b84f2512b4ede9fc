"""Retries on the real schedulers: jobs out of memory, out of time, on a failed node, preempted.

Each job here fails its first attempt for a reason the test cluster produces for real (cgroup
memory on SLURM, h_vmem and h_rt on Grid Engine, a node set DOWN, a preempting partition) and
succeeds on the next one, run by `runner_core.Retry` with the request grown. A job knows it is
the next attempt by a marker file its first attempt made. The SLURM time-limit case takes about
two minutes (SLURM counts whole minutes and enforces them up to 30 s late).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Callable

import pytest

from integration._cluster import admin, slurm_node_down
from integration._schedulers import (
    PATIENCE,
    SCHEDULERS,
    SubmittedIds,
    cancel_ids,
    job_state,
    queue_ids,
    wait_for,
)
from runner_core import JobManager, JobStatus, Retry, SingleJob, parse_walltime, read_journal

if TYPE_CHECKING:
    from pathlib import Path

    from runner_grid import GridRunner

pytestmark = pytest.mark.integration

RunnerFactory = Callable[..., "GridRunner"]
ON_SLURM = pytest.mark.parametrize("scheduler", [SCHEDULERS["slurm"]], indirect=True)


def _first_then(marker: Path, first: str, then: str) -> str:
    """A runscript that runs `first` on its first attempt and `then` on every later one."""
    return f"if [ -e '{marker}' ]; then\n{then}\nelse\ntouch '{marker}'\n{first}\nfi\n"


#: What holds more than 100M and less than 200M, and gets a job killed for it at 100M: SLURM
#: counts a job's memory in its cgroup; Grid Engine's h_vmem limits each process's address
#: space (one process over it gets ENOMEM, not a kill) and kills the job when the sum of its
#: processes is over, so there it is two processes of 60 MB.
HOLD = "python3 -c 'import time; b = b\"x\" * ({mb} * 1024 * 1024); time.sleep({hold})'"
OVER_100M = {
    "slurm": HOLD.format(mb=150, hold=1),
    "sge": f"{HOLD.format(mb=60, hold=4)} &\n{HOLD.format(mb=60, hold=4)} &\nwait",
}


def test_a_job_out_of_memory_runs_again_with_twice_the_memory(
    scheduler: str, make_runner: RunnerFactory, submitted: SubmittedIds, tmp_path: Path
) -> None:
    """memory="100M", using about 150M: out_of_memory, then attempt 2 with 200M succeeds."""
    runner = make_runner(retry=Retry())
    job = SingleJob(name="hungry", runscript=OVER_100M[scheduler] + "\necho fed\n")
    results = job.run(
        jobrunner=runner, jobmanager=JobManager(tmp_path / "jobs"), memory="100M"
    ).wait(timeout=2 * PATIENCE)

    assert results.status is JobStatus.SUCCESSFUL, (results.status, results.reason, results.error)
    assert results.attempt == 2
    (first,) = results.attempts
    assert first.reason == "out_of_memory", first
    assert dict(first.request) == {"memory": "100M"}
    assert first.jobid is not None
    assert first.jobid != results.jobid
    assert job.settings["run"]["memory"] == "200M"
    assert job.path is not None
    assert (job.path / "hungry.out").read_text() == "fed\n"
    assert (job.path / "hungry.attempt1.err").exists()
    record = read_journal(tmp_path / "jobs").jobs[0]
    assert record.status is JobStatus.SUCCESSFUL
    assert record.jobid == results.jobid
    assert [(a["reason"], a["next"]) for a in record.attempts] == [
        ("out_of_memory", {"memory": "200M"})
    ]


#: The walltime of the first attempt, and how the job reads its own limit: SLURM's squeue prints
#: it as M:SS; Grid Engine's qstat -j lists the job's hard resource list.
WALLTIME = {"slurm": 60, "sge": 3}
OWN_LIMIT = {
    "slurm": 'squeue -h -j "$SLURM_JOB_ID" -o %l',
    "sge": "qstat -j \"$JOB_ID\" | sed -n 's/.*h_rt=\\([0-9:]*\\).*/\\1/p'",
}
#: SLURM checks time limits every 30 s and then waits KillWait before SIGKILL.
TIME_PATIENCE = {"slurm": 2 * 60 + 30 + PATIENCE, "sge": 2 * PATIENCE}


def test_a_job_out_of_time_runs_again_with_twice_the_walltime(
    scheduler: str, make_runner: RunnerFactory, submitted: SubmittedIds, tmp_path: Path
) -> None:
    """Killed at its time limit (reason "timeout"); attempt 2 runs with twice the walltime."""
    runner = make_runner(retry=Retry())
    limit_file = tmp_path / "limit"
    job = SingleJob(
        name="overtime",
        runscript=_first_then(
            tmp_path / "started", "sleep 300", f"{OWN_LIMIT[scheduler]} > '{limit_file}'"
        ),
    )
    results = job.run(
        jobrunner=runner,
        jobmanager=JobManager(tmp_path / "jobs"),
        walltime=WALLTIME[scheduler],
    ).wait(timeout=TIME_PATIENCE[scheduler])

    assert results.status is JobStatus.SUCCESSFUL, (results.status, results.reason, results.error)
    (first,) = results.attempts
    assert first.reason == "timeout", first
    assert first.exit_code not in (None, 0)
    assert first.started_at is not None
    assert first.finished_at is not None
    assert first.finished_at - first.started_at >= WALLTIME[scheduler] - 1
    assert job.path is not None  # nothing the wrapper was writing when it was killed is left
    left = sorted(p.name for p in job.path.iterdir())
    assert not [name for name in left if name.endswith(".tmp") or ".exitcode." in name], left
    own = limit_file.read_text().strip()
    if ":" not in own:  # Grid Engine gives seconds
        seconds = int(own)
    else:  # squeue gives M:SS below an hour
        seconds = parse_walltime(own if own.count(":") == 2 else f"0:{own}")
    assert seconds == 2 * WALLTIME[scheduler], own
    assert not set(submitted.snapshot()) & queue_ids(scheduler)


@ON_SLURM
def test_a_job_whose_node_failed_runs_again_with_the_same_request(
    scheduler: str, make_runner: RunnerFactory, submitted: SubmittedIds, tmp_path: Path
) -> None:
    """NODE_FAIL (the node set DOWN mid-run): the job is submitted again and succeeds."""
    runner = make_runner(retry=Retry())
    job = SingleJob(
        name="stranded", runscript=_first_then(tmp_path / "started", "sleep 300", "exit 0")
    )
    results = job.run(
        jobrunner=runner,
        jobmanager=JobManager(tmp_path / "jobs"),
        memory="200M",
        **{"no-requeue": True},
    )
    (jobid,) = wait_for(lambda: runner.queued, "the job in the runner's queue")
    wait_for(lambda: job_state(scheduler, jobid) == "RUNNING", f"job {jobid} running")
    wait_for((tmp_path / "started").exists, "its first attempt's script started")
    with slurm_node_down():
        wait_for(lambda: results.attempts, "the first attempt ended")
    results.wait(timeout=PATIENCE)

    assert results.ok, (results.status, results.reason, results.error)
    (first,) = results.attempts
    assert (first.reason, first.jobid) == ("node_fail", jobid)
    assert job.settings["run"]["memory"] == "200M"  # not grown


@ON_SLURM
def test_a_preempted_job_runs_again_without_using_an_attempt(
    scheduler: str, make_runner: RunnerFactory, submitted: SubmittedIds, tmp_path: Path
) -> None:
    """Preempted by a job of the `high` partition: run again even with attempts=1."""
    cpus = re.search(r"\bCPUTot=(\d+)", admin("scontrol", "show", "node", "localhost"))
    assert cpus
    runner = make_runner(retry=Retry(attempts=1))
    job = SingleJob(
        name="preemptee", runscript=_first_then(tmp_path / "started", "sleep 300", "exit 0")
    )
    results = job.run(
        jobrunner=runner,
        jobmanager=JobManager(tmp_path / "jobs"),
        partition="long",
        **{"cpus-per-task": int(cpus.group(1)), "mem": "1000M"},
    )
    (jobid,) = wait_for(lambda: runner.queued, "the job in the runner's queue")
    wait_for(lambda: job_state(scheduler, jobid) == "RUNNING", f"job {jobid} running")
    wait_for((tmp_path / "started").exists, "its first attempt's script started")
    said = admin("sbatch", "--parsable", "-p", "high", "-o", "/dev/null", "--wrap=sleep 2")
    high = said.strip().split(";")[0]
    try:
        results.wait(timeout=2 * PATIENCE)
    finally:
        cancel_ids(scheduler, [high])

    assert results.ok, (results.status, results.reason, results.error)
    (first,) = results.attempts
    assert (first.reason, first.jobid) == ("preempted", jobid)


@ON_SLURM
def test_a_grown_request_is_clamped_to_the_partition_and_stops_at_it(
    scheduler: str, make_runner: RunnerFactory
) -> None:
    """The partition `short` allows 2000M per node (MaxMemPerNode) and 5 minutes (MaxTime)."""
    runner = make_runner()
    grown = runner.grow_request({"memory": "1500M", "partition": "short"}, {"memory": 2})
    assert grown == ({"memory": "2000M"}, None)
    at_limit = runner.grow_request({"memory": "2000M", "partition": "short"}, {"memory": 2})
    assert at_limit[0] == {}
    assert at_limit[1] is not None
    assert "partition 'short' MaxMemPerNode 2000M" in at_limit[1]
    walltime = runner.grow_request({"walltime": "0:04:00", "partition": "short"}, {"walltime": 2})
    assert walltime == ({"walltime": "0:05:00"}, None)
