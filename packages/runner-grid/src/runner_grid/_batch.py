"""Batches: the jobs run inside ``with runner.batch():``, submitted as job arrays at its end.

Inside the block, ``job.run()`` runs the job's preparation in the block's own thread
(`JobRunner.runs_in_caller`), and `GridRunner.call` hands the job here (`Batches.collect`)
detached: no pool thread, no slot, nothing to poll. Only jobs run in the block's thread
belong to the batch; a job started earlier, or from another thread, is submitted on its
own. When the outermost block ends, the jobs are grouped (equal submissions share an
array, split at the scheduler's largest array) and each group, a "unit", is submitted:
an array, or a group of one as a plain job.

``maxjobs`` across every batch: each unit in the queue holds a share of it, its throttle
(``%N``, ``-tc N``, ``-J 1-N%M``) until its last task has gone; a unit that finds no share
free waits here and is submitted when another leaves. On a scheduler without a throttle an
array is cut to the share it gets, and the rest of its jobs wait to go one by one.

Submit limits are back-pressure. Where the cluster tells its limits on queued jobs in
advance (`runner_grid._limits.Limits.submit`: a SLURM QOS's ``MaxSubmitPU``, an
association's ``MaxSubmitJobs``, Grid Engine's ``max_u_jobs``, a PBS ``max_queued``), every
submission first takes its places in the runner's `SubmitRoom` (a job one, an array one
per task where the scheduler counts tasks), and what finds no room waits here, an array cut
to what fits: the runner stays under the limit and is not refused. A submission the
scheduler refuses all the same (the user's other jobs fill the limit; a limit that cannot
be read; `SubmitOutcome.limited`) is not a failure either. The unit waits here (an array
cut in halves, so that what fits goes first), as does a plain job so refused (`hold`), and
nothing is tried again until a job of the runner leaves the queue or ``sleepstep`` has
passed: no job FAILED, none submitted twice, at most one refused try per ``sleepstep``.

Lock order: `Batches._lock` before `JobsInQueue._lock` (the share count asks the queue) and
`SubmitRoom._lock`; no command runs, and no job's Completion is called, while it is held.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import re
import shutil
import threading
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional

from runner_core.ext import Terminated, wait_event
from runner_grid._arrays import ARRAYS_FOLDER, index_expression, partition, write_array_files
from runner_grid._commands import SchedulerCommandError, format_command
from runner_grid._limits import LimitsCache, SubmitRoom
from runner_grid._submitter import TASK_TAG, SubmitOutcome, new_tag, submit_job, submit_logged
from runner_grid._worker import Worker
from runner_grid._wrapper import safe_job_name

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from runner_core import Results
    from runner_core.ext import Completion
    from runner_grid._cancel import Canceller
    from runner_grid._ending import JobsInQueue
    from runner_grid._limits import Limits
    from runner_grid.schemes._base import Scheduler
    from runner_settings import Settings

__all__ = ["Batches", "Collected"]

logger = logging.getLogger(__name__)


class Collected(NamedTuple):
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


class _Open:
    """An open batch: its name, how deep its blocks nest, and its jobs so far."""

    __slots__ = ("depth", "jobs", "name")

    def __init__(self, name: Optional[str]) -> None:
        self.name = name
        self.depth = 1
        self.jobs: list[Collected] = []


class Batches:
    """The batches of one runner: collecting, grouping, ``maxjobs`` shares, submitting arrays.

    Args:
        queue: the runner's jobs in the queue (the arrays' tasks go there).
        canceller: cancels a task whose job was cancelled while it was submitted.
        scheduler: gives the scheduler to use, read anew at each block's end.
        maxjobs: gives the runner's ``maxjobs`` now.
        name: the runner's scheme name, for thread names.
        limits: the runner's cluster limits (its submit limits are kept to), or None: a
            cache of this runner's own.
    """

    def __init__(  # noqa: PLR0917 - the runner's parts, wired once by GridRunner
        self,
        queue: JobsInQueue,
        canceller: Canceller,
        scheduler: Callable[[], Scheduler],
        maxjobs: Callable[[], int],
        name: str,
        limits: Optional[LimitsCache] = None,
    ) -> None:
        """Create the runner's batches; none is open."""
        self._queue = queue
        self._canceller = canceller
        self._scheduler = scheduler
        self._maxjobs = maxjobs
        self._name = name
        self._lock = threading.Lock()
        self._open: dict[int, _Open] = {}  # thread id -> the batch open in that thread
        self._shares: dict[str, int] = {}  # array id or job id -> its share of maxjobs
        self._waiting: collections.deque[list[Collected]] = collections.deque()
        self._unit_scheduler: Optional[Scheduler] = None  # the scheduler waiting units use
        self._releaser = Worker(f"runner-grid-batch:{name}")
        self._array_limits: dict[str, int] = {}  # largest array, per scheduler name
        self._limited = False  # at a submit limit (refused, or no room): wait for room
        self._retry_due = False  # a try after a refusal is on the releaser's clock
        self._room = SubmitRoom(limits if limits is not None else LimitsCache())

    # --- the block -----------------------------------------------------------------------

    @contextlib.contextmanager
    def block(self, name: Optional[str]) -> Iterator[None]:
        """Collect the jobs run in this thread until its outermost block ends; then submit.

        Each thread has its own batch: blocks opened in two threads at once collect their
        own jobs.
        """
        here = threading.get_ident()
        with self._lock:
            opened = self._open.get(here)
            if opened is None:
                self._open[here] = _Open(name)
            else:
                opened.depth += 1
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
            with self._lock:
                opened = self._open[here]
                opened.depth -= 1
                jobs = None
                if not opened.depth:
                    del self._open[here]
                    jobs = opened.jobs
            if jobs:
                self._close(jobs, submit)

    def collecting_here(self) -> bool:
        """Whether a batch is open in this thread (a job run now belongs to it)."""
        return threading.get_ident() in self._open

    def collect(self, job: Collected) -> None:
        """Add a job of this thread to the batch open in it (see `collecting_here`)."""
        with self._lock:
            opened = self._open[threading.get_ident()]
            opened.jobs.append(job._replace(batch=opened.name))

    def _close(self, jobs: list[Collected], submit: bool) -> None:
        """Submit a closed batch's jobs (the block returns once they are), or cancel them.

        The submissions run in a thread of their own, so that a Ctrl-C in the block's
        thread cancels the runner (which stops them) instead of cutting one in half.
        """
        if not submit:  # a Ctrl-C or SIGTERM in the block: nothing of it is submitted
            for job in jobs:
                job.completion.complete(1, reason="cancelled")
            return
        done = threading.Event()

        def submit_all() -> None:
            try:
                self._submit(jobs)
            finally:
                done.set()

        threading.Thread(
            target=submit_all, name=f"runner-grid-batch:{self._name}", daemon=True
        ).start()
        wait_event(done)

    # --- submitting ------------------------------------------------------------------------

    def _submit(self, jobs: Sequence[Collected]) -> None:
        """Group the jobs into units and submit them, each when there is room for it."""
        try:
            scheduler = self._scheduler()
            size = self._max_array_size(scheduler)
        except Exception as exc:
            for job in jobs:
                job.completion.fail(f"could not submit the batch: {exc}", reason="submit_failed")
            return
        units = []
        for group in partition(jobs, lambda job: job.group, size):
            live = [job for job in group if not self._cancelled_now(job)]
            if live:
                units.append(live)
        with self._lock:
            self._waiting.extend(units)
            self._unit_scheduler = scheduler
        self._start_waiting()

    @property
    def limited(self) -> bool:
        """Whether the scheduler refuses submissions for a limit now (jobs wait for room)."""
        return self._limited

    def submit_plain(
        self,
        scheduler: Scheduler,
        argv: list[str],
        tag: Optional[str],
        runflags: Mapping[str, Any],
        *,
        wait_for_room: Optional[Callable[[], float]] = None,
    ) -> SubmitOutcome:
        """Submit a job alone (`GridRunner.call`), within the submit limits read in advance.

        A job that detaches (no `wait_for_room`) is not tried while the runner is at a
        submit limit or its limit has no room: the outcome is then ``limited`` with no
        error, and the caller gives the job to `hold`. A blocking call waits in its thread,
        looking again every `wait_for_room()` seconds. A job queued keeps its place in the
        limits until it leaves the queue (`release`).

        Args:
            scheduler, argv, tag: as for `submit_logged`.
            runflags: the job's run flags (its QOS, queue and account name its limits).
            wait_for_room: for a call that blocks until its job ends: gives the seconds to
                wait before looking for room again (the runner's ``sleepstep``).

        Returns:
            `submit_logged`'s outcome.
        """
        stop = self._queue.stopped
        pools = self._room.pools(scheduler, self._room.limits(scheduler), runflags)
        while True:
            with self._lock:
                limited = self._limited and wait_for_room is None
                taken = 0 if limited else self._room.take(pools, 1)
            if taken:
                break
            if not limited:
                self._tell_full(pools)
            if wait_for_room is None:
                return SubmitOutcome(None, None, limited=True)
            if stop.wait(wait_for_room()):
                return SubmitOutcome(None, "not submitted: the runner is cancelling")
        outcome = submit_logged(scheduler, argv, tag, stop, wait_for_room=wait_for_room)
        if outcome.jobid is not None:
            self._room.keep([outcome.jobid], pools)  # before the queue watches it
        else:  # after a refusal, `hold` sets the next try
            self._give_back(pools, 1, wake=not outcome.limited)
        return outcome

    def hold(self, job: Collected, scheduler: Scheduler, said: Optional[str]) -> None:
        """Let a plain job wait here for room: refused for a submit limit (`said`: the
        scheduler's words), or not tried (None) because the runner is at a limit."""
        if said is not None:
            self._limit_refusal(scheduler, f"job {job.completion.results.job.name}", said)
        with self._lock:
            stopped = self._queue.stopped.is_set()  # set before cancel_waiting runs
            if not stopped:
                self._waiting.append([job])
                self._unit_scheduler = scheduler
                self._limited = self._limited or said is not None
        if stopped:
            job.completion.complete(1, reason="cancelled")
        elif said is not None:
            self._retry_later()
        else:  # no try now; room may have freed since the job found none
            self._releaser.put(self._start_waiting)

    def _give_back(self, pools: Mapping[str, int], places: int, *, wake: bool) -> None:
        """Give back places in the submit limits; with `wake`, the waiting units may use them."""
        if not pools or places <= 0:
            return
        self._room.give_back(pools, places)
        if not wake:
            return
        with self._lock:
            more = bool(self._waiting) and not self._retry_due  # after a refusal: its clock
            if more:
                self._limited = False
        if more:
            self._releaser.put(self._start_waiting)

    def _tell_full(self, pools: Mapping[str, int]) -> None:
        """Log, once per limit, that jobs wait because a submit limit read in advance is full."""
        said = self._room.full(pools)
        if said is not None:
            logger.info(
                "keeping under a submit limit: %s; the jobs over it wait in the runner for "
                "room", said,
            )  # fmt: skip

    def drop(self, results: Results) -> None:
        """``job.cancel()`` of a job still waiting here: it ends CANCELLED now."""
        with self._lock:
            dropped = [
                job for unit in self._waiting for job in unit if job.completion.results is results
            ]
            units = [
                [job for job in unit if job.completion.results is not results]
                for unit in self._waiting
            ]
            self._waiting = collections.deque(unit for unit in units if unit)
        for job in dropped:
            job.completion.complete(1, reason="cancelled")

    def _cancelled_now(self, job: Collected) -> bool:
        """End `job` CANCELLED (True) if it or the runner was cancelled meanwhile."""
        if self._queue.stopped.is_set() or job.completion.results.cancel_requested:
            job.completion.complete(1, reason="cancelled")
            return True
        return False

    def _start_waiting(self) -> None:
        """Submit the waiting units that there is room for, in their order.

        With ``maxjobs``, the runner's jobs in the queue take it as shares: a plain job
        one, a unit its throttle. A unit gets an even part of what is free (at least 1, at
        most its size) as its throttle; without a throttle, the array is cut to that part
        and the rest of its jobs wait as units of one. Units that find nothing free wait
        until a unit leaves the queue. Then the submit limits read in advance: a unit
        takes its places (`SubmitRoom.take`), an array is cut to the tasks that fit (the
        rest waits first in line), and a unit finding no room waits until a job of the
        runner leaves the queue. A refusal for a submit limit puts the unit back (an array
        cut in two halves) and stops: the next try comes when a job of the runner leaves
        the queue, or after ``sleepstep`` seconds, whichever is first.
        """
        while True:
            scheduler = self._unit_scheduler  # set before this is called
            if scheduler is None:
                return
            # read before the lock: the first time, the limits are asked of the scheduler
            # (read once per runner: the same whichever scheduler object asks)
            limits = self._room.limits(scheduler)
            with self._lock:
                scheduler = self._unit_scheduler or scheduler
                if not self._waiting or self._limited or self._queue.stopped.is_set():
                    return
                maxjobs = self._maxjobs()
                unit = self._waiting[0]
                share = len(unit)
                if maxjobs:
                    plain = self._queue.count_plain(excluding=self._shares)
                    free = maxjobs - sum(self._shares.values()) - plain
                    if free < 1:
                        return
                    share = min(len(unit), max(1, free // len(self._waiting)))
                self._waiting.popleft()
                if not scheduler.array_throttle and share < len(unit):
                    # no throttle: the array is cut to its share, the rest go one by one
                    self._waiting.extendleft([job] for job in reversed(unit[share:]))
                    unit = unit[:share]
                pools = self._room.pools(scheduler, limits, unit[0].runflags)
                unit, places = self._fit(unit, pools, limits)
                if unit:
                    share = min(share, len(unit))
                    key = f"unit-{id(unit)}"
                    self._shares[key] = share if maxjobs else 0  # held while the submit runs
                else:
                    self._limited = True  # no room: a job of the runner's leaving makes some
            if not unit:
                self._tell_full(pools)
                return
            taken = len(unit)
            unit = [job for job in unit if not self._cancelled_now(job)]
            if len(unit) < taken and (limits is None or limits.submit_counts_tasks):
                self._give_back(pools, taken - len(unit), wake=False)
                places -= taken - len(unit)
            jobid, limited = None, False
            try:
                throttle = share if maxjobs and scheduler.array_throttle else 0
                if unit:
                    jobid, limited = self._submit_unit(scheduler, unit, throttle, pools)
            finally:
                if jobid is None:
                    self._give_back(pools, places, wake=False)
                with self._lock:
                    self._shares.pop(key, None)
                    if jobid is not None and maxjobs and self._queue.holds(jobid):
                        self._shares[jobid] = share
                    stopped = self._queue.stopped.is_set()  # cancel_waiting ran or runs next
                    if limited and not stopped:
                        half = (len(unit) + 1) // 2
                        self._waiting.extendleft(
                            part for part in (unit[half:], unit[:half]) if part
                        )
                        self._limited = True
            if limited and stopped:
                for job in unit:
                    job.completion.complete(1, reason="cancelled")
                return
            if limited:
                self._retry_later()
                return

    def _fit(
        self, unit: list[Collected], pools: Mapping[str, int], limits: Optional[Limits]
    ) -> tuple[list[Collected], int]:
        """Take the unit's places in its submit limits (`_lock` held): (what goes now, places).

        An array counted by its tasks is cut to what fits; the rest waits first in line.
        Nothing fits: ``([], 0)``, and the unit waits first in line.
        """
        by_tasks = limits is None or limits.submit_counts_tasks
        places = self._room.take(pools, len(unit) if by_tasks else 1)
        if not places:
            self._waiting.appendleft(unit)
            return [], 0
        if by_tasks and places < len(unit):
            self._waiting.appendleft(unit[places:])
            unit = unit[:places]
        return unit, places

    def _retry_later(self) -> None:
        """Try the waiting units again in ``sleepstep`` seconds, unless a try is due already."""
        with self._lock:
            if self._retry_due:
                return
            self._retry_due = True
        self._releaser.put(self._retry, after=self._queue.poller.sleepstep)

    def _retry(self) -> None:
        """A ``sleepstep`` after a refusal for a submit limit: try the waiting units again."""
        with self._lock:
            self._limited = self._retry_due = False
        self._start_waiting()

    def release(self, jobid: str, array: Optional[str]) -> None:
        """A job left the queue: free its share (and its array's) and its place in the submit
        limits; room for waiting units."""
        room = self._room.free(jobid)
        if array is not None:
            room = self._room.free(array) or room
        with self._lock:
            freed = self._shares.pop(jobid, 0)
            if array is not None:
                freed += self._shares.pop(array, 0)
            more = bool(self._waiting and (freed or room or self._limited))
            self._limited = False
        if more:
            self._releaser.put(self._start_waiting)

    def cancel_waiting(self) -> None:
        """The runner is cancelling: the units still waiting for room never run."""
        with self._lock:
            waiting, self._waiting = list(self._waiting), collections.deque()
        for unit in waiting:
            for job in unit:
                job.completion.complete(1, reason="cancelled")

    def _submit_unit(
        self,
        scheduler: Scheduler,
        unit: Sequence[Collected],
        throttle: int,
        pools: Mapping[str, int],
    ) -> tuple[Optional[str], bool]:
        """Submit one unit, an array of its jobs or its one job alone: (id, refused for a limit).

        Queued, it keeps the places taken in `pools` until it leaves the queue.
        """
        site = scheduler.site
        if site is not None:  # on another host: the jobs' folders go there first
            try:
                site.put(sorted({job.workdir for job in unit}))
            except (SchedulerCommandError, OSError, ValueError) as exc:
                message = f"could not copy the job's folder to {site!r}: {exc}"
                for job in unit:
                    job.completion.fail(message, reason="submit_failed")
                return None, False
        if len(unit) == 1:
            return self._submit_alone(scheduler, unit[0], pools)
        return self._submit_array(scheduler, unit, throttle, pools)

    def _limit_refusal(self, scheduler: Scheduler, what: str, said: Optional[str]) -> None:
        """Log a refusal for a submit limit, with the line of the scheduler's that names it."""
        count = self._room.refused()
        lines = [line.strip() for line in (said or "").splitlines() if line.strip()]
        patterns = scheduler.submit_faults.get("limit", ())
        first = next(
            (line for line in lines if any(re.search(p, line) for p in patterns)),
            lines[0] if lines else "a submit limit",
        )
        logger.warning(
            "submit limit: %s refused (refusal %d of this runner), waiting for room: %s",
            what, count, first,
        )  # fmt: skip

    def _submit_alone(
        self, scheduler: Scheduler, job: Collected, pools: Mapping[str, int]
    ) -> tuple[Optional[str], bool]:
        command = format_command(job.argv)
        if job.tag is not None:
            job.completion.report_tag(job.tag)
        logger.info("submitting: %s", command)
        outcome = submit_job(scheduler, job.argv, job.tag, self._queue.stopped.wait)
        if outcome.limited:
            self._limit_refusal(scheduler, f"job {job.completion.results.job.name}", outcome.error)
            return None, True
        if outcome.jobid is None:
            job.completion.fail(outcome.error or "the submission failed", reason="submit_failed")
            return None, False
        logger.info("submitted job %s: %s", outcome.jobid, command)
        job.completion.report_jobid(outcome.jobid)
        self._room.keep([outcome.jobid], pools)  # before the queue watches it
        self._queue.add(outcome.jobid, job.completion.results, job.exit_file, job.completion)
        self._cancel_if_asked([(outcome.jobid, job)])
        return outcome.jobid, False

    def _submit_array(
        self,
        scheduler: Scheduler,
        jobs: Sequence[Collected],
        throttle: int,
        pools: Mapping[str, int],
    ) -> tuple[Optional[str], bool]:
        """Submit `jobs` as one array, task i running ``jobs[i - 1]``; watch every task."""
        first = jobs[0]
        # Schedulers name the array after its script: the batch's name, so that a person
        # reading the queue sees which campaign a task belongs to.
        stem = safe_job_name(first.batch or os.path.basename(os.path.dirname(first.workdir)))
        tag = None if first.tag is None else new_tag(stem)
        folder = os.path.join(os.path.dirname(first.workdir), ARRAYS_FOLDER, new_tag(stem))
        site = scheduler.site
        try:
            files = write_array_files(
                folder,
                f"{stem}.array",
                index=index_expression(scheduler.array_index),
                tasks=[(job.wrapper, job.out, job.err) for job in jobs],
                directives=first.group[1],
                output_index=scheduler.array_output_index,
                where=None if site is None else site.remote_path,
            )
            argv = scheduler.submit_argv(
                files.script, files.folder, files.out, files.err, first.runflags, tag
            )
            argv[-1:-1] = scheduler.array_args(len(jobs), throttle)
            if site is not None:
                site.put([folder])
        except Exception as exc:  # OSError, a bad scheme, a user's array_args raising
            message = f"could not prepare the array of {len(jobs)} jobs in {folder!r}: {exc}"
            for job in jobs:
                job.completion.fail(message, reason="submit_failed")
            return None, False
        command = format_command(argv)
        if tag is not None:
            for index, job in enumerate(jobs, start=1):
                job.completion.report_tag(f"{tag}{TASK_TAG}{index}")
        logger.info("submitting an array of %d jobs: %s", len(jobs), command)
        outcome = submit_job(scheduler, argv, tag, self._queue.stopped.wait)
        if outcome.limited:
            shutil.rmtree(folder, ignore_errors=True)  # the next try writes its own
            self._limit_refusal(scheduler, f"an array of {len(jobs)} jobs", outcome.error)
            return None, True
        if outcome.jobid is None:
            for job in jobs:
                job.completion.fail(
                    outcome.error or "the submission failed", reason="submit_failed"
                )
            return None, False
        logger.info("submitted job %s: an array of %d tasks: %s", outcome.jobid, len(jobs), command)
        tasks = [(scheduler.task_id(outcome.jobid, i), job) for i, job in enumerate(jobs, 1)]
        for jobid, job in tasks:
            job.completion.report_jobid(jobid)
        # Its places in the submit limits: a task each, or the array once (`SubmitRoom`).
        limits = self._room.limits(scheduler) if pools else None  # read already: no command
        by_tasks = limits is None or limits.submit_counts_tasks
        self._room.keep([jobid for jobid, _job in tasks] if by_tasks else [outcome.jobid], pools)
        self._queue.add_array(
            outcome.jobid, [(jobid, job.completion, job.exit_file) for jobid, job in tasks]
        )
        self._cancel_if_asked(tasks)
        return outcome.jobid, False

    def _cancel_if_asked(self, submitted: Sequence[tuple[str, Collected]]) -> None:
        """Cancel the submitted jobs whose cancel came while they were being submitted."""
        cancel = [
            jobid
            for jobid, job in submitted
            if self._queue.stopped.is_set() or job.completion.results.cancel_requested
        ]
        if cancel:
            self._canceller.cancel_ids(cancel)

    def _max_array_size(self, scheduler: Scheduler) -> int:
        """The most tasks of one array: the scheduler's, asked once per scheduler name."""
        if scheduler.array_max_size:
            return scheduler.array_max_size
        limit = self._array_limits.get(scheduler.name)
        if limit is None:
            limit = self._array_limits[scheduler.name] = scheduler.max_array_size()
        return limit
