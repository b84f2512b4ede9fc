"""The scheduling engine: a FIFO of tasks, `maxjobs` slots, at most `maxthreads` reused threads.

The pool runs tasks (plain callables); it knows nothing of jobs or runners.

- A task submitted with `submit()` waits in a FIFO until a slot is free (the slot
  limit is the runner's `maxjobs`; 0 means none) and a thread may run it. The slot
  is held while the task runs. A thread that ends a task takes the next ready one
  instead of ending; with none ready it stays idle for up to `linger` seconds (1 s
  by default) and takes the next task that becomes ready meanwhile, so a burst of
  submissions that empties the FIFO for a moment reuses its threads instead of
  starting new ones. A ready task goes to an idle thread (the one idle for the
  shortest time, so the others time out and end) before a new thread is started.
  At most `maxthreads` threads are alive, idle ones included; a thread that finds
  more alive (`maxthreads` was lowered) ends instead of taking a task. At most
  `maxthreads` tasks are taken at once (queued or in a busy thread): past that,
  `submit()` blocks until one ends.
- Idle threads end at once when the pool is closed, and at the interpreter's exit
  before it joins non-daemon threads (so they never hold the exit up); a closed
  pool's threads still run what is left in its FIFO, then end without idling.
- A task that no longer needs a slot (its job was cancelled) is `expedite()`d: it
  leaves the FIFO and runs on the next free thread without waiting for a slot.
- Calls outside a pool thread that must respect the limit take a slot with
  `acquire_slot()` (a serial runner's `call`, or a user calling `call` directly).
- `run_here()` runs a task in the caller's thread, counted as a task (what `wait()`
  waits for). A task run with `slot_exempt` neither takes nor waits for a slot, yet
  `holds_slot()` is true in it, so limited code inside does not take one either.
- A running task may `detach()`: its thread moves on, and the task's slot and count
  stay taken until the returned `Lease` is released, from any thread. That is how
  a job in a scheduler's queue holds a slot but no thread. A slot-exempt task's
  Lease frees no slot.

Locking: one lock, `Pool._lock`, guards every field; the conditions (also each idle
thread's own) share it. It is the innermost lock of runner_core: nothing else is
locked, no task or callback runs and no thread is started while it is held. An idle
thread waits on its condition, which lets the lock go while it waits.

A Ctrl-C can land in `Thread.start()` after the new thread is already running (the
main thread waits there for the thread to come up). The starter then cannot tell
whether the thread will run the task. So a new thread claims its first task under
the lock before touching it, and a starter that got an exception abandons the claim
under the same lock: exactly one of them runs the task and does its bookkeeping.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import weakref
from collections import deque
from typing import TYPE_CHECKING, Callable, NamedTuple, Optional

from runner_core._interrupts import wait_slice
from runner_core._log import logger

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Lease", "Pool", "PoolClosed", "PoolSnapshot", "Task"]


class PoolClosed(Exception):
    """The pool takes no new tasks (it was closed)."""


class PoolSnapshot(NamedTuple):
    """The pool's counters at one moment, read under its lock (what tests look at)."""

    queued: int  # tasks in the FIFO, waiting for a slot or a thread
    expedited: int  # tasks that need no slot, waiting for a thread
    slots: int  # slots taken: by running or detached tasks and by `acquire_slot()` callers
    threads: int  # pool threads alive, idle ones included
    tasks: int  # tasks not ended yet: queued, running, detached (what `wait()` waits for)
    detached: int  # tasks that left their thread and hold a `Lease`
    slot_waiters: int  # `acquire_slot()` callers waiting for a slot
    room_waiters: int  # `submit()` callers blocked on `maxthreads`
    closed: bool
    idle: int  # pool threads alive with no task, waiting up to `linger` s for one


class Task:
    """A submitted callable; the handle `expedite()` takes."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], object]) -> None:
        """Wrap `fn`, which the pool calls with no arguments, once."""
        self.fn = fn


# States of a _Claim: the first task of a new thread belongs to the thread once
# CLAIMED, and stays with its starter if the starter marked it ABANDONED first.
_UNCLAIMED, _CLAIMED, _ABANDONED = 0, 1, 2


class _Claim:
    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = _UNCLAIMED


class _Here(threading.local):
    """What the current thread runs: its task, whether it holds a slot or is exempt, if detached."""

    task: Optional[Task] = None
    slotted = False
    exempt = False
    detached = False


class _Idle:
    """An idle pool thread: `_dispatch` hands it a task in `work` and wakes it on `cond`."""

    __slots__ = ("cond", "work")

    def __init__(self, lock: threading.Lock) -> None:
        self.cond = threading.Condition(lock)
        self.work: Optional[tuple[Task, bool]] = None


class Lease:
    """The slot and count of a detached task; `release()` ends the task (once, from any thread)."""

    __slots__ = ("_pool", "_released", "_slotted")

    def __init__(self, pool: Pool, slotted: bool) -> None:
        """Hold a detached task of `pool` (taken by `Pool.detach()`)."""
        self._pool = pool
        self._slotted = slotted
        self._released = False

    def release(self) -> None:
        """End the detached task: free its slot and let the next task in. Idempotent."""
        self._pool._release_lease(self)


def _check_seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{name} must be a number of seconds >= 0, not {type(value).__name__} {value!r}"
        )
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


def _check_count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= {minimum}, not {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


class Pool:
    """A FIFO of tasks run on reused threads under a slot limit; see the module docstring.

    Args:
        limit: the most slots taken at once; 0 for no limit.
        maxthreads: the most threads alive, and tasks taken, at once.
        thread_name: the name of the pool's threads.
        daemon: called at each thread start; the thread is a daemon when it returns true.
        bounded: `submit()` blocks past `maxthreads` tasks taken (queued or in a busy thread);
            False lets the FIFO grow without bound (tasks that detach need no thread for
            long, so the queue, not the threads, is what holds the jobs).
        linger: seconds a thread with no task ready waits for one before it ends; 0
            ends it at once.

    Raises:
        TypeError, ValueError: limit or maxthreads is not an int >= 0 (>= 1), or linger
            is not a finite number >= 0.
    """

    def __init__(
        self,
        limit: int = 0,
        maxthreads: int = 256,
        *,
        thread_name: str = "runner:pool",
        daemon: Callable[[], bool] = lambda: True,
        bounded: bool = True,
        linger: float = 1.0,
    ) -> None:
        """Create an empty pool; no thread starts before the first task."""
        self._linger = _check_seconds("linger", linger)
        self._lock = threading.Lock()
        self._slot_free_cond = threading.Condition(self._lock)  # acquire_slot() waiters
        self._room_cond = threading.Condition(self._lock)  # submit() waiters on maxthreads
        self._idle_cond = threading.Condition(self._lock)  # wait() callers
        self._limit = _check_count("maxjobs", limit, 0)
        self._maxthreads = _check_count("maxthreads", maxthreads, 1)
        self._queue: deque[Task] = deque()
        self._expedited: deque[Task] = deque()
        # Idle threads, the one idle for the shortest time last (`_dispatch` pops it).
        self._idle: dict[_Idle, None] = {}
        self._slots = 0
        self._threads = 0
        self._tasks = 0
        self._detached = 0
        self._slot_waiters = 0
        self._room_waiters = 0
        self._closed = False
        self._here = _Here()
        self._thread_name = thread_name
        self._daemon = daemon
        self._bounded = bounded
        _live_pools.add(self)

    # --- settings --------------------------------------------------------------------

    @property
    def limit(self) -> int:
        """The most slots taken at once, 0 for no limit (settable; applies at once)."""
        return self._limit

    @limit.setter
    def limit(self, value: int) -> None:
        value = _check_count("maxjobs", value, 0)
        with self._lock:
            self._limit = value
            self._slot_free_cond.notify_all()
            starts = self._dispatch()
        self._start_threads(starts)

    @property
    def maxthreads(self) -> int:
        """The most threads alive and tasks taken at once (settable; applies at once)."""
        return self._maxthreads

    @maxthreads.setter
    def maxthreads(self, value: int) -> None:
        value = _check_count("maxthreads", value, 1)
        with self._lock:
            self._maxthreads = value
            self._room_cond.notify_all()
            if self._threads > value:
                self._wake_idle()  # those over the new cap end
            starts = self._dispatch()
        self._start_threads(starts)

    @property
    def bounded(self) -> bool:
        """Whether `submit()` blocks past `maxthreads` tasks taken (settable)."""
        return self._bounded

    @bounded.setter
    def bounded(self, value: bool) -> None:
        with self._lock:
            self._bounded = bool(value)
            self._room_cond.notify_all()

    def snapshot(self) -> PoolSnapshot:
        """Return the counters, all read at one moment."""
        with self._lock:
            return PoolSnapshot(
                queued=len(self._queue),
                expedited=len(self._expedited),
                slots=self._slots,
                threads=self._threads,
                tasks=self._tasks,
                detached=self._detached,
                slot_waiters=self._slot_waiters,
                room_waiters=self._room_waiters,
                closed=self._closed,
                idle=len(self._idle),
            )

    # --- running tasks ---------------------------------------------------------------

    def run_here(self, fn: Callable[[], object], *, slot_exempt: bool = False) -> None:
        """Run `fn` now in the caller's thread, counted as a task until it ends.

        No slot is taken for the task. With `slot_exempt`, `holds_slot()` is true inside
        it (so code that takes a slot unless it holds one neither takes nor waits for
        one), and a Lease of the task detached frees none.

        Raises:
            PoolClosed: the pool is closed.
        """
        with self._lock:
            if self._closed:
                raise PoolClosed
            self._tasks += 1
        here = self._here
        saved = (here.task, here.slotted, here.exempt, here.detached)
        here.task, here.slotted, here.exempt, here.detached = Task(fn), False, slot_exempt, False
        try:
            fn()
        finally:
            detached = here.detached
            here.task, here.slotted, here.exempt, here.detached = saved
            if not detached:
                with self._lock:
                    self._end_task()

    def submit(self, fn: Callable[[], object]) -> Task:
        """Queue `fn` to run in a pool thread; block while `maxthreads` tasks are taken.

        When this raises, the task either never counted, or was dropped and counted
        as ended, or (a Ctrl-C while its thread was starting) runs in its thread.

        Returns:
            The task's handle (for `expedite`).

        Raises:
            PoolClosed: the pool is closed (also when it closes while this waits).
        """
        task = Task(fn)
        with self._lock:
            if self._closed:
                raise PoolClosed
            self._tasks += 1
            try:
                while self._bounded and self._taken() >= self._maxthreads:
                    self._room_waiters += 1
                    try:
                        self._room_cond.wait(wait_slice(None))
                    finally:
                        self._room_waiters -= 1
                    if self._closed:
                        raise PoolClosed
            except BaseException:
                self._room_cond.notify()  # pass on a notify this caller may have used up
                self._end_task()
                raise
            self._queue.append(task)
            starts = self._dispatch()
        self._start_threads(starts, own=task)
        return task

    def resubmit(self, fn: Callable[[], object]) -> Task:
        """Queue `fn` for a task the pool holds already (a job's next attempt); never blocks.

        Unlike `submit`, it does not wait for room and is taken when the pool is closed
        (the job was taken before the close; `wait()` waits for it). The caller then
        ends the task it replaces (`Lease.release()`), so the count never drops to zero
        in between.

        Returns:
            The task's handle (for `expedite`).
        """
        task = Task(fn)
        with self._lock:
            self._tasks += 1
            self._queue.append(task)
            starts = self._dispatch()
        self._start_threads(starts, own=task)
        return task

    def expedite(self, task: Task) -> None:
        """Let a queued task run on the next free thread without waiting for a slot.

        Does nothing to a task that has left the queue. Returns at once.
        """
        with self._lock:
            try:
                self._queue.remove(task)
            except ValueError:
                return
            self._expedited.append(task)
            starts = self._dispatch()
        self._start_threads(starts)

    def expedite_all(self) -> None:
        """`expedite()` every queued task, in their order."""
        with self._lock:
            self._expedited.extend(self._queue)
            self._queue.clear()
            self._slot_free_cond.notify_all()
            starts = self._dispatch()
        self._start_threads(starts)

    def close(self) -> None:
        """Take no new tasks; `submit()` callers blocked on `maxthreads` get PoolClosed.

        Idle threads end now; busy ones run what is left in the FIFO, then end.
        """
        with self._lock:
            self._closed = True
            self._room_cond.notify_all()
            self._wake_idle()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait until every task has ended; return False if `timeout` seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._tasks:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle_cond.wait(wait_slice(remaining))
        return True

    # --- slots for calls outside the pool's threads --------------------------------------

    def holds_slot(self) -> bool:
        """True when the current thread runs a pool task that holds a slot, or is slot-exempt."""
        here = self._here
        return here.slotted or here.exempt

    def acquire_slot(self, stop: Callable[[], bool]) -> bool:
        """Take a slot; wait for one while `stop()` is false. False once `stop()` is true.

        `stop` is called under the pool's lock: it must only read flags.
        """
        with self._lock:
            while True:
                if stop():
                    # this waiter may have used up a notify meant for a slot: pass it on
                    self._slot_free_cond.notify()
                    return False
                if self._slot_free():
                    self._slots += 1
                    return True
                self._slot_waiters += 1
                try:
                    self._slot_free_cond.wait(wait_slice(None))
                finally:
                    self._slot_waiters -= 1

    def release_slot(self) -> None:
        """Give back a slot taken with `acquire_slot()`."""
        with self._lock:
            self._free_slot()
            starts = self._dispatch()
        self._start_threads(starts)

    def wake_slot_waiters(self) -> None:
        """Make every `acquire_slot()` caller re-check its `stop()` now."""
        with self._lock:
            self._slot_free_cond.notify_all()

    def detach(self) -> Lease:
        """Detach the task running in this thread: it ends when the Lease is released.

        The thread is free for the next task once the task's callable returns; the
        slot the task holds (if any) stays taken, and `wait()` keeps waiting for the
        task, until `Lease.release()`.

        Raises:
            RuntimeError: no task of this pool runs in this thread, or it is detached already.
        """
        here = self._here
        if here.task is None:
            raise RuntimeError("detach() called outside a task of this pool")
        if here.detached:
            raise RuntimeError("the task of this thread is detached already")
        here.detached = True
        with self._lock:
            self._detached += 1
        return Lease(self, here.slotted)

    # --- the bookkeeping (lock held in every method below, unless said otherwise) ------

    def _taken(self) -> int:
        """Tasks taken: in the FIFO, or in a thread (alive and not idle)."""
        return self._threads - len(self._idle) + len(self._queue) + len(self._expedited)

    def _wake_idle(self) -> None:
        """Make every idle thread look again: it takes a task, or ends if it should."""
        for waiter in self._idle:
            waiter.cond.notify()

    def _slot_free(self) -> bool:
        return self._limit <= 0 or self._slots < self._limit

    def _free_slot(self) -> None:
        self._slots -= 1
        if self._slot_waiters:  # a notify costs a deque even with no one to wake
            self._slot_free_cond.notify()

    def _end_task(self) -> None:
        self._tasks -= 1
        if not self._tasks:
            self._idle_cond.notify_all()

    def _take_ready(self) -> Optional[tuple[Task, bool]]:
        """The next task that may start now, with whether it took a slot; None if none may."""
        if self._expedited:
            return self._expedited.popleft(), False
        if self._queue and self._slot_free():
            self._slots += 1
            return self._queue.popleft(), True
        return None

    def _dispatch(self) -> list[tuple[Task, bool]]:
        """Hand ready tasks to idle threads, then to new threads; return what the caller starts."""
        idle = self._idle
        while idle and self._threads <= self._maxthreads:
            ready = self._take_ready()
            if ready is None:
                return []
            waiter, _ = idle.popitem()  # the thread idle for the shortest time
            waiter.work = ready
            waiter.cond.notify()
        starts: list[tuple[Task, bool]] = []
        while self._threads < self._maxthreads:
            ready = self._take_ready()
            if ready is None:
                break
            starts.append(ready)
            self._threads += 1
        return starts

    def _after_task(
        self, slotted: bool, detached: bool, waiter: _Idle
    ) -> Optional[tuple[Task, bool]]:
        """A thread ended a task (lock not held): book it; return its next task, or None."""
        with self._lock:
            if not detached:
                if slotted:
                    self._free_slot()
                self._end_task()
            if self._room_waiters:  # one task fewer taken: a blocked submit() may go on
                self._room_cond.notify()
            return self._next_task(waiter)

    def _next_task(self, waiter: _Idle) -> Optional[tuple[Task, bool]]:
        """The thread's next task, waiting idle up to `linger` s for one; None: the thread ends.

        A thread over the `maxthreads` cap ends; one of a closed pool does not wait.
        """
        deadline: Optional[float] = None
        while self._threads <= self._maxthreads:
            ready = self._take_ready()
            if ready is not None:
                return ready
            if self._closed or self._linger <= 0:
                break
            now = time.monotonic()
            if deadline is None:
                deadline = now + self._linger
            elif now >= deadline:
                break
            self._idle[waiter] = None
            waiter.cond.wait(deadline - now)
            work, waiter.work = waiter.work, None
            if work is not None:  # `_dispatch` took this thread off the idle list
                return work
            self._idle.pop(waiter, None)
        self._threads -= 1
        return None

    def _stop_lingering(self) -> None:
        """Lock not held: idle threads end now and no thread idles from here on."""
        with self._lock:
            self._linger = 0.0
            self._wake_idle()

    def _release_lease(self, lease: Lease) -> None:
        """Lock not held."""
        with self._lock:
            if lease._released:
                return
            lease._released = True
            self._detached -= 1
            if lease._slotted:
                self._free_slot()
            self._end_task()
            starts = self._dispatch()
        self._start_threads(starts)

    # --- threads (lock not held) -------------------------------------------------------

    def _worker(self, task: Task, slotted: bool, claim: _Claim) -> None:
        """Body of a pool thread: run tasks until none is ready for `linger` seconds."""
        with self._lock:
            if claim.state == _ABANDONED:
                return
            claim.state = _CLAIMED
        here = self._here
        waiter = _Idle(self._lock)
        while True:
            here.task, here.slotted, here.detached = task, slotted, False
            try:
                task.fn()
            except BaseException:
                logger().exception("unexpected error in a task of %s", self._thread_name)
            finally:
                detached = here.detached
                here.task, here.slotted, here.detached = None, False, False
                nxt = self._after_task(slotted, detached, waiter)
            if nxt is None:
                return
            task, slotted = nxt

    def _start_threads(
        self, starts: Sequence[tuple[Task, bool]], own: Optional[Task] = None
    ) -> None:
        """Start a thread for each task `_dispatch` took.

        If a start fails, the tasks not yet in a thread go back to their queue, except
        `own` (the caller's task, from `submit`): unless a thread runs it already, it
        is dropped and counted as ended, and the error propagates to the caller. A
        failure with no `own` is logged; a KeyboardInterrupt or SystemExit always
        propagates.
        """
        for i, (task, slotted) in enumerate(starts):
            claim = _Claim()
            try:
                threading.Thread(
                    target=self._worker,
                    args=(task, slotted, claim),
                    name=self._thread_name,
                    daemon=bool(self._daemon()),
                ).start()
            except BaseException as exc:
                self._undo_starts(starts, i, claim, own)
                if own is None and isinstance(exc, Exception):
                    logger().exception("could not start a thread of %s", self._thread_name)
                    return
                raise

    def _undo_starts(
        self, starts: Sequence[tuple[Task, bool]], failed: int, claim: _Claim, own: Optional[Task]
    ) -> None:
        """Give back what `_dispatch` took for the tasks of `starts` that got no thread."""
        with self._lock:
            if claim.state == _CLAIMED:  # start() raised after its thread took the task
                failed += 1
            else:
                claim.state = _ABANDONED
            left = starts[failed:]
            for task, slotted in reversed(left):  # back in their order
                self._threads -= 1
                if slotted:
                    self._free_slot()
                if task is not own:
                    (self._queue if slotted else self._expedited).appendleft(task)
            if own is not None:
                dropped = any(t is own for t, _ in left)
                for waiting in (self._queue, self._expedited):
                    if own in waiting:
                        waiting.remove(own)
                        dropped = True
                if dropped:
                    self._end_task()
            self._room_cond.notify()
            self._wake_idle()  # an idle thread takes what went back to the queue


# Every pool, for the exit hook below.
_live_pools: weakref.WeakSet[Pool] = weakref.WeakSet()


def _end_lingering() -> None:
    """At the interpreter's exit, before it joins non-daemon threads: idle threads end now."""
    for pool in list(_live_pools):
        pool._stop_lingering()


# The hook concurrent.futures uses for the same purpose; without it (another Python),
# an idle non-daemon thread holds the exit up for `linger` seconds at most.
_register_atexit: Optional[Callable[[Callable[[], None]], None]] = getattr(
    threading, "_register_atexit", None
)
if _register_atexit is not None:
    with contextlib.suppress(RuntimeError):  # imported while the interpreter exits
        _register_atexit(_end_lingering)
