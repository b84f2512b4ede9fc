"""GridRunner: a JobRunner that submits runscripts to SLURM, PBS or Grid Engine.

The class is a facade: it checks its arguments and wires the parts that own the work.
`runner_grid._submitter` submits one job (retries, tags), `runner_grid._ending`'s
`JobsInQueue` owns the jobs in the queue and ends each one, `runner_grid._batch` collects
and submits batches as arrays, `runner_grid._cancel` cancels, and a `Scheduler` (a
scheme Settings seen through `runner_grid.Scheme`, or a class of the typed contract)
knows the scheduler's commands.

Lock order: GridRunner holds no lock of its own. Across runner-grid: `Batches._lock`,
then `JobsInQueue._lock`; the poller's, the workers', the canceller's and `LimitsCache`'s locks are
never held while another is taken, and runner-core's locks (the pool's, a Results')
are taken only with none of these held.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Optional, Union

from runner_core import RESOURCE_KEYS
from runner_core.ext import (
    can_detach,
    current_results,
    deferred_interrupts,
    detach_job,
    report_end,
    report_failure,
    report_jobid,
    report_reason,
    report_tag,
)
from runner_grid._batch import Batches, Collected
from runner_grid._cancel import Canceller
from runner_grid._commands import format_command
from runner_grid._detect import detect_scheme
from runner_grid._ending import JobsInQueue, Waiter
from runner_grid._journaled import SUBMIT_WORKERS, GridRecords
from runner_grid._limits import LimitsCache
from runner_grid._site import remote_site, stage_folder, submission_paths
from runner_grid._submitter import find_recorded
from runner_grid._wrapper import DIRECTIVE_PREFIXES, exitcode_path, write_wrapper
from runner_grid.schemes import SCHEMES
from runner_grid.schemes._base import Scheduler, Site
from runner_grid.schemes._settings import Scheme, SchemeError
from runner_settings import Settings

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from runner_core import Results, Retry
    from runner_core.ext import JobRecord
    from runner_grid._remote import SshHost

__all__ = ["GridRunner"]

logger = logging.getLogger(__name__)


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")
    return float(value)


def _resolve(
    config: Settings, grid: Union[str, Mapping[str, Any], Scheduler], site: Optional[Site]
) -> tuple[str, Settings, Optional[Scheduler]]:
    """(scheme name, settings, the Scheduler given as `grid` or None); "auto" looks on `site`."""
    if isinstance(grid, Scheduler):
        # A predefined family class is recorded by its name (a resume rebuilds it
        # from `config`); any class of the user's is "custom".
        own = type(grid).__module__.startswith("runner_grid.")
        return (grid.name if own else "custom"), Settings(), grid
    if isinstance(grid, str):
        if grid == "auto":
            name = detect_scheme(config, site=site)
        elif grid in config:
            name = grid
        else:
            close = difflib.get_close_matches(grid, list(config), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(
                f"grid {grid!r} is not a known scheme ({hint}known: {', '.join(sorted(config))}); "
                "pass a Settings for your own, or a Scheduler"
            )
        scheme = Settings(config[name]).copy()
    elif isinstance(grid, Mapping):
        name = "custom"
        scheme = Settings(grid).copy() if not isinstance(grid, Settings) else grid.copy()
    else:
        raise TypeError(
            "grid must be a scheme name, 'auto', a Settings or a Scheduler, "
            f"not {type(grid).__name__} {grid!r}"
        )
    Scheme.of(scheme, name)  # refuse a bad scheme now, naming what is wrong
    return name, scheme, None


class GridRunner(GridRecords):
    """Submits each job's runscript to a batch scheduler and completes it when it leaves the queue.

    A parallel GridRunner (the default) holds no thread for a job in the queue: ``job.run()``
    returns at once, at most ``submit_workers`` submit commands run at once, ``maxjobs`` caps the
    runner's jobs in the queue, and one poller thread checks the queue every ``sleepstep`` seconds
    and ends each job that left. `call` returns the real exit code to your code; a subclass
    overriding `call` gets a thread per job. A serial GridRunner waits for each job in turn.

    Attributes:
        config: the predefined schemes, as Settings branches ``slurm``, ``pbs`` (PBS Pro and
            Torque) and ``sge`` (Grid Engine); schemes added here are tried by ``grid="auto"``.
        settings: this runner's own copy of its scheme, read anew for every use (empty when a
            `Scheduler` was given).
        scheme_name: the scheme's name in `config`, or ``"custom"``.

    Args:
        grid: a scheme name from `config`, ``"auto"`` (detect the scheduler installed here), a
            Settings holding a scheme of your own, or a `runner_grid.Scheduler`.
        sleepstep: seconds between two queue checks.
        parallel: submit from the runner's workers, ``job.run()`` returning at once (the
            default, unlike JobRunner); False waits for each job in the caller's thread.
        maxjobs: the most jobs of this runner in the queue at once; 0 for no limit.
        maxthreads: the most job threads alive when a subclass overrides `call`; caps
            ``submit_workers`` otherwise.
        submit_workers: the most submit commands run at once (default 4).
        retry: when to run a job again (`runner_core.Retry`): by its end reason, the request
            grown and clamped to the cluster's limits; None runs each job once.
        host: the scheduler is on this host, reached with your own ``ssh`` (an alias of
            ``~/.ssh/config``, ``user@host``, or a `runner_grid.SshHost`); logs in once, now.
            The docs page "Running from your laptop" tells what is copied when.
        remote_root: the jobs' folder on `host` (default: ``$HOME/<run folder's name>``).
        ssh_config: an ssh configuration file for `host` (``ssh -F``) instead of ``~/.ssh/config``.
        fetch: what comes back of an ended remote job's folder: ``"all"``, globs, or None for
            the runner's own files only (exit code, times, output, error).

    Raises:
        ValueError: an unknown scheme name, a bad scheme (naming the key), or a bad sleepstep.
        TypeError: ``grid`` is neither a string, a mapping nor a Scheduler.
        runner_grid.DetectionError: ``grid="auto"`` found no scheduler.
        runner_grid.SshError: `host` cannot be reached or refused the login (says why).
    """

    config: ClassVar[Settings] = Settings({name: factory() for name, factory in SCHEMES.items()})
    scheduler_queue: ClassVar[bool] = True  # SUBMITTED in the queue, RUNNING once started

    def __init__(
        self,
        grid: Union[str, Mapping[str, Any], Scheduler] = "auto",
        sleepstep: float = 5,
        parallel: bool = True,
        maxjobs: int = 0,
        maxthreads: int = 256,
        *,
        submit_workers: int = SUBMIT_WORKERS,
        retry: Optional[Retry] = None,
        host: Union[str, SshHost, None] = None,
        remote_root: Optional[str] = None,
        ssh_config: Optional[str] = None,
        fetch: Union[str, Sequence[str], None] = "all",
    ) -> None:
        """Create a runner; see the class docstring."""
        self._submit_workers = _count("submit_workers", submit_workers)
        self._site = remote_site(host, remote_root, ssh_config, fetch, self._link_lost)
        self.scheme_name, self.settings, self._given = _resolve(self.config, grid, self._site)
        step = _seconds("sleepstep", sleepstep)
        self._last_good = self.scheduler()  # what cancels use if the settings go bad
        self._limits = LimitsCache()  # the cluster's limits, asked once for the runner's life
        self._queue = JobsInQueue(self.scheduler, step, self.scheme_name)
        self._canceller = Canceller(self._queue, self._cancel_scheduler, self.scheme_name)
        self._batches = Batches(
            self._queue, self._canceller, self.scheduler, lambda: self.maxjobs, self.scheme_name,
            self._limits,
        )  # fmt: skip
        self._queue.on_gone = self._batches.release  # a job's leaving frees its share
        if self._site is not None:  # an ended job's folder comes back before it ends
            self._queue.fetch = self._site.fetch_ended
        # A job in the queue needs a thread only when a subclass's own call must block.
        self._detaching = type(self).call is GridRunner.call
        super().__init__(parallel=parallel, maxjobs=maxjobs, maxthreads=maxthreads, retry=retry)
        self._maxthreads: int = maxthreads
        self._apply_threads()

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
        if self._detaching:  # queued jobs hold no thread: job.run() never blocks
            self.limit_threads(min(self._maxthreads, self._submit_workers), bounded=False)
        else:
            self.limit_threads(self._maxthreads)

    @property
    def sleepstep(self) -> float:
        """Seconds between two queue checks (settable)."""
        return self._queue.poller.sleepstep

    @sleepstep.setter
    def sleepstep(self, value: float) -> None:
        self._queue.poller.sleepstep = _seconds("sleepstep", value)

    def scheduler(self) -> Scheduler:
        """The scheduler this runner uses: the one given as ``grid``, or `settings` as it is now.

        A runner made from a scheme name or a Settings reads `settings` anew for every use,
        so a change to them applies at the next submission or check.

        Raises:
            runner_grid.SchemeError: a key of `settings` is unknown or has the wrong type.
        """
        if self._given is not None:
            scheduler = self._given
        else:
            scheduler = self._last_good = Scheme.of(self.settings, self.scheme_name)
        if self._site is not None:
            scheduler.site = self._site
        return scheduler

    scheme = scheduler  # the name runner-grid has always had

    def check_runflags(self, runflags: Mapping[str, Any]) -> None:
        """Refuse resources the scheduler cannot give or its limits forbid: `job.run()` raises."""
        if not any(key in runflags for key in RESOURCE_KEYS):  # keeps job.run() cheap
            return
        try:
            scheduler = self.scheduler()
        except SchemeError:  # a bad scheme fails the job at its submission, naming the key
            return
        scheduler.check_runflags(runflags)
        resources = scheduler.split_runflags(runflags)[0]
        self._limits.check(scheduler, resources, scheduler.qos_of(runflags))

    def grow_request(
        self, runflags: Mapping[str, Any], factors: Mapping[str, float]
    ) -> tuple[dict[str, Any], Optional[str]]:
        """The next attempt's request (`runner_core.Retry`), clamped to the cluster's limits."""
        grown, refused = super().grow_request(runflags, factors)
        if refused is not None:
            return grown, refused
        return self._limits.clamp(self.scheduler(), runflags, grown)

    def _cancel_scheduler(self) -> Scheduler:
        try:
            return self.scheduler()
        except SchemeError as exc:  # settings changed badly mid-run: cancel all the same
            logger.error("%s; cancelling with the settings that last worked", exc)
            return self._last_good

    @property
    def check_count(self) -> int:
        """Number of queue-check commands this runner has run so far."""
        return self._queue.check.count

    @property
    def queued(self) -> list[str]:
        """Ids of this runner's jobs that are in the queue (submitted and not yet released)."""
        return self._queue.ids()

    # --- one job -----------------------------------------------------------------------

    def call(
        self, runscript: str, workdir: str, out: Optional[str], err: str, runflags: Settings
    ) -> int:
        """Submit ``workdir/runscript``; wait until the job has left the queue unless it detaches.

        The runscript goes through a wrapper (``<runscript>.grid``) that keeps its
        ``#SBATCH``/``#$``/``#PBS`` lines and records its times and exit code. Called by a
        parallel GridRunner for its own job, it detaches the job (`runner_core.ext.detach_job`)
        and returns at once, its value ignored; inside ``batch()`` it adds the job to the batch.
        ``runflags`` are the job's ``settings.run``: extra submit flags.

        Returns:
            The job's exit code; 1 when the submission failed (the job then ends FAILED with
            the submit command's own words as its error).
        """
        workdir = os.path.abspath(workdir)
        group = None
        site = self._site
        try:
            scheduler = self.scheduler()
            there = None if site is None else site.job_folder(workdir)
            wrapped = write_wrapper(
                workdir, runscript, scheduler.directives or DIRECTIVE_PREFIXES, there
            )
            tag = scheduler.new_tag(runscript, runflags)
            argv = scheduler.submit_argv(
                *submission_paths(site, wrapped.path, workdir, out, err), runflags, tag
            )
            for note in scheduler.directive_overrides(runflags, wrapped.directives):
                logger.warning("%s: %s", os.path.join(workdir, runscript), note)
            if self._batches.collecting_here():  # jobs of a batch are grouped by their flags
                group = (tuple(scheduler.runflag_args(runflags)), wrapped.directives, out is None)
        except (OSError, ValueError, TypeError) as exc:  # SchemeError is a ValueError
            report_failure(
                f"could not prepare the submission of {runscript!r}: {exc}", reason="submit_failed"
            )
            return 1
        if self.cancelled:
            logger.info("not submitting %s: the runner is cancelling", format_command(argv))
            return 1
        if group is not None and can_detach(self):
            self._batches.collect(Collected(
                workdir, wrapped.path, wrapped.exit_file, out, err, runflags, argv, tag, group,
                detach_job(), None,
            ))  # fmt: skip
            return 0  # the block's own thread: its batch is open until this returns
        if site is not None and not stage_folder(site, workdir):  # goes with the submission
            return 1
        results = current_results()
        detach = self._detaching and self.parallel and can_detach(self)
        # A Ctrl-C between the submission and the record of its id would leave the job in
        # the queue with nobody to cancel it: it is raised once the id is recorded.
        if tag is not None:
            report_tag(tag)  # on record first: a resume finds the job by it if all else is lost
        with deferred_interrupts():
            # At a submit limit (refused, or read in advance and full) a job that detaches
            # waits in the runner for room; a blocking call waits in its thread.
            outcome = self._batches.submit_plain(scheduler, argv, tag, runflags, wait_for_room=(
                None if detach else lambda: self.sleepstep))  # fmt: skip
            if site is not None:
                site.unstage()
            if outcome.limited:
                self._batches.hold(Collected(
                    workdir, wrapped.path, wrapped.exit_file, out, err, runflags, argv, tag,
                    ((), (), out is None), detach_job(), None,
                ), scheduler, outcome.error)  # fmt: skip
                return 0
            if outcome.jobid is None:
                report_failure(outcome.error or "the submission failed", reason="submit_failed")
                return 1
            jobid = outcome.jobid
            report_jobid(jobid)
            sink = detach_job() if detach else Waiter()
            self._queue.add(jobid, results, wrapped.exit_file, sink)
        if self._queue.stopped.is_set() or (results is not None and results.cancel_requested):
            self._canceller.cancel_ids([jobid])
        if not isinstance(sink, Waiter):
            return 0  # detached: the job left this thread (a submit worker); the queue ends it
        try:
            end = sink.wait()
        finally:
            self._queue.forget(jobid)
        if end.error is not None:
            report_failure(end.error, reason=end.reason)
            return end.code
        if end.reason is not None:
            report_reason(end.reason)
        report_end(own_end=end.own_end, started_at=end.started_at, finished_at=end.finished_at)
        return end.code

    # --- job arrays ----------------------------------------------------------------------

    @contextlib.contextmanager
    def batch(self, name: Optional[str] = None) -> Iterator[None]:
        """Collect the jobs run inside the block, in its thread; submit them as arrays at its end.

        Args:
            name: what the arrays are called in the scheduler's queue, so that a person sees
                which campaign a task belongs to; by default the JobManager folder's name.

        ``job.run()`` returns at once, the job collected without a thread. At the block's end
        jobs whose submissions differ only in their folder and files go in one array, split
        at the scheduler's largest array; a group of one is a plain job. Each task runs its
        own job (folder, files, exit code, reason); ``job.cancel()`` cancels its task only.
        ``maxjobs`` caps the runner's jobs in the queue across all its arrays: each array
        gets a share as its throttle. The block returns once the arrays are submitted; nested
        blocks submit when the outermost ends. A serial runner, a subclass that overrides
        `call` and a scheme without arrays submit each job alone. The docs page "Running on a
        cluster" tells the whole of it.

        Raises:
            runner_grid.SchemeError: the scheme's settings are bad (when the block starts).
        """
        if not (self._detaching and self.parallel and self.scheduler().has_arrays):
            logger.info("%r submits the jobs of this batch one by one (no job arrays)", self)
            yield
            return
        with self._batches.block(name):
            yield

    def runs_in_caller(self) -> bool:
        """Inside ``with runner.batch():``, in its thread: the job is collected right here."""
        return self._batches.collecting_here()

    def wait(self, timeout: Optional[float] = None) -> None:
        """Return when every job started through this runner has ended (see `JobRunner.wait`).

        Raises:
            TimeoutError: the timeout passed first.
            RuntimeError: called inside this runner's ``batch()`` block, in its thread: the
                block's jobs are submitted only when it ends, so this would wait forever.
            runner_grid.SshConnectError: the link to the remote host was down for longer
                than its ``reconnect_timeout``: the jobs were left in its queue, and the
                message says how to collect them (``runner resume DIR``).
        """
        if self._batches.collecting_here():
            raise RuntimeError(
                f"{self!r}: wait() (or shutdown()) inside `with runner.batch():` would wait "
                "forever, since the batch's jobs are submitted when the block ends; wait "
                "after the block"
            )
        super().wait(timeout)
        if self._site is not None:
            self._site.raise_if_lost()

    # --- the run journal: resume, leave, cancel from the record ------------------------

    def reattach(self, record: JobRecord) -> bool:
        """Wait again for a job an earlier driver submitted (found by its id or tag); see JobRunner.

        Not found, it never reached the queue: False, and it is submitted again.

        Raises:
            runner_grid.SchemeError: the scheme's settings are bad.
        """
        scheduler = self.scheduler()
        jobid = record.jobid or find_recorded(scheduler, record.tag)
        results = current_results()
        if jobid is None or results is None:
            return False
        report_jobid(jobid)
        exit_file = exitcode_path(record.path, results.job.runscript_name)
        logger.info("job %s of %s is waited for again (resumed)", jobid, record.path)
        self._queue.add(jobid, results, exit_file, detach_job())
        return True

    def _leave_jobs_queued(self) -> int:
        """Leave every journaled job in the queue for a resume (``grid_jobs_on_exit = "keep"``)."""
        return self._queue.leave_journaled()

    def _link_lost(self, message: str) -> None:
        """The remote host's link is down for good: leave the queued jobs for a resume."""
        left = self._leave_jobs_queued()
        self._batches.cancel_waiting()  # not submitted: a resume runs them
        logger.error("%s; %d jobs left in the queue of %s", message, left, self.scheme_name)

    # --- cancelling ----------------------------------------------------------------------

    def _cancel_jobs(self) -> None:
        """Stop local processes, then cancel every job of this runner in the queue but those
        that ended by themselves (one command for a whole array), and stop waiting.
        """
        super()._cancel_jobs()
        self._queue.stop()  # first: a job held for room from now on is cancelled, not held
        self._batches.cancel_waiting()  # units that waited for room never ran
        self._canceller.cancel_all()

    def cancel_job(self, results: Results) -> None:
        """Cancel one job (``job.cancel()``); returns at once, the command runs in another thread.

        A job not submitted yet is cancelled as soon as its id is known (see `call`).
        """
        super().cancel_job(results)
        self._batches.drop(results)  # waiting for room: it ends now
        self._canceller.cancel_job(results)
