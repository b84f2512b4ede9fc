"""The Worker: one thread running callables when they are due, started on demand."""

from __future__ import annotations

import threading
import time

from runner_grid._worker import Worker

TIMEOUT = 30.0


def test_callables_run_in_due_order_and_later_ones_wait() -> None:
    worker = Worker("test-worker", idle=0.2)
    done = threading.Event()
    order: list[str] = []
    worker.put(lambda: order.append("later"), after=0.2)
    worker.put(lambda: order.append("first"))
    worker.put(lambda: order.append("second"))
    worker.put(done.set, after=0.3)
    assert done.wait(TIMEOUT)
    assert order == ["first", "second", "later"]


def test_hurry_makes_later_work_due_now() -> None:
    worker = Worker("test-worker", idle=0.2)
    done = threading.Event()
    start = time.monotonic()
    worker.put(done.set, after=60)
    assert worker.pending() == 1
    worker.hurry()
    assert done.wait(TIMEOUT)
    assert time.monotonic() - start < 30


def test_the_thread_ends_when_idle_and_starts_again() -> None:
    worker = Worker("test-worker-idle", idle=0.05)
    first = threading.Event()
    worker.put(first.set)
    assert first.wait(TIMEOUT)
    deadline = time.monotonic() + TIMEOUT
    while any(t.name == "test-worker-idle" for t in threading.enumerate()):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    again = threading.Event()
    worker.put(again.set)
    assert again.wait(TIMEOUT)


def test_a_raising_callable_does_not_stop_the_worker() -> None:
    worker = Worker("test-worker", idle=0.2)
    done = threading.Event()

    def boom() -> None:
        raise RuntimeError("task exploded")

    worker.put(boom)
    worker.put(done.set)
    assert done.wait(TIMEOUT)
