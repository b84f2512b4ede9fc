"""GridRunner against the real SLURM and Grid Engine: exit codes, spaces, maxjobs, live output."""

from __future__ import annotations

import os
import stat
import subprocess
import threading
from typing import TYPE_CHECKING, Callable

import pytest

from integration._schedulers import (
    PATIENCE,
    SCHEDULERS,
    QueueSampler,
    SubmittedIds,
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


def test_exit_codes_zero_and_nonzero(
    scheduler: str, make_runner: RunnerFactory, submitted: SubmittedIds, tmp_path: Path
) -> None:
    """`exit 3` gives exit code 3, `exit 0` gives 0, a job killed by SIGKILL is not a success."""
    runner = make_runner()
    manager = JobManager(tmp_path / "jobs")
    bodies = {
        "ok": "echo fine\nexit 0\n",
        "three": "echo failing >&2\nexit 3\n",
        "killed": "kill -KILL $$\n",
    }
    results = {
        name: SingleJob(name=name, runscript=body).run(jobrunner=runner, jobmanager=manager)
        for name, body in bodies.items()
    }
    for r in results.values():
        r.wait(timeout=PATIENCE)

    assert (results["ok"].status, results["ok"].exit_code) == (JobStatus.SUCCESSFUL, 0)
    assert (results["three"].status, results["three"].exit_code) == (JobStatus.CRASHED, 3)
    assert results["killed"].status is JobStatus.CRASHED
    assert results["killed"].exit_code not in (None, 0)
    assert len(submitted.snapshot()) == 3
    ok_job = results["ok"].job
    assert ok_job.path is not None
    assert (ok_job.path / "ok.out").read_text().strip() == "fine"
    assert "failing" in (ok_job.path.parent / "three" / "three.err").read_text()


def test_submit_failure_reports_the_schedulers_error(
    scheduler: str, make_runner: RunnerFactory, submitted: SubmittedIds, tmp_path: Path
) -> None:
    """A flag the submit command refuses: the job FAILED, its error holds the command's stderr."""
    runner = make_runner()
    job = SingleJob(name="badflag", runscript="exit 0\n")
    results = job.run(
        jobrunner=runner, jobmanager=JobManager(tmp_path / "jobs"), **{"no-such-option": True}
    )
    results.wait(timeout=PATIENCE)
    assert results.status is JobStatus.FAILED
    assert results.error is not None
    assert "no-such-option" in results.error
    assert submitted.snapshot() == []


def test_folder_and_runflag_with_spaces(
    scheduler: str, make_runner: RunnerFactory, submitted: SubmittedIds, tmp_path: Path
) -> None:
    """A job folder with spaces works, and a runflag value with a space reaches the scheduler whole.

    SLURM: ``-J "my job"`` becomes the job's name. Grid Engine refuses names with white space
    (recorded in tests/grid/data/sge/qsub_name_with_space.*), so there the value is
    ``-v "MYVAR=hello world"``, an environment variable the scheduler passes to the job.
    """
    runner = make_runner()
    manager = JobManager(tmp_path / "work dir with spaces")
    if scheduler == "slurm":
        flags = {"J": "my job"}
        body = 'echo "seen=[$SLURM_JOB_NAME]"\n'
        expected = "seen=[my job]"
    else:
        flags = {"v": "MYVAR=hello world"}
        body = 'echo "seen=[$MYVAR]"\n'
        expected = "seen=[hello world]"
    job = SingleJob(name="spaced job", runscript=body)
    results = job.run(jobrunner=runner, jobmanager=manager, **flags).wait(timeout=PATIENCE)

    assert results.ok, results.error
    assert job.path is not None
    assert " " in str(job.path)
    assert (job.path / "spaced job.out").read_text().strip() == expected
    if scheduler == "slurm":
        (jobid,) = submitted.snapshot()
        shown = subprocess.run(
            [tool("scontrol") or "scontrol", "show", "job", jobid],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        assert "JobName=my job\n" in shown or "JobName=my job " in shown


def test_directives_in_the_runscript_still_reach_the_scheduler(
    scheduler: str, make_runner: RunnerFactory, submitted: SubmittedIds, tmp_path: Path
) -> None:
    """``#SBATCH`` / ``#$`` lines written in runscript.pre are read by the scheduler."""
    runner = make_runner()
    if scheduler == "slurm":
        directive, body = "#SBATCH --job-name=from_directive", 'echo "seen=[$SLURM_JOB_NAME]"\n'
    else:
        directive, body = "#$ -v MYVAR=from_directive", 'echo "seen=[$MYVAR]"\n'
    job = SingleJob(name="directive", runscript=body)
    job.settings.runscript.pre = directive
    results = job.run(jobrunner=runner, jobmanager=JobManager(tmp_path / "jobs"))
    assert results.wait(timeout=PATIENCE).ok, results.error
    assert job.path is not None
    assert (job.path / "directive.out").read_text().strip() == "seen=[from_directive]"


def test_maxjobs_caps_the_runners_jobs_in_the_queue(
    scheduler: str, make_runner: RunnerFactory, submitted: SubmittedIds, tmp_path: Path
) -> None:
    """With maxjobs=2 the real queue never holds more than 2 of the runner's 5 jobs at once."""
    cap = 2
    runner = make_runner(maxjobs=cap)
    manager = JobManager(tmp_path / "jobs")
    with QueueSampler(scheduler) as sampler:
        results = [
            SingleJob(name=f"capped{i}", runscript="sleep 1.5\n").run(
                jobrunner=runner, jobmanager=manager
            )
            for i in range(5)
        ]
        runner.wait(timeout=PATIENCE * 2)
    assert all(r.ok for r in results), [(r.status, r.error) for r in results]
    ours = set(submitted.snapshot())
    assert len(ours) == 5
    counts = [len(ids & ours) for _, ids in sampler.samples]
    assert max(counts) <= cap, f"queue held {max(counts)} of the runner's jobs"
    assert max(counts) == cap, "the runner never used its two slots at once"


def test_stdout_redirect_is_visible_while_the_job_runs(
    scheduler: str, make_runner: RunnerFactory, submitted: SubmittedIds, tmp_path: Path
) -> None:
    """With runscript.stdout_redirect the job's output file fills while the job still runs."""
    runner = make_runner()
    job = SingleJob(
        name="live",
        runscript=(
            "echo first line\nwhile [ ! -e release ]; do sleep 0.2; done\necho second line\n"
        ),
    )
    job.settings.runscript.stdout_redirect = True
    results = job.run(jobrunner=runner, jobmanager=JobManager(tmp_path / "jobs"))
    out = wait_for(lambda: job.path and job.path / "live.out", "the job's folder")

    def first_line_seen() -> bool:
        return out.exists() and "first line" in out.read_text()

    wait_for(first_line_seen, "the job's first line in live.out")
    assert not results.done, "the job cannot have ended: it waits for the release file"
    (job.path / "release").touch()
    results.wait(timeout=PATIENCE)
    assert results.ok, results.error
    assert out.read_text().split("\n")[:2] == ["first line", "second line"]


SHIM = """#!/bin/sh
# Test shim for {real}: a scheduler whose queue command hangs or fails on two calls out of
# three (the runner's check_timeout is set to 1 s, so the hanging call times out).
count="{count}"
n=$(cat "$count" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > "$count"
case $((n % 3)) in
    1) exec sleep 30 ;;
    2) echo "error: Socket timed out on send/recv operation (test shim)" >&2; exit 1 ;;
esac
exec "{real}" "$@"
"""


def test_failing_check_command_releases_no_job_early(
    scheduler: str,
    make_runner: RunnerFactory,
    submitted: SubmittedIds,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A check command that times out or errors on 2 calls out of 3 releases no job early.

    A PATH shim placed first on PATH stands in for the scheduler's queue command (squeue or
    qstat): call 1, 4, 7... hang past the runner's 1 s check time-out, calls 2, 5, 8... exit 1
    with an error, the others run the real command. While the jobs run, the test keeps sampling
    the real queue: a job the runner has let go of (no longer in ``runner.queued``) must no longer
    be in the real queue. Afterwards every job has its right exit code and ended after the job's
    own last line ran.
    """
    command = "squeue" if scheduler == "slurm" else "qstat"
    real = tool(command)
    assert real is not None
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    count = shim_dir / "calls"
    shim = shim_dir / command
    shim.write_text(SHIM.format(real=real, count=count))
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{shim_dir}{os.pathsep}{os.environ['PATH']}")

    runner = make_runner()
    runner.settings["check_timeout"] = 1
    manager = JobManager(tmp_path / "jobs")
    codes = {"zero": 0, "three": 3, "seven": 7}
    seen_in_runner: set[str] = set()
    early: list[str] = []
    lock = threading.Lock()

    def runner_view() -> set[str]:
        return set(runner.queued)

    with QueueSampler(scheduler, extra=runner_view) as sampler:
        results = {
            name: SingleJob(name=name, runscript=f"sleep 2\ntouch ended\nexit {code}\n").run(
                jobrunner=runner, jobmanager=manager
            )
            for name, code in codes.items()
        }
        runner.wait(timeout=PATIENCE * 2)
    for held, in_queue in sampler.samples:
        with lock:
            seen_in_runner |= held
            early.extend(sorted((in_queue & seen_in_runner) - held))
    assert not early, f"released while still in the real queue: {early}"
    for name, code in codes.items():
        r = results[name]
        assert r.exit_code == code, (name, r.status, r.error)
        path = r.job.path
        assert path is not None
        assert r.finished_at is not None
        assert r.finished_at >= (path / "ended").stat().st_mtime
    calls = int(count.read_text())
    assert calls >= 3, "the shim was not used"
    assert runner.check_count >= calls


@pytest.mark.parametrize("scheduler", [SCHEDULERS["sge"]], indirect=True)
def test_time_limit_gives_nonzero_exit_code_sge(
    scheduler: str, make_runner: RunnerFactory, submitted: SubmittedIds, tmp_path: Path
) -> None:
    """A job killed for its wall-time limit ends with a non-zero exit code (Grid Engine only).

    SLURM's smallest limit is one minute and it enforces it up to 30 s late: too slow for this
    suite (tests/grid/data/slurm/scontrol_show_job_timelimit.* records that case).
    """
    runner = make_runner()
    job = SingleJob(name="overtime", runscript="sleep 60\n")
    results = job.run(
        jobrunner=runner, jobmanager=JobManager(tmp_path / "jobs"), walltime="0:0:2"
    ).wait(timeout=PATIENCE)
    assert results.status is JobStatus.CRASHED, (results.status, results.error)
    assert results.exit_code not in (None, 0)
    assert not set(submitted.snapshot()) & queue_ids(scheduler)
