"""The scheduling engine (runner_core._pool) driven with plain tasks, read through snapshot()."""

from __future__ import annotations

import logging
import subprocess
import sys
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


def counting_daemon(starts: list[int]) -> Callable[[], bool]:
    """A pool's `daemon` callable (called at each thread start) that counts the starts."""

    def daemon() -> bool:
        starts.append(1)
        return True

    return daemon


def close_and_settle(pool: Pool) -> None:
    """Close the pool (its idle threads end at once) and wait until it holds nothing."""
    pool.close()
    wait_until(lambda: idle(pool), "the pool is idle")


def test_fifo_order_on_one_reused_thread() -> None:
    pool = Pool(limit=1, linger=TIMEOUT)
    order: list[int] = []
    threads: set[int] = set()
    for i in range(20):
        pool.submit(lambda i=i: (order.append(i), threads.add(threading.get_ident())))
    assert pool.wait(TIMEOUT)
    assert order == list(range(20))
    # a thread that ends a task takes the next one, or waits idle for it: one thread
    assert len(threads) == 1
    close_and_settle(pool)


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
    close_and_settle(pool)


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
    close_and_settle(pool)


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
    close_and_settle(pool)


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
    close_and_settle(pool)
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
    close_and_settle(pool)


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
    close_and_settle(pool)


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
    close_and_settle(pool)


# --- idle threads (linger) ---------------------------------------------------------------


def test_an_idle_thread_takes_the_next_task_instead_of_a_new_thread() -> None:
    starts: list[int] = []
    pool = Pool(daemon=counting_daemon(starts), linger=TIMEOUT)
    ran_on: list[int] = []
    pool.submit(lambda: ran_on.append(threading.get_ident()))
    assert pool.wait(TIMEOUT)
    wait_until(lambda: pool.snapshot().idle == 1, "the thread waits idle for a task")
    snap = pool.snapshot()
    assert (snap.threads, snap.tasks) == (1, 0)
    pool.submit(lambda: ran_on.append(threading.get_ident()))
    assert pool.wait(TIMEOUT)
    assert len(starts) == 1
    assert ran_on[0] == ran_on[1]
    close_and_settle(pool)


def test_an_idle_thread_ends_after_linger_or_at_once_with_linger_zero() -> None:
    for linger in (0.0, 0.05):
        pool = Pool(linger=linger)
        pool.submit(lambda: None)
        assert pool.wait(TIMEOUT)
        wait_until(lambda pool=pool: idle(pool), "the thread has ended by itself")
        assert not pool.snapshot().closed


def test_idle_threads_do_not_count_as_taken_tasks() -> None:
    pool = Pool(maxthreads=2, linger=TIMEOUT)
    gates = Gates()
    for i in range(2):
        pool.submit(gates.task(i))
    wait_until(lambda: gates.running == 2, "two tasks run")
    gates.open(0, 1)
    assert pool.wait(TIMEOUT)
    wait_until(lambda: pool.snapshot().idle == 2, "both threads wait idle")
    # two idle threads: two more tasks take them without blocking, a third blocks
    pool.submit(gates.task(2))
    pool.submit(gates.task(3))
    wait_until(lambda: gates.running == 2, "the idle threads run the new tasks")
    snap = pool.snapshot()
    assert (snap.threads, snap.idle, snap.room_waiters) == (2, 0, 0)
    third = threading.Thread(target=lambda: pool.submit(gates.task(4)))
    third.start()
    wait_until(lambda: pool.snapshot().room_waiters == 1, "the fifth submit waits for room")
    gates.open()
    third.join(TIMEOUT)
    assert pool.wait(TIMEOUT)
    assert sorted(gates.started) == [0, 1, 2, 3, 4]
    close_and_settle(pool)


def test_lowering_maxthreads_ends_the_idle_threads_over_it() -> None:
    pool = Pool(maxthreads=3, linger=TIMEOUT)
    gates = Gates()
    for i in range(3):
        pool.submit(gates.task(i))
    wait_until(lambda: gates.running == 3, "three tasks run")
    gates.open()
    assert pool.wait(TIMEOUT)
    wait_until(lambda: pool.snapshot().idle == 3, "three idle threads")
    pool.maxthreads = 1
    wait_until(lambda: pool.snapshot().threads == 1, "the two over the cap have ended")
    later = [gates.task(i) for i in range(3, 6)]
    gates.open()
    for task in later:
        pool.submit(task)
    assert pool.wait(TIMEOUT)
    assert gates.started[3:] == [3, 4, 5]  # one thread: first come, first served
    assert pool.snapshot().threads == 1
    close_and_settle(pool)


def test_close_ends_a_lingering_thread_at_once() -> None:
    pool = Pool(linger=10 * TIMEOUT)
    threads: list[threading.Thread] = []
    pool.submit(lambda: threads.append(threading.current_thread()))
    assert pool.wait(TIMEOUT)
    wait_until(lambda: pool.snapshot().idle == 1, "the thread waits idle")
    pool.close()
    threads[0].join(TIMEOUT)
    assert not threads[0].is_alive()
    assert idle(pool)


def test_a_closed_pools_threads_run_what_is_left_then_end_without_idling() -> None:
    pool = Pool(limit=1, linger=10 * TIMEOUT)
    gates = Gates()
    for i in range(3):
        pool.submit(gates.task(i))
    wait_until(lambda: gates.started == [0], "the first task holds the only slot")
    pool.close()
    gates.open()
    assert pool.wait(TIMEOUT)
    assert gates.started == [0, 1, 2]
    wait_until(lambda: idle(pool), "the thread has ended")


def test_a_lingering_non_daemon_thread_does_not_hold_the_interpreters_exit() -> None:
    script = (
        "from runner_core._pool import Pool\n"
        "pool = Pool(daemon=lambda: False, linger=3600)\n"
        "pool.submit(lambda: None)\n"
        "assert pool.wait(30)\n"
    )
    # without the exit hook the interpreter would wait an hour for the idle thread
    subprocess.run([sys.executable, "-c", script], check=True, timeout=TIMEOUT)


def test_bad_linger_is_refused_naming_the_value() -> None:
    with pytest.raises(ValueError, match=r"linger.*-1"):
        Pool(linger=-1)
    with pytest.raises(ValueError, match=r"linger.*inf"):
        Pool(linger=float("inf"))
    with pytest.raises(TypeError, match=r"linger.*'1'"):
        Pool(linger="1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"linger.*True"):
        Pool(linger=True)


@settings(deadline=None, max_examples=60)
@given(
    limit=st.integers(0, 3),
    maxthreads=st.integers(1, 4),
    submitters=st.integers(1, 3),
    bursts=st.lists(st.integers(1, 12), min_size=1, max_size=8),
)
def test_bursts_of_short_tasks_reuse_threads_and_run_each_task_once(
    limit: int, maxthreads: int, submitters: int, bursts: list[int]
) -> None:
    # Law: with idle threads kept (a long linger), bursts from any number of submitters,
    # each burst after the last has ended, start at most maxthreads threads in all; and
    # every task runs exactly once, whether it ends in its thread or through a Lease.
    starts: list[int] = []
    pool = Pool(
        limit=limit,
        maxthreads=maxthreads,
        daemon=counting_daemon(starts),
        linger=TIMEOUT,
    )
    lock = threading.Lock()
    ran: list[tuple[int, int]] = []

    def task(who: int, i: int) -> Callable[[], None]:
        def run() -> None:
            lease = pool.detach() if i % 3 == 0 else None
            with lock:
                ran.append((who, i))
            if lease is not None:
                lease.release()

        return run

    def submit_bursts(who: int) -> None:
        i = 0
        for size in bursts:
            for _ in range(size):
                pool.submit(task(who, i))
                i += 1
            if submitters == 1:
                assert pool.wait(TIMEOUT)

    workers = [threading.Thread(target=submit_bursts, args=(w,)) for w in range(submitters)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(TIMEOUT)
    assert pool.wait(TIMEOUT)
    total = sum(bursts)
    assert sorted(ran) == [(w, i) for w in range(submitters) for i in range(total)]
    assert len(starts) <= maxthreads
    close_and_settle(pool)


def test_a_slot_exempt_task_neither_takes_nor_frees_a_slot() -> None:
    pool = Pool(limit=1)
    assert pool.acquire_slot(lambda: False)  # the only slot is taken
    seen: list[tuple[bool, int, int]] = []
    leases: list[Lease] = []

    def exempt() -> None:
        snap = pool.snapshot()
        seen.append((pool.holds_slot(), snap.slots, snap.tasks))
        leases.append(pool.detach())

    pool.run_here(exempt, slot_exempt=True)  # runs although no slot is free
    assert seen == [(True, 1, 1)]
    assert not pool.holds_slot()
    snap = pool.snapshot()
    assert (snap.tasks, snap.detached, snap.slots) == (1, 1, 1)
    assert not pool.wait(0.01)  # the detached task still counts
    leases[0].release()
    assert pool.wait(TIMEOUT)
    assert pool.snapshot().slots == 1  # the Lease freed no slot: the acquire_slot one stays
    pool.release_slot()
    assert idle(pool)
