"""Submit limits on the real schedulers: read in advance and kept to; refusals waited out.

SLURM: the test QOS's ``MaxSubmitJobsPerUser`` (``sacctmgr show qos``'s MaxSubmitPU, which the
runner reads once per run) makes sbatch refuse the job over it (``QOSMaxSubmitJobPerUserLimit``);
Grid Engine: ``max_u_jobs`` (``qconf -sconf``) makes qsub refuse it ("only N jobs are allowed per
user"). With nothing else of the user's queued, the runner stays under the limit and is never
refused; with held jobs submitted outside it filling part of the limit, it is refused and waits
for room. In both, every job of the campaign must end SUCCESSFUL, each submitted once. The limit
is set through the helpers of integration._cluster, which put the cluster back even when a test
fails.
"""

from __future__ import annotations

import getpass
import logging
from typing import TYPE_CHECKING, Callable

import pytest

from integration._cluster import (
    TEST_QOS,
    admin,
    held_jobs,
    sge_max_u_jobs,
    slurm_qos_limits,
    user_job_count,
)
from integration._schedulers import PATIENCE, SCHEDULERS, SubmittedIds
from runner_core import JobManager, JobStatus, SingleJob

if TYPE_CHECKING:
    from pathlib import Path

    from runner_core import Results
    from runner_grid import GridRunner

pytestmark = pytest.mark.integration

RunnerFactory = Callable[..., "GridRunner"]
ON_SLURM = pytest.mark.parametrize("scheduler", [SCHEDULERS["slurm"]], indirect=True)
ON_SGE = pytest.mark.parametrize("scheduler", [SCHEDULERS["sge"]], indirect=True)
BATCH = pytest.mark.parametrize("batch", [False, True], ids=["plain", "batch"])

#: The campaign: more jobs than the limit lets into the queue at once, each short.
JOBS = 300
LIMIT = 20
#: Held jobs of the user's, submitted outside the runner, in the limit of the refusal tests.
OUTSIDE = 5


def _refusals(caplog: pytest.LogCaptureFixture) -> int:
    return sum(1 for r in caplog.records if r.getMessage().startswith("submit limit:"))


def _campaign(
    runner: GridRunner, folder: Path, n: int, *, batch: bool, **flags: str
) -> list[Results]:
    manager = JobManager(folder)
    jobs = [SingleJob(name=f"j{i}", runscript="exit 0\n") for i in range(n)]
    if batch:
        with runner.batch():
            results = [job.run(jobrunner=runner, jobmanager=manager, **flags) for job in jobs]
    else:
        results = [job.run(jobrunner=runner, jobmanager=manager, **flags) for job in jobs]
    runner.wait(timeout=PATIENCE * 4)
    return results


def _each_succeeded_once(results: list[Results], n: int) -> None:
    assert all(r.status is JobStatus.SUCCESSFUL for r in results), {
        (r.status.name, r.error) for r in results
    }
    assert len({r.jobid for r in results}) == n  # each job submitted exactly once


def _slurm_queued_in_test_qos() -> list[str]:
    out = admin("squeue", "--noheader", "--array", f"--qos={TEST_QOS}", "--format=%i")
    return out.split()


@ON_SLURM
@BATCH
def test_slurm_submit_limit_read_in_advance_is_never_refused(  # noqa: PLR0917
    scheduler: str,
    make_runner: RunnerFactory,
    submitted: SubmittedIds,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    batch: bool,
) -> None:
    caplog.set_level(logging.INFO, logger="runner_grid")
    assert not _slurm_queued_in_test_qos(), "jobs of another test are queued in the test QOS"
    runner = make_runner()
    with slurm_qos_limits(MaxSubmitJobsPerUser=LIMIT):
        results = _campaign(runner, tmp_path / "w", JOBS, batch=batch, qos=TEST_QOS)
    _each_succeeded_once(results, JOBS)
    assert _refusals(caplog) == 0  # the runner stayed under the limit it read
    said = [r.getMessage() for r in caplog.records if "lets 20 jobs be queued" in r.getMessage()]
    assert said == [
        f"keeping under a submit limit: QOS {TEST_QOS!r} lets 20 jobs be queued; the jobs "
        "over it wait in the runner for room"
    ]


@ON_SLURM
@BATCH
def test_slurm_jobs_queued_outside_the_runner_are_refused_and_waited_out(  # noqa: PLR0917
    scheduler: str,
    make_runner: RunnerFactory,
    submitted: SubmittedIds,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    batch: bool,
) -> None:
    caplog.set_level(logging.INFO, logger="runner_grid")
    runner = make_runner()
    outside = held_jobs(scheduler, OUTSIDE, f"--qos={TEST_QOS}")
    with slurm_qos_limits(MaxSubmitJobsPerUser=LIMIT), outside:
        results = _campaign(runner, tmp_path / "w", 60, batch=batch, qos=TEST_QOS)
    _each_succeeded_once(results, 60)
    assert _refusals(caplog) >= 1  # the runner counts its own jobs: the held ones refuse it


@ON_SGE
def test_sge_max_u_jobs_read_in_advance_is_never_refused(
    scheduler: str,
    make_runner: RunnerFactory,
    submitted: SubmittedIds,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="runner_grid")
    if user_job_count(getpass.getuser()):
        pytest.skip("other Grid Engine jobs of this user are queued: they take part of the limit")
    runner = make_runner()
    with sge_max_u_jobs(5):
        results = _campaign(runner, tmp_path / "w", 25, batch=False)
    _each_succeeded_once(results, 25)
    assert _refusals(caplog) == 0


@ON_SGE
def test_sge_jobs_queued_outside_the_runner_are_refused_and_waited_out(
    scheduler: str,
    make_runner: RunnerFactory,
    submitted: SubmittedIds,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="runner_grid")
    runner = make_runner()
    user = getpass.getuser()
    with held_jobs(scheduler, 2) as held, sge_max_u_jobs(user_job_count(user) + 5):
        assert len(held) == 2
        results = _campaign(runner, tmp_path / "w", 25, batch=False)
    _each_succeeded_once(results, 25)
    assert _refusals(caplog) >= 1
