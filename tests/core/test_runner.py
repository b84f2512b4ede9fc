"""JobRunner: limits, threads, the metaclass, waiting, failure and cancel paths."""

from __future__ import annotations

import tempfile
import threading
from typing import TYPE_CHECKING, Any, Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.runner_helpers import (
    TIMEOUT,
    GateRunner,
    join_job_threads,
    slot_waiters,
    thread_waiters,
    wait_until,
)
from runner_core import JobError, JobManager, JobRunner, JobStatus, SingleJob, config
from runner_core._lifecycle import live_runners
from runner_core._runner import _limit, _MetaRunner

if TYPE_CHECKING:
    from runner_settings import Settings


def _jobs(n: int, prefix: str = "j") -> list[SingleJob]:
    return [SingleJob(f"{prefix}{i}", "exit 0") for i in range(n)]


def _counts(runner: JobRunner) -> tuple[int, int, int]:
    """(tasks not ended, threads busy, slots taken) of the runner's pool.

    A thread that ends its last task stays alive, idle, for a moment (the pool's linger)
    in case another job comes: it counts as alive, not as busy.
    """
    snap = runner.snapshot()
    return snap.tasks, snap.threads - snap.idle, snap.slots


def _threads_end_at_shutdown(runner: JobRunner) -> None:
    """Shut the runner down: its idle threads end at once, none is left."""
    runner.shutdown(cancel=False, timeout=TIMEOUT)
    wait_until(lambda: runner.snapshot().threads == 0, "the idle job threads have ended")
    assert join_job_threads() == []


# --- construction and the limits ------------------------------------------------------


def test_defaults_follow_the_seed() -> None:
    runner = JobRunner()
    assert (runner.parallel, runner.maxjobs, runner.maxthreads) == (False, 0, 256)
    assert not runner.cancelled
    assert "parallel=False" in repr(runner)
    assert runner in live_runners()


@pytest.mark.parametrize(
    ("kwargs", "error", "shown"),
    [
        ({"maxjobs": -1}, ValueError, "-1"),
        ({"maxjobs": 2.5}, TypeError, "2.5"),
        ({"maxjobs": True}, TypeError, "True"),
        ({"maxjobs": "3"}, TypeError, "'3'"),
        ({"maxthreads": 0}, ValueError, "0"),
        ({"maxthreads": -4}, ValueError, "-4"),
        ({"maxthreads": False}, TypeError, "False"),
        ({"maxthreads": None}, TypeError, "None"),
        ({"parallel": 1}, TypeError, "1"),
        ({"parallel": "yes"}, TypeError, "'yes'"),
    ],
)
def test_invalid_values_are_refused_naming_the_value(
    kwargs: dict[str, Any], error: type[Exception], shown: str
) -> None:
    name = next(iter(kwargs))
    with pytest.raises(error, match=name) as info:
        JobRunner(**kwargs)
    assert shown in str(info.value)
    runner = JobRunner()
    with pytest.raises(error, match=name):
        setattr(runner, name, kwargs[name])


def test_limit_threads_unbounded_caps_threads_and_never_blocks_run(manager: JobManager) -> None:
    runner = GateRunner(parallel=True)
    runner.limit_threads(2, bounded=False)
    assert runner.maxthreads == 2
    results = [job.run(runner, manager) for job in _jobs(6)]  # none blocks
    wait_until(lambda: runner.active == 2 and slot_waiters(runner) == 4, "two run, four wait")
    snap = runner.snapshot()
    assert (snap.threads, snap.queued, snap.room_waiters) == (2, 4, 0)
    runner.gate.set()
    runner.wait(TIMEOUT)
    assert runner.peak == 2
    assert all(r.ok for r in results)


def test_limit_threads_bounded_blocks_run_past_that_many_jobs(manager: JobManager) -> None:
    runner = GateRunner(parallel=True)
    runner.limit_threads(1)
    first = _jobs(1, "first")[0].run(runner, manager)
    wait_until(lambda: runner.active == 1, "the first job is in call")
    second = _jobs(1, "second")[0]
    starter = threading.Thread(target=second.run, args=(runner, manager))
    starter.start()
    wait_until(lambda: thread_waiters(runner) == 1, "the second run() blocks")
    runner.gate.set()
    starter.join(TIMEOUT)
    runner.wait(TIMEOUT)
    assert first.ok
    assert second.results.ok


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "shown"),
    [
        ((0,), {}, ValueError, "threads must be an int >= 1, got 0"),
        ((True,), {}, TypeError, "threads must be an int >= 1, not bool True"),
        ((2.0,), {}, TypeError, "not float 2.0"),
        ((2,), {"bounded": 1}, TypeError, "bounded must be True or False, not int 1"),
    ],
)
def test_limit_threads_refuses_bad_values_and_changes_nothing(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], shown: str
) -> None:
    runner = JobRunner(parallel=True, maxthreads=7)
    with pytest.raises(error, match=shown):
        runner.limit_threads(*args, **kwargs)
    assert runner.maxthreads == 7


@given(
    maxjobs=st.integers(0, 4),
    maxthreads=st.integers(1, 5),
    njobs=st.integers(1, 7),
)
def test_observed_concurrency_is_min_of_maxjobs_maxthreads_and_jobs(
    maxjobs: int, maxthreads: int, njobs: int
) -> None:
    expected = min(maxjobs or njobs, maxthreads, njobs)
    runner = GateRunner(parallel=True, maxjobs=maxjobs, maxthreads=maxthreads)
    with tempfile.TemporaryDirectory() as tmp:
        manager = JobManager(tmp)
        jobs = _jobs(njobs)
        # past maxthreads job.run() blocks, so the jobs are started from a thread of their own
        starter = threading.Thread(target=lambda: [j.run(runner, manager) for j in jobs])
        starter.start()
        taken = min(maxthreads, njobs)  # past maxthreads taken jobs, run() blocks

        def settled() -> bool:
            # a job thread exists only for a job that holds a slot (so it is in call);
            # the other taken jobs wait in the queue, and the starter waits for room
            # when there are more jobs than maxthreads
            if runner.peak > expected:
                return True  # the limit is broken: fail at once below
            return (
                runner.active == expected
                and runner.snapshot().threads == expected
                and slot_waiters(runner) == taken - expected
                and (thread_waiters(runner) == 1) == (njobs > taken)
            )

        wait_until(settled, "every job in call, waiting for a slot or for a thread")
        assert runner.peak == expected
        runner.gate.set()
        starter.join(TIMEOUT)
        runner.wait(TIMEOUT)
    assert runner.peak == expected
    assert runner.calls == njobs
    assert [j.results.status for j in jobs] == [JobStatus.SUCCESSFUL] * njobs
    assert _counts(runner) == (0, 0, 0)
    _threads_end_at_shutdown(runner)


def test_queued_jobs_run_first_come_first_served_on_reused_threads(manager: JobManager) -> None:
    order: list[str] = []
    alive: set[int] = set()

    class Recorder(JobRunner):
        def call(
            self, runscript: str, workdir: str, out: str | None, err: str, runflags: Settings
        ) -> int:
            order.append(runscript)
            alive.add(self.snapshot().threads)
            return 0

    runner = Recorder(parallel=True, maxjobs=1)
    jobs = _jobs(12)
    for job in jobs:
        job.run(runner, manager)
    runner.wait(TIMEOUT)
    assert order == [j.runscript_name for j in jobs]
    assert [j.results.status for j in jobs] == [JobStatus.SUCCESSFUL] * 12
    # one slot: only the thread of the job in call exists, however many are queued
    assert alive == {1}
    assert _counts(runner) == (0, 0, 0)
    _threads_end_at_shutdown(runner)


def test_serial_runs_in_the_callers_thread_one_at_a_time(manager: JobManager) -> None:
    seen: list[tuple[int, int]] = []

    class Recorder(JobRunner):
        active = 0

        def call(
            self, runscript: str, workdir: str, out: str | None, err: str, runflags: Settings
        ) -> int:
            Recorder.active += 1
            seen.append((threading.get_ident(), Recorder.active))
            Recorder.active -= 1
            return 0

    runner = Recorder(maxjobs=1)  # maxjobs is ignored when serial
    jobs = _jobs(5)
    for job in jobs:
        results = job.run(runner, manager)
        assert results.done  # a serial run returns when the job has ended
    assert seen == [(threading.get_ident(), 1)] * 5
    assert [j.results.status for j in jobs] == [JobStatus.SUCCESSFUL] * 5


def test_thread_cap_blocks_the_caller_until_a_thread_ends(manager: JobManager) -> None:
    runner = GateRunner(parallel=True, maxthreads=1)
    first, second = _jobs(2)
    first.run(runner, manager)
    returned = threading.Event()

    def start_second() -> None:
        second.run(runner, manager)
        returned.set()

    starter = threading.Thread(target=start_second)
    starter.start()
    wait_until(lambda: thread_waiters(runner) == 1, "the second run() waits for a thread")
    assert not returned.is_set()
    assert second.results.status is JobStatus.QUEUED
    runner.gate.set()
    assert returned.wait(TIMEOUT)
    runner.wait(TIMEOUT)
    starter.join(TIMEOUT)
    assert first.results.ok
    assert second.results.ok
    assert runner.peak == 1


def test_raising_maxjobs_lets_waiting_jobs_in(manager: JobManager) -> None:
    runner = GateRunner(parallel=True, maxjobs=1)
    jobs = _jobs(3)
    for job in jobs:
        job.run(runner, manager)
    wait_until(lambda: runner.active == 1 and slot_waiters(runner) == 2, "one runs, two wait")
    assert sorted(j.results.status.name for j in jobs) == ["QUEUED", "QUEUED", "RUNNING"]
    runner.maxjobs = 3
    with runner.cond:
        assert runner.cond.wait_for(lambda: runner.active == 3, TIMEOUT)
    runner.gate.set()
    runner.wait(TIMEOUT)
    assert runner.peak == 3


def test_lowering_maxjobs_applies_to_jobs_that_start_afterwards(manager: JobManager) -> None:
    runner = GateRunner(parallel=True, maxjobs=0)
    runner.maxjobs = 1
    for job in _jobs(3):
        job.run(runner, manager)
    wait_until(lambda: runner.active == 1 and slot_waiters(runner) == 2, "one runs, two wait")
    runner.gate.set()
    runner.wait(TIMEOUT)
    assert runner.peak == 1


def test_switching_to_parallel_applies_to_later_jobs(manager: JobManager) -> None:
    runner = GateRunner()
    runner.gate.set()
    first = SingleJob("serial", "").run(runner, manager)
    assert first.done
    runner.parallel = True
    runner.gate.clear()
    second = SingleJob("parallel", "").run(runner, manager)
    assert not second.done  # returned at once: it runs in its own thread
    runner.gate.set()
    runner.wait(TIMEOUT)
    assert second.ok


@pytest.mark.parametrize("daemon", [True, False])
def test_threads_are_daemon_threads_per_config(manager: JobManager, daemon: bool) -> None:
    config.daemon_threads = daemon
    runner = GateRunner(parallel=True)
    runner.gate.set()
    SingleJob("d", "").run(runner, manager)
    runner.wait(TIMEOUT)
    assert runner.daemons == [daemon]


def test_runflags_reach_call(manager: JobManager) -> None:
    runner = GateRunner()
    runner.gate.set()
    results = SingleJob("flags", "").run(runner, manager, code=3, queue="short")
    assert runner.runflags == [{"code": 3, "queue": "short"}]
    assert results.status is JobStatus.CRASHED
    assert results.exit_code == 3


# --- the metaclass ----------------------------------------------------------------------


def test_every_call_is_wrapped_once_keeping_its_name() -> None:
    assert isinstance(JobRunner, _MetaRunner)
    assert JobRunner.call.__runner_limited__  # type: ignore[attr-defined]
    assert JobRunner.call.__name__ == "call"
    assert GateRunner.call.__runner_limited__  # type: ignore[attr-defined]
    assert GateRunner.call.__qualname__ == "GateRunner.call"
    assert _limit(JobRunner.call) is JobRunner.call


def test_subclass_without_call_runs_the_local_call(manager: JobManager) -> None:
    class Plain(JobRunner):
        pass

    assert "call" not in Plain.__dict__
    results = SingleJob("plain", "exit 4").run(Plain(), manager)
    assert results.status is JobStatus.CRASHED
    assert results.exit_code == 4


def test_super_call_takes_the_maxjobs_slot_once(manager: JobManager) -> None:
    seen: list[int] = []

    class Outer(JobRunner):
        def call(
            self, runscript: str, workdir: str, out: str | None, err: str, runflags: Settings
        ) -> int:
            seen.append(self.snapshot().slots)
            code = super().call(runscript, workdir, out, err, runflags)
            seen.append(self.snapshot().slots)
            return code

    class Outermost(Outer):
        def call(
            self, runscript: str, workdir: str, out: str | None, err: str, runflags: Settings
        ) -> int:
            return super().call(runscript, workdir, out, err, runflags) + 1

    runner = Outermost(parallel=True, maxjobs=1)
    results = [SingleJob(f"s{i}", "exit 0").run(runner, manager) for i in range(3)]
    runner.wait(TIMEOUT)  # with maxjobs=1 a second acquire would deadlock here
    assert seen == [1] * 6
    assert [r.exit_code for r in results] == [1, 1, 1]
    assert runner.snapshot().slots == 0


def test_overriding_run_job_is_refused_at_class_creation() -> None:
    with pytest.raises(TypeError, match=r"_run_job.*should not be overridden"):

        class Bad(JobRunner):
            def _run_job(self, job: Any, jobmanager: Any) -> None:  # type: ignore[override]
                pass


# --- waiting, shutting down, the context manager ----------------------------------------


def test_wait_times_out_then_returns_once_jobs_end(manager: JobManager) -> None:
    runner = GateRunner(parallel=True)
    SingleJob("w", "").run(runner, manager)
    with pytest.raises(TimeoutError, match="1 job"):
        runner.wait(timeout=0.01)
    runner.gate.set()
    runner.wait(TIMEOUT)
    runner.wait(0)  # nothing left: returns at once


class CancelRunner(GateRunner):
    """A gate runner whose _cancel_jobs opens the gate, like killing the processes would."""

    cancel_calls = 0

    def _cancel_jobs(self) -> None:
        self.cancel_calls += 1
        super()._cancel_jobs()
        self.gate.set()


def test_shutdown_cancel_stops_running_and_waiting_jobs(manager: JobManager) -> None:
    runner = CancelRunner(parallel=True, maxjobs=2)
    jobs = _jobs(5)
    for job in jobs:
        job.run(runner, manager)
    wait_until(lambda: runner.active == 2 and slot_waiters(runner) == 3, "two run, three wait")
    runner.shutdown(cancel=True, timeout=TIMEOUT)
    assert runner.cancelled
    assert [j.results.status for j in jobs] == [JobStatus.CANCELLED] * 5
    assert runner.calls == 2  # the three waiting jobs never reached call
    assert sorted(j.results.exit_code is None for j in jobs) == [False, False, True, True, True]
    runner.shutdown(cancel=True)
    assert runner.cancel_calls == 1
    late = SingleJob("late", "")
    with pytest.raises(JobError, match="shut down"):
        late.run(runner, manager)
    assert late.results.status is JobStatus.CANCELLED
    assert runner.snapshot().slots == 0
    assert runner.snapshot().threads == 0
    assert join_job_threads() == []


def test_shutdown_without_cancel_lets_jobs_finish(manager: JobManager) -> None:
    runner = CancelRunner(parallel=True, maxjobs=1)
    jobs = _jobs(2)
    for job in jobs:
        job.run(runner, manager)
    wait_until(lambda: runner.active == 1, "one job in call")
    done = threading.Event()
    closer = threading.Thread(target=lambda: (runner.shutdown(cancel=False), done.set()))
    closer.start()
    wait_until(lambda: runner.closed, "the runner is closed")
    assert not done.is_set()
    with pytest.raises(JobError):
        SingleJob("refused", "").run(runner, manager)
    runner.gate.set()
    assert done.wait(TIMEOUT)
    closer.join(TIMEOUT)
    assert [j.results.status for j in jobs] == [JobStatus.SUCCESSFUL] * 2
    assert runner.cancel_calls == 0
    assert not runner.cancelled


def test_shutdown_wakes_a_caller_blocked_on_the_thread_cap(manager: JobManager) -> None:
    runner = CancelRunner(parallel=True, maxthreads=1)
    first, second = _jobs(2)
    first.run(runner, manager)
    errors: list[BaseException] = []

    def start_second() -> None:
        try:
            second.run(runner, manager)
        except JobError as exc:
            errors.append(exc)

    starter = threading.Thread(target=start_second)
    starter.start()
    wait_until(lambda: thread_waiters(runner) == 1, "the caller waits for a thread")
    runner.shutdown(cancel=True, timeout=TIMEOUT)
    starter.join(TIMEOUT)
    assert len(errors) == 1
    assert first.results.status is JobStatus.CANCELLED
    assert second.results.status is JobStatus.CANCELLED


def test_context_manager_waits_for_the_jobs(manager: JobManager) -> None:
    with GateRunner(parallel=True) as runner:
        jobs = _jobs(3)
        for job in jobs:
            job.run(runner, manager)
        runner.gate.set()
    assert all(j.results.ok for j in jobs)
    assert not runner.cancelled


def test_context_manager_cancels_on_an_exception(manager: JobManager) -> None:
    runner = CancelRunner(parallel=True, maxjobs=1)
    jobs = _jobs(3)

    def interrupted_block() -> None:
        with runner:
            for job in jobs:
                job.run(runner, manager)
            wait_until(lambda: runner.active == 1, "one job in call")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted_block()
    assert runner.cancelled
    assert runner.cancel_calls == 1
    assert [j.results.status for j in jobs] == [JobStatus.CANCELLED] * 3


def test_cancelling_a_waiting_job_skips_its_call(manager: JobManager) -> None:
    runner = GateRunner(parallel=True, maxjobs=1)
    first, second, third = _jobs(3)
    for job in (first, second, third):
        job.run(runner, manager)
    wait_until(lambda: runner.active == 1 and slot_waiters(runner) == 2, "one runs, two wait")
    waiting = second if second.results.status is JobStatus.QUEUED else first
    waiting.cancel()
    waiting.results.wait(TIMEOUT)
    assert waiting.results.status is JobStatus.CANCELLED
    runner.gate.set()
    runner.wait(TIMEOUT)
    assert runner.calls == 2
    assert sorted(j.results.status.name for j in (first, second, third)) == [
        "CANCELLED",
        "SUCCESSFUL",
        "SUCCESSFUL",
    ]
    waiting.cancel()  # a finished job: nothing happens
    assert waiting.results.status is JobStatus.CANCELLED


# --- failures ---------------------------------------------------------------------------


class Boom(RuntimeError):
    pass


class RaisingRunner(JobRunner):
    def call(
        self, runscript: str, workdir: str, out: str | None, err: str, runflags: Settings
    ) -> int:
        raise Boom(f"call exploded in {workdir}")


def test_raising_call_fails_every_job_and_leaks_nothing(manager: JobManager) -> None:
    runner = RaisingRunner(parallel=True, maxjobs=1, maxthreads=4)
    jobs = _jobs(20)
    results = [job.run(runner, manager) for job in jobs]
    runner.wait(TIMEOUT)
    for r in results:
        assert r.status is JobStatus.FAILED
        assert r.error is not None
        assert "Boom: call exploded in" in r.error
        assert "Traceback" in r.error
        assert r.exit_code is None
        r.wait(0)  # every waiter is released
    assert _counts(runner) == (0, 0, 0)
    _threads_end_at_shutdown(runner)


def test_failure_while_preparing_fails_the_job(tmp_path: Any) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    runner = JobRunner(parallel=True, maxjobs=1)
    results = SingleJob("p", "exit 0").run(runner, JobManager(blocker))
    results.wait(TIMEOUT)
    runner.wait(TIMEOUT)
    assert results.status is JobStatus.FAILED
    assert "Error" in (results.error or "")
    assert _counts(runner) == (0, 0, 0)


def test_failure_while_finalizing_fails_the_job(manager: JobManager) -> None:
    class BadFinal(SingleJob):
        def _finalize(self, exit_code: int, cancelled: bool) -> None:
            raise Boom("finalize exploded")

    class LazyFinal(SingleJob):
        def _finalize(self, exit_code: int, cancelled: bool) -> None:
            pass

    runner = JobRunner(parallel=True)
    bad = BadFinal("f", "exit 0").run(runner, manager)
    lazy = LazyFinal("g", "exit 0").run(runner, manager)
    runner.wait(TIMEOUT)
    assert bad.status is JobStatus.FAILED
    assert "finalize exploded" in (bad.error or "")
    assert lazy.status is JobStatus.FAILED
    assert "without a final status" in (lazy.error or "")


def test_call_returning_a_non_int_fails_the_job(manager: JobManager) -> None:
    class Sloppy(JobRunner):
        def call(
            self, runscript: str, workdir: str, out: str | None, err: str, runflags: Settings
        ) -> int:
            return "0"  # type: ignore[return-value]

    results = SingleJob("s", "").run(Sloppy(), manager)
    assert results.status is JobStatus.FAILED
    assert "must return the exit code as an int" in (results.error or "")


def test_serial_keyboard_interrupt_cancels_the_job_and_propagates(manager: JobManager) -> None:
    class Interrupted(JobRunner):
        def call(
            self, runscript: str, workdir: str, out: str | None, err: str, runflags: Settings
        ) -> int:
            raise KeyboardInterrupt

    job = SingleJob("k", "")
    with pytest.raises(KeyboardInterrupt):
        job.run(Interrupted(), manager)
    assert job.results.status is JobStatus.CANCELLED
    assert job.results.wait(0) is job.results


# --- a Ctrl-C or a failure while a job thread starts --------------------------------
#
# Fake: `Thread.start()` is patched to raise. It stands for a Ctrl-C that lands in the
# main thread while start() waits for its new thread to come up (CI saw the counters go
# to -1 and shutdown() hang when it landed after the thread was running), and for an
# out-of-threads RuntimeError, which a test cannot provoke safely.


def _start_raising(
    monkeypatch: pytest.MonkeyPatch,
    exc: BaseException,
    after_start: bool,
    until: Callable[[], bool] | None = None,
) -> None:
    """Make the next start of a job thread raise `exc`, before or after starting it.

    With `after_start`, raise once `until()` holds (the thread is well under way).
    """
    original = threading.Thread.start
    raised: list[int] = []

    def start(thread: threading.Thread) -> None:
        if thread.name != "runner:_run_job" or raised:
            original(thread)
            return
        raised.append(1)
        if after_start:
            original(thread)
            if until is not None:
                wait_until(until, "the new job thread got on")
        raise exc

    monkeypatch.setattr(threading.Thread, "start", start)
    return raised


@pytest.mark.parametrize("after_start", [True, False], ids=["thread-running", "no-thread"])
def test_ctrl_c_while_a_job_thread_starts_leaks_no_count(
    monkeypatch: pytest.MonkeyPatch, manager: JobManager, after_start: bool
) -> None:
    runner = GateRunner(parallel=True, maxjobs=1)
    first = SingleJob("first", "").run(runner, manager)
    wait_until(lambda: runner.calls == 1, "the first job is in call")
    _start_raising(monkeypatch, KeyboardInterrupt(), after_start)
    waiting = SingleJob("waiting", "")
    waiting.run(runner, manager)  # queued: no slot, so no thread starts yet
    with pytest.raises(KeyboardInterrupt):
        runner.maxjobs = 2  # hands `waiting` a thread, and that start is interrupted
    runner.gate.set()
    runner.wait(TIMEOUT)
    assert first.status is JobStatus.SUCCESSFUL
    # a thread that came up runs the job; one that never did leaves it queued, and the
    # first job's thread takes it once that job ends
    assert waiting.results.status is JobStatus.SUCCESSFUL
    assert _counts(runner) == (0, 0, 0)
    runner.shutdown(cancel=True, timeout=TIMEOUT)
    assert join_job_threads() == []


@pytest.mark.parametrize("after_start", [True, False], ids=["thread-running", "no-thread"])
def test_ctrl_c_in_run_while_its_thread_starts(
    monkeypatch: pytest.MonkeyPatch, manager: JobManager, after_start: bool
) -> None:
    runner = GateRunner(parallel=True)
    _start_raising(monkeypatch, KeyboardInterrupt(), after_start, until=lambda: runner.calls == 1)
    job = SingleJob("interrupted", "")
    with pytest.raises(KeyboardInterrupt):
        job.run(runner, manager)
    assert job.results.status is JobStatus.CANCELLED
    runner.gate.set()
    runner.wait(TIMEOUT)  # returns: the task is counted once, whoever ended it
    assert job.results.status is JobStatus.CANCELLED
    # a thread that came up ran the job into call; one that never did never ran it
    assert runner.calls == (1 if after_start else 0)
    assert _counts(runner) == (0, 0, 0)
    assert join_job_threads() == []
    later = SingleJob("later", "").run(runner, manager)  # the runner still works
    assert later.wait(TIMEOUT).status is JobStatus.SUCCESSFUL


def test_a_thread_that_cannot_start_fails_only_the_run_that_needed_it(
    monkeypatch: pytest.MonkeyPatch, manager: JobManager
) -> None:
    runner = GateRunner(parallel=True)
    runner.gate.set()
    _start_raising(monkeypatch, RuntimeError("can't start new thread"), after_start=False)
    job = SingleJob("no thread", "")
    with pytest.raises(RuntimeError, match="can't start new thread"):
        job.run(runner, manager)
    assert job.results.status is JobStatus.FAILED
    runner.wait(TIMEOUT)
    assert _counts(runner) == (0, 0, 0)
    assert SingleJob("next", "").run(runner, manager).wait(TIMEOUT).ok


def test_setters_call_no_hook_a_subclass_overrides(manager: JobManager) -> None:
    class Own(JobRunner):
        def __init__(self) -> None:
            super().__init__(parallel=True, maxjobs=1)
            self.cancelled_names: list[str] = []  # set after super().__init__, as usual

        def cancel_job(self, results: Any) -> None:
            self.cancelled_names.append(results.job.name)
            super().cancel_job(results)

    runner = Own()
    runner.maxjobs = 2
    runner.maxthreads = 3
    runner.parallel = True
    job = SingleJob("hooked", "sleep 30")
    job.run(runner, manager)
    job.cancel()
    assert job.results.wait(TIMEOUT).status is JobStatus.CANCELLED
    assert runner.cancelled_names == ["hooked"]
