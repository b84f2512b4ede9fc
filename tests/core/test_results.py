"""Results: the job state machine, done-callbacks, reasons and as_completed."""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.runner_helpers import TIMEOUT, GateRunner
from runner_core import (
    REASONS,
    JobManager,
    JobRunner,
    JobStateError,
    JobStatus,
    Results,
    SingleJob,
    as_completed,
)

if TYPE_CHECKING:
    from pathlib import Path

    from runner_settings import Settings

FINAL = [s for s in JobStatus if s.done]


def fresh(status: JobStatus = JobStatus.CREATED) -> Results:
    """The results of a new job, moved along the legal path to `status`."""
    results = SingleJob("j", "").results
    path = {
        JobStatus.CREATED: [],
        JobStatus.QUEUED: [JobStatus.QUEUED],
        JobStatus.SUBMITTED: [JobStatus.QUEUED, JobStatus.SUBMITTED],
        JobStatus.RUNNING: [JobStatus.QUEUED, JobStatus.RUNNING],
    }.get(status, [JobStatus.QUEUED, JobStatus.RUNNING, status])
    for step in path:
        results._move(step)
    return results


def test_the_legal_moves_are_forward_only() -> None:
    legal = {(a, b) for a in JobStatus for b in JobStatus if a.may_become(b)}
    order = list(JobStatus)
    for a, b in legal:
        assert not a.done
        assert order.index(b) > order.index(a)
    assert (JobStatus.CREATED, JobStatus.RUNNING) not in legal
    for final in FINAL:
        for start in (JobStatus.CREATED, JobStatus.QUEUED, JobStatus.RUNNING):
            assert (start, final) in legal


@pytest.mark.parametrize("start", list(JobStatus), ids=lambda s: s.name)
@pytest.mark.parametrize("to", list(JobStatus), ids=lambda s: s.name)
def test_a_refused_move_raises_naming_both_states(start: JobStatus, to: JobStatus) -> None:
    results = fresh(start)
    if start.may_become(to):
        assert results._move(to)
        assert results.status is to
        return
    with pytest.raises(JobStateError, match=f"from {start.name} to {to.name}"):
        results._move(to)
    assert results.status is start


@pytest.mark.parametrize("final", FINAL, ids=lambda s: s.name)
def test_a_final_state_is_never_left(final: JobStatus) -> None:
    results = fresh(final)
    stamp = results.finished_at
    for other in FINAL:
        assert results._move(other, exit_code=9, once=True) is False
    assert results.status is final
    assert results.finished_at == stamp
    assert results.exit_code is None
    with pytest.raises(JobStateError, match="a final state is never left"):
        results._move(JobStatus.CANCELLED)


def test_moves_stamp_times_and_release_waiters() -> None:
    results = fresh(JobStatus.QUEUED)
    assert results.started_at is None
    with pytest.raises(TimeoutError, match="QUEUED"):
        results.wait(0.001)
    results._move(JobStatus.RUNNING)
    assert results.started_at is not None
    results._move(JobStatus.CRASHED, exit_code=3)
    assert results.wait(0) is results
    assert (results.exit_code, results.reason, results.error) == (3, None, None)
    assert results.finished_at is not None
    assert results.finished_at >= results.started_at


def test_an_unknown_reason_is_refused() -> None:
    results = fresh(JobStatus.RUNNING)
    with pytest.raises(ValueError, match="'tired' is not one of"):
        results._move(JobStatus.CANCELLED, reason="tired")
    assert results.status is JobStatus.RUNNING
    assert {"timeout", "out_of_memory", "node_fail", "preempted", "cancelled"} <= set(REASONS)
    assert "submit_failed" in REASONS


# --- callbacks -------------------------------------------------------------------------


def test_callbacks_run_once_in_order_when_the_job_ends() -> None:
    results = fresh(JobStatus.RUNNING)
    seen: list[tuple[str, JobStatus]] = []
    results.add_done_callback(lambda r: seen.append(("a", r.status)))
    results.add_done_callback(lambda r: seen.append(("b", r.status)))
    assert seen == []
    results._move(JobStatus.SUCCESSFUL, exit_code=0)
    results._move(JobStatus.FAILED, once=True)
    assert seen == [("a", JobStatus.SUCCESSFUL), ("b", JobStatus.SUCCESSFUL)]


def test_a_callback_added_after_the_end_runs_at_once() -> None:
    results = fresh(JobStatus.CANCELLED)
    seen: list[Results] = []
    results.add_done_callback(seen.append)
    assert seen == [results]


def test_a_raising_callback_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    results = fresh(JobStatus.RUNNING)
    seen: list[int] = []

    def bad(r: Results) -> None:
        raise RuntimeError("callback exploded")

    results.add_done_callback(bad)
    results.add_done_callback(lambda r: seen.append(1))
    with caplog.at_level(logging.ERROR, logger="runner_core"):
        results._move(JobStatus.CRASHED, exit_code=1)
    assert seen == [1]
    assert "callback exploded" in caplog.text
    assert results.status is JobStatus.CRASHED


# --- as_completed ---------------------------------------------------------------------


def test_as_completed_yields_in_the_order_jobs_end(manager: JobManager) -> None:
    runner = GateRunner(parallel=True)
    early = fresh(JobStatus.SUCCESSFUL)
    jobs = [SingleJob(f"j{i}", "") for i in range(3)]
    results = [job.run(runner, manager) for job in jobs]
    order: list[Results] = []
    it = as_completed([*results, early, early])
    order.append(next(it))  # an ended job comes first, and duplicates once
    assert order == [early]
    with pytest.raises(TimeoutError, match="3 of the jobs"):
        list(as_completed(results, timeout=0.01))
    runner.gate.set()
    order.extend(it)
    assert sorted(order[1:], key=id) == sorted(results, key=id)
    ends = [r.finished_at or 0.0 for r in order[1:]]
    assert ends == sorted(ends)


def test_as_completed_of_nothing_yields_nothing() -> None:
    assert list(as_completed([])) == []


# --- cancel reasons through the runner -----------------------------------------------------


def test_cancelled_jobs_carry_the_reason(manager: JobManager) -> None:
    runner = GateRunner(parallel=True, maxjobs=1)
    running, waiting = (SingleJob(n, "") for n in ("running", "waiting"))
    running.run(runner, manager)
    waiting.run(runner, manager)
    assert waiting.results.status is JobStatus.QUEUED
    waiting.cancel()
    waiting.results.wait(TIMEOUT)
    assert (waiting.results.status, waiting.results.reason) == (JobStatus.CANCELLED, "cancelled")
    runner.gate.set()
    runner.wait(TIMEOUT)
    assert (running.results.status, running.results.reason) == (JobStatus.SUCCESSFUL, None)


# --- random interleavings of run, cancel, shutdown and failures --------------------------


class Scripted(JobRunner):
    """A runner whose call does what the job's runflags say: exit code, raise, or wait.

    Its `_cancel_jobs` opens the gate the waiting calls wait on, as killing their
    processes would, so `shutdown(cancel=True)` does not wait for the test to open it.
    """

    gate: threading.Event

    def _cancel_jobs(self) -> None:
        super()._cancel_jobs()
        self.gate.set()

    def call(
        self, runscript: str, workdir: str, out: str | None, err: str, runflags: Settings
    ) -> int:
        action = runflags.get("action")
        if action == "raise":
            raise RuntimeError("scripted failure")
        if action == "wait":
            gate = runflags["gate"]
            gate.wait(TIMEOUT)
        return int(runflags.get("code", 0))


ACTIONS = st.sampled_from(["ok", "crash", "raise", "wait"])
STEPS = st.lists(
    st.tuples(st.sampled_from(["run", "cancel", "open"]), st.integers(0, 5)),
    min_size=1,
    max_size=20,
)


@settings(deadline=None, max_examples=60)
@given(
    actions=st.lists(ACTIONS, min_size=1, max_size=6),
    steps=STEPS,
    maxjobs=st.integers(0, 2),
    shutdown_at=st.one_of(st.none(), st.integers(0, 20)),
    threads=st.integers(1, 3),
)
def test_interleavings_end_every_job_once_and_never_move_a_final_state(
    tmp_path_factory: pytest.TempPathFactory,
    *,
    actions: list[str],
    steps: list[tuple[str, int]],
    maxjobs: int,
    shutdown_at: int | None,
    threads: int,
) -> None:
    manager = JobManager(tmp_path_factory.mktemp("interleave"))
    runner = Scripted(parallel=True, maxjobs=maxjobs)
    gate = runner.gate = threading.Event()
    jobs = [SingleJob(f"j{i}", "") for i in range(len(actions))]
    calls: dict[int, list[JobStatus]] = {i: [] for i in range(len(jobs))}
    for i, job in enumerate(jobs):
        job.results.add_done_callback(lambda r, i=i: calls[i].append(r.status))

    def flags(i: int) -> dict[str, object]:
        action = actions[i]
        return {"action": action, "code": 3 if action == "crash" else 0, "gate": gate}

    def drive(part: list[tuple[str, int]], offset: int) -> None:
        for k, (what, index) in enumerate(part):
            if shutdown_at is not None and offset + k == shutdown_at:
                runner.shutdown(cancel=True, timeout=TIMEOUT)
            job = jobs[index % len(jobs)]
            if what == "run":
                with contextlib.suppress(Exception):  # run twice, or a shut-down runner
                    job.run(runner, manager, **flags(index % len(jobs)))
            elif what == "cancel":
                job.cancel()
            else:
                gate.set()

    size = -(-len(steps) // threads)
    parts = [steps[i : i + size] for i in range(0, len(steps), size)]
    drivers = [
        threading.Thread(target=drive, args=(part, n * size)) for n, part in enumerate(parts)
    ]
    for d in drivers:
        d.start()
    for d in drivers:
        d.join(TIMEOUT)
    gate.set()
    runner.wait(TIMEOUT)
    for i, job in enumerate(jobs):
        results = job.results
        if results.status is JobStatus.CREATED:  # never run
            assert calls[i] == []
            continue
        assert results.done, results
        assert calls[i] == [results.status], (i, calls[i], results)  # once, with the final state
        final = (results.status, results.exit_code, results.finished_at)
        job.cancel()
        results._move(JobStatus.FAILED, once=True)
        assert (results.status, results.exit_code, results.finished_at) == final
        if results.status is JobStatus.CANCELLED:
            assert results.reason == "cancelled"
    runner.shutdown(cancel=True, timeout=TIMEOUT)
    snap = runner.snapshot()
    assert (snap.tasks, snap.slots) == (0, 0)


def test_a_job_that_was_never_run_can_still_be_cancelled(tmp_path: Path) -> None:
    job = SingleJob("never", "")
    job.cancel()
    assert job.results.status is JobStatus.CREATED
    assert job.results.cancel_requested
    results = job.run(JobRunner(), JobManager(tmp_path))
    assert (results.status, results.reason) == (JobStatus.CANCELLED, "cancelled")
