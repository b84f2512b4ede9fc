"""JobRunner, its metaclass _MetaRunner and the decorators _limit and _in_limited_thread.

The runner is thin: scheduling is `_pool.Pool`'s, a job's state is `Results`'s, local
processes are `_process`'s. What stays here is one job's life (prepare, call,
finalize), the cancel hooks, and the bookkeeping of the processes the runner started.

Locking: `JobRunner._lock` guards `_procs`, `_waiting` and the closed/cancelled flags.
It is never held while the pool, a Results or a hook is called, and neither of those
calls back into the runner under their own lock; so there is no lock order to keep.
"""

from __future__ import annotations

import functools
import os
import threading
import time
import types
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional, TypeVar

from runner_core._config import config
from runner_core._context import current_results, job_context, report_end, report_failure
from runner_core._errors import JobError
from runner_core._lifecycle import register
from runner_core._log import logger
from runner_core._manager import stop_local_jobs
from runner_core._pool import Pool, PoolClosed, _check_count
from runner_core._process import (
    SpawnError,
    kill_groups,
    kill_in_background,
    run_process,
    spawned_start,
)
from runner_core._resources import RESOURCE_KEYS, Resources
from runner_core._retry import Attempt, Retry, decide
from runner_core._status import JobStatus
from runner_core._usage import UsageReport

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from subprocess import Popen

    from typing_extensions import Concatenate, ParamSpec

    from runner_core._jobs import SingleJob
    from runner_core._journal import JobRecord, RecordedState
    from runner_core._manager import JobManager
    from runner_core._pool import Lease, PoolSnapshot, Task
    from runner_core._results import Results
    from runner_settings import Settings

    P = ParamSpec("P")

__all__ = ["Completion", "JobRunner"]

T = TypeVar("T")
R = TypeVar("R", bound="JobRunner")

_THREAD_NAME = "runner:_run_job"


class _NotStarted(Exception):
    """The job was cancelled while it waited for its maxjobs slot."""


def _limit(func: Callable[Concatenate[R, P], T]) -> Callable[Concatenate[R, P], T]:
    """Decorate a runner method so that at most `maxjobs` calls run at once.

    The slot is counted per thread: a `call` that calls `super().call()` (itself
    limited) takes one slot, not two. A job thread of a parallel runner already
    holds the slot its job was given (see `_in_limited_thread`) and uses that one; a
    job its runner runs in the caller's thread (`JobRunner.runs_in_caller`) needs none.
    A job whose runner or which itself was cancelled while it waited for a slot
    does not run (its `call` raises an internal exception that ends the job
    CANCELLED). On entering, the job of the calling thread becomes RUNNING, unless the
    runner's jobs wait in a scheduler's queue (`JobRunner.scheduler_queue`): those
    become SUBMITTED and RUNNING as the runner reports them.
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
        # The job of this thread, if this runner runs it (not a call of another runner
        # made from inside a job).
        results: Optional[Results] = getattr(tls, "job", None)
        pool = self._pool

        def stop() -> bool:
            return self._cancelled or (results is not None and results._cancel_requested)

        slotted = pool.holds_slot()
        if slotted:
            if stop():
                raise _NotStarted
        elif not pool.acquire_slot(stop):
            raise _NotStarted
        tls.depth = 1
        try:
            if (
                results is not None
                and results.status is JobStatus.QUEUED
                and not self.scheduler_queue
            ):
                results._move(JobStatus.RUNNING)
            return func(self, *args, **kwargs)
        finally:
            tls.depth = 0
            if not slotted:
                pool.release_slot()

    limited.__runner_limited__ = True  # type: ignore[attr-defined]
    return limited


def _in_limited_thread(
    func: Callable[Concatenate[R, P], None],
) -> Callable[Concatenate[R, P], None]:
    """Decorate a runner method to run as a task of the runner's pool when it is parallel.

    A parallel runner puts the call in its pool's FIFO and returns at once. A pool
    thread takes it when a `maxjobs` slot is free, holding that slot for the whole
    task; threads are reused, at most `maxthreads` are alive, and past `maxthreads`
    taken tasks the caller blocks (see `runner_core._pool`). Threads are daemon
    threads when `config.daemon_threads` is true. A serial runner runs the method in
    the caller's thread; so does a parallel one whose `runs_in_caller()` is true now,
    without a `maxjobs` slot. Every call counts as a task of the runner until it
    returns, or until the job it detached ends (what `wait()` waits for).

    Raises (from the decorated method):
        JobError: the runner has been shut down.
    """

    @functools.wraps(func)
    def threaded(self: R, /, *args: P.args, **kwargs: P.kwargs) -> None:
        def task() -> None:
            func(self, *args, **kwargs)

        try:
            if not self._parallel:
                self._pool.run_here(task)
            elif self.runs_in_caller():
                self._pool.run_here(task, slot_exempt=True)
            else:
                self._tls.submitted = self._pool.submit(task)
        except PoolClosed:
            raise JobError(self._closed_message()) from None

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
                "cancelling, cancel_job() and _cancel_jobs() instead"
            )
        call = namespace.get("call")
        if isinstance(call, types.FunctionType):
            namespace["call"] = _limit(call)
        return super().__new__(mcs, name, bases, namespace, **kwargs)


def _check_retry(value: object) -> Optional[Retry]:
    if value is not None and not isinstance(value, Retry):
        raise TypeError(
            f"retry must be a runner_core.Retry or None, not {type(value).__name__} "
            f"{value!r}; e.g. retry=Retry(attempts=3)"
        )
    return value


def _request_of(runflags: Mapping[str, Any]) -> dict[str, Any]:
    """The resource run flags of a request, as given (for an attempt's record)."""
    return {key: runflags[key] for key in RESOURCE_KEYS if runflags.get(key) not in (None, False)}


def _check_parallel(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"parallel must be True or False, not {type(value).__name__} {value!r}")
    return value


class Completion:
    """How a job detached from its thread ends: `complete()` or `fail()`, once, from any thread.

    Returned by `runner_core.ext.detach_job()`. Until it ends, the job keeps its state
    (RUNNING, or SUBMITTED in a scheduler's queue), its `maxjobs` slot (a job run in
    the caller's thread by `JobRunner.runs_in_caller` holds none), and counts in
    `runner.wait()`.
    """

    __slots__ = ("_done", "_job", "_lease", "_lock", "_manager", "_runner")

    def __init__(
        self,
        runner: JobRunner,
        job: SingleJob,
        lease: Lease,
        manager: Optional[JobManager] = None,
    ) -> None:
        """Hold what ending the job needs (made by `detach_job()`); `manager` runs it again."""
        self._runner = runner
        self._job = job
        self._lease = lease
        self._manager = manager
        self._done = False
        self._lock = threading.Lock()

    @property
    def results(self) -> Results:
        """The detached job's Results."""
        return self._job.results

    def report_jobid(self, jobid: str, native_id: Optional[str] = None) -> None:
        """Record the scheduler's id of the job (`results.jobid`), like `ext.report_jobid`.

        For a runner that submits the job after `call` returned (a job array submitted
        when a batch ends): a QUEUED job becomes SUBMITTED. Ignored once the job has ended.
        """
        if not self._done:
            self._job.results._submitted(str(jobid), None if native_id is None else str(native_id))

    def report_tag(self, tag: str) -> None:
        """Record the job's tag in the scheduler's queue, like `ext.report_tag`; before submitting.

        For a runner that submits the job after `call` returned. Ignored once the job
        has ended, and for a job without a journal.
        """
        entry = self._job.results._journal
        if not self._done and entry is not None:
            entry.tag(str(tag))

    def complete(
        self,
        exit_code: int,
        reason: Optional[str] = None,
        *,
        own_end: bool = False,
        started_at: Optional[float] = None,
        finished_at: Optional[float] = None,
    ) -> None:
        """End the job with `exit_code` as if `call` had returned it; the second call is ignored.

        Runs the job's finalize step and its callbacks in the calling thread, then frees
        its slot.

        Args:
            exit_code: the job's exit code.
            reason: its end reason (one word of `runner_core.REASONS`), or None.
            own_end: the exit code is the job's own (it ran to its end before a cancel
                reached it; see `ext.report_end`).
            started_at: when the runscript started, as the job recorded it, or None.
            finished_at: when the runscript ended, as the job recorded it, or None (now).
        """
        if self._claim():
            results = self._job.results
            results._note(own_end=own_end, started_at=started_at, finished_at=finished_at)
            self._runner._end_detached(
                self._job, self._lease, exit_code, reason=reason, manager=self._manager
            )

    def fail(self, message: str, exit_code: int = 1, reason: Optional[str] = None) -> None:
        """End the job FAILED with `message` as its error (like `report_failure`); once."""
        if self._claim():
            self._runner._end_detached(
                self._job,
                self._lease,
                exit_code,
                failure=message,
                reason=reason,
                manager=self._manager,
            )

    def leave(self) -> None:
        """Leave the job where it is (in the scheduler's queue) as the driver exits; once.

        Frees its slot without ending it: the job stays RUNNING, and the journal
        records it as left, so a resume re-attaches it (`JobRunner.reattach`). For a
        runner's `_leave_jobs_queued()`, with `config.grid_jobs_on_exit = "keep"`.
        """
        if self._claim():
            entry = self._job.results._journal
            if entry is not None:
                entry.left()
            self._lease.release()

    def _claim(self) -> bool:
        with self._lock:
            done, self._done = self._done, True
        return not done


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
        retry: when to run a job again (`runner_core.Retry`), for the jobs run without
            ``job.run(retry=...)``; None runs each job once. Also an attribute.

    Raises:
        TypeError: a value of the wrong type (parallel must be a bool; maxjobs and
            maxthreads ints, not bools; retry a Retry).
        ValueError: maxjobs < 0 or maxthreads < 1.
    """

    #: True for a runner whose `call` hands the job to a scheduler's queue (runner-grid):
    #: the job then stays QUEUED until `ext.report_jobid` (SUBMITTED) and becomes RUNNING
    #: on `ext.report_started`, instead of RUNNING as `call` starts.
    scheduler_queue: ClassVar[bool] = False

    def __init__(
        self,
        parallel: bool = False,
        maxjobs: int = 0,
        maxthreads: int = 256,
        *,
        retry: Optional[Retry] = None,
    ) -> None:
        """Create a runner; see the class docstring."""
        # No overridable method runs here: a subclass may not be ready for it yet.
        self.retry = _check_retry(retry)
        self._parallel = _check_parallel(parallel)
        self._maxjobs = _check_count("maxjobs", maxjobs, 0)
        self._lock = threading.Lock()
        self._closed = False
        self._cancelled = False
        self._procs: dict[Popen[Any], Optional[Results]] = {}  # local processes running now
        self._killed: set[int] = set()  # pids of those a kill reached while they ran
        self._waiting: dict[Results, Task] = {}  # parallel jobs in the pool's queue
        self._tls = threading.local()
        self._pool = Pool(
            maxjobs if parallel else 0,
            maxthreads,
            thread_name=_THREAD_NAME,
            daemon=lambda: bool(config.get("daemon_threads", True)),
        )
        register(self)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(parallel={self._parallel}, maxjobs={self._maxjobs}, "
            f"maxthreads={self.maxthreads})"
        )

    # --- limits --------------------------------------------------------------------

    @property
    def parallel(self) -> bool:
        """Run each job in its own thread (settable; applies to jobs started afterwards)."""
        return self._parallel

    @parallel.setter
    def parallel(self, value: bool) -> None:
        self._parallel = _check_parallel(value)
        self._pool.limit = self._maxjobs if value else 0

    @property
    def maxjobs(self) -> int:
        """The most `call`s running at once, 0 for no limit (settable)."""
        return self._maxjobs

    @maxjobs.setter
    def maxjobs(self, value: int) -> None:
        self._maxjobs = _check_count("maxjobs", value, 0)
        self._pool.limit = value if self._parallel else 0

    @property
    def maxthreads(self) -> int:
        """The most job threads alive, and jobs taken (queued or running), at once (settable)."""
        return self._pool.maxthreads

    @maxthreads.setter
    def maxthreads(self, value: int) -> None:
        self._pool.maxthreads = value

    def limit_threads(self, threads: int, *, bounded: bool = True) -> None:
        """For runner authors: how many job threads run this runner's jobs at most.

        Sets what `maxthreads` says (a subclass may keep its own `maxthreads` and pass a
        smaller number here, such as its submit workers), and whether `job.run()`
        blocks once that many jobs are taken (queued or in a thread). A runner whose
        `call` detaches its job quickly (`runner_core.ext.detach_job`, as GridRunner's
        does) passes `bounded=False`: its jobs wait in the runner's FIFO, not in
        threads, so `job.run()` never blocks and the FIFO grows without bound. Applies
        at once, also to the jobs already queued.

        Args:
            threads: the most job threads alive at once, an int >= 1.
            bounded: `job.run()` blocks past `threads` jobs taken (the default); False
                lets the queue grow instead.

        Raises:
            TypeError: threads is not an int (or is a bool), or bounded is not a bool.
            ValueError: threads < 1.
        """
        threads = _check_count("threads", threads, 1)
        if not isinstance(bounded, bool):
            raise TypeError(
                f"bounded must be True or False, not {type(bounded).__name__} {bounded!r}"
            )
        self._pool.bounded = bounded
        self._pool.maxthreads = threads

    def runs_in_caller(self) -> bool:
        """Hook for runner authors: run the job `job.run()` is given in the calling thread.

        A parallel runner asks it in `job.run()`, in the caller's thread, for every job.
        When it returns True, the job's whole life (prepare, `call`, then finalize, or
        `detach_job()`) runs right there, before `job.run()` returns, with no job
        thread and without a `maxjobs` slot: `call` neither waits for one nor takes
        one, and a job detached there holds none until its `Completion` ends it. The
        job counts in `wait()` until it ends, and `job.cancel()` reaches it as usual.
        For a `call` that only collects the job to hand it on later (GridRunner
        inside `with runner.batch():`, in the block's thread); such a runner enforces
        `maxjobs` itself. A serial runner runs every job in the caller's thread anyway
        and does not ask. The default is False.

        Returns:
            True to run the job in the calling thread.
        """
        return False

    def check_runflags(self, runflags: Mapping[str, Any]) -> None:
        """Hook for runner authors: refuse run flags this runner cannot use, before the job runs.

        `job.run()` calls it in the caller's thread with the job's ``settings.run`` (its
        keyword run flags merged in) before the job is claimed or queued: when it raises,
        the job ends FAILED at once with the error, nothing of it reaches `call`, and
        `job.run()` raises the same error. GridRunner parses the resource flags here
        (``memory="4G"``, ``walltime="1:00:00"``, see `runner_core.Resources`). The
        default accepts every run flag: a local runner ignores them.

        Args:
            runflags: the job's run flags.

        Raises:
            ValueError, TypeError: a run flag the runner refuses, naming it, its value and
                a good one.
        """
        del runflags

    def grow_request(
        self, runflags: Mapping[str, Any], factors: Mapping[str, float]
    ) -> tuple[dict[str, Any], Optional[str]]:
        """Hook for runner authors: the request of a job's next attempt (see `runner_core.Retry`).

        Grows the resources of `runflags` by `factors` (``{"memory": 2}``); GridRunner
        also clamps them to the cluster's limits. Called in the thread that ended the
        attempt.

        Args:
            runflags: the run flags of the attempt that ended.
            factors: resource -> factor, from the `Retry` policy.

        Returns:
            The run flags that change (``{"memory": "200M"}``), and None; or what it
            could give and why the request cannot grow as asked (then the job is not run
            again): nothing was asked to grow, or the request is at the limit already.
        """
        try:
            asked = Resources.of(runflags)
        except (TypeError, ValueError) as exc:
            return {}, f"its request does not parse: {exc}"
        for key in factors:
            if getattr(asked, key) is None:
                return {}, (
                    f"it asked for no {key}, so there is none to grow; give the job a "
                    f"{key} run flag (e.g. {key}={'2G' if key == 'memory' else '1:00:00'!r})"
                )
        grown = asked.grown(factors).as_runflags()
        return {key: grown[key] for key in factors}, None

    def snapshot(self) -> PoolSnapshot:
        """The runner's scheduling counters at one moment (jobs queued, slots, threads...).

        Returns:
            A `PoolSnapshot` named tuple: queued, expedited, slots, threads, tasks,
            detached, slot_waiters, room_waiters, closed.
        """
        return self._pool.snapshot()

    # --- the public interface ------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        """True once cancellation was requested (`shutdown(cancel=True)`)."""
        return self._cancelled

    @property
    def closed(self) -> bool:
        """True once `shutdown()` was called: the runner takes no new jobs."""
        return self._closed

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
        results = current_results()
        started: list[Popen[Any]] = []

        def on_start(proc: Popen[Any]) -> None:
            started.append(proc)
            self._track_process(proc, results)

        try:
            code = run_process(
                os.path.join(workdir, runscript),
                workdir,
                out,
                err,
                on_start=on_start,
                on_end=self._untrack_process,
            )
        except SpawnError as exc:
            report_failure(str(exc))
            return exc.exit_code
        if started:
            with self._lock:
                killed = started[0].pid in self._killed
                self._killed.discard(started[0].pid)
            # A process that ended before any kill reached it ended by itself: a cancel
            # that came meanwhile does not make its work CANCELLED.
            report_end(own_end=not killed)
        return code

    # --- the journal and resume: hooks for runner authors ---------------------------------

    def journal_info(self) -> dict[str, Any]:
        """Hook: describe this runner for the run journal (JSON-ready; small: kept per run).

        The journal keeps it with every job this runner runs; `runner resume DIR`
        builds a runner again from it (`from_journal_info`), and a resumed job is
        re-attached only by a runner of the same kind. "kind" names the runner class
        family: "local" here, "grid" for runner-grid (whose `runner cancel` support
        is found through the entry point group `runner_core.grid_runners`).

        Returns:
            {"kind": "local", "parallel": ..., "maxjobs": ...}; a subclass returns its
            own "kind" and what it needs to be built again (a scheme name, ...).
        """
        return {"kind": "local", "parallel": self._parallel, "maxjobs": self._maxjobs}

    @classmethod
    def from_journal_info(cls: type[R], info: Mapping[str, Any]) -> R:
        """Hook: build a runner again from what its `journal_info()` returned (`runner resume`).

        Args:
            info: the recorded description.

        Returns:
            A new runner.
        """
        return cls(parallel=bool(info.get("parallel", True)), maxjobs=int(info.get("maxjobs", 0)))

    def reattach(self, record: JobRecord) -> bool:
        """Hook: on a resume, pick up a job an earlier driver left running instead of rerunning it.

        Called in the job's thread, as `call` would be (the job RUNNING, in its old
        folder `record.path`, holding its `maxjobs` slot; `current_results()`,
        `report_jobid()`, `report_tag()` and `detach_job()` work), for a job whose
        earlier try did not end and was run by a runner of another kind than "local"
        (`record.runner`, `record.jobid`, `record.tag` say where it is). To take it
        over, call `detach_job()` and end the job later through the Completion (a
        poller that sees it leave the queue, or at once if its end is known
        already), then return True. Return False when the job cannot be found
        (never reached the queue): it is then prepared and `call`ed again in the
        same folder. The local runner cannot re-attach and returns False.

        Args:
            record: the job's earlier try, as the journal has it.

        Returns:
            True when the job was re-attached (and detached from this thread).
        """
        return False

    @classmethod
    def observe_recorded(
        cls, records: Sequence[JobRecord], ask_scheduler: bool = False
    ) -> dict[int, RecordedState]:
        """Hook: where jobs whose records have not ended are now, seen from outside their driver.

        For `runner status` and `runner cancel` with a dead driver: a job may have
        started, or ended by itself, since its driver last wrote. A grid runner reads
        what each job's wrapper wrote in its folder (start and end times, exit code)
        and, with `ask_scheduler`, the scheduler's queue and records. The local runner
        knows nothing from outside: a local job writes no such files.

        Args:
            records: records that have not ended, all of this runner's kind.
            ask_scheduler: also ask the scheduler (slower; `runner cancel` does).

        Returns:
            {record number: RecordedState} for the records it can tell something of.
        """
        return {}

    @classmethod
    def cancel_recorded(cls, records: Sequence[JobRecord]) -> list[JobRecord]:
        """Hook: cancel jobs from their journal records, with no live runner (`runner cancel`).

        Must not need a live driver: the local runner kills each recorded process
        group, identified safely (pid, process start time and boot id; a pid now
        used by another process is never signalled). A grid runner runs the
        scheduler's cancel command for the recorded ids (or tags).

        Args:
            records: the records of jobs that have not ended, all of this runner's kind.

        Returns:
            The records of the jobs that are now stopped (or were found gone already),
            which `runner cancel` then records as CANCELLED.
        """
        return stop_local_jobs(records)

    @classmethod
    def usage_recorded(cls, records: Sequence[JobRecord]) -> UsageReport:
        """Hook: what recorded jobs used against what they asked for (`runner report`).

        Asked once per report, with no live runner, for the jobs (and their earlier
        tries, `record.attempts`) of this runner's kind. A grid runner asks the
        scheduler's accounting (``sacct``, ``qacct``). The local runner measures
        nothing, and says so.

        Args:
            records: the records, all of this runner's kind.

        Returns:
            A UsageReport: scheduler job id -> Usage, and why figures are absent.
        """
        del records
        return UsageReport(
            {}, "the local runner does not measure the memory and CPU time its jobs use"
        )

    def _leave_jobs_queued(self) -> int:
        """Hook: at an interrupted exit with `config.grid_jobs_on_exit = "keep"`, leave jobs queued.

        Called once, before `shutdown(cancel=True)`, when Ctrl-C, SIGTERM or SIGHUP
        ends a script. A runner whose jobs can outlive the driver (grid jobs in a
        scheduler's queue) calls `Completion.leave()` for each journaled one
        (`runner_core.ext.journaled(results)`), stops watching them, and makes sure
        that its `_cancel_jobs()` then leaves them alone. Local jobs cannot outlive
        the driver: the local runner leaves none.

        Returns:
            How many jobs were left in the queue (for the message that says how to resume).
        """
        return 0

    def cancel_job(self, results: Results) -> None:
        """Hook: stop one job of this runner; called by `job.cancel()`. Must return at once.

        The job is marked cancelled before this runs (`results.cancel_requested`). A
        job still in the queue leaves it and ends CANCELLED without running; a local
        job in `call` has its process group killed in the background. Runner authors
        extend it (call `super().cancel_job(results)`) to stop what their `call`
        started, handing slow work (a cancel command) to another thread.

        Args:
            results: the job's Results.
        """
        with self._lock:
            task = self._waiting.pop(results, None)
            procs = [proc for proc, owner in self._procs.items() if owner is results]
        if task is not None:
            self._pool.expedite(task)
        self._pool.wake_slot_waiters()  # a serial job waiting for a slot sees its cancel
        if procs:
            self._mark_killed(procs)
            kill_in_background(procs)

    def _cancel_jobs(self) -> None:
        """Hook: stop what is inside `call` now: kill every local process group of this runner.

        Called once by `shutdown(cancel=True)`. Subclasses extend it (call super()).
        """
        with self._lock:
            procs = list(self._procs)
        if procs:
            self._mark_killed(procs)
            kill_groups(procs)

    def wait(self, timeout: Optional[float] = None) -> None:
        """Return when every job started through this runner has ended.

        Args:
            timeout: seconds to wait at most; None waits for as long as it takes.

        Raises:
            TimeoutError: the timeout passed first.
        """
        if not self._pool.wait(timeout):
            raise TimeoutError(
                f"{self!r} still has {self._pool.snapshot().tasks} job(s) after {timeout} s; "
                "wait longer or call shutdown(cancel=True)"
            )

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
                self._waiting.clear()
        self._pool.close()
        if cancel:
            self._pool.expedite_all()
            self._pool.wake_slot_waiters()
        if first:
            logger().info("%r: cancelling its jobs", self)
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

    # --- local processes --------------------------------------------------------------

    def _track_process(self, proc: Popen[Any], results: Optional[Results]) -> None:
        """Record a local process (also in the journal); kill it at once if cancelled first."""
        entry = None if results is None else results._journal
        if entry is not None:
            entry.pid(proc.pid, spawned_start(proc))
        with self._lock:
            self._procs[proc] = results
            cancel = self._cancelled
        if cancel or (results is not None and results._cancel_requested):
            self._mark_killed([proc])
            kill_groups([proc])

    def _mark_killed(self, procs: list[Popen[Any]]) -> None:
        """Note the processes a kill is about to reach while they still run (not ended)."""
        alive = [proc.pid for proc in procs if proc.returncode is None]
        with self._lock:
            self._killed.update(alive)

    def _untrack_process(self, proc: Popen[Any]) -> None:
        with self._lock:
            self._procs.pop(proc, None)

    def _closed_message(self) -> str:
        return f"{self!r} has been shut down and takes no new jobs; create a new runner"

    # --- one job's life --------------------------------------------------------------

    def _run_job(self, job: SingleJob, jobmanager: JobManager) -> None:
        """Run one job: now when serial, as a pool task when parallel. Not to be overridden.

        The job is QUEUED and knows how to cancel itself from here on, so
        `job.cancel()` reaches a job that still waits in the queue.
        """
        results = job.results
        results._move(JobStatus.QUEUED)
        results._attach(self.cancel_job)
        self._tls.submitted = None
        self._job_life(job, jobmanager)
        task: Optional[Task] = self._tls.submitted
        if task is None:
            return
        self._tls.submitted = None
        with self._lock:
            if results.status is JobStatus.QUEUED and not self._cancelled:
                self._waiting[results] = task
        if results._cancel_requested:  # cancelled before the task was on record
            self.cancel_job(results)

    def _run_again(self, job: SingleJob, jobmanager: Optional[JobManager], lease: Lease) -> None:
        """Queue the next attempt of a detached job, then end the task of the last one.

        Runs in the thread that ended the attempt (a scheduler's poller): it never blocks,
        and the runner's `wait()` sees the job throughout.
        """
        results = job.results
        try:
            task = self._pool.resubmit(lambda: self._life(job, jobmanager))
        except BaseException as exc:  # no thread could start: the job cannot run again
            self._end_by_exception(results, exc)
            lease.release()
            raise
        with self._lock:
            if not self._cancelled:
                self._waiting[results] = task
        if self._cancelled or results._cancel_requested:
            self._pool.expedite(task)  # it ends CANCELLED without waiting for a slot
        lease.release()

    def _try_again(self, job: SingleJob, code: int) -> bool:
        """Decide by the job's `Retry` whether its attempt that ended runs again; prepare it.

        The attempt is kept (`results.attempts`, the journal, its stdout and stderr as
        ``<name>.attemptN.out``/``.err``) and the request grows. A job that is not run
        again though its reason is one to retry gets a note for its error.

        Returns:
            True when the job is back in the runner's queue for another attempt.
        """
        retry = job._retry or self.retry
        results = job.results
        if retry is None or self._cancelled or results._cancel_requested:
            return False
        reason = results._end_reason
        if reason is None:
            if results._failure is not None or code == 0:
                return False  # a failure to run is no end reason; a success is final
            reason = "crashed"
        runflags = job.settings["run"]
        decision = decide(retry, reason, results.attempts, runflags, self.grow_request)
        if not decision.again:
            if decision.note is not None:
                results._retry_note = decision.note
                logger().warning("job %r: %s", job.name, decision.note)
            return False
        number = results.attempt
        started_at, finished_at = results._stamps or (results.started_at, None)
        attempt = Attempt(
            number,
            results.jobid,
            code,
            reason,
            results._failure or job._stderr_tail(),
            _request_of(runflags),
            results.submitted_at,
            started_at,
            finished_at if finished_at is not None else time.time(),
        )
        request = dict(decision.request)
        if not results._again(attempt, request):
            return False
        job._keep_attempt_output(number)
        job._previous = None  # the next attempt is a new submission, not a re-attach
        if request:
            runflags.update(request)
        grown = ", ".join(f"{key}={value}" for key, value in request.items())
        logger().warning(
            "job %r ended %s on attempt %d; running it again%s",
            job.name,
            reason,
            number,
            f" with {grown}" if grown else "",
        )
        return True

    @staticmethod
    def _carry_attempts(job: SingleJob, earlier: JobRecord) -> None:
        """A resumed job goes on from the attempts its earlier driver made.

        Its count (a job that used up its attempts gets one more run, with no retry unless
        the policy allows more) and its last request (what the last attempt grew to).
        """
        job.results._carry(
            tuple(Attempt.from_dict(data, n) for n, data in enumerate(earlier.attempts, 1))
        )
        following = earlier.attempts[-1].get("next") or {}
        if following:
            job.settings["run"].update(following)

    @_in_limited_thread
    def _job_life(self, job: SingleJob, jobmanager: JobManager) -> None:
        """Prepare, call and finalize one job, as a pool task when parallel."""
        self._life(job, jobmanager)

    def _life(self, job: SingleJob, jobmanager: Optional[JobManager]) -> None:
        """Prepare, call and finalize one job, each attempt of its `Retry`; an exception: FAILED."""
        results = job.results
        with self._lock:
            self._waiting.pop(results, None)
        tls = self._tls
        previous = getattr(tls, "job", None)
        tls.job = results
        detached: list[Completion] = []

        def detach() -> Completion:
            completion = Completion(self, job, self._pool.detach(), jobmanager)
            detached.append(completion)
            return completion

        try:
            with job_context(results, detach, owner=self):
                if self._cancelled or results._cancel_requested:
                    results._move(
                        JobStatus.CANCELLED,
                        error="cancelled before it ran",
                        reason="cancelled",
                        once=True,
                    )
                    return
                earlier = job._previous
                if earlier is not None and earlier.attempts:
                    self._carry_attempts(job, earlier)
                if (
                    earlier is not None
                    and jobmanager is not None
                    and not earlier.done
                    and earlier.kind != "local"
                    and self._reattach_in_slot(job, jobmanager)
                ):
                    if not detached:
                        raise RuntimeError(
                            f"{type(self).__name__}.reattach returned True without calling "
                            "detach_job(); return False to run the job again"
                        )
                    code = 0  # ignored: the Completion ends the job
                    if results.jobid is not None:  # it is in the scheduler's queue again
                        results._submitted(results.jobid, results.native_id)
                else:
                    code = self.call(*job._prepare(jobmanager))
                    _check_exit_code(self, code)
                    while not detached and self._try_again(job, code):
                        code = self.call(*job._prepare(jobmanager))
                        _check_exit_code(self, code)
                _check_exit_code(self, code)
            if not detached:
                job._finalize(code, self._cancelled)
        except _NotStarted:
            results._move(
                JobStatus.CANCELLED, error="cancelled before it ran", reason="cancelled", once=True
            )
        except BaseException as exc:
            self._end_by_exception(results, exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            tls.job = previous
            if detached and results.done:
                detached[0]._claim()
                detached[0]._lease.release()
            elif not detached and not results.done:  # _finalize overridden without finishing
                results._move(JobStatus.FAILED, error="the job ended without a final status")

    @_limit
    def _reattach_in_slot(self, job: SingleJob, jobmanager: JobManager) -> bool:
        """Give the job its old folder and record back, then ask `reattach` (in a slot)."""
        record = jobmanager._adopt(job)
        return bool(self.reattach(record))

    def _end_detached(
        self,
        job: SingleJob,
        lease: Lease,
        exit_code: int,
        *,
        failure: Optional[str] = None,
        reason: Optional[str] = None,
        manager: Optional[JobManager] = None,
    ) -> None:
        """End a detached job: finalize it as if `call` had returned `exit_code`; free its slot.

        A job its `Retry` runs again goes back to the runner's queue instead.
        """
        results = job.results
        again = False
        try:
            with job_context(results):
                results._note(failure=failure, reason=reason)
                _check_exit_code(self, exit_code)
                again = self._try_again(job, exit_code)
                if not again:
                    job._finalize(exit_code, self._cancelled)
        except BaseException as exc:
            self._end_by_exception(results, exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            if again and not results.done:
                self._run_again(job, manager, lease)
            else:
                if not results.done:
                    results._move(JobStatus.FAILED, error="the job ended without a final status")
                lease.release()

    @staticmethod
    def _end_by_exception(results: Results, exc: BaseException) -> None:
        import traceback  # noqa: PLC0415 - lazy stdlib import keeps `import runner_core` fast

        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        if isinstance(exc, Exception):
            results._move(JobStatus.FAILED, error=text, once=True)
        else:  # Ctrl-C, SIGTERM: the job was cut short
            results._move(JobStatus.CANCELLED, error=text, reason="cancelled", once=True)


def _check_exit_code(runner: JobRunner, code: object) -> None:
    if isinstance(code, bool) or not isinstance(code, int):
        raise TypeError(
            f"{type(runner).__name__}.call returned {code!r}; it must return the "
            "exit code as an int"
        )
