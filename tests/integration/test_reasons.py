"""End reasons on the real schedulers: a job killed at its time limit, a job cancelled from outside.

Slow: SLURM's shortest time limit is one minute and it enforces it up to 30 s late, so its
time-limit case takes one and a half minutes or so; these tests run in `nox -s integration` only.
"""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING, Callable

import pytest

from integration._schedulers import (
    PATIENCE,
    SCHEDULERS,
    SubmittedIds,
    job_state,
    queue_ids,
    tool,
    wait_for,
)
from runner_core import JobManager, JobStatus, SingleJob

if TYPE_CHECKING:
    from pathlib import Path

    from runner_grid import GridRunner

pytestmark = pytest.mark.integration

RunnerFactory = Callable[..., "GridRunner"]

#: The shortest time limit each scheduler takes, as the ``walltime`` run flag's value in seconds:
#: SLURM's ``--time=0:01:00`` (it counts whole minutes), Grid Engine's ``-l h_rt=0:00:03``.
TIME_LIMIT = {"slurm": 60, "sge": 3}
#: How long a job over its limit may take to be killed and leave the queue: SLURM checks time
#: limits every 30 s and then waits KillWait before SIGKILL.
TIME_LIMIT_PATIENCE = {"slurm": 60 + 30 + PATIENCE, "sge": PATIENCE}
#: What the scheduler shows for a running job.
RUNNING = {"slurm": "RUNNING", "sge": "r"}
CANCEL = {"slurm": "scancel", "sge": "qdel"}


@pytest.mark.parametrize("scheduler", [SCHEDULERS["sge"]], indirect=True)
def test_time_limit_ends_with_reason_timeout(
    scheduler: str, make_runner: RunnerFactory, submitted: SubmittedIds, tmp_path: Path
) -> None:
    """A job killed by the scheduler at its time limit ends CRASHED with reason "timeout".

    On SLURM (whose shortest limit costs a minute and a half) the same end is pinned by
    test_retry.py's time-limit case, as the first of its two attempts.
    """
    runner = make_runner()
    job = SingleJob(name="overtime", runscript="sleep 300\n")
    results = job.run(
        jobrunner=runner,
        jobmanager=JobManager(tmp_path / "jobs"),
        walltime=TIME_LIMIT[scheduler],
    ).wait(timeout=TIME_LIMIT_PATIENCE[scheduler])

    assert results.reason == "timeout", (results.status, results.exit_code, results.error)
    assert results.status is JobStatus.CRASHED
    assert results.exit_code not in (None, 0)
    assert not set(submitted.snapshot()) & queue_ids(scheduler)
    # It ran: its start is its own, and it ran about as long as its limit allowed.
    assert results.started_at is not None
    assert results.run_time is not None
    # Nothing the wrapper was writing when it was killed is left behind.
    assert job.path is not None
    left = sorted(p.name for p in job.path.iterdir())
    assert not [name for name in left if name.endswith(".tmp") or ".exitcode." in name], left


def _cancel_from_outside(scheduler: str, jobid: str) -> None:
    """Cancel a job the way someone else would: scancel/qdel in a process of its own."""
    proc = subprocess.run(
        [tool(CANCEL[scheduler]) or CANCEL[scheduler], jobid],
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_running_job_cancelled_from_outside_ends_cancelled(
    scheduler: str, make_runner: RunnerFactory, submitted: SubmittedIds, tmp_path: Path
) -> None:
    """scancel/qdel of a running job by another process: CANCELLED, reason "cancelled"."""
    runner = make_runner()
    job = SingleJob(name="victim", runscript="sleep 300\n")
    results = job.run(jobrunner=runner, jobmanager=JobManager(tmp_path / "jobs"))
    (jobid,) = wait_for(lambda: runner.queued, "the job in the runner's queue")
    wait_for(lambda: job_state(scheduler, jobid) == RUNNING[scheduler], f"job {jobid} running")

    _cancel_from_outside(scheduler, jobid)
    results.wait(timeout=PATIENCE)

    assert results.status is JobStatus.CANCELLED, (results.status, results.reason, results.error)
    assert results.reason == "cancelled"
    assert results.exit_code not in (None, 0)
    assert not runner.cancelled, "the runner itself cancelled nothing"
    assert jobid not in queue_ids(scheduler)


@pytest.mark.parametrize("scheduler", [SCHEDULERS["slurm"]], indirect=True)
def test_pending_job_cancelled_from_outside_ends_cancelled_slurm(
    scheduler: str, make_runner: RunnerFactory, submitted: SubmittedIds, tmp_path: Path
) -> None:
    """scancel of a held job that never ran: SLURM keeps its CANCELLED record (SLURM only:
    Grid Engine writes no accounting record for a job deleted before it ran)."""
    runner = make_runner()
    job = SingleJob(name="heldvictim", runscript="sleep 300\n")
    results = job.run(jobrunner=runner, jobmanager=JobManager(tmp_path / "jobs"), H=True)
    (jobid,) = wait_for(lambda: runner.queued, "the job in the runner's queue")
    wait_for(lambda: job_state(scheduler, jobid) == "PENDING", f"job {jobid} pending")

    _cancel_from_outside(scheduler, jobid)
    results.wait(timeout=PATIENCE)

    assert results.status is JobStatus.CANCELLED, (results.status, results.reason, results.error)
    assert results.reason == "cancelled"
    assert results.exit_code == 1
    # It never ran: no start time, and it says so.
    assert results.started_at is None
    assert results.error == "cancelled from outside the runner"
