"""runner_core.ext: the surface for runner authors; detaching a job and completing it elsewhere."""

from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING

import pytest

from core.runner_helpers import TIMEOUT, wait_until
from runner_core import JobManager, JobRunner, JobStatus, Results, SingleJob
from runner_core.ext import (
    Completion,
    can_detach,
    current_results,
    detach_job,
    report_failure,
    report_jobid,
    report_reason,
)

if TYPE_CHECKING:
    from runner_settings import Settings


class Detaching(JobRunner):
    """A runner whose call hands each job to `completions` and returns at once.

    It stands for a grid runner: a submit in `call`, then a poller that ends the job
    when it leaves the scheduler's queue, holding no thread meanwhile.
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.completions: queue.SimpleQueue[Completion] = queue.SimpleQueue()
        self.cancelled_jobs: list[Results] = []

    def call(
        self, runscript: str, workdir: str, out: str | None, err: str, runflags: Settings
    ) -> int:
        assert current_results() is not None
        self.completions.put(detach_job())
        return 0  # ignored: the job ends when its Completion says so

    def cancel_job(self, results: Results) -> None:
        super().cancel_job(results)
        self.cancelled_jobs.append(results)


def test_detached_jobs_hold_slots_but_no_threads(manager: JobManager) -> None:
    runner = Detaching(parallel=True, maxjobs=3)
    jobs = [SingleJob(f"d{i}", "") for i in range(5)]
    results = [job.run(runner, manager) for job in jobs]
    wait_until(lambda: runner.snapshot().detached == 3, "three jobs detached")
    wait_until(lambda: runner.snapshot().threads == 0, "their threads have ended")
    snap = runner.snapshot()
    assert (snap.slots, snap.queued, snap.tasks) == (3, 2, 5)
    assert [r.status for r in results] == [JobStatus.RUNNING] * 3 + [JobStatus.QUEUED] * 2
    # The "poller": ends each job from this thread, with its real exit code. The first
    # three detached from three threads at once, so they come in any order.
    codes = {"d0": 0, "d1": 3, "d2": 0, "d3": 0, "d4": 7}
    for _ in jobs:
        completion = runner.completions.get(timeout=TIMEOUT)
        completion.complete(codes[completion.results.job.name])
        completion.complete(99)  # a second end is ignored
    runner.wait(TIMEOUT)
    assert [r.exit_code for r in results] == [0, 3, 0, 0, 7]
    assert [r.status.name for r in results] == [
        "SUCCESSFUL",
        "CRASHED",
        "SUCCESSFUL",
        "SUCCESSFUL",
        "CRASHED",
    ]
    snap = runner.snapshot()
    assert (snap.slots, snap.detached, snap.tasks) == (0, 0, 0)


def test_a_detached_job_can_fail_or_end_with_a_reason(manager: JobManager) -> None:
    runner = Detaching(parallel=True)
    failed = SingleJob("failed", "").run(runner, manager)
    timed_out = SingleJob("timed_out", "").run(runner, manager)
    ends = {}
    for _ in range(2):
        c = runner.completions.get(timeout=TIMEOUT)
        ends[c.results.job.name] = c
    ends["failed"].fail("the submit command failed", reason="submit_failed")
    ends["timed_out"].complete(1, reason="timeout")
    runner.wait(TIMEOUT)
    assert (failed.status, failed.reason, failed.error) == (
        JobStatus.FAILED,
        "submit_failed",
        "the submit command failed",
    )
    assert (timed_out.status, timed_out.reason, timed_out.exit_code) == (
        JobStatus.CRASHED,
        "timeout",
        1,
    )


def test_cancelling_a_detached_job_reaches_the_runners_hook(manager: JobManager) -> None:
    runner = Detaching(parallel=True)
    job = SingleJob("c", "")
    results = job.run(runner, manager)
    completion = runner.completions.get(timeout=TIMEOUT)
    job.cancel()
    assert runner.cancelled_jobs == [results]
    assert results.status is JobStatus.RUNNING  # it ends when the runner says so
    completion.complete(-15)
    runner.wait(TIMEOUT)
    assert (results.status, results.reason, results.exit_code) == (
        JobStatus.CANCELLED,
        "cancelled",
        -15,
    )


def test_serial_detach_returns_from_run_before_the_job_ends(manager: JobManager) -> None:
    runner = Detaching()
    results = SingleJob("s", "").run(runner, manager)
    assert results.status is JobStatus.RUNNING
    completion = runner.completions.get(timeout=TIMEOUT)
    threading.Thread(target=completion.complete, args=(0,)).start()
    runner.wait(TIMEOUT)
    assert results.ok


def test_detach_and_report_failure_outside_a_call(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(RuntimeError, match="inside a runner's call"):
        detach_job()
    report_failure("nothing runs here")  # only logged
    assert "nothing runs here" in caplog.text


class Reporting(JobRunner):
    """A runner whose call reports what a scheduler would tell it: an id and an end reason."""

    def call(
        self, runscript: str, workdir: str, out: str | None, err: str, runflags: Settings
    ) -> int:
        report_jobid(str(runflags["jobid"]))
        report_reason(str(runflags["reason"]))
        return int(runflags["code"])


@pytest.mark.parametrize(
    ("reason", "code", "status"),
    [
        ("timeout", 1, JobStatus.CRASHED),
        ("out_of_memory", 137, JobStatus.CRASHED),
        ("preempted", 0, JobStatus.SUCCESSFUL),
        ("cancelled", 1, JobStatus.CANCELLED),  # by someone else: still CANCELLED
    ],
)
def test_reported_reasons_and_ids_reach_the_results(
    manager: JobManager, reason: str, code: int, status: JobStatus
) -> None:
    results = SingleJob("r", "").run(Reporting(), manager, jobid=42, reason=reason, code=code)
    assert (results.status, results.reason, results.exit_code, results.jobid) == (
        status,
        reason,
        code,
        "42",
    )


def test_an_unknown_reported_reason_fails_the_job(manager: JobManager) -> None:
    results = SingleJob("r", "").run(Reporting(), manager, jobid=1, reason="sleepy", code=0)
    assert results.status is JobStatus.FAILED
    assert "'sleepy' is not one of" in (results.error or "")


def test_can_detach_only_inside_the_runners_own_job(manager: JobManager) -> None:
    seen: list[tuple[str, bool]] = []

    class Probe(JobRunner):
        other: JobRunner

        def call(
            self, runscript: str, workdir: str, out: str | None, err: str, runflags: Settings
        ) -> int:
            seen.append(("own", can_detach(self)))
            seen.append(("other", can_detach(self.other)))
            return 0

    runner = Probe()
    runner.other = JobRunner()
    SingleJob("p", "").run(runner, manager)
    runner.call("x.run", str(manager.path), None, "/dev/null", None)  # type: ignore[arg-type]
    assert seen[:2] == [("own", True), ("other", False)]
    assert seen[2] == ("own", False)  # a call made by user code has no job to detach
    assert not can_detach(runner)
