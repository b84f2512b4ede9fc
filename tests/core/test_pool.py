"""The scheduling engine (runner_core._pool) driven with plain tasks, read through snapshot()."""

from __future__ import annotations

import logging
import threading
from typing import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.runner_helpers import TIMEOUT, wait_until
from runner_core._pool import Lease, Pool, PoolClosed


class Gates:
    """Tasks that record their start, then block until their own gate opens."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started: list[int] = []
        self.running = 0
        self.peak = 0
        self.gates: dict[int, threading.Event] = {}

    def task(self, i: int) -> Callable[[], None]:
        gate = self.gates.setdefault(i, threading.Event())

        def run() -> None:
            with self.lock:
                self.started.append(i)
                self.running += 1
                self.peak = max(self.peak, self.running)
            try:
                assert gate.wait(TIMEOUT), f"gate {i} never opened"
            finally:
                with self.lock:
                    self.running -= 1

        return run

    def open(self, *which: int) -> None:
        for i in which or tuple(self.gates):
            self.gates[i].set()


def idle(pool: Pool) -> bool:
    snap = pool.snapshot()
    return (snap.tasks, snap.slots, snap.threads, snap.queued, snap.expedited) == (0, 0, 0, 0, 0)


def test_fifo_order_on_one_reused_thread() -> None:
    pool = Pool(limit=1)
    order: list[int] = []
    threads: set[int] = set()
    for i in range(20):
        pool.submit(lambda i=i: (order.append(i), threads.add(threading.get_ident())))
    assert pool.wait(TIMEOUT)
    assert order == list(range(20))
    wait_until(lambda: idle(pool), "the pool is idle")
    # a thread that ends a task takes the next one: one slot, so one thread at a time
    assert pool.snapshot().threads == 0


@settings(deadline=None)
@given(limit=st.integers(0, 4), maxthreads=st.integers(1, 5), n=st.integers(1, 7))
def test_concurrency_is_min_of_limit_maxthreads_and_tasks(
    limit: int, maxthreads: int, n: int
) -> None:
    expected = min(limit or n, maxthreads, n)
    taken = min(maxthreads, n)
    pool = Pool(limit=limit, maxthreads=maxthreads)
    gates = Gates()
    tasks = [gates.task(i) for i in range(n)]  # every gate exists before open() below
    submitter = threading.Thread(target=lambda: [pool.submit(t) for t in tasks])
    submitter.start()

    def settled() -> bool:
        if gates.peak > expected:
            return True  # the limit is broken: fail at once below
        snap = pool.snapshot()
        return (
            gates.running == expected
            and snap.threads == expected
            and snap.queued == taken - expected
            and (snap.room_waiters == 1) == (n > taken)
        )

    wait_until(settled, "tasks running, queued, and the submitter blocked past maxthreads")
    assert gates.peak == expected
    gates.open()
    submitter.join(TIMEOUT)
    assert pool.wait(TIMEOUT)
    assert sorted(gates.started) == list(range(n))
    wait_until(lambda: idle(pool), "the pool is idle")


def test_raising_the_limit_starts_queued_tasks_at_once() -> None:
    pool = Pool(limit=1)
    gates = Gates()
    for i in range(3):
        pool.submit(gates.task(i))
    wait_until(lambda: gates.running == 1 and pool.snapshot().queued == 2, "one runs, two queued")
    pool.limit = 3
    wait_until(lambda: gates.running == 3, "all three run")
    gates.open()
    assert pool.wait(TIMEOUT)


def test_expedite_runs_a_queued_task_without_a_slot() -> None:
    pool = Pool(limit=1)
    gates = Gates()
    pool.submit(gates.task(0))
    second = pool.submit(gates.task(1))
    third = pool.submit(gates.task(2))
    wait_until(lambda: gates.started == [0], "the first task holds the only slot")
    pool.expedite(third)
    wait_until(lambda: gates.started == [0, 2], "the expedited task runs next to it")
    snap = pool.snapshot()
    assert (snap.slots, snap.queued, snap.threads) == (1, 1, 2)
    pool.expedite(third)  # no longer queued: nothing happens
    gates.open()
    assert pool.wait(TIMEOUT)
    assert gates.started == [0, 2, 1]
    pool.expedite(second)  # ended: nothing happens
    wait_until(lambda: idle(pool), "the pool is idle")


def test_expedite_all_and_close() -> None:
    pool = Pool(limit=1, maxthreads=3)
    gates = Gates()
    for i in range(3):
        pool.submit(gates.task(i))
    wait_until(lambda: pool.snapshot().queued == 2, "two queued")
    blocked: list[BaseException] = []

    def submit_one_more() -> None:
        try:
            pool.submit(gates.task(9))
        except PoolClosed as exc:
            blocked.append(exc)

    submitter = threading.Thread(target=submit_one_more)
    submitter.start()
    wait_until(lambda: pool.snapshot().room_waiters == 1, "the fourth submit waits for room")
    pool.close()
    submitter.join(TIMEOUT)
    assert len(blocked) == 1
    assert pool.snapshot().closed
    with pytest.raises(PoolClosed):
        pool.submit(lambda: None)
    with pytest.raises(PoolClosed):
        pool.run_here(lambda: None)
    pool.expedite_all()
    wait_until(lambda: gates.running == 3, "the queued tasks run without slots")
    gates.open()
    assert pool.wait(TIMEOUT)
    assert 9 not in gates.started
    wait_until(lambda: idle(pool), "the pool is idle")


def test_acquire_slot_waits_for_the_limit_and_stops_on_request() -> None:
    pool = Pool(limit=1)
    assert pool.acquire_slot(lambda: False)
    stop = threading.Event()
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(pool.acquire_slot(stop.is_set)))
    waiter.start()
    wait_until(lambda: pool.snapshot().slot_waiters == 1, "the second caller waits")
    stop.set()
    pool.wake_slot_waiters()
    waiter.join(TIMEOUT)
    assert got == [False]
    assert pool.snapshot().slots == 1
    pool.release_slot()
    assert pool.snapshot().slots == 0


def test_run_here_counts_as_a_task_in_the_callers_thread() -> None:
    pool = Pool(limit=1)
    seen: list[tuple[int, int]] = []
    pool.run_here(lambda: seen.append((threading.get_ident(), pool.snapshot().tasks)))
    assert seen == [(threading.get_ident(), 1)]
    assert pool.snapshot().tasks == 0
    assert not pool.holds_slot()


def test_a_detached_task_keeps_its_slot_until_its_lease_is_released() -> None:
    pool = Pool(limit=1)
    leases: list[Lease] = []
    order: list[str] = []

    def first() -> None:
        leases.append(pool.detach())
        order.append("first returned")

    pool.submit(first)
    pool.submit(lambda: order.append("second ran"))
    wait_until(lambda: order == ["first returned"], "the first task detached and returned")
    snap = pool.snapshot()
    assert (snap.detached, snap.slots, snap.tasks, snap.queued) == (1, 1, 2, 1)
    assert not pool.wait(0.01)  # a detached task still counts
    leases[0].release()
    leases[0].release()  # idempotent
    assert pool.wait(TIMEOUT)
    assert order == ["first returned", "second ran"]
    wait_until(lambda: idle(pool), "the pool is idle")
    assert pool.snapshot().detached == 0


def test_detach_outside_a_task_or_twice_is_refused() -> None:
    pool = Pool()
    with pytest.raises(RuntimeError, match="outside a task"):
        pool.detach()
    errors: list[str] = []

    def twice() -> None:
        lease = pool.detach()
        try:
            pool.detach()
        except RuntimeError as exc:
            errors.append(str(exc))
        lease.release()

    pool.submit(twice)
    assert pool.wait(TIMEOUT)
    assert errors == ["the task of this thread is detached already"]


def test_a_raising_task_is_logged_and_the_pool_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    pool = Pool(limit=1)
    ran: list[int] = []

    def boom() -> None:
        raise RuntimeError("task exploded")

    with caplog.at_level(logging.ERROR, logger="runner_core"):
        pool.submit(boom)
        pool.submit(lambda: ran.append(1))
        assert pool.wait(TIMEOUT)
    assert ran == [1]
    assert "task exploded" in caplog.text
    wait_until(lambda: idle(pool), "the pool is idle")


def test_wait_times_out_with_a_task_running() -> None:
    pool = Pool()
    gates = Gates()
    pool.submit(gates.task(0))
    assert not pool.wait(0.01)
    gates.open()
    assert pool.wait(TIMEOUT)


@pytest.mark.parametrize("after_start", [True, False], ids=["thread-running", "no-thread"])
def test_ctrl_c_in_thread_start_leaves_the_task_to_exactly_one_side(
    monkeypatch: pytest.MonkeyPatch, after_start: bool
) -> None:
    # Fake: Thread.start raises KeyboardInterrupt, standing for a Ctrl-C that lands in
    # the main thread while start() waits for its new thread to come up.
    pool = Pool(thread_name="runner:test-pool")
    ran = threading.Event()
    original = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        if after_start:
            original(thread)
            wait_until(ran.is_set, "the new thread ran its task")
        raise KeyboardInterrupt

    monkeypatch.setattr(threading.Thread, "start", start)
    with pytest.raises(KeyboardInterrupt):
        pool.submit(ran.set)
    monkeypatch.undo()
    assert pool.wait(TIMEOUT)  # counted once, whoever ended it
    assert ran.is_set() == after_start
    wait_until(lambda: idle(pool), "the pool is idle")


def test_bad_settings_are_refused_naming_the_value() -> None:
    with pytest.raises(ValueError, match=r"maxjobs.*-1"):
        Pool(limit=-1)
    with pytest.raises(TypeError, match=r"maxthreads.*True"):
        Pool(maxthreads=True)
    pool = Pool()
    with pytest.raises(ValueError, match=r"maxthreads.*0"):
        pool.maxthreads = 0


def test_an_unbounded_pool_never_blocks_submit() -> None:
    pool = Pool(limit=1, maxthreads=1, bounded=False)
    gates = Gates()
    tasks = [gates.task(i) for i in range(50)]
    for task in tasks:  # one thread, one slot: all but one wait in the FIFO, none blocks here
        pool.submit(task)
    snap = pool.snapshot()
    assert (snap.threads, snap.room_waiters) == (1, 0)
    assert snap.queued >= 49
    gates.open()
    assert pool.wait(TIMEOUT)
    assert gates.started == list(range(50))


def test_each_ended_task_wakes_the_callers_it_made_room_for() -> None:
    # A task's end wakes a blocked submit() and a waiting acquire_slot() (and wakes
    # nobody when nobody waits: the pool skips that notify).
    pool = Pool(limit=1, maxthreads=1)
    gates = Gates()
    pool.submit(gates.task(0))  # holds the only thread and the only slot
    submitted = threading.Thread(target=lambda: pool.submit(gates.task(1)))
    submitted.start()
    wait_until(lambda: pool.snapshot().room_waiters == 1, "submit() blocked on maxthreads")
    slots: list[bool] = []
    taker = threading.Thread(target=lambda: slots.append(pool.acquire_slot(lambda: False)))
    taker.start()
    wait_until(lambda: pool.snapshot().slot_waiters == 1, "acquire_slot() waits for the slot")
    gates.open(0)
    submitted.join(TIMEOUT)
    assert not submitted.is_alive()
    wait_until(lambda: gates.started == [0, 1] or slots == [True], "the freed slot was taken")
    gates.open(1)
    if slots != [True]:  # task 1 took the slot first: its end hands it to the waiter
        taker.join(TIMEOUT)
    assert slots == [True]
    pool.release_slot()
    assert pool.wait(TIMEOUT)
    taker.join(TIMEOUT)
    assert gates.started == [0, 1]
    assert idle(pool)
