"""What a journal read back holds: `JobRecord` (one try of one job) and `JournalState`.

Made by the journal's reader (`runner_core._journal.read_journal`) and by its snapshot
(`runner_core._snapshot`), which both fill them in; read by everything that looks at a run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from runner_core._status import JobStatus

if TYPE_CHECKING:
    from runner_core._journal import DriverInfo, _Reader

__all__ = ["NO_ATTEMPTS", "JobRecord", "JournalState"]

NO_ATTEMPTS: list[dict[str, Any]] = []  # shared by the records of jobs run once; never mutated
_FINAL_VALUES = frozenset(status.value for status in JobStatus if status.done)


class JobRecord:
    """What the journal knows of one try of one job (read-only for its users).

    Attributes:
        number: the job's number in the journal (unique within the folder).
        name: the job's name.
        folder: the job's folder name, relative to the JobManager's folder.
        path: the job's folder, absolute.
        hash: the hash of what it runs (runscript, runflags), or None.
        status: its last recorded JobStatus.
        exit_code: its exit code, or None.
        reason: its end reason (a word of `REASONS`), or None.
        error: the first part of its error message, or None.
        jobid: the scheduler's id, or None.
        native_id: the scheduler's own id of an array task where it differs from
            `jobid` (SLURM's raw job id of a task), or None.
        tag: the tag the runner gave the job in the scheduler's queue, or None.
        runner: the runner's `journal_info()` (e.g. {"kind": "local"}), or {}.
        flags: the job's runflags as recorded, or {}.
        pid, pstart, boot, host: the local process group's leader (pid, start time),
            the boot id and host it ran on, for stopping it safely; None if unknown.
        registered_at, submitted_at, started_at, finished_at: `time.time()` stamps, or
            None: when the job was taken, first handed to the scheduler (kept across
            resumes), started running, ended.
        session: the number of the driver session that recorded it last.
        left: True when the driver left it in the scheduler's queue on purpose at exit.
        attempts: the earlier attempts of a job a `runner_core.Retry` ran again, oldest
            first, each a dict (`runner_core.Attempt.as_dict`: attempt, jobid,
            exit_code, reason, error, request, times; ``next``: the request of the
            attempt after it); the fields above are the last attempt's. Empty when the
            job was run once.
    """

    __slots__ = (
        "attempts",
        "boot",
        "error",
        "exit_code",
        "finished_at",
        "flags",
        "folder",
        "hash",
        "host",
        "jobid",
        "left",
        "name",
        "native_id",
        "number",
        "path",
        "pid",
        "pstart",
        "reason",
        "registered_at",
        "runner",
        "session",
        "started_at",
        "status",
        "submitted_at",
        "tag",
    )

    def __init__(self, number: int, name: str, folder: str, path: str) -> None:
        """A record of job `number`, CREATED; the journal's replay fills in the rest."""
        self.number = number
        self.name = name
        self.folder = folder
        self.path = path
        self.hash: Optional[str] = None
        self.status = JobStatus.QUEUED
        self.exit_code: Optional[int] = None
        self.reason: Optional[str] = None
        self.error: Optional[str] = None
        self.jobid: Optional[str] = None
        self.native_id: Optional[str] = None
        self.tag: Optional[str] = None
        self.runner: dict[str, Any] = {}
        self.flags: dict[str, Any] = {}
        self.pid: Optional[int] = None
        self.pstart: Optional[int] = None
        self.boot: Optional[str] = None
        self.host: Optional[str] = None
        self.registered_at: Optional[float] = None
        self.submitted_at: Optional[float] = None
        self.started_at: Optional[float] = None
        self.finished_at: Optional[float] = None
        self.session = 0
        self.left = False
        self.attempts: list[dict[str, Any]] = NO_ATTEMPTS

    def __repr__(self) -> str:
        return f"<JobRecord {self.number} {self.folder!r} {self.status.name}>"

    @property
    def done(self) -> bool:
        """True when the record's status is final."""
        return self.status._value_ in _FINAL_VALUES  # not `.status.done`: two Python calls less

    @property
    def kind(self) -> str:
        """The runner's kind ("local", "grid", ...): `runner["kind"]`, "local" if unknown."""
        return str(self.runner.get("kind", "local"))

    def as_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict (the shape `runner status --json` prints)."""
        return {
            "name": self.name,
            "folder": self.folder,
            "path": self.path,
            "status": self.status._name_,  # not `.name`: a Python call through Enum
            "jobid": self.jobid,
            "native_id": self.native_id,
            "tag": self.tag,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "error": self.error,
            "runner": self.runner.get("kind", "local"),
            "hash": self.hash,
            "registered_at": self.registered_at,
            "submitted_at": self.submitted_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "left": self.left,
            "number": self.number,
            "attempts": [dict(attempt) for attempt in self.attempts] if self.attempts else [],
        }


class JournalState:
    """A journal read back: every job's latest try, the sessions, the driver, what was dropped.

    Attributes:
        folder: the JobManager's folder (absolute).
        jobs: the latest try of each job folder, in the order the folders first appeared.
        tries: every try, by job number.
        sessions: the `open` record of each driver session, in order.
        runners: the runner descriptions, by runner number.
        dropped: a line for each part of the file that could not be read (a torn
            last record, a corrupt line); empty for a sound journal.
        driver: the driver named by the lock file now, or None when there is none.
        cancel_requested: a `runner cancel` request is waiting for the driver.
        size: the file's length in bytes that was read.
        good_size: the length of the file up to the end of its last complete record.
    """

    def __init__(self, folder: str) -> None:
        """An empty state of `folder` (no journal yet)."""
        self.folder = folder
        self.jobs: list[JobRecord] = []
        self.tries: dict[int, JobRecord] = {}
        self.sessions: list[dict[str, Any]] = []
        self.runners: dict[int, dict[str, Any]] = {}
        self.dropped: list[str] = []
        self.driver: Optional[DriverInfo] = None
        self.cancel_requested = False
        self.size = 0
        self.good_size = 0
        self._reader: Optional[_Reader] = None  # where `read_journal(since=...)` goes on

    @property
    def exists(self) -> bool:
        """True when the folder has a journal."""
        return bool(self.sessions) or self.size > 0

    def counts(self) -> dict[str, int]:
        """How many jobs (latest tries) are in each state: {status name: count}, nonzero only."""
        counts: dict[str, int] = {}
        get = counts.get
        for record in self.jobs:
            name = record.status._name_  # not `.name`: a Python call per job through Enum
            counts[name] = get(name, 0) + 1
        return counts
