"""GridRunner: a JobRunner that submits runscripts to SLURM, PBS or Grid Engine."""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Optional, Union

from runner_core import JobRunner, JobStatus
from runner_core.ext import (
    RecordedState,
    Terminated,
    can_detach,
    current_results,
    deferred_interrupts,
    detach_job,
    journaled,
    report_end,
    report_failure,
    report_jobid,
    report_reason,
    report_started,
    report_tag,
    wait_event,
)
from runner_grid._arrays import (
    ARRAYS_FOLDER,
    index_expression,
    max_array_size,
    partition,
    write_array_files,
)
from runner_grid._commands import (
    CheckFailed,
    batch_commands,
    build_submit_argv,
    flag_args,
    format_command,
    run_query,
    special_prefixes,
    split_command,
)
from runner_grid._detect import detect_scheme
from runner_grid._poller import QueuePoller, SchemeCheck, listed_ids, query_env
from runner_grid._scheme import DEFAULT_QUERY_TIMEOUT, Scheme, SchemeError
from runner_grid._submitter import TASK_TAG, find_recorded, new_tag, submit_job
from runner_grid._worker import Worker
from runner_grid._wrapper import (
    DIRECTIVE_PREFIXES,
    NO_TIMES,
    Times,
    Wrapper,
    exitcode_path,
    read_exitcode,
    read_times,
    remove_leftovers,
    safe_job_name,
    times_for,
    write_wrapper,
)
from runner_grid.schemes import SCHEMES
from runner_settings import Settings

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from runner_core import Results
    from runner_core.ext import Completion, JobRecord

__all__ = ["GridRunner"]

logger = logging.getLogger(__name__)

#: Submit commands run at once by default (the runner's submit workers).
SUBMIT_WORKERS = 4


def _job_cancelled(results: Optional[Results]) -> bool:
    """True when `results` belongs to a job cancelled on its own (``job.cancel()``)."""
    return results is not None and results.cancel_requested


def _tag_for(scheme: Scheme, runscript: str, runflags: Mapping[str, Any]) -> Optional[str]:
    """A new tag for one submission, or None when the scheme carries none.

    None too when one of the job's own runflags sets the flag the tag would use (a job
    name of the user's: it wins, and the job cannot be looked up by the tag).
    """
    flag = scheme.tag_flag
    if not flag or scheme.get("find_tag") is None:
        return None
    head = flag.split()[0] if any(c.isspace() for c in flag) else flag
    special = special_prefixes(scheme.raw)
    for key, value in runflags.items():
        args = flag_args(str(key), value, special, long_flags=scheme.long_flags)
        if args and (args[0] == head if head != flag else args[0].startswith(flag)):
            return None
    stem = runscript[: -len(".run")] if runscript.endswith(".run") else runscript
    return new_tag(stem)


def _brief(argv: Sequence[str], most: int = 10) -> str:
    """A command for the log, its arguments cut after `most`: ``scancel 1 2 ... (1000 ids)``."""
    if len(argv) <= most + 2:
        return format_command(argv)
    return f"{format_command(argv[:most])} ... ({len(argv) - 1} arguments)"


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")
    return float(value)


def _ended(code: int, reason: Optional[str], times: Times) -> RecordedState:
    """How a job ended, as a record shows it: CANCELLED, SUCCESSFUL (0, no reason) or CRASHED."""
    if reason == "cancelled":
        status = JobStatus.CANCELLED
    elif code == 0 and reason is None:
        status = JobStatus.SUCCESSFUL
    else:
        status = JobStatus.CRASHED
    return RecordedState(status, code, reason, times.started, times.finished)


def _fixed(scheme: Scheme) -> Callable[[], Scheme]:
    """A scheme source that always gives `scheme` (for a `SchemeCheck` of one query)."""
    return lambda: scheme


class _End(NamedTuple):
    """How a job that left the queue ended, as far as its files and the scheduler tell."""

    code: int
    reason: Optional[str]
    own_end: bool  # the exit code is the job's own: it ran to its end before any cancel
    times: Times  # what its wrapper recorded of its run


class _Collected(NamedTuple):
    """A job collected by a batch: what its submission, alone or as an array task, needs."""

    workdir: str
    wrapper: str
    exit_file: str
    out: Optional[str]
    err: str
    runflags: Settings
    argv: list[str]  # its submission as a plain job, tag included
    tag: Optional[str]
    group: tuple[tuple[str, ...], tuple[str, ...], bool]  # flags, directives, out is None
    completion: Completion
    batch: Optional[str]  # the name given to batch(), or None


class GridRunner(JobRunner):
    """Submits each job's runscript to a batch scheduler and completes it when it leaves the queue.

    A parallel GridRunner (the default) holds no thread for a job in the scheduler's queue:
    ``job.run()`` returns at once for any number of jobs, the jobs wait in the runner's FIFO,
    at most ``submit_workers`` submit commands run at once, and ``maxjobs`` caps how many of the
    runner's jobs are in the queue. One poller thread checks the queue for all of them every
    ``sleepstep`` seconds and ends each job (exit code, reason, callbacks) when it has left.
    `call` still returns the job's real exit code when called by code of your own, and a
    subclass that overrides `call` gets a thread per job, as a JobRunner does (see the docs
    page "Exit codes, failures, cancelling"). A serial GridRunner waits for each job in turn.

    Attributes:
        config: the predefined schemes, as Settings branches ``slurm``, ``pbs`` (PBS Pro and
            Torque) and ``sge`` (Grid Engine); schemes added here are tried by ``grid="auto"``.
        settings: this runner's own copy of its scheme (change it freely; it is read anew for
            every submission and check).
        scheme_name: the scheme's name in `config`, or ``"custom"`` for a Settings passed in.

    Args:
        grid: a scheme name from `config`, ``"auto"`` to detect the scheduler installed here, or
            a Settings (or mapping) holding a scheme of your own.
        sleepstep: seconds between two queue checks.
        parallel: submit jobs from the runner's workers, ``job.run()`` returning at once (the
            default, unlike JobRunner); False waits for each job in the caller's thread.
        maxjobs: the most jobs of this runner in the queue at once; 0 for no limit.
        maxthreads: the most job threads alive at once when a subclass overrides `call` (a
            thread per job); caps ``submit_workers`` otherwise.
        submit_workers: the most submit commands run at once (default 4).

    Raises:
        ValueError: an unknown scheme name, a scheme missing required keys, or a bad sleepstep.
        TypeError: ``grid`` is neither a string nor a mapping.
        runner_grid.DetectionError: ``grid="auto"`` found no scheduler.
    """

    config: ClassVar[Settings] = Settings({name: factory() for name, factory in SCHEMES.items()})
    scheduler_queue: ClassVar[bool] = True  # SUBMITTED in the queue, RUNNING once started

    def __init__(
        self,
        grid: Union[str, Mapping[str, Any]] = "auto",
        sleepstep: float = 5,
        parallel: bool = True,
        maxjobs: int = 0,
        maxthreads: int = 256,
        *,
        submit_workers: int = SUBMIT_WORKERS,
    ) -> None:
        """Create a runner; see the class docstring."""
        self._submit_workers = _count("submit_workers", submit_workers)
        self.scheme_name, scheme = self._resolve(grid)
        step = _seconds("sleepstep", sleepstep)
        self.settings: Settings = scheme
        self._grid_lock = threading.Lock()
        self._queued: dict[str, Optional[Results]] = {}  # job id -> Results, None outside a job
        self._exit_files: dict[str, str] = {}  # job id -> its exit-code file
        self._ended_first: set[str] = set()  # ids whose job ended by itself before a cancel
        self._detached: dict[str, Completion] = {}  # job id -> how to end it, detached jobs
        self._array_tasks: dict[str, set[str]] = {}  # array id -> its tasks not ended yet
        self._array_of: dict[str, str] = {}  # task id -> its array's id
        self._cancel_sent: set[str] = set()
        self._to_cancel: list[str] = []  # ids job.cancel() asked for, for the canceller
        self._cancelling = False
        self._stop = threading.Event()
        self._batch_depth = 0
        self._collected: Optional[list[_Collected]] = None  # jobs of the open batch
        self._batch_thread: Optional[int] = None  # the thread in the open batch's block
        self._batch_name: Optional[str] = None  # the open batch's name
        self._array_limits: dict[str, int] = {}  # largest array, per scheme name
        self._check = SchemeCheck(self.scheme)
        self._poller = QueuePoller(
            self._check,
            step,
            name=f"runner-grid-poller:{self.scheme_name}",
            on_round=self._look_for_starts,
        )
        self._finisher = Worker(f"runner-grid-finish:{self.scheme_name}")
        self._canceller = Worker(f"runner-grid-cancel:{self.scheme_name}")
        # maxjobs across every array and batch: each submitted unit (an array, or a job of
        # a batch submitted alone) holds a share of maxjobs (its throttle) until it has
        # left the queue; units that find no share wait here, submitted as shares free.
        self._shares: dict[str, int] = {}  # array id or job id -> its share of maxjobs
        self._waiting_units: collections.deque[list[_Collected]] = collections.deque()
        self._unit_scheme: Optional[Scheme] = None
        self._releaser = Worker(f"runner-grid-batch:{self.scheme_name}")
        # A job in the queue needs a thread only when a subclass's own call must block.
        self._detaching = type(self).call is GridRunner.call
        super().__init__(parallel=parallel, maxjobs=maxjobs, maxthreads=maxthreads)
        self._maxthreads = self._pool.maxthreads
        if self._detaching:
            self._pool.bounded = False  # queued jobs hold no thread: job.run() never blocks
            self._pool.maxthreads = min(self._maxthreads, self._submit_workers)

    @classmethod
    def _resolve(cls, grid: Union[str, Mapping[str, Any]]) -> tuple[str, Settings]:
        if isinstance(grid, str):
            if grid == "auto":
                name = detect_scheme(cls.config)
            elif grid in cls.config:
                name = grid
            else:
                known = ", ".join(sorted(cls.config))
                raise ValueError(
                    f"grid {grid!r} is not a known scheme (known: {known}); "
                    "pass a Settings for your own"
                )
            scheme = Settings(cls.config[name]).copy()
        elif isinstance(grid, Mapping):
            name = "custom"
            scheme = Settings(grid).copy() if not isinstance(grid, Settings) else grid.copy()
        else:
            raise TypeError(
                "grid must be a scheme name, 'auto' or a Settings, "
                f"not {type(grid).__name__} {grid!r}"
            )
        Scheme.of(scheme, name)  # refuse a bad scheme now, naming what is wrong
        return name, scheme

    def __repr__(self) -> str:
        return (
            f"GridRunner(grid={self.scheme_name!r}, sleepstep={self.sleepstep:g}, "
            f"parallel={self.parallel}, maxjobs={self.maxjobs}, maxthreads={self.maxthreads}, "
            f"submit_workers={self.submit_workers})"
        )

    @property
    def maxthreads(self) -> int:
        """The most job threads alive at once (settable); see the class docstring."""
        return self._maxthreads

    @maxthreads.setter
    def maxthreads(self, value: int) -> None:
        self._maxthreads = _count("maxthreads", value)
        self._apply_threads()

    @property
    def submit_workers(self) -> int:
        """The most submit commands run at once (settable)."""
        return self._submit_workers

    @submit_workers.setter
    def submit_workers(self, value: int) -> None:
        self._submit_workers = _count("submit_workers", value)
        self._apply_threads()

    def _apply_threads(self) -> None:
        limit = min(self._maxthreads, self._submit_workers) if self._detaching else self._maxthreads
        self._pool.maxthreads = limit

    @property
    def sleepstep(self) -> float:
        """Seconds between two queue checks (settable)."""
        return self._poller.sleepstep

    @sleepstep.setter
    def sleepstep(self, value: float) -> None:
        self._poller.sleepstep = _seconds("sleepstep", value)

    def scheme(self) -> Scheme:
        """A validated view of `settings` as it is now (read anew for every use).

        Raises:
            runner_grid.SchemeError: a key of `settings` is unknown or has the wrong type.
        """
        return Scheme.of(self.settings, self.scheme_name)

    @property
    def check_count(self) -> int:
        """Number of queue-check commands this runner has run so far."""
        return self._check.count

    @property
    def queued(self) -> list[str]:
        """Ids of this runner's jobs that are in the queue (submitted and not yet released)."""
        with self._grid_lock:
            return list(self._queued)

    # --- one job -----------------------------------------------------------------------

    def call(
        self, runscript: str, workdir: str, out: Optional[str], err: str, runflags: Settings
    ) -> int:
        """Submit ``workdir/runscript`` and wait until the job has left the queue.

        The runscript is submitted through a small wrapper (``<runscript>.grid``) that keeps its
        ``#SBATCH``/``#$``/``#PBS`` lines and records its exit code in ``<name>.exitcode``.
        Called by a parallel GridRunner for its own job (not by code of yours, nor through a
        subclass's override), it does not wait: the job is detached from the submit worker
        (`runner_core.ext.detach_job`) and the poller ends it when it leaves the queue; the
        value returned then is not the exit code and is ignored.

        Args:
            runscript: the runscript's file name, relative to workdir.
            workdir: the job's folder.
            out: file for the job's stdout, or None (the runscript redirects it itself, so the
                scheduler gets no output flag).
            err: file for the job's stderr.
            runflags: the job's ``settings.run``: extra submit flags (see `build_submit_argv`).

        Returns:
            The job's exit code; 1 when the submission failed (the job then ends FAILED with the
            submit command's stderr as its error).
        """
        workdir = os.path.abspath(workdir)
        try:
            scheme = self.scheme()
            prefixes = scheme.directives or DIRECTIVE_PREFIXES
            wrapped = write_wrapper(workdir, runscript, prefixes)
            wrapper, exit_file = wrapped.path, wrapped.exit_file
            tag = _tag_for(scheme, runscript, runflags)
            tag_args = [] if tag is None else flag_args("tag", tag, {"tag": scheme.tag_flag or ""})
            argv = build_submit_argv(
                scheme.raw, wrapper, workdir, out, err, runflags=runflags, tag_args=tag_args
            )
        except (OSError, ValueError, TypeError) as exc:  # SchemeError is a ValueError
            report_failure(
                f"could not prepare the submission of {runscript!r}: {exc}", reason="submit_failed"
            )
            return 1
        command = format_command(argv)
        if self.cancelled:
            logger.info("not submitting %s: the runner is cancelling", command)
            return 1
        if self._collected is not None and self._collect(
            scheme,
            workdir=workdir,
            out=out,
            err=err,
            runflags=runflags,
            argv=argv,
            tag=tag,
            wrapped=wrapped,
        ):
            return 0
        results = current_results()
        # A Ctrl-C between the submission and the record of its id would leave the job in
        # the queue with nobody to cancel it: it is raised once the id is recorded.
        if tag is not None:
            report_tag(tag)  # on record first: a resume finds the job by it if all else is lost
        with deferred_interrupts():
            jobid = self._submit(scheme, argv, command, tag)
            if jobid is None:
                return 1
            report_jobid(jobid)
            with self._grid_lock:
                self._queued[jobid] = results
                self._exit_files[jobid] = exit_file
                cancelling = self._cancelling or _job_cancelled(results)
        if cancelling:
            self._cancel_ids([jobid])
        if self._detaching and self.parallel and can_detach(self):
            # The job leaves this thread (a submit worker): the poller ends it.
            self._watch_detached(jobid, exit_file, detach_job())
            return 0
        try:
            wait_event(self._poller.register(jobid))
            end = self._end_of(scheme, jobid, exit_file, _job_cancelled(results))
        finally:
            self._forget(jobid)
        if end.reason is not None:
            report_reason(end.reason)
        report_end(
            own_end=end.own_end, started_at=end.times.started, finished_at=end.times.finished
        )
        return end.code

    def _complete(
        self,
        jobid: str,
        exit_file: str,
        completion: Completion,
        deadline: Optional[float] = None,
        delay: float = 0.25,
    ) -> None:
        """End a detached job that left the queue: exit code, reason, finalize, callbacks.

        Runs in the finisher. When nothing tells how the job ended yet, it is put back to be
        looked at again later (within ``exitcode_wait``), so the finisher never waits on one
        job while others are ready.
        """
        try:
            scheme = self.scheme()
            cancelled = self.cancelled or completion.results.cancel_requested
            now = time.monotonic()
            if deadline is None:
                deadline = now + (0.0 if cancelled else scheme.exitcode_wait)
            last = now >= deadline or self._stop.is_set()
            end = self._end_step(scheme, jobid, exit_file, cancelled, last)
        except Exception as exc:
            logger.exception("could not find out how job %s ended", jobid)
            self._forget(jobid)
            completion.fail(f"could not find out how job {jobid} ended: {exc!r}")
            return
        if end is None:
            again = min(delay * 2, 5.0)
            self._finisher.put(
                lambda: self._complete(jobid, exit_file, completion, deadline, again),
                after=min(delay, deadline - now),
            )
            return
        with self._grid_lock:
            ended_first = jobid in self._ended_first
        self._forget(jobid)
        completion.complete(
            end.code,
            reason=end.reason,
            own_end=end.own_end or (ended_first and end.code == 0),
            started_at=end.times.started,
            finished_at=end.times.finished,
        )

    def _forget(self, jobid: str) -> None:
        with self._grid_lock:
            self._queued.pop(jobid, None)
            exit_file = self._exit_files.pop(jobid, None)
            self._ended_first.discard(jobid)
            self._detached.pop(jobid, None)
            self._cancel_sent.discard(jobid)
            freed = self._shares.pop(jobid, 0)
            array = self._array_of.pop(jobid, None)
            if array is not None:
                tasks = self._array_tasks[array]
                tasks.discard(jobid)
                if not tasks:
                    del self._array_tasks[array]
                    freed += self._shares.pop(array, 0)
            more = bool(freed and self._waiting_units)
        if more:
            self._releaser.put(self._start_waiting_units)
        if exit_file is not None:  # an older wrapper, killed while it wrote, left one
            remove_leftovers(exit_file)

    def _submit(
        self, scheme: Scheme, argv: list[str], command: str, tag: Optional[str]
    ) -> Optional[str]:
        """Run the submit command, with retries (see `runner_grid._submitter`); the id or None.

        A failure is reported on the job (FAILED, reason "submit_failed") and gives None.
        """
        logger.info("submitting: %s", command)
        # run_query gives the submit command a session of its own too: the terminal's
        # Ctrl-C must not kill it after the job is queued but before it printed the id.
        # It runs in the user's own environment (SBATCH_* and the like apply).
        outcome = submit_job(scheme, argv, os.environ, tag, self._stop.wait)
        if outcome.jobid is None:
            report_failure(outcome.error or "the submission failed", reason="submit_failed")
            return None
        logger.info("submitted job %s: %s", outcome.jobid, command)
        return outcome.jobid

    def _end_of(self, scheme: Scheme, jobid: str, exit_file: str, job_cancelled: bool) -> _End:
        """How a job that left the queue ended, waiting for it to tell.

        Looks with `_end_step` until it tells or ``exitcode_wait`` seconds have passed (at
        once when the job was cancelled). For a thread that waits for one job (a blocking
        `call`); a detached job is looked at again from the finisher instead (`_complete`).
        """
        cancelled = self.cancelled or job_cancelled
        deadline = time.monotonic() + (0.0 if cancelled else scheme.exitcode_wait)
        delay = 0.25
        while True:
            remaining = deadline - time.monotonic()
            end = self._end_step(scheme, jobid, exit_file, cancelled, last=remaining <= 0)
            if end is not None:
                return end
            if self._stop.wait(min(delay, remaining)):
                deadline = time.monotonic()  # cancelling: one last look, then do without
            delay = min(delay * 2, 5.0)

    def _end_step(
        self, scheme: Scheme, jobid: str, exit_file: str, cancelled: bool, last: bool
    ) -> Optional[_End]:
        """One look at how a job ended; None when nothing tells yet and this is not the last.

        The job's own exit-code file first; when it is missing or non-zero, the scheduler's
        records (``commands.exitcode`` queries read by ``commands.parse_end``, or by the
        PLAMS-era ``parse_exitcode``, which knows no reason). Accounting may be written late
        (Grid Engine's flush_time), so until the last look a missing record means "ask
        again". At the last look with nothing known, the exit code is 1 (see the docs page
        on exit codes). The times are what the job's wrapper recorded.

        An exit code the job wrote is its own end (its work is kept even when a cancel
        came meanwhile) unless the scheduler says the job was cancelled, or a cancel was
        requested and nothing says why a non-zero code came.
        """
        code = read_exitcode(exit_file)
        times = read_times(times_for(exit_file))
        if code == 0:
            return _End(0, None, True, times)
        if code is not None:  # the runscript's own code; the scheduler may know why
            if scheme.get("parse_end") is None:
                return _End(code, None, not cancelled, times)
            told = self._query_end(scheme, jobid)
            if told is not None:
                return _End(code, told[1], told[1] != "cancelled", times)
            return _End(code, None, not cancelled, times) if last else None
        told = self._query_end(scheme, jobid)
        if told is not None:
            logger.info("job %s wrote no exit code; the scheduler reports %d", jobid, told[0])
            return _End(told[0], told[1], told[0] == 0 and told[1] is None, times)
        if not last:
            return None
        if cancelled:
            logger.info("job %s was cancelled before it wrote an exit code; reporting 1", jobid)
            return _End(1, "cancelled", False, times)
        logger.warning(
            "exit code of job %s is unknown: it wrote no %s (killed, cancelled or its node "
            "failed) and the scheduler no longer reports it; reporting 1",
            jobid,
            exit_file,
        )
        return _End(1, None, False, times)

    def _look_for_starts(self, ids: Sequence[str]) -> None:
        """After a queue check: the jobs still queued that have started become RUNNING.

        A job has started when its wrapper recorded its start (``<name>.times``; its real
        start time is taken from there) or when the scheduler's listing shows it running
        (``commands.started``), whichever is seen first: a node's file system may show the
        file late. Runs in the poller's thread; a stat per job that has not started yet.
        """
        begun = self._check.started
        with self._grid_lock:
            pending = [
                (results, self._exit_files.get(jobid))
                for jobid in ids
                if (results := self._queued.get(jobid)) is not None
                and results.status is JobStatus.SUBMITTED
            ]
        for results, exit_file in pending:
            times = NO_TIMES if exit_file is None else read_times(times_for(exit_file))
            if times.started is not None:
                report_started(results, at=times.started, native_id=times.native_id)
            elif results.jobid is not None and results.jobid in listed_ids(begun):
                report_started(results)

    def _query_end(self, scheme: Scheme, jobid: str) -> Optional[tuple[int, Optional[str]]]:
        """(exit code, reason) from the scheduler's records, or None when they do not tell."""
        queries = scheme.get("exitcode")
        parse_end = scheme.get("parse_end")
        parse_code = scheme.get("parse_exitcode")
        if queries is None or (parse_end is None and parse_code is None):
            return None
        env = query_env(scheme)
        timeout = scheme.check_timeout
        for query in queries(jobid):
            argv = split_command(query, "commands.exitcode")
            try:
                proc = run_query(argv, env, timeout)
            except CheckFailed as exc:
                logger.debug("exit-code query for job %s failed: %s", jobid, exc)
                continue
            if proc.returncode != 0:
                continue
            if parse_end is not None:
                end = parse_end(proc.stdout)
                if end is not None:
                    code, reason = end
                    if isinstance(code, int) and not isinstance(code, bool):
                        return code, reason
                continue
            code = parse_code(proc.stdout) if parse_code is not None else None
            if isinstance(code, int) and not isinstance(code, bool):
                return code, None
        return None

    # --- job arrays ----------------------------------------------------------------------

    @contextlib.contextmanager
    def batch(self, name: Optional[str] = None) -> Iterator[None]:
        """Collect the jobs run inside the block; submit them as job arrays when it ends.

        Args:
            name: what the arrays are called in the scheduler's queue (``squeue``,
                ``qstat``), so that a person sees which campaign a task belongs to; by
                default the name of the jobs' JobManager folder.

        ``job.run()`` returns at once as always. When the block ends, the jobs run inside it
        are grouped: jobs whose submissions differ only in their folder and files (the same
        runflags, the same ``#SBATCH``/``#$``/``#PBS`` lines) go in one array, split at the
        largest array the scheduler takes (the scheme's ``array.max_size``, else SLURM's
        ``MaxArraySize``, Grid Engine's ``max_aj_tasks``, PBS's ``max_array_size``, else
        1,000). One submit command per array; a group of one is submitted as a plain job.
        Each task runs its own job: own folder, runscript, output, error, exit code and end
        reason; ``job.cancel()`` cancels its task only, and a task that fails fails its own
        job only. ``results.jobid`` is the task's id (``123_4``, ``123.4``, ``9[4].server``).

        ``maxjobs`` caps the runner's jobs in the queue across all its arrays and batches:
        each array gets a share of it as its throttle (``%N`` on SLURM, ``-tc N`` on Grid
        Engine, ``-J 1-N%M`` on PBS), the shares of all arrays summing to at most
        ``maxjobs``; an array that finds no share free waits in the runner and is
        submitted when another has left the queue. On a scheme without a throttle only the
        first ``maxjobs`` jobs go in the arrays and the rest wait in the runner, submitted
        one by one as others leave the queue. The block returns once the arrays are
        submitted. Nested blocks submit when the outermost ends. A serial runner, a subclass
        that overrides `call`, and a scheme without arrays submit each job on its own.

        Raises:
            runner_grid.SchemeError: the scheme's settings are bad (when the block starts).
        """
        arrays = self._detaching and self.parallel and self.scheme().has_arrays
        if not arrays:
            logger.info("%r submits the jobs of this batch one by one (no job arrays)", self)
            yield
            return
        with self._grid_lock:
            self._batch_depth += 1
            outer = self._batch_depth == 1
            if outer:
                self._collected = []
                self._batch_thread = threading.get_ident()
                self._batch_name = name
        if outer and self.scheme().array_throttle:
            self._pool.limit = 0  # all jobs reach call() to be collected; maxjobs throttles
        submit = False
        try:
            yield
            submit = True
        except (KeyboardInterrupt, Terminated):
            raise
        except BaseException:
            submit = True  # the jobs run so far go on, as plain jobs would
            raise
        finally:
            with self._grid_lock:
                self._batch_depth -= 1
                last = self._batch_depth == 0
                if last:
                    self._batch_thread = None
            if last:
                self._end_batch(submit)

    def wait(self, timeout: Optional[float] = None) -> None:
        """Return when every job started through this runner has ended (see `JobRunner.wait`).

        Raises:
            TimeoutError: the timeout passed first.
            RuntimeError: called inside this runner's ``batch()`` block, in its thread: the
                block's jobs are submitted only when it ends, so this would wait forever.
        """
        if self._batch_thread == threading.get_ident():
            raise RuntimeError(
                f"{self!r}: wait() (or shutdown()) inside `with runner.batch():` would wait "
                "forever, since the batch's jobs are submitted when the block ends; wait "
                "after the block"
            )
        super().wait(timeout)

    def _collect(
        self,
        scheme: Scheme,
        *,
        workdir: str,
        out: Optional[str],
        err: str,
        runflags: Settings,
        argv: list[str],
        tag: Optional[str],
        wrapped: Wrapper,
    ) -> bool:
        """Take the job of this thread into the open batch (it detaches); False if not taken."""
        if not (self._detaching and self.parallel and can_detach(self) and scheme.has_arrays):
            return False
        # The runflags' own arguments (build_submit_argv accepted them already), for grouping.
        special = special_prefixes(scheme.raw)
        flags = [
            a
            for k, v in runflags.items()
            for a in flag_args(str(k), v, special, long_flags=scheme.long_flags)
        ]
        with self._grid_lock:
            collected = self._collected
            if collected is None:
                return False
            collected.append(
                _Collected(
                    workdir,
                    wrapped.path,
                    wrapped.exit_file,
                    out,
                    err,
                    runflags,
                    argv,
                    tag,
                    (tuple(flags), wrapped.directives, out is None),
                    detach_job(),
                    self._batch_name,
                )
            )
        return True

    def _end_batch(self, submit: bool) -> None:
        """Close the batch: wait until its jobs are collected, then submit them.

        Without `submit` (a Ctrl-C or SIGTERM in the block), or when the wait is cut short,
        the batch's jobs are cancelled instead, by a thread that collects the stragglers,
        so the interrupt goes on at once.
        """
        if submit:
            try:
                self._wait_until_collected()
            except BaseException:
                submit = False
                raise
            finally:
                if not submit:
                    self._discard_batch_later()
        else:
            self._discard_batch_later()
            return
        collected = self._close_collection()
        if not collected:
            return
        done = threading.Event()

        def submit_all() -> None:
            try:
                self._submit_collected(collected)
            finally:
                done.set()

        threading.Thread(
            target=submit_all, name=f"runner-grid-batch:{self.scheme_name}", daemon=True
        ).start()
        wait_event(done)  # a Ctrl-C here cancels the runner, which stops the submissions

    def _close_collection(self) -> list[_Collected]:
        """End the collecting; give back the jobs collected and restore the ``maxjobs`` limit."""
        with self._grid_lock:
            collected, self._collected = self._collected or [], None
        self._pool.limit = self.maxjobs if self.parallel else 0
        return collected

    def _discard_batch_later(self) -> None:
        """Cancel the jobs of a batch that must not be submitted, in a thread of its own."""

        def discard() -> None:
            self._wait_until_collected()
            for job in self._close_collection():
                job.completion.complete(1, reason="cancelled")

        threading.Thread(
            target=discard, name=f"runner-grid-batch:{self.scheme_name}", daemon=True
        ).start()

    def _wait_until_collected(self) -> None:
        """Wait until no job of the runner is on its way to `call` (all collected or ended).

        Jobs held back by ``maxjobs`` (a scheme without a throttle) do not count: they are
        submitted later, one by one.
        """
        delay = 0.001
        while True:
            snap = self.snapshot()
            in_threads = snap.tasks - snap.queued - snap.expedited - snap.detached
            limit = self._pool.limit
            held_back = bool(limit) and snap.slots >= limit
            if in_threads <= 0 and not snap.expedited and (not snap.queued or held_back):
                return
            time.sleep(delay)
            delay = min(delay * 2, 0.02)

    def _submit_collected(self, collected: Sequence[_Collected]) -> None:
        """Submit the jobs of a batch: arrays of equal submissions, a group of one alone."""
        try:
            scheme = self.scheme()
            size = self._max_array_size(scheme)
        except Exception as exc:
            for job in collected:
                job.completion.fail(f"could not submit the batch: {exc}", reason="submit_failed")
            return
        units = []
        for group in partition(collected, lambda job: job.group, size):
            live = []
            for job in group:
                if self.cancelled or job.completion.results.cancel_requested:
                    job.completion.complete(1, reason="cancelled")
                else:
                    live.append(job)
            if live:
                units.append(live)
        if not (self.maxjobs and scheme.array_throttle):
            for unit in units:  # no cap, or the pool's maxjobs holds jobs back (no throttle)
                self._submit_unit(scheme, unit, 0)
            return
        with self._grid_lock:
            self._waiting_units.extend(units)
            self._unit_scheme = scheme
        self._start_waiting_units()

    def _start_waiting_units(self) -> None:
        """Submit the waiting units of batches that fit in what is left of ``maxjobs``.

        The runner's jobs in the queue take ``maxjobs`` as shares: a plain job one, an
        array its throttle. A unit gets an even part of what is free (at least 1, at most
        its size) as its throttle; units that find nothing free wait until a unit leaves
        the queue. So two arrays under ``maxjobs=4`` run at most 4 tasks at once in all.
        """
        while True:
            with self._grid_lock:
                scheme = self._unit_scheme
                if not self._waiting_units or scheme is None or self.cancelled:
                    return
                # a plain job in the queue outside any batch holds 1, a unit its share
                unshared = sum(
                    1
                    for jobid in self._queued
                    if jobid not in self._array_of and jobid not in self._shares
                )
                free = self.maxjobs - sum(self._shares.values()) - unshared
                if free < 1:
                    return
                unit = self._waiting_units.popleft()
                share = min(len(unit), max(1, free // (len(self._waiting_units) + 1)))
                key = f"unit-{id(unit)}"
                self._shares[key] = share  # held from now: the submit runs outside the lock
            try:
                self._submit_unit(scheme, unit, share, key)
            finally:
                with self._grid_lock:
                    self._shares.pop(key, None)

    def _submit_unit(
        self, scheme: Scheme, unit: list[_Collected], throttle: int, key: Optional[str] = None
    ) -> None:
        """Submit one unit of a batch: an array of its jobs, or its one job alone."""
        if len(unit) == 1:
            jobid = self._submit_alone(scheme, unit[0])
        else:
            jobid = self._submit_array(scheme, unit, throttle)
        if jobid is not None and key is not None:
            with self._grid_lock:
                if jobid in self._queued or jobid in self._array_tasks:
                    self._shares[jobid] = throttle

    def _submit_alone(self, scheme: Scheme, job: _Collected) -> Optional[str]:
        command = format_command(job.argv)
        if job.tag is not None:
            job.completion.report_tag(job.tag)
        logger.info("submitting: %s", command)
        outcome = submit_job(scheme, job.argv, os.environ, job.tag, self._stop.wait)
        if outcome.jobid is None:
            job.completion.fail(outcome.error or "the submission failed", reason="submit_failed")
            return None
        logger.info("submitted job %s: %s", outcome.jobid, command)
        self._watch_submitted([(outcome.jobid, job)])
        return outcome.jobid

    def _submit_array(
        self, scheme: Scheme, jobs: Sequence[_Collected], throttle: int
    ) -> Optional[str]:
        """Submit `jobs` as one array, task i running ``jobs[i - 1]``; register every task."""
        first = jobs[0]
        # Schedulers name the array after its script: the batch's name, so that a person
        # reading the queue sees which campaign a task belongs to.
        stem = safe_job_name(first.batch or os.path.basename(os.path.dirname(first.workdir)))
        tag = None if first.tag is None else new_tag(stem)
        folder = os.path.join(os.path.dirname(first.workdir), ARRAYS_FOLDER, new_tag(stem))
        try:
            files = write_array_files(
                folder,
                f"{stem}.array",
                index=index_expression(scheme.array_index),
                tasks=[(job.wrapper, job.out, job.err) for job in jobs],
                directives=first.group[1],
                output_index=scheme.array_output_index,
            )
            tag_args = [] if tag is None else flag_args("tag", tag, {"tag": scheme.tag_flag or ""})
            argv = build_submit_argv(
                scheme.raw,
                files.script,
                files.folder,
                files.out,
                files.err,
                runflags=first.runflags,
                tag_args=tag_args,
            )
            extra = scheme.commands["array"](len(jobs), throttle)
            argv[-1:-1] = split_command(extra, "commands.array")
        except Exception as exc:  # OSError, a bad scheme, a user's commands.array raising
            message = f"could not prepare the array of {len(jobs)} jobs in {folder!r}: {exc}"
            for job in jobs:
                job.completion.fail(message, reason="submit_failed")
            return None
        command = format_command(argv)
        if tag is not None:
            for index, job in enumerate(jobs, start=1):
                job.completion.report_tag(f"{tag}{TASK_TAG}{index}")
        logger.info("submitting an array of %d jobs: %s", len(jobs), command)
        outcome = submit_job(scheme, argv, os.environ, tag, self._stop.wait)
        if outcome.jobid is None:
            for job in jobs:
                job.completion.fail(
                    outcome.error or "the submission failed", reason="submit_failed"
                )
            return None
        logger.info("submitted job %s: an array of %d tasks: %s", outcome.jobid, len(jobs), command)
        task_id = scheme.commands["task_id"]
        tasks = [(str(task_id(outcome.jobid, i)), job) for i, job in enumerate(jobs, 1)]
        with self._grid_lock:
            self._array_tasks[outcome.jobid] = {jobid for jobid, _job in tasks}
            self._array_of.update((jobid, outcome.jobid) for jobid, _job in tasks)
        self._watch_submitted(tasks)
        return outcome.jobid

    def _watch_submitted(self, submitted: Sequence[tuple[str, _Collected]]) -> None:
        """Record the ids of submitted batch jobs and hand them to the poller."""
        cancel = []
        for jobid, job in submitted:
            job.completion.report_jobid(jobid)
        with self._grid_lock:
            for jobid, job in submitted:
                results = job.completion.results
                self._queued[jobid] = results
                self._exit_files[jobid] = job.exit_file
                if self._cancelling or results.cancel_requested:
                    cancel.append(jobid)
        if cancel:
            self._cancel_ids(cancel)
        for jobid, job in submitted:
            self._watch_detached(jobid, job.exit_file, job.completion)

    def _watch_detached(self, jobid: str, exit_file: str, completion: Completion) -> None:
        """Have the poller watch a detached job; the finisher ends it once it left the queue."""
        with self._grid_lock:
            self._detached[jobid] = completion
        self._poller.watch(
            jobid,
            lambda: self._finisher.put(lambda: self._complete(jobid, exit_file, completion)),
        )

    def _max_array_size(self, scheme: Scheme) -> int:
        """The most tasks of one array: the scheme's, the scheduler's (asked once), or 1,000."""
        if scheme.array_max_size:
            return scheme.array_max_size
        limit = self._array_limits.get(scheme.name)
        if limit is None:
            limit = self._array_limits[scheme.name] = max_array_size(scheme)
        return limit

    # --- the run journal: resume, leave, cancel from the record ------------------------

    def journal_info(self) -> dict[str, Any]:
        """What the run journal records of this runner (``runner resume`` builds it again).

        Returns:
            ``{"kind": "grid", "scheme": ..., "parallel": ..., "maxjobs": ..., "sleepstep":
            ..., "submit_workers": ...}``; the scheme is its name in `config` (a scheme
            of your own is recorded as "custom", and such a run is resumed by running its
            script again).
        """
        return {
            "kind": "grid",
            "scheme": self.scheme_name,
            "parallel": self.parallel,
            "maxjobs": self.maxjobs,
            "sleepstep": self.sleepstep,
            "submit_workers": self.submit_workers,
        }

    @classmethod
    def from_journal_info(cls, info: Mapping[str, Any]) -> GridRunner:
        """The runner again from what `journal_info` recorded (``runner resume DIR``).

        Raises:
            ValueError: the run used a scheme of its own (not in `config`), which the journal
                cannot rebuild: resume it by running its script again with ``resume=True``.
        """
        name = str(info.get("scheme", "auto"))
        if name not in cls.config:
            raise ValueError(
                f"the run used the grid scheme {name!r}, which is not in GridRunner.config; "
                "resume it by running its script again with JobManager(folder, resume=True)"
            )
        return cls(
            grid=name,
            sleepstep=float(info.get("sleepstep", 5)),
            parallel=bool(info.get("parallel", True)),
            maxjobs=int(info.get("maxjobs", 0)),
            submit_workers=int(info.get("submit_workers", SUBMIT_WORKERS)),
        )

    def reattach(self, record: JobRecord) -> bool:
        """Wait again for a job an earlier driver submitted, instead of submitting it again.

        The job is found by its recorded id, or by its tag in the queue (and the scheduler's
        recent history) when the id never reached the record. Found, it is detached and the
        poller ends it when it has left the queue (at once when it ended while no driver
        ran), with its exit code from its folder or the scheduler. Not found, it never
        reached the queue: False, and it is submitted again.

        Raises:
            runner_grid.SchemeError: the scheme's settings are bad.
        """
        scheme = self.scheme()
        jobid = record.jobid or find_recorded(scheme, record.tag)
        results = current_results()
        if jobid is None or results is None:
            return False
        report_jobid(jobid)
        exit_file = exitcode_path(record.path, results.job.runscript_name)
        with self._grid_lock:
            self._queued[jobid] = results
            self._exit_files[jobid] = exit_file
        logger.info("job %s of %s is waited for again (resumed)", jobid, record.path)
        self._watch_detached(jobid, exit_file, detach_job())
        return True

    def _leave_jobs_queued(self) -> int:
        """With ``config.grid_jobs_on_exit = "keep"``: leave the journaled jobs in the queue.

        Each job in the scheduler's queue that a journal records is let go (`Completion.leave`):
        the runner stops watching it and `_cancel_jobs` leaves it alone, so a resume waits for
        it again. Jobs not submitted yet, and jobs of a call that blocks (a subclass's own),
        are cancelled as usual.
        """
        with self._grid_lock:
            left = [
                (jobid, completion)
                for jobid, completion in self._detached.items()
                if journaled(completion.results)
            ]
            for jobid, _completion in left:
                self._queued.pop(jobid, None)
                self._detached.pop(jobid, None)
        self._poller.forget([jobid for jobid, _completion in left])
        for _jobid, completion in left:
            completion.leave()
        return len(left)

    @classmethod
    def observe_recorded(
        cls, records: Sequence[JobRecord], ask_scheduler: bool = False
    ) -> dict[int, RecordedState]:
        """Where recorded grid jobs are now, from their folders and (optionally) the scheduler.

        A job whose wrapper wrote its exit code has ended by itself: SUCCESSFUL (0) or,
        with the scheduler's reason where it is asked, CRASHED or CANCELLED. One that
        recorded its start and no end is RUNNING. With `ask_scheduler`, a job that wrote
        nothing and is no longer in the queue ended as the scheduler's records say (if
        they say). See `runner_core.JobRunner.observe_recorded`.
        """
        seen: dict[int, RecordedState] = {}
        unknown: list[tuple[JobRecord, Times]] = []
        by_scheme: dict[str, list[JobRecord]] = {}
        for record in records:
            by_scheme.setdefault(str(record.runner.get("scheme", "auto")), []).append(record)
        for name, group in by_scheme.items():
            runner: Optional[GridRunner] = None
            scheme: Optional[Scheme] = None
            if ask_scheduler:
                try:
                    runner = cls.from_journal_info({"scheme": name, "sleepstep": 1})
                    scheme = runner.scheme()
                except (ValueError, TypeError) as exc:
                    logger.error("cannot ask the scheduler of scheme %r: %s", name, exc)
            unknown = []
            for record in group:
                exit_file = exitcode_path(record.path, record.name + ".run")
                times = read_times(times_for(exit_file))
                code = read_exitcode(exit_file)
                if code is None:
                    unknown.append((record, times))
                    continue
                reason = None
                if code != 0 and runner is not None and scheme is not None and record.jobid:
                    told = runner._query_end(scheme, record.jobid)
                    reason = None if told is None else told[1]
                seen[record.number] = _ended(code, reason, times)
            gone: set[str] = set()
            ids = [r.jobid for r, _t in unknown if r.jobid]
            if runner is not None and scheme is not None and ids:
                try:
                    still = SchemeCheck(_fixed(scheme))(ids)
                except CheckFailed as exc:
                    logger.error("could not ask which jobs are still queued: %s", exc)
                else:
                    gone = {jobid for jobid in ids if jobid not in listed_ids(still)}
            for record, times in unknown:
                if record.jobid in gone and runner is not None and scheme is not None:
                    told = runner._query_end(scheme, record.jobid)
                    if told is not None:
                        seen[record.number] = _ended(told[0], told[1], times)
                        continue
                if times.started is not None:
                    seen[record.number] = RecordedState(JobStatus.RUNNING, started_at=times.started)
        return seen

    @classmethod
    def cancel_recorded(cls, records: Sequence[JobRecord]) -> list[JobRecord]:
        """Cancel a run's grid jobs from their journal records, with no live runner.

        Runs the scheme's cancel command for the recorded ids (a job whose id never reached
        the record is looked up by its tag first). A job the scheduler no longer knows has
        ended already and counts as stopped.

        Returns:
            The records of the jobs now cancelled or gone.
        """
        stopped: list[JobRecord] = []
        by_scheme: dict[str, list[JobRecord]] = {}
        for record in records:
            by_scheme.setdefault(str(record.runner.get("scheme", "auto")), []).append(record)
        for name, group in by_scheme.items():
            try:
                runner = cls.from_journal_info({"scheme": name, "sleepstep": 1})
                scheme = runner.scheme()
            except (ValueError, TypeError) as exc:
                logger.error("cannot cancel %d jobs of scheme %r: %s", len(group), name, exc)
                continue
            ids: dict[str, JobRecord] = {}
            for record in group:
                try:
                    jobid = record.jobid or find_recorded(scheme, record.tag)
                except RuntimeError as exc:
                    logger.error("%s", exc)
                    continue
                if jobid is None:
                    stopped.append(record)  # never reached the queue
                else:
                    ids[jobid] = record
            if ids and runner._cancel_ids(list(ids)):
                stopped.extend(ids.values())
        return stopped

    # --- cancelling ----------------------------------------------------------------------

    def _cancel_jobs(self) -> None:
        """Cancel every job of this runner still in the queue (scancel/qdel), then stop waiting.

        Extends JobRunner's hook: local processes first, then the scheme's cancel command for
        the queued ids (batched; on PBS one qdel per subjob), logging what was cancelled.
        """
        super()._cancel_jobs()
        with self._grid_lock:
            self._cancelling = True
            queued = list(self._queued)
            waiting, self._waiting_units = list(self._waiting_units), collections.deque()
        for unit in waiting:  # arrays that waited for a share of maxjobs never ran
            for job in unit:
                job.completion.complete(1, reason="cancelled")
        ended = self._ended_by_themselves(queued)
        with self._grid_lock:
            ids = [jobid for jobid in self._whole_arrays(queued) if jobid not in ended]
        self._stop.set()
        if ids:
            self._cancel_ids(ids)
        self._poller.wake()
        self._finisher.hurry()

    def _ended_by_themselves(self, ids: Sequence[str]) -> set[str]:
        """The ids among `ids` whose job has written its exit code: it ended by itself.

        Such a job is not cancelled (the cancel would come after its end): it keeps its
        real state and exit code when the poller sees it gone. A stat per job.
        """
        with self._grid_lock:
            files = [(jobid, self._exit_files.get(jobid)) for jobid in ids]
        ended = {jobid for jobid, path in files if path is not None and os.path.exists(path)}
        if ended:
            with self._grid_lock:
                self._ended_first.update(jobid for jobid in ended if jobid in self._queued)
            logger.info("not cancelling %d job(s) that have ended by themselves", len(ended))
        return ended

    def _whole_arrays(self, ids: list[str]) -> list[str]:
        """`ids`, with the tasks of an array replaced by the array's id where all of them are in.

        So cancelling a batch of a thousand tasks is ``scancel 123``, not a thousand ids.
        Called with the grid lock held.
        """
        whole = [array for array, tasks in self._array_tasks.items() if tasks and tasks <= set(ids)]
        covered = set().union(*(self._array_tasks[array] for array in whole))
        return [jobid for jobid in ids if jobid not in covered] + whole

    def cancel_job(self, results: Results) -> None:
        """Cancel one job (``job.cancel()``), in the queue too, by a cancel command run elsewhere.

        Returns at once: the job's id goes to the runner's cancel thread, which runs the cancel
        command (it may take up to the scheme's ``check_timeout``) and then wakes the poller, so
        the job is released at the next check. A job not submitted yet is cancelled as soon as
        its id is known (see `call`).
        """
        super().cancel_job(results)
        with self._grid_lock:
            ids = [
                jobid
                for jobid, owner in self._queued.items()
                if owner is results and jobid not in self._cancel_sent
            ]
        ended = self._ended_by_themselves(ids)
        ids = [jobid for jobid in ids if jobid not in ended]
        with self._grid_lock:
            ids = [jobid for jobid in ids if jobid not in self._cancel_sent]
            if not ids:
                return
            self._cancel_sent.update(ids)
            self._to_cancel.extend(ids)
        # One thread for every cancel of this runner: starting a thread per job.cancel()
        # would cost the caller the fork of the cancel command too (it holds the GIL).
        self._canceller.put(self._drain_cancels)

    def _drain_cancels(self) -> None:
        """Run one cancel command for every id `cancel_job` queued since the last one."""
        with self._grid_lock:
            ids, self._to_cancel = self._to_cancel, []
        if not ids:
            return
        try:
            self._cancel_ids(ids)
        finally:
            self._poller.wake()
            # A scheduler takes a moment to remove a cancelled job: look again soon, so
            # the job ends within seconds whatever the sleepstep.
            for after in (1.0, 3.0, 7.0):
                self._canceller.put(self._poller.wake, after=after)

    def _cancel_ids(self, ids: list[str]) -> bool:
        """Run the scheme's cancel command for `ids`; False when a command could not run.

        A command that ran but failed counts as done: the scheduler refuses to cancel jobs
        that have just ended.
        """
        with self._grid_lock:
            self._cancel_sent.update(ids)
        try:
            scheme = self.scheme()
            cancel, env, timeout = scheme.get("cancel"), query_env(scheme), scheme.check_timeout
        except SchemeError as exc:  # settings changed badly mid-run: cancel all the same
            logger.error("%s; cancelling with its commands.cancel all the same", exc)
            cancel = self.settings["commands"].get("cancel")
            env, timeout = dict(os.environ), DEFAULT_QUERY_TIMEOUT
        if cancel is None:
            logger.warning(
                "scheme %r has no commands.cancel: jobs %s stay in the queue",
                self.scheme_name,
                " ".join(ids),
            )
            return False
        if callable(cancel):
            argvs = [split_command(a, "commands.cancel") for a in cancel(ids)]
        else:
            argvs = batch_commands(split_command(cancel, "commands.cancel"), ids)
        ran = True
        for argv in argvs:
            command = _brief(argv)
            try:
                proc = run_query(argv, env, timeout)
            except CheckFailed as exc:
                logger.error("could not cancel jobs: %s", exc)
                ran = False
                continue
            if proc.returncode == 0:
                logger.warning("cancelled grid jobs: %s", command)
            else:
                logger.warning(
                    "%s exited with status %d (jobs that had just ended cannot be cancelled): %s",
                    command,
                    proc.returncode,
                    proc.stderr.strip(),
                )
        return ran
