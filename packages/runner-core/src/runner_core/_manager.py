"""JobManager: every job's own folder under one root folder, the run's journal, resume decisions."""

from __future__ import annotations

import os
import threading
import weakref
from typing import TYPE_CHECKING, Any, Literal, Optional, Union

from runner_core._errors import JobError
from runner_core._journal import (
    JobRecord,
    Journal,
    JournalLocked,
    RecordedState,
    open_journal,
    read_journal,
    record_outside_end,
    record_outside_ends,
    write_request,
)
from runner_core._log import logger
from runner_core._process import boot_id, find_session_leaders, kill_recorded_groups
from runner_core._status import JobStatus

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from runner_core._jobs import SingleJob


def _check_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, not {type(value).__name__} {value!r}")
    return value


_RESUME_CHOICES = (
    "False (a new run), True (rerun every job that did not succeed) or "
    "'unfinished' (rerun only the jobs that never finished)"
)


def _check_resume(value: object) -> Union[bool, Literal["unfinished"]]:
    if isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise TypeError(f"resume must be {_RESUME_CHOICES}, not {type(value).__name__} {value!r}")
    if value != "unfinished":
        raise ValueError(f"resume={value!r} is not a resume policy; use {_RESUME_CHOICES}")
    return "unfinished"


# The earlier tries that resume="unfinished" keeps although they did not succeed: a job
# that ended CRASHED or FAILED by itself (reason None), or in its own time or memory
# limit, would end so again with the same input (a fix of its flags changes its hash,
# and so runs it). A job cut short from outside (cancelled, its node failed, preempted)
# or never started (its submit failed) has not finished, and runs again; so does a job
# with a reason this list does not name yet.
_FINISHED_REASONS: frozenset[Optional[str]] = frozenset({None, "timeout", "out_of_memory"})


class JobManager:
    """Hands out job folders (`name`, `name.002`, ...) under `folder` and keeps the run's journal.

    Registration is thread-safe and the names are unique also against folders that
    are already on disk (left over from an earlier run, or made by someone else).

    Every job's life is recorded in the journal `folder/.runner/journal.jsonl`
    (name, folder, a hash of what it runs, state changes, scheduler id, exit code,
    reason, times), which `runner status`, `runner cancel` and a resume read. One
    process at a time writes a folder's journal: another live driver on the same
    folder is refused with `JournalLocked`, naming its host and pid.

    With `resume=True` the manager picks up a run of this folder that ended or was
    killed: a job whose name and hash match a job that ended SUCCESSFUL is not run
    again (its Results come back final at once, `results.restored` True, `job.path`
    its old folder); a grid job still in the scheduler's queue is re-attached by its
    runner (`JobRunner.reattach`), not submitted again; a job that failed, was
    cancelled or never ended runs again in its old folder (a local job a killed
    driver left running is stopped first). A job whose input changed is a new job
    with a folder of its own. Without a journal to resume from it is a plain run.

    With `resume="unfinished"` only the jobs that never finished run again: a job
    whose earlier try ended CRASHED or FAILED by itself, or in its own time or memory
    limit (reason None, "timeout", "out_of_memory"), is restored as it ended, like a
    successful one: status, exit code, reason, error (the journal keeps its first 300
    characters), times and scheduler id, `results.restored` True. So a job that fails
    the same way each time (a crash, a hang until its time limit) is not run again on
    every resume; change its input or flags, or resume with True, to run it. Jobs
    cancelled, never ended, never submitted ("submit_failed"), or ended by their node
    ("node_fail") or the scheduler ("preempted") run again, and queued grid jobs are
    re-attached, as with True.

    Args:
        folder: the root folder; made absolute at once, created on first use (at once
            when resuming).
        resume: False (a new run), True (resume the run recorded in `folder`, running
            again every job that did not succeed) or "unfinished" (resume it, running
            again only the jobs that never finished); see above.
        journal: keep the journal (default True); False records nothing, and makes
            `resume`, `runner status` and `runner cancel` unavailable for this run.

    Attributes:
        jobs: the jobs given a folder (or restored), in registration order.

    Raises:
        TypeError: resume is not a bool or a str, or journal is not a bool.
        ValueError: resume is a string other than "unfinished" (naming it and the
            allowed values), or resume is set with journal=False.
        JournalLocked: (when resuming) another live driver writes this folder's journal.
    """

    def __init__(
        self,
        folder: Union[str, os.PathLike[str]] = "runner_workdir",
        *,
        resume: Union[bool, Literal["unfinished"]] = False,
        journal: bool = True,
    ) -> None:
        """Create a manager for `folder` (nothing is created on disk yet unless resuming)."""
        from pathlib import Path  # noqa: PLC0415 - pathlib costs ~10 ms; keep `import runner_core` light

        self._path = Path(os.path.abspath(os.fspath(folder)))
        self._resume = _check_resume(resume)
        self._use_journal = _check_flag("journal", journal)
        if self._resume is not False and not journal:
            raise ValueError(
                f"JobManager(resume={resume!r}) resumes from the journal, but journal=False; "
                "drop journal=False"
            )
        self.jobs: list[SingleJob] = []
        self._lock = threading.Lock()
        self._next: dict[str, int] = {}
        self._created = False
        self._journal: Optional[Journal] = None
        self._runners: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self._adopted: set[int] = set()
        self._claimed: list[SingleJob] = []
        self._cancelled = False
        if resume:
            with self._lock:
                self._open_journal()

    def __repr__(self) -> str:
        return f"JobManager({str(self._path)!r})"

    def __enter__(self) -> JobManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def path(self) -> Path:
        """The absolute root folder (created on first use)."""
        return self._path

    @property
    def resume(self) -> Union[bool, Literal["unfinished"]]:
        """What was given: False, True or "unfinished" (truthy when it resumes a run)."""
        return self._resume

    @property
    def journal_path(self) -> Optional[Path]:
        """The journal file, `folder/.runner/journal.jsonl`; None when journal=False."""
        if not self._use_journal:
            return None
        return self._path / ".runner" / "journal.jsonl"

    def close(self) -> None:
        """Stop writing the journal (release the folder for another driver) once no job runs.

        Called by `with JobManager(...)` at the end of the block and, for every manager,
        at the interpreter's exit. Jobs that change state afterwards are not recorded.
        """
        with self._lock:
            journal, self._journal = self._journal, None
        if journal is not None:
            journal.users -= 1
            if journal.users <= 0:
                journal.close()

    def register(self, job: SingleJob) -> Path:
        """Give `job` its own new folder, record the job (and in the journal).

        Sets `job.path` and appends the job to `jobs`. A job a resume runs again gets
        its old folder back.

        Args:
            job: a job that has no folder yet.

        Returns:
            The job's folder.

        Raises:
            JobError: the job already has a folder.
            JournalLocked: another live driver writes this folder's journal.
            OSError: the folder cannot be created (permissions, full disk...).
        """
        from pathlib import Path  # noqa: PLC0415 - loaded by __init__ already; no module import

        name = job.name
        root = self._path
        number = 0
        with self._lock:
            if job.path is not None:
                if id(job) in self._adopted:  # a re-attach that failed: it runs again here
                    self._adopted.discard(id(job))
                    return job.path
                raise JobError(
                    f"job {name!r} already has the folder {str(job.path)!r}; "
                    "a job is registered once"
                )
            journal = self._open_journal() if self._use_journal else None
            if not self._created:
                os.makedirs(root, exist_ok=True)
                self._created = True
            previous: Optional[JobRecord] = job._previous
            if previous is None:
                number = job._folder_number or self._take_number(name)
            job._folder_number = None
        # The folder is made and the input hashed with the lock let go, so that jobs
        # registering at once (and `job.run()` claiming the next job) do not queue
        # behind each other's file system round trips. A number is taken once, under
        # the lock, and `mkdir` refuses a folder that exists: every folder is new.
        if previous is not None:
            folder = previous.folder
            path = Path(previous.path)
            os.makedirs(path, exist_ok=True)
        else:
            while True:
                folder = name if number == 1 else f"{name}.{number:03d}"
                path = root / folder
                try:
                    os.mkdir(path)
                except FileExistsError:  # left by an earlier run, or another job's own name
                    with self._lock:
                        number = self._take_number(name)
                    continue
                break
        digest = job._input_hash
        if journal is not None and digest is None:
            digest = job._input_hash = job.input_hash()
        with self._lock:
            job.path = path
            self.jobs.append(job)
        if journal is not None:
            job.results._journal = journal.new_job(
                name, folder, digest, job._journal_runner, job.settings.get("run")
            )
        return path

    def _take_number(self, name: str) -> int:
        """The next folder number of `name` (1: the bare name), never given twice (lock held)."""
        number = self._next.get(name, 1)
        self._next[name] = number + 1
        return number

    # --- what SingleJob.run and JobRunner ask (not for scripts) ------------------------

    def _claim(self, job: SingleJob, runner: object) -> bool:
        """Take `job` into the run before its runner does; True when it was restored.

        Records the job's runner; on resume, hashes its input and finds the job's
        earlier try (`job._previous`), or restores it when `_keeps` that try. Without a
        resume the input is hashed in `register`, in the job's own thread, which keeps
        `job.run()` cheap for a parallel runner.

        Raises:
            JobError: `runner cancel` cancelled this run (the job does not run).
            JournalLocked: another live driver writes this folder's journal.
        """
        restored = self._claim_journaled(job, runner)
        if not restored and job._previous is None:
            # A new folder's number is taken here, in the order of the job.run() calls, so
            # that a second job of one name is "name.002" whichever job thread registers first.
            with self._lock:
                job._folder_number = self._take_number(job.name)
        return restored

    def _claim_journaled(self, job: SingleJob, runner: object) -> bool:
        """`_claim`'s part for the journal: the job's runner, its earlier try on a resume."""
        if not self._use_journal:
            return False
        with self._lock:
            try:
                journal = self._open_journal()
            except OSError:
                return False  # the folder cannot be made: the job fails in register, as before
            if self._cancelled:
                raise JobError(
                    f"job {job.name!r} not run: the run in {str(self._path)!r} was cancelled "
                    "(`runner cancel`)"
                )
            number = self._runners.get(runner)
            if number is None:
                info = getattr(runner, "journal_info", None)
                described = dict(info()) if callable(info) else {"kind": "local"}
                retry = getattr(runner, "retry", None)
                if retry is not None:  # `runner resume` runs the jobs again with it
                    described.setdefault("retry", retry.as_dict())
                number = journal.add_runner(described)
                self._runners[runner] = number
            self._claimed.append(job)
        job._journal_runner = number
        if not self._resume:
            return False
        job._input_hash = digest = job.input_hash()
        record = journal.take_previous(job.name, digest)
        if record is None:
            return False
        if self._keeps(record):
            if not os.path.isdir(record.path):
                logger().info("job %r: its earlier folder is gone; it runs again", job.name)
                return False
            from pathlib import Path  # noqa: PLC0415 - loaded by __init__ already

            with self._lock:
                job.path = Path(record.path)
                self.jobs.append(job)
            job.results._restore(
                record.status,
                exit_code=record.exit_code,
                reason=record.reason,
                error=record.error,
                started_at=record.started_at,
                finished_at=record.finished_at,
                jobid=record.jobid,
                submitted_at=record.submitted_at,
                native_id=record.native_id,
            )
            return True
        job._previous = record
        return False

    def _keeps(self, record: JobRecord) -> bool:
        """True when the resume keeps this earlier try as it ended instead of running it again."""
        if record.status is JobStatus.SUCCESSFUL:
            return True
        return (
            self._resume == "unfinished"
            and record.status in (JobStatus.CRASHED, JobStatus.FAILED)
            and record.reason in _FINISHED_REASONS
        )

    def _adopt(self, job: SingleJob) -> JobRecord:
        """Give a job that may be re-attached its old folder and journal record back."""
        from pathlib import Path  # noqa: PLC0415 - loaded by __init__ already

        record = job._previous
        if record is None:
            raise JobError(f"job {job.name!r} has no earlier try to re-attach to")
        with self._lock:
            journal = self._open_journal()
            job.path = Path(record.path)
            self.jobs.append(job)
            self._adopted.add(id(job))
            results = job.results
            results.jobid = record.jobid
            results.native_id = record.native_id
            results.submitted_at = record.submitted_at  # the first submit time is kept
            results.started_at = record.started_at
            results._journal = journal.adopt(record.number)
        return record

    def _open_journal(self) -> Journal:
        """This manager's journal, opened on first use (lock held by the caller)."""
        journal = self._journal
        if journal is not None and not journal.closed:
            return journal
        journal = open_journal(str(self._path))
        self._created = True
        journal.users += 1
        self._journal = journal
        journal.on_cancel(self._cancel_all)
        if self._resume and not journal.leftovers_stopped:
            journal.leftovers_stopped = True
            _stop_leftovers(journal)
        return journal

    def _cancel_all(self) -> None:
        """`runner cancel` asked: cancel every job of the run, and run no new one."""
        with self._lock:
            self._cancelled = True
            jobs = list(self._claimed)
        for job in jobs:
            job.cancel()


def _stop_leftovers(journal: Journal) -> None:
    """Stop the local jobs a dead driver of this folder left running; record them CANCELLED."""
    leftovers = [r for r in journal.previous.jobs if not r.done and r.kind == "local"]
    if not leftovers:
        return
    stop_local_jobs(leftovers)
    record_outside_ends(
        journal, leftovers, "stopped by a resume: its driver had died", JobStatus.CANCELLED
    )
    for record in leftovers:
        record.status = JobStatus.CANCELLED
        record.reason = "cancelled"


def stop_local_jobs(records: Sequence[JobRecord]) -> list[JobRecord]:
    """Stop the local process groups of jobs whose driver may be gone; return those now stopped.

    A group is identified by the leader's recorded pid and start time and the boot id
    (see `kill_recorded_groups`); a job killed before its pid was on record is found
    by its runscript's path among the session leaders. A job recorded on another host
    cannot be stopped from here: it is left out of the returned list, with a warning.
    """
    here_host = os.uname().nodename
    here_boot = boot_id()
    stopped: list[JobRecord] = []
    groups: list[tuple[int, int, Optional[str]]] = []
    known: list[JobRecord] = []
    unknown: list[JobRecord] = []
    for record in records:
        if record.pid is not None and record.pstart is not None:
            if record.host not in (None, here_host):
                logger().warning(
                    "job %s may still run on host %s (pid %s): it cannot be stopped from here",
                    record.folder,
                    record.host,
                    record.pid,
                )
                continue
            groups.append((record.pid, record.pstart, record.boot))
            known.append(record)
        elif record.status is JobStatus.RUNNING:
            unknown.append(record)
        stopped.append(record)
    if unknown:  # started, but killed before its pid was on record: find it by its runscript
        by_path = {os.path.join(r.path, r.name + ".run"): r for r in unknown}
        for path, found in find_session_leaders(set(by_path)).items():
            for pid, start in found:
                groups.append((pid, start, here_boot))
                known.append(by_path[path])
    if groups:
        outcomes = kill_recorded_groups(groups)
        for record, outcome in zip(known, outcomes):
            if outcome == "killed":
                logger().warning(
                    "stopped job %s, left running by a driver that is gone", record.folder
                )
    return stopped


class CancelOutcome:
    """What `cancel_run` did.

    Attributes:
        folder: the run's folder.
        driver_alive: True when a live driver was asked to cancel (and did, within the
            time-out, for the jobs not in `not_stopped`).
        cancelled: the records of the jobs now ended CANCELLED.
        ended: the records of jobs that had ended by themselves (found from their files
            or the scheduler), recorded as they ended, not cancelled: their work is kept.
        not_stopped: records of jobs that could not be stopped from here (run on
            another host, no runner installed for their kind, or still ending), with why.
    """

    def __init__(self, folder: str, driver_alive: bool) -> None:
        """An outcome with nothing done yet."""
        self.folder = folder
        self.driver_alive = driver_alive
        self.cancelled: list[JobRecord] = []
        self.ended: list[JobRecord] = []
        self.not_stopped: list[tuple[JobRecord, str]] = []


def cancel_run(
    folder: Union[str, os.PathLike[str]],
    runners: Mapping[str, Any],
    timeout: float = 30.0,
) -> CancelOutcome:
    """Cancel the queued and running jobs of the run recorded in `folder`, live driver or not.

    With a live driver: writes the cancel request its journal thread watches (it
    cancels every job of the run within about a second: they end CANCELLED) and
    waits up to `timeout` s for them to end; a local job still running then (a hung
    driver) has its process group killed from here. With no live driver: takes the
    journal over, cancels each job through `runners[record.kind].cancel_recorded()`
    (local process groups killed, grid jobs cancelled in the scheduler's queue) and
    records them CANCELLED. A job that has ended by itself is never cancelled: each
    job's runner first says how it ended (`observe_recorded`: its exit-code file,
    then the scheduler, as a resume finds out), and that end is recorded instead.

    Args:
        folder: the JobManager folder.
        runners: the runner class for each kind of record, e.g. {"local": JobRunner,
            "grid": GridRunner}; each has the classmethod `cancel_recorded(records)`.
        timeout: seconds to wait for a live driver to end the jobs.

    Returns:
        What was done.

    Raises:
        JobError: `folder` has no run journal.
        JournalLocked: a driver started on the folder while this ran.
    """
    import time  # noqa: PLC0415 - lazy stdlib import keeps `import runner_core` fast

    root = os.path.abspath(os.fspath(folder))
    state = read_journal(root)
    if not state.exists:
        raise JobError(
            f"{root!r} has no run journal (.runner/journal.jsonl): it is not the folder of a "
            "JobManager (the --workdir of `runner run`), or its run had journal=False"
        )
    driver = state.driver
    live = driver is not None and driver.live
    outcome = CancelOutcome(root, live)
    pending = {r.number: r for r in state.jobs if not r.done}
    if live:
        write_request(root)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            time.sleep(0.1)
            now = read_journal(root)
            for record in now.jobs:
                if record.number in pending and record.done:
                    del pending[record.number]
                    if record.status is JobStatus.CANCELLED:
                        outcome.cancelled.append(record)
                    else:  # it ended by itself before the cancel reached it
                        outcome.ended.append(record)
            if now.driver is None or not now.driver.live:
                break
        local = [r for r in pending.values() if r.kind == "local"]
        for record in stop_local_jobs(local):
            pending.pop(record.number, None)
            outcome.cancelled.append(record)
        for record in pending.values():
            outcome.not_stopped.append((record, "its driver has not ended it yet"))
        return outcome
    journal = open_journal(root)
    try:
        by_kind: dict[str, list[JobRecord]] = {}
        for record in pending.values():
            by_kind.setdefault(record.kind, []).append(record)
        for kind, records in by_kind.items():
            cls = runners.get(kind)
            if cls is None:
                outcome.not_stopped.extend(
                    (r, f"no runner for {kind!r} jobs here") for r in records
                )
                continue
            _cancel_kind(journal, cls, records, outcome)
    finally:
        journal.close()
    return outcome


def _cancel_kind(
    journal: Journal, cls: Any, records: list[JobRecord], outcome: CancelOutcome
) -> None:
    """Cancel the records of one runner kind with no live driver; keep the ends of jobs that ended.

    First asks how each job is now (`observe_recorded`, scheduler included): a job that
    ended is recorded as it ended. The rest are cancelled; one that wrote exit code 0
    while its cancel went out ended by itself all the same, and is recorded so.
    """
    seen: dict[int, RecordedState] = dict(cls.observe_recorded(records, True))
    live: list[JobRecord] = []
    for record in records:
        state = seen.get(record.number)
        if state is not None and state.status.done:
            _record_end(journal, record, state, "ended by itself while no driver ran")
            outcome.ended.append(record)
        else:
            live.append(record)
    if not live:
        return
    stopped = list(cls.cancel_recorded(live))
    after: dict[int, RecordedState] = dict(cls.observe_recorded(stopped, False))
    for record in stopped:
        state = after.get(record.number)
        if state is not None and state.status is JobStatus.SUCCESSFUL:
            _record_end(journal, record, state, "ended by itself as it was cancelled")
            outcome.ended.append(record)
            continue
        before = seen.get(record.number)
        started = None if before is None else before.started_at
        note = "while running" if started is not None else "before it started"
        record_outside_end(
            journal,
            record,
            JobStatus.CANCELLED,
            reason="cancelled",
            error=f"cancelled by `runner cancel` {note} (its driver was gone)",
            started_at=started,
        )
        outcome.cancelled.append(record)
    done = {r.number for r in stopped}
    outcome.not_stopped.extend(
        (r, "could not be stopped from this host") for r in live if r.number not in done
    )


def _record_end(journal: Journal, record: JobRecord, state: RecordedState, note: str) -> None:
    record_outside_end(
        journal,
        record,
        state.status,
        exit_code=state.exit_code,
        reason=state.reason,
        error=None if state.status is JobStatus.SUCCESSFUL else note,
        started_at=state.started_at,
        finished_at=state.finished_at,
    )


__all__ = ["CancelOutcome", "JobManager", "JournalLocked", "cancel_run", "stop_local_jobs"]
