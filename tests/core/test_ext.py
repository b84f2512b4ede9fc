"""runner_core.ext: the surface for runner authors; detaching a job and completing it elsewhere."""

from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING

import pytest

from core.runner_helpers import TIMEOUT, busy_threads, wait_until
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
    wait_until(lambda: busy_threads(runner) == 0, "their threads are free")
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


# --- jobs run in the caller's thread: JobRunner.runs_in_caller ----------------------------


class Collector(JobRunner):
    """A parallel runner that, while `collecting`, runs each job in the thread of `job.run()`.

    Its call detaches the job and keeps its Completion to end it later: a stand-in for
    GridRunner inside `with runner.batch():`, which collects the jobs run in the block's
    thread and submits them when the block ends. `cancel_job` ends a collected job.
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.collecting = False
        self.collected: dict[Results, Completion] = {}
        self.call_threads: list[int] = []
        self.fail_in_call = False

    def runs_in_caller(self) -> bool:
        return self.collecting

    def call(
        self, runscript: str, workdir: str, out: str | None, err: str, runflags: Settings
    ) -> int:
        self.call_threads.append(threading.get_ident())
        if self.fail_in_call:
            raise RuntimeError("collecting failed")
        completion = detach_job()
        self.collected[completion.results] = completion
        return 0

    def cancel_job(self, results: Results) -> None:
        super().cancel_job(results)
        completion = self.collected.pop(results, None)
        if completion is not None:
            completion.complete(1, reason="cancelled")


def _count_job_thread_starts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    started: list[str] = []
    original = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        if thread.name.startswith("runner:"):
            started.append(thread.name)
        original(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    return started


def test_a_job_run_in_the_callers_thread_takes_no_thread_and_no_slot(
    manager: JobManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = Collector(parallel=True, maxjobs=1)
    pooled = SingleJob("pooled", "").run(runner, manager)  # a job thread, the only slot
    wait_until(lambda: runner.snapshot().detached == 1, "the pooled job detached")
    assert runner.snapshot().slots == 1
    started = _count_job_thread_starts(monkeypatch)
    runner.collecting = True
    here = [SingleJob(f"here{i}", "").run(runner, manager) for i in range(3)]
    # each job went through call in this thread before run() returned, with the only
    # slot taken: call neither waited for a slot nor took one, and no thread started
    assert runner.call_threads[1:] == [threading.get_ident()] * 3
    assert started == []
    assert [r.status for r in here] == [JobStatus.RUNNING] * 3
    snap = runner.snapshot()
    assert (snap.slots, snap.queued, snap.detached, snap.tasks) == (1, 0, 4, 4)
    with pytest.raises(TimeoutError):
        runner.wait(0.01)
    waited = threading.Event()

    def wait_for_all() -> None:
        runner.wait(TIMEOUT)
        waited.set()

    waiter = threading.Thread(target=wait_for_all)
    waiter.start()
    completions = [runner.collected.pop(r) for r in [pooled, *here]]
    for completion in completions[:-1]:
        completion.complete(0)
    assert not waited.wait(0.05)  # wait() still waits for the last job run here
    completions[-1].complete(0)
    waiter.join(TIMEOUT)
    assert waited.is_set()
    assert all(r.ok for r in [pooled, *here])
    snap = runner.snapshot()
    assert (snap.slots, snap.detached, snap.tasks) == (0, 0, 0)  # no slot freed twice


def test_cancel_reaches_a_job_run_in_the_callers_thread(manager: JobManager) -> None:
    runner = Collector(parallel=True, maxjobs=2)
    runner.collecting = True
    kept = SingleJob("kept", "").run(runner, manager)
    dropped = SingleJob("dropped", "").run(runner, manager)
    dropped.job.cancel()
    assert (dropped.status, dropped.reason) == (JobStatus.CANCELLED, "cancelled")
    assert runner.snapshot().tasks == 1
    runner.collected.pop(kept).complete(0)
    runner.wait(TIMEOUT)
    assert kept.ok
    snap = runner.snapshot()
    assert (snap.slots, snap.tasks, snap.threads) == (0, 0, 0)


def test_a_failure_in_the_callers_thread_fails_the_job_and_leaks_nothing(
    manager: JobManager,
) -> None:
    runner = Collector(parallel=True, maxjobs=1)
    runner.collecting = True
    runner.fail_in_call = True
    results = SingleJob("f", "").run(runner, manager)  # run() itself does not raise
    assert results.status is JobStatus.FAILED
    assert "collecting failed" in (results.error or "")
    runner.wait(TIMEOUT)
    snap = runner.snapshot()
    assert (snap.slots, snap.tasks, snap.threads) == (0, 0, 0)


def test_a_serial_runner_does_not_ask_runs_in_caller(manager: JobManager) -> None:
    class NeverAsked(Collector):
        def runs_in_caller(self) -> bool:
            raise AssertionError("a serial runner runs every job here anyway")

    runner = NeverAsked()
    results = SingleJob("s", "").run(runner, manager)
    runner.collected.pop(results).complete(0)
    assert results.ok
