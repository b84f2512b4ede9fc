"""Submit limits are back-pressure on the real schedulers: jobs wait in the runner, none FAILED.

SLURM: the test QOS's ``MaxSubmitJobsPerUser`` makes sbatch refuse the job over it
(``QOSMaxSubmitJobPerUserLimit``); Grid Engine: ``max_u_jobs`` makes qsub refuse it ("only N
jobs are allowed per user"). In both, every job of the campaign must end SUCCESSFUL, each
submitted once, with the refusals in the runner's log. The limit is set through the helpers
of integration._cluster, which put the cluster back even when a test fails.
"""

from __future__ import annotations

import getpass
import logging
from typing import TYPE_CHECKING, Callable

import pytest

from integration._cluster import TEST_QOS, sge_max_u_jobs, slurm_qos_limits, user_job_count
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

#: The campaign: more jobs than the limit lets into the queue at once, each short.
JOBS = 300
LIMIT = 20


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


@ON_SLURM
@pytest.mark.parametrize("batch", [False, True], ids=["plain", "batch"])
def test_slurm_submit_limit_holds_jobs_back_and_every_job_succeeds_once(  # noqa: PLR0917
    scheduler: str,
    make_runner: RunnerFactory,
    submitted: SubmittedIds,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    batch: bool,
) -> None:
    caplog.set_level(logging.INFO, logger="runner_grid")
    runner = make_runner()
    with slurm_qos_limits(MaxSubmitJobsPerUser=LIMIT):
        results = _campaign(runner, tmp_path / "w", JOBS, batch=batch, qos=TEST_QOS)
    assert all(r.status is JobStatus.SUCCESSFUL for r in results), {
        (r.status.name, r.error) for r in results
    }
    ids = [r.jobid for r in results]
    assert len(set(ids)) == JOBS  # each job submitted exactly once
    assert _refusals(caplog) >= 1  # the limit was hit, and the runner waited it out


@ON_SGE
def test_sge_max_u_jobs_holds_jobs_back_and_every_job_succeeds_once(
    scheduler: str,
    make_runner: RunnerFactory,
    submitted: SubmittedIds,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="runner_grid")
    runner = make_runner()
    user = getpass.getuser()
    with sge_max_u_jobs(user_job_count(user) + 5):
        results = _campaign(runner, tmp_path / "w", 25, batch=False)
    assert all(r.status is JobStatus.SUCCESSFUL for r in results), {
        (r.status.name, r.error) for r in results
    }
    assert len({r.jobid for r in results}) == 25
    assert _refusals(caplog) >= 1
