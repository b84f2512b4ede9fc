"""JobRunner, its metaclass _MetaRunner and the decorators _limit and _in_limited_thread."""

from __future__ import annotations

import functools
import sys
import threading
import time
import types
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

from runner_core._config import config
from runner_core._jobs import JobError, JobStatus, _current, _logger, _state_lock
from runner_core._waiting import interrupt_deferred, wait_slice

if TYPE_CHECKING:
    from subprocess import Popen

    from typing_extensions import Concatenate, ParamSpec

    from runner_core._jobs import Results, SingleJob
    from runner_core._manager import JobManager
    from runner_settings import Settings

    P = ParamSpec("P")
    _Task = tuple[Callable[..., None], tuple[Any, ...], dict[str, Any]]

T = TypeVar("T")
R = TypeVar("R", bound="JobRunner")


class _NotStarted(Exception):
    """The job was cancelled while it waited for its maxjobs slot."""


def _limit(func: Callable[Concatenate[R, P], T]) -> Callable[Concatenate[R, P], T]:
    """Decorate a runner method so that at most `maxjobs` calls run at once.

    The slot is counted per thread: a `call` that calls `super().call()` (itself
    limited) takes one slot, not two. A job thread of a parallel runner already
    holds the slot its job was given (see `_in_limited_thread`) and uses that one.
    A job whose runner or which itself was cancelled while it waited for a slot
    does not run (its `call` raises an internal exception that ends the job
    CANCELLED). On entering, the job of the calling thread becomes RUNNING.
    """
    if getattr(func, "__runner_limited__", False):
        return func

    @functools.wraps(func)
    def limited(self: R, /, *args: P.args, **kwargs: P.kwargs) -> T:
        tls = self._tls
        depth = getattr(tls, "depth", 0)
        if depth:
            tls.depth = depth + 1
            try:
                return func(self, *args, **kwargs)
            finally:
                tls.depth = depth
        results: Optional[Results] = getattr(_current, "results", None)
        if results is not None and results._runner is not self:
            results = None

        def stop() -> bool:
            return self._cancelled or (results is not None and results._cancel_requested)

        reserved = getattr(tls, "reserved", False)
        if reserved:
            if stop():
                raise _NotStarted
        elif not self._acquire_slot(stop):
            raise _NotStarted
        tls.depth = 1
        try:
            if results is not None:
                results._mark_running()
            return func(self, *args, **kwargs)
        finally:
            tls.depth = 0
            if not reserved:
                self._release_slot()

    limited.__runner_limited__ = True  # type: ignore[attr-defined]
    return limited


# States of a _Claim: the first task of a new job thread belongs to the thread once
# CLAIMED, and stays with its starter if the starter marked it ABANDONED first.
_UNCLAIMED, _CLAIMED, _ABANDONED = 0, 1, 2


class _Claim:
    """Who owns the first task of a job thread being started: the thread or its starter.

    `Thread.start()` can raise after the new thread is already running (a Ctrl-C
    lands in the main thread while `start()` waits for the thread to come up). The
    starter then cannot tell from outside whether the thread will run the task. So
    the thread claims its task under the runner's lock before touching it, and a
    starter that got an exception abandons the claim under the same lock: exactly
    one of them runs the task and does its bookkeeping.
    """

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = _UNCLAIMED


def _thread_main(runner: JobRunner, task: _Task, reserved: bool, claim: _Claim) -> None:
    """Body of a job thread: run tasks from the runner's queue until none is ready.

    `reserved` tells whether the task comes with a maxjobs slot taken for it (it
    does unless the job was cancelled before it got one). The thread first claims
    its task (see `_Claim`) and ends at once if its starter gave up on it.
    """
    with runner._cond:
        if claim.state == _ABANDONED:
            return
        claim.state = _CLAIMED
    tls = runner._tls
    while True:
        func, args, kwargs = task
        tls.reserved = reserved
        try:
            func(runner, *args, **kwargs)
        except BaseException:
            _logger().exception("unexpected error in a job thread of %r", runner)
        finally:
            tls.reserved = False
            try:
                nxt = runner._next_task(reserved)
            finally:
                runner._task_end()
        if nxt is None:
            return
        task, reserved = nxt


def _in_limited_thread(
    func: Callable[Concatenate[R, P], None],
) -> Callable[Concatenate[R, P], None]:
    """Decorate a runner method to run in a job thread when the runner is parallel.

    A parallel runner puts the call in its queue (FIFO) and returns at once. A job
    thread takes it when a `maxjobs` slot is free, holding that slot for the whole
    task; a thread that finishes a task takes the next ready one instead of ending,
    so threads are started only when no thread is free, and at most `maxthreads`
    are alive. At most `maxthreads` tasks are taken at once (queued or in a thread):
    past that the caller blocks until one ends. Threads are daemon threads when
    `config.daemon_threads` is true. A serial runner runs the method in the
    caller's thread. Every call counts as a task of the runner until it returns
    (what `wait()` waits for).
    """

    @functools.wraps(func)
    def threaded(self: R, /, *args: P.args, **kwargs: P.kwargs) -> None:
        self._task_begin()
        if not self._parallel:
            try:
                func(self, *args, **kwargs)
            finally:
                self._task_end()
            return
        self._enqueue((func, args, kwargs))  # on failure it ends the task itself

    return threaded


_THREAD_NAME = "runner:_run_job"


def _task_cancelled(task: _Task) -> bool:
    """True when the task is a job's (first argument a job) and that job was cancelled."""
    args = task[1]
    results = getattr(args[0], "results", None) if args else None
    return bool(getattr(results, "_cancel_requested", False))


class _MetaRunner(type):
    """Metaclass of JobRunner.

    In every class that defines `call`, wraps it with `_limit` (so a subclass's own
    `call` is limited by `maxjobs` too); refuses a subclass that defines `_run_job`.
    """

    def __new__(
        mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any
    ) -> _MetaRunner:
        """Create the class, wrapping its `call`; TypeError for a `_run_job` override."""
        if "_run_job" in namespace and any(isinstance(b, _MetaRunner) for b in bases):
            raise TypeError(
                f"{name} defines _run_job, which should not be overridden: it drives a "
                "job's whole life (prepare, call, finalize). Override call() and, for "
                "cancelling, _cancel_jobs() instead"
            )
        call = namespace.get("call")
        if isinstance(call, types.FunctionType):
            namespace["call"] = _limit(call)
        return super().__new__(mcs, name, bases, namespace, **kwargs)


def _check_count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= {minimum}, not {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


class JobRunner(metaclass=_MetaRunner):
    """Runs jobs on this machine, in the caller's thread or in job threads.

    A serial runner (parallel=False) runs each job in the thread that calls
    `job.run()`. A parallel runner queues the job and returns at once; jobs leave
    the queue first come, first served, each into a job thread when a `maxjobs`
    slot is free (0: no limit; ignored when serial), so at most `maxjobs` calls run
    at once. A job thread that ends a job takes the next ready one, so threads are
    started only when none is free, and at most `maxthreads` are alive. At most
    `maxthreads` jobs are taken at once (queued or in a thread): past that,
    `job.run()` blocks until one ends. All three may be changed at any time and
    apply to the jobs that start afterwards.

    Args:
        parallel: run the jobs in job threads, `job.run()` returning at once.
        maxjobs: the most `call`s running at once; 0 for no limit.
        maxthreads: the most job threads alive at once, and the most jobs taken at
            once (queued or running) before `job.run()` blocks.

    Raises:
        TypeError: a value of the wrong type (parallel must be a bool; maxjobs and
            maxthreads ints, not bools).
        ValueError: maxjobs < 0 or maxthreads < 1.
    """

    def __init__(self, parallel: bool = False, maxjobs: int = 0, maxthreads: int = 256) -> None:
        """Create a runner; see the class docstring."""
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._closed = False
        self._cancelled = False
        self._cond = threading.Lock()
        self._slot_waiters = threading.Condition(self._cond)  # limited calls wanting a slot
        self._room = threading.Condition(self._cond)  # callers blocked on maxthreads
        self._active = 0  # maxjobs slots taken
        self._queue: deque[_Task] = deque()  # tasks waiting for a slot, first come first
        self._free: deque[_Task] = deque()  # tasks of cancelled jobs: no slot needed
        self._alive = 0  # job threads alive
        self._tls = threading.local()
        self._procs: set[Popen[Any]] = set()
        self.parallel = parallel
        self.maxjobs = maxjobs
        self.maxthreads = maxthreads
        _register(self)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(parallel={self._parallel}, maxjobs={self._maxjobs}, "
            f"maxthreads={self._maxthreads})"
        )

    # --- limits --------------------------------------------------------------------

    @property
    def parallel(self) -> bool:
        """Run each job in its own thread (settable; applies to jobs started afterwards)."""
        return self._parallel

    @parallel.setter
    def parallel(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"parallel must be True or False, not {type(value).__name__} {value!r}")
        self._parallel = value
        if hasattr(self, "_maxthreads"):  # not while __init__ runs
            self._wake_waiters()

    @property
    def maxjobs(self) -> int:
        """The most `call`s running at once, 0 for no limit (settable)."""
        return self._maxjobs

    @maxjobs.setter
    def maxjobs(self, value: int) -> None:
        self._maxjobs = _check_count("maxjobs", value, 0)
        if hasattr(self, "_maxthreads"):  # not while __init__ runs
            self._wake_waiters()

    @property
    def maxthreads(self) -> int:
        """The most job threads alive, and jobs taken (queued or running), at once (settable)."""
        return self._maxthreads

    @maxthreads.setter
    def maxthreads(self, value: int) -> None:
        self._maxthreads = _check_count("maxthreads", value, 1)
        self._wake_waiters()

    def _job_limit(self) -> int:
        return self._maxjobs if self._parallel else 0

    # --- scheduling: slots, the queue and the job threads ----------------------------
    #
    # One lock (self._cond) guards: _active (maxjobs slots taken), _queue (tasks waiting
    # for a slot), _free (tasks of cancelled jobs: they need a thread but no slot) and
    # _alive (job threads). After every change the runner hands out what it can, so a
    # task waits in the queue only while no slot or no thread may be had.

    def _slot_free(self) -> bool:
        n = self._job_limit()
        return n <= 0 or self._active < n

    def _acquire_slot(self, stop: Callable[[], bool]) -> bool:
        """Take a slot for a limited call outside a job thread; False once stop() is true."""
        with self._cond:
            while True:
                if stop():
                    # this waiter may have used up a notify meant for a slot: pass it on
                    self._slot_waiters.notify()
                    return False
                if self._slot_free():
                    self._active += 1
                    return True
                self._slot_waiters.wait(wait_slice(None))

    def _release_slot(self) -> None:
        with self._cond:
            self._active -= 1
            self._slot_waiters.notify()
            starts = self._dispatch()
        self._start_threads(starts)

    def _take_ready(self) -> Optional[tuple[_Task, bool]]:
        """Take the next task that may start now (lock held), with whether it holds a slot.

        A cancelled job's task goes first and needs no slot; the head of the queue goes
        when a slot is free, and takes it. None when neither may start.
        """
        if self._free:
            return self._free.popleft(), False
        if self._queue and self._slot_free():
            self._active += 1
            return self._queue.popleft(), True
        return None

    def _dispatch(self) -> list[tuple[_Task, bool]]:
        """Hand ready tasks to new threads (lock held); return them to be started."""
        starts: list[tuple[_Task, bool]] = []
        while self._alive < self._maxthreads:
            ready = self._take_ready()
            if ready is None:
                break
            starts.append(ready)
            self._alive += 1
        return starts

    def _next_task(self, reserved: bool) -> Optional[tuple[_Task, bool]]:
        """A job thread ended a task: free its slot; return its next task, or None to end."""
        with self._cond:
            if reserved:
                self._active -= 1
                self._slot_waiters.notify()
            self._room.notify()  # one task fewer taken: a blocked caller may go on
            if self._alive <= self._maxthreads:
                ready = self._take_ready()
                if ready is not None:
                    return ready
            self._alive -= 1
            return None

    def _enqueue(self, task: _Task) -> None:
        """Queue a task (counted by `_task_begin`); block while `maxthreads` tasks are taken.

        When this raises, the task is either dropped and counted as ended, or (a Ctrl-C
        while its thread was starting) already running in its thread.

        Raises:
            JobError: the runner was shut down meanwhile.
        """
        with self._cond:
            try:
                while True:
                    if self._closed:
                        raise JobError(self._closed_message())
                    if self._alive + len(self._queue) + len(self._free) < self._maxthreads:
                        break
                    self._room.wait(wait_slice(None))
            except BaseException:
                self._room.notify()  # pass on a notify this caller may have used up
                self._task_end()
                raise
            # a job cancelled before it got here needs no slot
            (self._free if _task_cancelled(task) else self._queue).append(task)
            starts = self._dispatch()
        self._start_threads(starts, task)

    def _start_threads(self, starts: list[tuple[_Task, bool]], own: Optional[_Task] = None) -> None:
        """Start a thread per task (taken from the queue by `_dispatch`).

        If a start fails, the tasks not yet in a thread go back to the queue, except
        `own` (the caller's task, from `_enqueue`): unless a thread runs it already,
        it is dropped and counted as ended, and the error propagates to the caller.
        A failure with no `own` is logged; a KeyboardInterrupt or SystemExit always
        propagates.
        """
        for i, (task, reserved) in enumerate(starts):
            claim = _Claim()
            try:
                threading.Thread(
                    target=_thread_main,
                    args=(self, task, reserved, claim),
                    name=_THREAD_NAME,
                    daemon=bool(config.get("daemon_threads", True)),
                ).start()
            except BaseException as exc:
                self._undo_starts(starts, i, claim, own)
                if own is None and isinstance(exc, Exception):
                    _logger().exception("could not start a job thread of %r", self)
                    return
                raise

    def _undo_starts(
        self, starts: list[tuple[_Task, bool]], failed: int, claim: _Claim, own: Optional[_Task]
    ) -> None:
        """Give back what `_dispatch` took for the tasks of `starts` that got no thread."""
        with self._cond:
            if claim.state == _CLAIMED:  # start() raised after its thread took the task
                failed += 1
            else:
                claim.state = _ABANDONED
            left = starts[failed:]
            for task_left, reserved_left in reversed(left):  # back in their order
                self._alive -= 1
                if reserved_left:
                    self._active -= 1
                if task_left is not own:
                    (self._queue if reserved_left else self._free).appendleft(task_left)
            own_dropped = False
            if own is not None:
                own_dropped = any(t is own for t, _ in left)
                for pending in (self._queue, self._free):
                    if own in pending:
                        pending.remove(own)
                        own_dropped = True
            self._room.notify()
        if own_dropped:
            self._task_end()

    def _closed_message(self) -> str:
        return f"{self!r} has been shut down and takes no new jobs; create a new runner"

    def _wake_waiters(self) -> None:
        """Re-check every waiter after a change of limits or a cancellation.

        Tasks of cancelled jobs (all of them once the runner is cancelled) leave the
        queue for `_free`: they get a thread without waiting for a slot, and end
        CANCELLED at once.
        """
        with self._cond:
            if self._queue:
                if self._cancelled:
                    self._free.extend(self._queue)
                    self._queue.clear()
                else:
                    keep: deque[_Task] = deque()
                    for task in self._queue:
                        (self._free if _task_cancelled(task) else keep).append(task)
                    self._queue = keep
            self._slot_waiters.notify_all()
            self._room.notify_all()
            starts = self._dispatch()
        self._start_threads(starts)

    # --- bookkeeping of tasks and processes ----------------------------------------

    def _task_begin(self) -> None:
        with self._lock:
            if self._closed:
                raise JobError(self._closed_message())
            self._pending += 1

    def _task_end(self) -> None:
        with self._lock:
            self._pending -= 1
            if not self._pending:
                self._idle.notify_all()

    def _track_process(self, proc: Popen[Any], results: Optional[Results]) -> None:
        """Record a local process; kill it at once if cancellation came first."""
        with self._lock:
            self._procs.add(proc)
            cancel = self._cancelled
        if results is not None:
            with _state_lock:
                results._proc = proc
                cancel = cancel or results._cancel_requested
        if cancel:
            from runner_core._process import kill_groups

            kill_groups([proc])

    def _untrack_process(self, proc: Popen[Any]) -> None:
        with self._lock:
            self._procs.discard(proc)

    # --- the public interface ------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        """True once cancellation was requested (`shutdown(cancel=True)`)."""
        return self._cancelled

    def call(
        self, runscript: str, workdir: str, out: Optional[str], err: str, runflags: Settings
    ) -> int:
        """Run `workdir/runscript` as a subprocess and return its exit code.

        The process runs with `cwd=workdir`, in its own session and process group,
        never through a shell; stdout goes to `out` (inherited when None, because the
        runscript redirects itself), stderr to `err`. A runscript that is missing,
        not executable or has a bad interpreter line ends the job FAILED through
        `report_failure` (exit code 127 or 126, like a shell). -N means killed by
        signal N. Called by the runner, not by scripts.

        Args:
            runscript: the runscript's file name, relative to workdir.
            workdir: the job's folder.
            out: file for stdout, or None.
            err: file for stderr.
            runflags: the job's `settings.run` (unused by the local runner).

        Returns:
            The exit code.
        """
        from runner_core._process import run_local

        return run_local(self, runscript, workdir, out, err)

    def _cancel_jobs(self) -> None:
        """Stop what is inside `call` now: kill every local process group this runner started.

        Called once by `shutdown(cancel=True)`. Subclasses extend it (call super()).
        """
        with self._lock:
            procs = list(self._procs)
        if procs:
            from runner_core._process import kill_groups

            kill_groups(procs)

    def wait(self, timeout: Optional[float] = None) -> None:
        """Return when every job started through this runner has ended.

        Args:
            timeout: seconds to wait at most; None waits for as long as it takes.

        Raises:
            TimeoutError: the timeout passed first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._pending:
                if deadline is None:
                    self._idle.wait(wait_slice(None))
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"{self!r} still has {self._pending} job(s) after {timeout} s; "
                        "wait longer or call shutdown(cancel=True)"
                    )
                self._idle.wait(wait_slice(remaining))

    def shutdown(self, cancel: bool = True, timeout: Optional[float] = None) -> None:
        """Take no new jobs; with `cancel`, stop the jobs there are; then wait for them.

        With cancel, jobs that have not reached `call` end CANCELLED without running,
        and `_cancel_jobs()` is called once to stop those inside `call` (they end
        CANCELLED too, keeping their exit code).

        Args:
            cancel: cancel the jobs (False: let them finish).
            timeout: seconds to wait at most for the jobs to end.

        Raises:
            TimeoutError: the timeout passed before every job ended.
        """
        with self._lock:
            self._closed = True
            first = cancel and not self._cancelled
            if cancel:
                self._cancelled = True
        self._wake_waiters()
        if first:
            _logger().info("%r: cancelling its jobs", self)
            self._cancel_jobs()
        self.wait(timeout)

    def __enter__(self: R) -> R:
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: object, tb: object) -> None:
        if exc_type is not None:
            self.shutdown(cancel=True)
            return
        try:
            self.wait()
        except BaseException:
            self.shutdown(cancel=True)
            raise

    # --- one job's life --------------------------------------------------------------

    def _run_job(self, job: SingleJob, jobmanager: JobManager) -> None:
        """Run one job: now when serial, in a job thread when parallel. Not to be overridden.

        The job knows its runner from here on, so `job.cancel()` reaches a job that
        still waits in the queue.
        """
        with _state_lock:
            job.results._runner = self
        self._job_life(job, jobmanager)

    @_in_limited_thread
    def _job_life(self, job: SingleJob, jobmanager: JobManager) -> None:
        """Prepare, call and finalize one job; any exception ends it FAILED."""
        results = job.results
        previous = getattr(_current, "results", None)
        _current.results = results
        try:
            if self._cancelled or results._cancel_requested:
                results._finish(JobStatus.CANCELLED, error="cancelled before it ran")
                return
            args = job._prepare(jobmanager)
            code = self.call(*args)
            if isinstance(code, bool) or not isinstance(code, int):
                raise TypeError(
                    f"{type(self).__name__}.call returned {code!r}; it must return the "
                    "exit code as an int"
                )
            job._finalize(code, self._cancelled)
        except _NotStarted:
            results._finish(JobStatus.CANCELLED, error="cancelled before it ran")
        except BaseException as exc:
            import traceback

            text = traceback.format_exc()
            if isinstance(exc, Exception):
                results._finish(JobStatus.FAILED, error=text)
            else:
                results._finish(JobStatus.CANCELLED, error=text)
                raise
        finally:
            _current.results = previous
            if not results.status.done:  # _finalize overridden without finishing
                results._finish(JobStatus.FAILED, error="the job ended without a final status")


# --- live runners and the interpreter's exit ---------------------------------------

_live: weakref.WeakSet[JobRunner] = weakref.WeakSet()
_hooks_lock = threading.Lock()
_hooks_installed = False
_interrupted = False
_previous_excepthook: Optional[Callable[..., Any]] = None


def live_runners() -> list[JobRunner]:
    """Return the runners that exist now (weakly held: a dropped runner leaves)."""
    with _hooks_lock:
        return list(_live)


def cancel_all_runners() -> None:
    """Call `shutdown(cancel=True)` on every live runner."""
    for runner in live_runners():
        try:
            runner.shutdown(cancel=True)
        except Exception:
            _logger().exception("could not shut down %r", runner)


def _excepthook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
    global _interrupted
    if issubclass(exc_type, KeyboardInterrupt):
        _interrupted = True
        cancel_all_runners()
    hook = _previous_excepthook or sys.__excepthook__
    hook(exc_type, exc, tb)


def _at_exit() -> None:
    try:
        if _interrupted:
            cancel_all_runners()
        elif config.get("wait_at_exit", True):
            for runner in live_runners():
                runner.wait()
    except KeyboardInterrupt:
        cancel_all_runners()


def _on_sigint(signum: int, frame: Any) -> None:
    """SIGINT handler in place of Python's default one: notices a Ctrl-C that lands while
    the interpreter exits.

    Between the end of the main script and the exit hooks, Python swallows a
    KeyboardInterrupt (it only reports it as "ignored"). A SIGINT that arrives while
    no code of `__main__` is on the stack is such a case: remember it, so the exit
    hook cancels instead of waiting. A Ctrl-C inside a step run under
    `_waiting.deferred_interrupts()` is raised when that step ends instead.
    """
    global _interrupted
    if interrupt_deferred():  # the main thread is in a step a Ctrl-C must not cut
        return
    f = frame
    while f is not None and f.f_globals.get("__name__") != "__main__":
        f = f.f_back
    if f is None:
        _interrupted = True
    raise KeyboardInterrupt  # what the default handler does


def _register(runner: JobRunner) -> None:
    global _hooks_installed, _previous_excepthook
    with _hooks_lock:
        _live.add(runner)
        if _hooks_installed:
            return
        _hooks_installed = True
    import atexit

    _previous_excepthook = sys.excepthook
    sys.excepthook = _excepthook
    atexit.register(_at_exit)
    if threading.current_thread() is threading.main_thread():
        import signal

        # leave a handler of the user's alone
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _on_sigint)
