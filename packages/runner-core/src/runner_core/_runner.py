"""JobRunner, its metaclass _MetaRunner and the decorators _limit and _in_limited_thread."""

from __future__ import annotations

import functools
import sys
import threading
import time
import types
import weakref
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

from runner_core._config import config
from runner_core._jobs import JobError, JobStatus, _current, _logger, _state_lock

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


class _Slots:
    """A counter of users of something whose limit may change at any time.

    A BoundedSemaphore has its size fixed at creation; here the limit is asked for
    on every acquire, so a new `maxjobs` or `maxthreads` applies to whoever comes next.
    """

    __slots__ = ("_cond", "active")

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self.active = 0

    def acquire(self, limit: Callable[[], int], stop: Callable[[], bool]) -> bool:
        """Take a slot (limit() <= 0: no limit); False, taking nothing, once stop() is true."""
        with self._cond:
            while True:
                if stop():
                    # this waiter may have used up a notify meant for a slot: pass it on
                    self._cond.notify()
                    return False
                n = limit()
                if n <= 0 or self.active < n:
                    self.active += 1
                    return True
                self._cond.wait()

    def release(self) -> None:
        with self._cond:
            self.active -= 1
            self._cond.notify()

    def wake_all(self) -> None:
        with self._cond:
            self._cond.notify_all()


class _NotStarted(Exception):
    """The job was cancelled while it waited for its maxjobs slot."""


def _limit(func: Callable[Concatenate[R, P], T]) -> Callable[Concatenate[R, P], T]:
    """Decorate a runner method so that at most `maxjobs` calls run at once.

    The slot is counted per thread: a `call` that calls `super().call()` (itself
    limited) takes one slot, not two. A job whose runner or which itself was
    cancelled while it waited for a slot does not run (its `call` raises an internal
    exception that ends the job CANCELLED). On entering, the job of the calling
    thread becomes RUNNING.
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

        if not self._slots.acquire(self._job_limit, stop):
            raise _NotStarted
        tls.depth = 1
        try:
            if results is not None:
                results._mark_running()
            return func(self, *args, **kwargs)
        finally:
            tls.depth = 0
            self._slots.release()

    limited.__runner_limited__ = True  # type: ignore[attr-defined]
    return limited


def _thread_main(runner: JobRunner, task: _Task) -> None:
    """Body of a job thread: run the task, then any task a blocked caller hands over."""
    cond = runner._thread_cond
    while True:
        func, args, kwargs = task
        try:
            func(runner, *args, **kwargs)
        except BaseException:
            _logger().exception("unexpected error in a job thread of %r", runner)
        finally:
            runner._task_end()
        with cond:
            handed = runner._handoff
            if handed is not None and not runner._closed and runner._alive <= runner._maxthreads:
                # A caller is blocked on the thread cap: take its task instead of ending
                # and letting it start a new thread (same cap, one thread start saved).
                runner._handoff = None
                cond.notify_all()
                task = handed
                continue
            runner._alive -= 1
            cond.notify_all()
            return


def _in_limited_thread(
    func: Callable[Concatenate[R, P], None],
) -> Callable[Concatenate[R, P], None]:
    """Decorate a runner method to run in a thread of its own when the runner is parallel.

    At most `maxthreads` such threads are alive per runner; past that the caller
    blocks until one is free (a thread that finishes takes the blocked caller's task
    over rather than ending). Threads are daemon threads when `config.daemon_threads`
    is true. A serial runner runs the method in the caller's thread. Every call
    counts as a task of the runner until it returns (what `wait()` waits for).
    """
    thread_name = "runner:" + func.__name__

    @functools.wraps(func)
    def threaded(self: R, /, *args: P.args, **kwargs: P.kwargs) -> None:
        self._task_begin()
        if not self._parallel:
            try:
                func(self, *args, **kwargs)
            finally:
                self._task_end()
            return
        try:
            task: _Task = (func, args, kwargs)
            if not self._claim_thread(task):
                return  # a running job thread has taken the task over
            try:
                threading.Thread(
                    target=_thread_main,
                    args=(self, task),
                    name=thread_name,
                    daemon=bool(config.get("daemon_threads", True)),
                ).start()
            except BaseException:
                with self._thread_cond:
                    self._alive -= 1
                    self._thread_cond.notify_all()
                raise
        except BaseException:
            self._task_end()
            raise

    return threaded


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
    """Runs jobs on this machine, in the caller's thread or a thread per job.

    A serial runner (parallel=False) runs each job in the thread that calls
    `job.run()`. A parallel runner starts a thread per job, at most `maxthreads`
    alive at once (`job.run()` blocks past that), and lets at most `maxjobs` calls
    run at once (0: no limit; ignored when serial). All three may be changed at any
    time and apply to the jobs that start afterwards.

    Args:
        parallel: run every job in its own thread.
        maxjobs: the most `call`s running at once; 0 for no limit.
        maxthreads: the most job threads alive at once.

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
        self._slots = _Slots()
        self._thread_cond = threading.Condition(threading.Lock())
        self._alive = 0  # job threads alive
        self._handoff: Optional[_Task] = None  # a blocked caller's task, for a thread to take
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
        if hasattr(self, "_slots"):
            self._slots.wake_all()

    @property
    def maxjobs(self) -> int:
        """The most `call`s running at once, 0 for no limit (settable)."""
        return self._maxjobs

    @maxjobs.setter
    def maxjobs(self, value: int) -> None:
        self._maxjobs = _check_count("maxjobs", value, 0)
        self._slots.wake_all()

    @property
    def maxthreads(self) -> int:
        """The most job threads alive at once (settable)."""
        return self._maxthreads

    @maxthreads.setter
    def maxthreads(self, value: int) -> None:
        self._maxthreads = _check_count("maxthreads", value, 1)
        if hasattr(self, "_thread_cond"):
            with self._thread_cond:
                self._thread_cond.notify_all()

    def _job_limit(self) -> int:
        return self._maxjobs if self._parallel else 0

    def _claim_thread(self, task: _Task) -> bool:
        """Reserve a new job thread (True), or hand `task` to a finishing one (False).

        Blocks while `maxthreads` threads are alive and another task waits to be taken.

        Raises:
            JobError: the runner was shut down meanwhile.
        """
        cond = self._thread_cond
        with cond:
            while True:
                if self._closed:
                    raise JobError(self._closed_message())
                if self._alive < self._maxthreads:
                    self._alive += 1
                    return True
                if self._handoff is None:
                    break
                cond.wait()
            self._handoff = task
            try:
                while self._handoff is task:
                    if self._closed:
                        raise JobError(self._closed_message())
                    cond.wait()
            except BaseException:
                if self._handoff is task:
                    self._handoff = None
                cond.notify_all()
                raise
            return False

    def _closed_message(self) -> str:
        return f"{self!r} has been shut down and takes no new jobs; create a new runner"

    def _wake_waiters(self) -> None:
        self._slots.wake_all()
        with self._thread_cond:
            self._thread_cond.notify_all()

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
                    self._idle.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"{self!r} still has {self._pending} job(s) after {timeout} s; "
                        "wait longer or call shutdown(cancel=True)"
                    )
                self._idle.wait(remaining)

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

    @_in_limited_thread
    def _run_job(self, job: SingleJob, jobmanager: JobManager) -> None:
        """Prepare, call and finalize one job; any exception ends it FAILED.

        Runs in its own thread when the runner is parallel. Must not be overridden.
        """
        results = job.results
        results._runner = self
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
_previous_sigint: Any = None


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
    """SIGINT handler wrapper: notices a Ctrl-C that lands while the interpreter exits.

    Between the end of the main script and the exit hooks, Python swallows a
    KeyboardInterrupt (it only reports it as "ignored"). A SIGINT that arrives while
    no code of `__main__` is on the stack is such a case: remember it, so the exit
    hook cancels instead of waiting.
    """
    global _interrupted
    f = frame
    while f is not None and f.f_globals.get("__name__") != "__main__":
        f = f.f_back
    if f is None:
        _interrupted = True
    handler = _previous_sigint
    if callable(handler):
        handler(signum, frame)
    else:
        raise KeyboardInterrupt


def _register(runner: JobRunner) -> None:
    global _hooks_installed, _previous_excepthook, _previous_sigint
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

        current = signal.getsignal(signal.SIGINT)
        if current is signal.default_int_handler:  # leave a handler of the user's alone
            _previous_sigint = current
            signal.signal(signal.SIGINT, _on_sigint)
