"""The run journal: an append-only JSON-lines log and a lock file in a JobManager's folder.

Storage (in `<folder>/.runner/`), standard library only, safe on NFS, Lustre and GPFS:

- `journal.jsonl`: one JSON object per line, appended to a file opened with O_APPEND
  by one writer (the driver), whole lines only, several of them (of any jobs) in one
  `os.write` where they are ready at the same moment. A step is on record before the
  driver acts on it: a job's start before its `call`, its end before anything waits
  on it (a job's registration goes out with its next record: see the notes on the
  writer). Records reach the file (the page cache, or the NFS client) at once, so they
  survive a SIGKILL of the driver; `fsync` runs at most once per `FSYNC_INTERVAL` from
  a thread of its own, so an OS crash loses about the last second, and a job's records
  cost no disk round trip each.
- `lock`: created with O_EXCL (atomic on NFSv3 and later, and on every local file
  system), holding host, pid, process start time and boot id of the driver, its
  modification time refreshed every `HEARTBEAT` s. A lock whose driver is gone (same
  host: no process with that pid and start time, or another boot; another host: no
  heartbeat for `STALE_AFTER` s) is taken over; a live one is refused with
  `JournalLocked`, naming host and pid. No byte-range locks (`fcntl`/`flock` are
  unreliable or missing on network file systems) and no shared memory (what
  SQLite's WAL mode needs).
- `cancel`: written by `runner cancel` from any shell; the driver's journal thread
  notices it within a second and cancels the run's jobs.

Readers (`read_journal`) need no lock: they read the file up to its last complete
line. A journal cut at any byte opens; what it dropped (a torn last record, a
corrupt line) is reported in `JournalState.dropped`.

Lock order: a JobManager's lock or the Results lock, then `Journal._io_lock` (held
across a write; nothing else is called under it), then `Journal._lock` (the queue of
records), which is innermost: nothing is called while it is held. A job's move is
queued under the Results lock, so the journal has the moves in their true order; see
the notes on the writer for when it is written.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional

from runner_core._errors import JobError
from runner_core._log import logger
from runner_core._process import boot_id, process_start
from runner_core._records import JobRecord, JournalState
from runner_core._snapshot import HEAD, MIN_BYTES, TAIL, Covered, worth_saving
from runner_core._snapshot import load as load_snapshot
from runner_core._snapshot import save as save_snapshot
from runner_core._status import JobStatus

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from runner_core._results import Results
    from runner_core._retry import Attempt

__all__ = [
    "FORMAT",
    "JOURNAL_DIR",
    "DriverInfo",
    "JobRecord",
    "Journal",
    "JournalLocked",
    "JournalState",
    "RecordedState",
    "close_all",
    "open_journal",
    "read_journal",
    "record_outside_end",
    "record_outside_ends",
]

FORMAT = 1
JOURNAL_DIR = ".runner"
LOG_NAME = "journal.jsonl"
LOCK_NAME = "lock"
CANCEL_NAME = "cancel"
FSYNC_INTERVAL = 1.0  # seconds: what an OS crash may lose at most, about
HEARTBEAT = 15.0  # seconds between two refreshes of the lock's modification time
STALE_AFTER = 300.0  # seconds without a heartbeat after which another host's lock is stale
ERROR_CHARS = 300  # how much of a job's error message the journal keeps
# Test hook: the driver SIGKILLs itself right after the write that puts record number N
# (1-based, counted over the driver's life) in the file, so tests can stop it at every
# step of a run.
KILL_AT_ENV = "RUNNER_JOURNAL_TEST_KILL_AT"

_STATUS = {s.value: s for s in JobStatus}


class JournalLocked(JobError):
    """Another live driver writes the journal of this folder; names its host and pid.

    Attributes:
        driver: the other driver.
    """

    def __init__(self, folder: str, driver: DriverInfo) -> None:
        """Say which driver holds `folder` and what to do."""
        self.driver = driver
        super().__init__(
            f"the folder {folder!r} is in use by another run: driver pid {driver.pid} on host "
            f"{driver.host!r} (started {_when(driver.started)}); wait for it to end, stop it "
            f"(`runner cancel {folder}`), or use another folder. If you are sure that driver "
            f"is gone, delete {os.path.join(folder, JOURNAL_DIR, LOCK_NAME)!r}"
        )


def _when(stamp: Optional[float]) -> str:
    if stamp is None:
        return "at an unknown time"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def _now() -> float:
    return round(time.time(), 3)


def _stamp(at: Optional[float]) -> float:
    return _now() if at is None else round(at, 3)


def _host() -> str:
    return os.uname().nodename


class DriverInfo:
    """The process that holds (or held) a journal's lock.

    Attributes:
        host: its host name.
        pid: its pid.
        start: its start time (clock ticks since boot), or None.
        boot: the boot id of its host, or None.
        started: `time.time()` when it took the lock.
        heartbeat: `time.time()` of the lock's last refresh (its modification time).
        alive: True (it runs), False (it is gone), None (on another host and still
            refreshing its lock: taken to be alive).
    """

    __slots__ = ("alive", "boot", "heartbeat", "host", "pid", "start", "started")

    def __init__(  # noqa: PLR0917 - a record of six fields, made in two places
        self,
        host: str,
        pid: int,
        start: Optional[int],
        boot: Optional[str],
        started: Optional[float],
        heartbeat: Optional[float],
    ) -> None:
        """Describe a driver; `alive` is worked out from where this process runs."""
        self.host = host
        self.pid = pid
        self.start = start
        self.boot = boot
        self.started = started
        self.heartbeat = heartbeat
        self.alive = self._check_alive()

    def _check_alive(self) -> Optional[bool]:
        if self.host == _host():
            here = boot_id()
            if self.boot is not None and here is not None and self.boot != here:
                return False
            now = process_start(self.pid, zombies=False)
            if now is None:
                return _pid_exists(self.pid) if self.start is None else False
            return self.start is None or now == self.start
        if self.heartbeat is not None and time.time() - self.heartbeat > STALE_AFTER:
            return False
        return None

    @property
    def live(self) -> bool:
        """True unless the driver is known to be gone."""
        return self.alive is not False

    def as_dict(self) -> dict[str, Any]:
        """The driver as a JSON-ready dict."""
        return {
            "host": self.host,
            "pid": self.pid,
            "alive": self.alive,
            "started": self.started,
            "heartbeat": self.heartbeat,
        }


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_lock(path: str) -> Optional[DriverInfo]:
    """The driver named by the lock file at `path`, or None when there is no lock file.

    A lock file that is empty or cut (its driver died while writing it) names pid 0.
    """
    import json  # noqa: PLC0415 - lazy stdlib import keeps `import runner_core` fast

    try:
        with open(path, "rb") as f:
            raw = f.read(4096)
            mtime = os.fstat(f.fileno()).st_mtime
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw)
        return DriverInfo(
            str(data["host"]),
            int(data["pid"]),
            data.get("start"),
            data.get("boot"),
            data.get("time"),
            mtime,
        )
    except (ValueError, KeyError, TypeError):
        info = DriverInfo("?", 0, None, None, None, mtime)
        # a lock file left half-written: stale once it is a few seconds old
        info.alive = None if time.time() - mtime < 5.0 else False
        return info


class RecordedState(NamedTuple):
    """Where a recorded job is now, as found from outside its driver (its files, the scheduler).

    Given by `JobRunner.observe_recorded` for jobs whose record has not ended: a final
    `status` means the job ended by itself while no driver recorded it (with its exit
    code, reason and times); SUBMITTED or RUNNING that it is still in the queue.
    """

    status: JobStatus
    exit_code: Optional[int] = None
    reason: Optional[str] = None
    started_at: Optional[float] = None
    finished_at: Optional[float] = None


def journal_dir(folder: str) -> str:
    """`<folder>/.runner`: where the journal, its lock and a cancel request live."""
    return os.path.join(folder, JOURNAL_DIR)


def read_journal(
    folder: str | os.PathLike[str],
    *,
    since: Optional[JournalState] = None,
    snapshot: bool = True,
) -> JournalState:
    """Read the journal of the JobManager folder `folder`, from any process, at any time.

    Args:
        folder: the JobManager's folder (the one that holds `.runner/`).
        since: a state returned earlier for the same folder, its records as read: it is
            brought up to date by reading only the bytes appended to the journal since
            then (what `runner status --watch` does every few seconds), and returned.
            When the journal was replaced or cut shorter meanwhile, it is read whole into
            a new state instead.
        snapshot: start from the reader's snapshot in `.runner/` where it is one of this
            journal (then only what was appended after it is read), and, after reading
            more than a little past it, leave a new one for the next reader (where this
            process owns the journal and may write the folder; see `runner_core._snapshot`).
            False reads every record and writes nothing. Either way the state is the same.

    Returns:
        The journal's state; empty (`exists` False) when the folder has no journal.
    """
    root = os.path.abspath(os.fspath(folder))
    where = journal_dir(root)
    state = JournalState(root)
    reader: Optional[_Reader] = None
    info: Optional[os.stat_result] = None  # the journal file's, when it was read from the start
    try:
        with open(os.path.join(where, LOG_NAME), "rb") as f:
            found = os.fstat(f.fileno())
            file = (found.st_dev, found.st_ino)
            if since is not None and since.folder == root:
                reader = since._reader
                if reader is not None and reader.file == file and found.st_size >= reader.offset:
                    state = since
                    f.seek(reader.offset)
                else:
                    reader = None
            if reader is None:
                info = found
                reader = _Reader(state, file)
                if snapshot:
                    reader.restore(load_snapshot(state, where, f.fileno(), found))
                    f.seek(reader.offset)
            data = f.read()
    except FileNotFoundError:
        reader, data = _Reader(state, None), b""
    state._reader = reader
    reader.feed(data)
    # Only a state just read is saved: one given back through `since` may have been changed
    # by its holder (`runner status` shows what it observes outside the journal).
    if (
        snapshot
        and info is not None
        and worth_saving(reader.offset, reader.saved)
        and save_snapshot(state, where, info, reader.covered(), reader.torn)
    ):
        reader.saved = reader.offset
    state.driver = _read_lock(os.path.join(where, LOCK_NAME))
    state.cancel_requested = os.path.exists(os.path.join(where, CANCEL_NAME))
    return state


_scan: Optional[Callable[[str, int], tuple[Any, int]]] = None


def _scanner() -> Callable[[str, int], tuple[Any, int]]:
    """The json module's scanner (its C one where there is one): one value at an index of a str."""
    global _scan
    if _scan is None:
        import json  # noqa: PLC0415 - lazy stdlib import keeps `import runner_core` fast

        _scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # set in __init__
    return _scan


# The state machine's table by JobStatus value: the replay compares the values (str keys
# hash in C; an Enum member's hash is a Python call).
_BY_VALUE = {s.value: s for s in JobStatus}
_NEXT_VALUES = {
    s.value: frozenset(t.value for t in JobStatus if s.may_become(t)) for s in JobStatus
}
_FINAL_VALUES = frozenset(s.value for s in JobStatus if s.done)


class _Reader:
    """Where a replay of one journal stands, so that bytes appended later continue it.

    Records are read from the decoded text by the json module's scanner, in place (no
    copy of a line, no `json.loads` call per line), and applied in the same loop. A line
    the scanner does not take whole (a torn or corrupt record, white space around it,
    bytes that are not UTF-8) goes through `json.loads` on its own, as records were
    always read, so what is kept, what is dropped and why stay the same.

    Attributes:
        state: the JournalState it fills in.
        file: (device, inode) of the journal file read, or None.
        offset: the bytes applied so far; the next read starts here.
        lines: the newlines before `offset`.
        place: each job folder's index in `state.jobs` (None until records follow a snapshot).
        session: the `open` record of the session the records now belong to.
        torn: the note on a torn last record, taken back when the next read reads it again.
        head, tail: the journal's first bytes and those just before `offset` (what a
            snapshot's check covers: see `runner_core._snapshot`).
        saved: the bytes the last snapshot written or loaded covers.
    """

    __slots__ = (
        "file",
        "head",
        "lines",
        "offset",
        "place",
        "saved",
        "session",
        "state",
        "tail",
        "torn",
    )

    def __init__(self, state: JournalState, file: Optional[tuple[int, int]]) -> None:
        self.state = state
        self.file = file
        self.offset = 0
        self.lines = 0
        self.place: Optional[dict[str, int]] = {}  # None: not made yet (see `restore`)
        self.session: dict[str, Any] = {}
        self.torn: Optional[str] = None
        self.head = b""
        self.tail = b""
        self.saved = 0

    def restore(self, covered: Optional[Covered]) -> None:
        """Go on from a snapshot that filled in the state (`runner_core._snapshot.load`), if any."""
        if covered is None:
            return
        state = self.state
        self.offset = self.saved = covered.offset
        self.lines = covered.lines
        self.head = covered.head
        self.tail = covered.tail
        self.place = None  # made by the first read of records that follow, if any
        self.session = state.sessions[-1] if state.sessions else {}
        state.size = covered.offset

    def covered(self) -> Covered:
        """How much of the journal the state covers, for its snapshot."""
        return Covered(self.offset, self.lines, self.head, self.tail)

    def feed(self, data: bytes) -> None:
        """Apply the bytes of the journal from `offset` on; a torn last line stays unread."""
        import gc  # noqa: PLC0415 - lazy stdlib import keeps `import runner_core` fast

        state = self.state
        if self.torn is not None:
            with contextlib.suppress(ValueError):
                state.dropped.remove(self.torn)
            self.torn = None
        base = self.offset
        state.size = base + len(data)
        cut = data.rfind(b"\n") + 1
        # A replay makes many objects that all live on: the cyclic collector would walk
        # them again and again (a third of the time of a big journal) and find nothing.
        collect = len(data) > 1 << 20 and gc.isenabled()
        if collect:
            gc.disable()
        try:
            if cut:
                block = data if cut == len(data) else data[:cut]
                self._block(block, base)
                self.lines += block.count(b"\n")
            consumed = cut
            if cut < len(data):
                tail = data[cut:]
                if self._line(tail, base + cut, base + len(data), torn=True):
                    consumed = len(data)  # whole, only its newline missing: it counts
        finally:
            if collect:
                gc.enable()
        if consumed:
            if base < HEAD:
                self.head += data[: min(consumed, HEAD - base)]
            if consumed >= TAIL:
                self.tail = data[consumed - TAIL : consumed]
            else:
                self.tail = (self.tail + data[:consumed])[-TAIL:]
        self.offset = base + consumed

    def _block(self, block: bytes, base: int) -> None:
        """Apply complete lines (`block` ends with a newline) that start at byte `base`."""
        try:
            text = block.decode()
        except UnicodeDecodeError:
            self._block_by_line(block, base)
            return
        ascii_only = len(text) == len(block)

        def byte_at(pos: int) -> int:
            return base + (pos if ascii_only else len(text[:pos].encode()))

        def line_at(pos: int) -> tuple[int, bytes]:
            return byte_at(pos), text[pos : text.index("\n", pos)].encode()

        good = self._run(text, line_at, base)
        if good > 0:
            self.state.good_size = byte_at(good)

    def _block_by_line(self, block: bytes, base: int) -> None:
        start = base
        for index, line in enumerate(block.split(b"\n")[:-1]):
            end = start + len(line) + 1
            if line:
                self._line(line, start, end, number=self.lines + index + 1)
            start = end

    def _line(
        self, line: bytes, start: int, end: int, *, number: int = 0, torn: bool = False
    ) -> bool:
        """Read and apply one line the way records were always read; False if it was dropped."""
        import json  # noqa: PLC0415 - lazy stdlib import keeps `import runner_core` fast

        state = self.state
        try:
            rec = json.loads(line)
            rec["k"]  # a record without a kind is not a record
            compact = json.dumps(rec, separators=(",", ":")) + "\n"
        except (ValueError, KeyError, TypeError):
            if torn:
                self.torn = (
                    f"a torn last record of {len(line)} bytes at byte {start} (cut while it "
                    "was written; that step is not on record)"
                )
                state.dropped.append(self.torn)
            else:
                state.dropped.append(
                    f"a corrupt record of {len(line)} bytes at byte {start} (line {number})"
                )
            return False
        state.good_size = min(end, state.size)
        # Its compact form goes through the one loop that applies records.
        self._run(compact, lambda _pos: (start, line), start)
        return True

    def _run(  # one loop over every kind of record, for speed
        self, text: str, line_at: Callable[[int], tuple[int, bytes]], base: int
    ) -> int:
        """Apply the records of `text` (whole lines) in order; return the index after the last.

        `line_at(index)` gives the byte and the bytes of the line at an index of `text`,
        for the notes on what is dropped.
        """
        state = self.state
        tries = state.tries
        jobs = state.jobs
        runners = state.runners
        dropped = state.dropped
        place = self.place
        if place is None:
            place = self.place = {record.folder: at for at, record in enumerate(jobs)}
        session = self.session
        root = state.folder if state.folder.endswith(os.sep) else state.folder + os.sep
        scan = _scanner()
        by_value = _BY_VALUE
        final = _FINAL_VALUES
        next_values = _NEXT_VALUES
        running = JobStatus.RUNNING
        submitted = JobStatus.SUBMITTED
        good = 0
        pos = 0
        size = len(text)
        while pos < size:
            try:
                rec, end = scan(text, pos)
                kind = rec["k"]
                whole = text[end] == "\n"
            except (StopIteration, ValueError, KeyError, TypeError, IndexError):
                whole = False
            if not whole:  # read it the slow way, on its own
                stop = text.index("\n", pos)
                if stop > pos:
                    self.session = session
                    start, line = line_at(pos)
                    number = self.lines + text.count("\n", 0, pos) + 1
                    if self._line(line, start, start + len(line) + 1, number=number):
                        good = stop + 1
                    session = self.session
                pos = stop + 1
                continue
            where = pos
            pos = good = end + 1
            try:
                if kind == "end":
                    record = tries.get(rec.get("j", -1))
                    if record is None:
                        continue
                    status = by_value[rec["s"]]
                    if record.status._value_ not in final:  # a final state is never left
                        record.status = status
                        record.exit_code = rec.get("code")
                        record.reason = rec.get("why")
                        record.error = rec.get("err")
                        record.finished_at = rec.get("t")
                        if "t0" in rec:  # the job's own start, where the end corrected it
                            record.started_at = rec["t0"]
                        if record.submitted_at is None:
                            record.submitted_at = rec.get("ts")
                elif kind == "st":
                    record = tries.get(rec.get("j", -1))
                    if record is None:
                        continue
                    value = rec["s"]
                    status = by_value[value]
                    if value in next_values[record.status._value_]:
                        record.status = status
                        if status is running:
                            record.started_at = rec.get("t")
                        elif status is submitted and record.submitted_at is None:
                            record.submitted_at = rec.get("t")
                elif kind == "job":
                    number = rec["j"]
                    folder = rec["dir"]
                    path = root + folder if folder[:1] != os.sep else folder
                    record = JobRecord(number, rec["name"], folder, path)
                    record.hash = rec.get("hash")
                    record.runner = runners.get(rec.get("r", -1), {})
                    record.flags = rec.get("flags") or {}
                    record.registered_at = rec.get("t")
                    record.session = session.get("s", 0)
                    tries[number] = record
                    at = place.get(folder)
                    if at is None:
                        place[folder] = len(jobs)
                        jobs.append(record)
                    else:
                        jobs[at] = record
                elif kind == "open":
                    session = rec
                    state.sessions.append(rec)
                elif kind == "runner":
                    runners[rec["r"]] = rec.get("info") or {}
                elif kind != "cancel" and kind != "close":  # noqa: PLR1714 - may be unhashable
                    record = tries.get(rec.get("j", -1))
                    if record is None:
                        continue
                    if kind == "pid":
                        record.pid = rec["pid"]
                        record.pstart = rec.get("ps")
                        record.boot = session.get("boot")
                        record.host = session.get("host")
                    elif kind == "id":
                        record.jobid = rec["id"]
                        record.native_id = rec.get("nid")
                    elif kind == "tag":
                        record.tag = rec["tag"]
                    elif kind == "adopt":
                        record.session = session.get("s", 0)
                        record.left = False
                    elif kind == "left":
                        record.left = True
                    elif kind == "try":  # an attempt ended and the job runs again
                        record.attempts = [*record.attempts, {"attempt": rec["n"], **rec["a"]}]
                        record.status = JobStatus.QUEUED
                        record.jobid = record.native_id = record.tag = None
                        record.submitted_at = record.started_at = None
                        record.pid = record.pstart = None
            except (KeyError, TypeError, ValueError):
                start, line = line_at(where)
                dropped.append(f"a record it does not understand at byte {start}: {line[:80]!r}")
        self.session = session
        return good


# --- the writer --------------------------------------------------------------------------
#
# What a record costs is mostly not its bytes: it is the encoding, the system call, and
# above all a lock held across that system call (the call lets another thread run, which
# then blocks on the lock). So:
#
# - A record is queued (`Journal._queue`: a list append under `Journal._lock`, no I/O)
#   and written by `Journal.flush`, which writes everything queued so far, of every job,
#   in one `os.write`, in the order it was queued. A thread whose record another
#   thread's flush wrote meanwhile writes nothing (group commit).
# - A job's move is queued under the Results lock, so the journal has the moves in
#   their true order. A move to RUNNING or SUBMITTED is flushed after that lock is let
#   go (before the process starts, or the driver goes on); an end is flushed under it,
#   so that ends reach the file, the waiters and the callbacks in one order (what
#   `as_completed` yields).
# - A job's registration and a runner's description are queued without a flush (so a
#   JobManager's lock, under which they are made, is held across no write): they are
#   written with the next record of any job (for a local job: its RUNNING record,
#   written before its process starts, so both cost one write), or by the journal
#   thread within FSYNC_INTERVAL. Nothing acts on a registration before the job's next
#   record; a driver killed in between leaves a folder that no record names, and the
#   resume runs the job again in a new one.
# - A record that must be on file at once (a job's pid, which a resume needs to stop a
#   process left running) is written with everything queued before it in one
#   `os.write` (`_write_line`), and its start time comes from the clock at the spawn,
#   not from /proc (see `runner_core._process.spawned_start`): a local job costs three
#   writes (registration and start, pid, end) and no other system call.
# - The records of a job's life have a fixed shape: they are formatted directly, not
#   through `json`'s general encoder (`test_journal.py` checks that both agree).

_INF = float("inf")
_int_repr = int.__repr__
_float_repr = float.__repr__
_RUNNING = JobStatus.RUNNING
_SUBMITTED = JobStatus.SUBMITTED
# by value, not by member: a str's hash is cached, an Enum member's is computed in Python
_FINAL_VALUES = frozenset(s.value for s in JobStatus if s.done)


def _num(value: object) -> str:
    """A JSON number (or null) as the general encoder writes it; fast for int and float."""
    kind = type(value)
    if kind is float:
        if -_INF < value < _INF:  # type: ignore[operator]
            return _float_repr(value)
    elif kind is int:
        return _int_repr(value)
    elif value is None:
        return "null"
    return _encoder()[0](value)  # bool, NaN, an int or float subclass: as json writes it


def _text(value: object) -> str:
    """A JSON string as the general encoder writes it (non-ASCII kept as it is)."""
    dumps, quote = _encoder()
    return quote(value) if type(value) is str else dumps(value)


_codec: Optional[tuple[Callable[[Any], str], Callable[[str], str]]] = None


def _encoder() -> tuple[Callable[[Any], str], Callable[[str], str]]:
    """(the general encoder, the string quoter), made on first use."""
    global _codec
    if _codec is None:
        import json  # noqa: PLC0415 - lazy stdlib import keeps `import runner_core` fast
        import json.encoder  # noqa: PLC0415 - the same, for the string quoter

        encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)
        _codec = (encoder.encode, json.encoder.encode_basestring)
    return _codec


class _Entry:
    """One job's place in the journal: what its Results and its runner report go here."""

    __slots__ = ("journal", "number")

    def __init__(self, journal: Journal, number: int) -> None:
        self.journal = journal
        self.number = number

    def moved(self, results: Results, status: JobStatus) -> int:
        """Queue the record of `results`' move to `status`; return its ticket for `flush`.

        Called under the Results lock, so it does no I/O: the mover calls `flush(ticket)`
        once it has let go of that lock, before anything acts on the move. 0 means there
        is nothing to flush (a move that is not recorded, or a closed journal).
        """
        value: str = status._value_  # `.value` is a property written in Python: slower
        if value in _FINAL_VALUES:
            code, end = _num(results.exit_code), _num(results.finished_at)
            line = f'{{"k":"end","j":{self.number},"s":"{value}","code":{code},"t":{end}'
            if results.reason is not None:
                line += f',"why":{_text(results.reason)}'
            if results.error:
                line += f',"err":{_text(results.error.strip()[:ERROR_CHARS])}'
            if results.started_at is not None:
                line += f',"t0":{_num(results.started_at)}'
            if results.submitted_at is not None:
                line += f',"ts":{_num(results.submitted_at)}'
            return self.journal._queue(line + "}\n")
        if status is _RUNNING:
            at = results.started_at
        elif status is _SUBMITTED:
            at = results.submitted_at
        else:
            return 0
        return self.journal._queue(
            f'{{"k":"st","j":{self.number},"s":"{value}","t":{_num(_stamp(at))}}}\n'
        )

    def flush(self, ticket: int) -> None:
        """Make sure the record `ticket` (from `moved`) is written; see `Journal.flush`."""
        self.journal.flush(ticket)

    def jobid(self, jobid: str, native_id: Optional[str] = None) -> None:
        """Record the scheduler's id of the job (and its own id of an array task)."""
        line = f'{{"k":"id","j":{self.number},"id":{_text(jobid)}'
        if native_id is not None:
            line += f',"nid":{_text(native_id)}'
        self.journal._write_line(line + "}\n")

    def tag(self, tag: str) -> None:
        """Record the tag the runner gives the job in the scheduler's queue (before the submit)."""
        self.journal._write_line(f'{{"k":"tag","j":{self.number},"tag":{_text(tag)}}}\n')

    def pid(self, pid: int, start: Optional[int] = None) -> None:
        """Record the local process group the job runs in (leader pid and start time).

        `start` is the leader's start time where the caller knows it (see
        `runner_core._process.spawned_start`); else it is read from /proc. Written at
        once, not queued: a job killed with its driver is stopped by a resume or
        `runner cancel` through this record.
        """
        if start is None:
            start = process_start(pid)
        self.journal._write_line(
            f'{{"k":"pid","j":{self.number},"pid":{_num(pid)},"ps":{_num(start)}}}\n'
        )

    def attempt(self, attempt: Attempt, following: Mapping[str, Any]) -> int:
        """Queue the record of an attempt that ended and is run again; return its ticket.

        `following` is the request of the next attempt (the run flags that changed): a
        resume runs the job with it. Called under the Results lock (no I/O; the caller
        flushes): the job is back in the runner's queue, its next attempt's id, tag and
        times follow.
        """
        fields = attempt.as_dict()
        fields.pop("attempt")
        fields["next"] = dict(following)
        if fields.get("error"):
            fields["error"] = str(fields["error"]).strip()[:ERROR_CHARS]
        return self.journal._queue(
            f'{{"k":"try","j":{self.number},"n":{attempt.number},"a":'
            + self.journal._dumps(fields)
            + "}\n"
        )

    def left(self) -> None:
        """Record that the driver leaves the job in the scheduler's queue at its exit."""
        self.journal.write({"k": "left", "j": self.number})
        self.journal.left += 1


class Journal:
    """The writer of one folder's journal: holds its lock, appends records; one per process.

    Made by `open_journal`, which hands the same object to every JobManager of this
    process on that folder.

    Locks: `_io_lock` is held across a write (so batches reach the file in the order
    their records were queued), `_lock` guards the queue and the file descriptor and is
    innermost: nothing is called under it. Order: `_io_lock`, then `_lock`.

    Attributes:
        folder: the JobManager folder (absolute).
        previous: the journal as it was when this driver opened it.
        session: this driver's session number.
        left: how many jobs the driver left queued at its exit (see `_Entry.left`).
    """

    def __init__(self, folder: str, previous: JournalState, fd: int, lock_path: str) -> None:
        """Wrap an open journal file `fd` whose lock this process holds (see `open_journal`)."""
        self.folder = folder
        self.previous = previous
        self._fd: Optional[int] = fd
        self._lock_path = lock_path
        self._lock = threading.Lock()
        self._io_lock = threading.Lock()
        self._pending: list[bytes] = []  # records queued, not written yet, in order
        self._queued = 0  # records queued so far (the last ticket handed out)
        self._flushed = 0  # records written so far: every ticket up to it is on record
        self._dirty = False
        self._synced_at = time.monotonic()
        self._beat_at = time.monotonic()
        self._next_job = max(previous.tries, default=0) + 1
        self._next_runner = max(previous.runners, default=0) + 1
        self.session = len(previous.sessions) + 1
        self.left = 0
        self._cancel_path = os.path.join(journal_dir(folder), CANCEL_NAME)
        self._cancel_seen = False
        self._on_cancel: list[Callable[[], None]] = []
        kill_at = os.environ.get(KILL_AT_ENV)
        self._kill_at = int(kill_at) if kill_at and kill_at.isdigit() else 0
        self._dumps: Callable[[Any], str] = _encoder()[0]
        self.users = 0  # JobManagers of this process that use it (see JobManager.close)
        self.leftovers_stopped = False
        self._pool: Optional[dict[tuple[str, Optional[str]], list[JobRecord]]] = None
        self._finalizer = weakref.finalize(self, _close_fd, fd, lock_path, self._pending)
        self._finalizer.atexit = False  # the exit hook closes it, after the last job's end

    def __repr__(self) -> str:
        return f"<Journal {self.folder!r} session {self.session}>"

    @property
    def closed(self) -> bool:
        """True once the journal was closed (its lock released)."""
        return self._fd is None

    def write(self, rec: Mapping[str, Any]) -> None:
        """Append one record, whole; it survives a SIGKILL from when this returns."""
        self._write_line(self._dumps(rec) + "\n")

    def _write_line(self, line: str) -> None:
        """Write one record (a JSON line) at once, with what was queued before it.

        `flush(_queue(line))` in one step: the queue's lock is taken once, and the
        record is joined to what is queued without waiting in the queue.
        """
        data = line.encode()
        with self._io_lock:
            with self._lock:
                fd = self._fd
                if fd is not None:
                    pending = self._pending
                    if pending:
                        pending.append(data)
                        data = b"".join(pending)
                        pending.clear()
                    self._queued += 1
                    last = self._queued
            if fd is not None:
                self._write(fd, data, last)
                return
        logger().warning("journal %s is closed; not recorded: %s", self.folder, data)

    def _queue(self, line: str) -> int:
        """Queue one record (a JSON line); return its ticket for `flush`, 0 if closed. No I/O."""
        data = line.encode()
        with self._lock:
            if self._fd is not None:
                self._pending.append(data)
                self._queued += 1
                return self._queued
        logger().warning("journal %s is closed; not recorded: %s", self.folder, data)
        return 0

    def flush(self, ticket: int) -> None:
        """Return once the record `ticket` is written, with everything queued before it.

        Writes every record queued so far, of every job, with one `os.write`; writes
        nothing when another thread's flush wrote `ticket` already. From here on the
        record survives a SIGKILL of the driver. Call it holding no lock but a
        JobManager's.
        """
        if self._flushed >= ticket:
            return
        with self._io_lock:
            with self._lock:
                if self._flushed >= ticket:
                    return  # written meanwhile, by the flush this one waited for
                fd = self._fd
                pending = self._pending
                data = pending[0] if len(pending) == 1 else b"".join(pending)
                pending.clear()
                last = self._queued
            if fd is not None:
                self._write(fd, data, last)

    def _write(self, fd: int, data: bytes, last: int) -> None:
        """Append `data` (whole records, up to ticket `last`) to the file. `_io_lock` held."""
        try:
            done = os.write(fd, data)
            if done < len(data):  # cut short (a signal, a full disk): write the rest
                view = memoryview(data)[done:]
                while view:
                    view = view[os.write(fd, view) :]
        finally:
            self._flushed = last
        self._dirty = True
        if self._kill_at and last >= self._kill_at:
            import signal  # noqa: PLC0415 - test hook only

            os.kill(os.getpid(), signal.SIGKILL)

    def new_job(
        self,
        name: str,
        folder: str,
        hash_: Optional[str],
        runner: Optional[int],
        flags: Optional[Mapping[str, Any]],
    ) -> _Entry:
        """Record a new try of a job in `folder` (relative to the manager's folder).

        The record is queued, not written: it goes out with the job's next record
        (see the notes above `_Entry`).
        """
        with self._lock:
            number = self._next_job
            self._next_job += 1
        line = f'{{"k":"job","j":{number},"name":{_text(name)},"dir":{_text(folder)}'
        if hash_ is not None:
            line += f',"hash":{_text(hash_)}'
        if runner is not None:
            line += f',"r":{_num(runner)}'
        if flags:
            line += f',"flags":{self._dumps(dict(flags))}'
        self._queue(f'{line},"t":{_num(_now())}}}\n')
        return _Entry(self, number)

    def adopt(self, number: int) -> _Entry:
        """Continue the record of job `number` of an earlier session (a re-attached job)."""
        self.write({"k": "adopt", "j": number})
        return _Entry(self, number)

    def add_runner(self, info: Mapping[str, Any]) -> int:
        """Record a runner's description; return its number for the job records.

        Queued, not written, like a job's registration: only the job records that
        follow it name it.
        """
        with self._lock:
            number = self._next_runner
            self._next_runner += 1
        self._queue(self._dumps({"k": "runner", "r": number, "info": dict(info)}) + "\n")
        return number

    def on_cancel(self, fn: Callable[[], None]) -> None:
        """Call `fn()` (in the journal's thread) when `runner cancel` asks to cancel the run."""
        with self._lock:
            self._on_cancel.append(fn)
            seen = self._cancel_seen
        if seen:
            fn()

    @property
    def cancel_requested(self) -> bool:
        """True once a `runner cancel` request was seen."""
        return self._cancel_seen

    def tick(self) -> None:
        """The journal thread's round: write what is queued, fsync if dirty, heartbeat, cancel.

        Queued records (registrations whose job has not taken its next step yet) are
        written here at the latest, so an OS crash loses about the last second.
        """
        fd = self._fd
        if fd is None:
            return
        if self._flushed < self._queued:
            self.flush(self._queued)
        now = time.monotonic()
        if self._dirty:
            self._dirty = False
            try:
                _fsync(fd)
            except OSError as exc:  # closed meanwhile, or the file system refuses
                logger().debug("journal %s: fsync failed: %s", self.folder, exc)
            self._synced_at = now
        if now - self._beat_at >= HEARTBEAT:
            self._beat_at = now
            try:
                os.utime(self._lock_path)
            except FileNotFoundError:
                # the folder was deleted under the run (or the lock by hand): stop writing
                logger().info("journal %s: its lock file is gone; journal closed", self.folder)
                self._abandon()
                return
            except OSError as exc:
                logger().warning("journal %s: cannot refresh its lock: %s", self.folder, exc)
        if not self._cancel_seen and os.path.exists(self._cancel_path):
            self._cancelled()

    def _cancelled(self) -> None:
        with self._lock:
            if self._cancel_seen:
                return
            self._cancel_seen = True
            hooks = list(self._on_cancel)
        logger().warning("journal %s: `runner cancel` asked to cancel the run", self.folder)
        self.write({"k": "cancel", "t": _now()})
        for fn in hooks:
            try:
                fn()
            except Exception:
                logger().exception("cancel hook %r of %s raised", fn, self.folder)

    def _abandon(self) -> None:
        with self._io_lock, self._lock:
            fd, self._fd = self._fd, None
            self._pending.clear()
        if fd is not None:
            self._finalizer.detach()
            with contextlib.suppress(OSError):
                os.close(fd)

    def take_previous(self, name: str, hash_: Optional[str]) -> Optional[JobRecord]:
        """The earlier try of a job with this name and hash, once each, first registered first."""
        with self._lock:
            if self._pool is None:
                pool: dict[tuple[str, Optional[str]], list[JobRecord]] = {}
                for record in reversed(self.previous.jobs):
                    pool.setdefault((record.name, record.hash), []).append(record)
                self._pool = pool
            tries = self._pool.get((name, hash_))
            return tries.pop() if tries else None

    def close(self) -> None:
        """Record the session's end, fsync, close the file and release the lock. Idempotent."""
        if self._fd is None:
            return
        self.write({"k": "close", "s": self.session, "t": _now()})
        with self._io_lock:
            with self._lock:
                fd: Optional[int] = self._fd
                self._fd = None
                late = b"".join(self._pending)  # queued by other threads since the close record
                self._pending.clear()
                self._flushed = self._queued
            if fd is None:  # closed by another thread meanwhile
                return
            if late:
                with contextlib.suppress(OSError):
                    os.write(fd, late)
        self._finalizer.detach()
        _close_fd(fd, self._lock_path)
        with _registry_lock:
            if _open.get(self.folder) is self:
                del _open[self.folder]


def _close_fd(fd: int, lock_path: str, pending: Optional[list[bytes]] = None) -> None:
    """Write what is queued, fsync and close a journal file, release its lock.

    Also called when a Journal is collected without being closed, with its queue.
    """
    with contextlib.suppress(OSError):
        if pending:
            os.write(fd, b"".join(pending))
        _fsync(fd)
    with contextlib.suppress(OSError):
        os.close(fd)
    _release_lock(lock_path)


def _fsync(fd: int) -> None:
    sync = getattr(os, "fdatasync", os.fsync)
    sync(fd)


def _lock_text() -> bytes:
    import json  # noqa: PLC0415 - lazy stdlib import keeps `import runner_core` fast

    pid = os.getpid()
    return json.dumps(
        {
            "host": _host(),
            "pid": pid,
            "start": process_start(pid),
            "boot": boot_id(),
            "time": _now(),
            "format": FORMAT,
        }
    ).encode()


def _is_mine(info: Optional[DriverInfo]) -> bool:
    return (
        info is not None
        and info.host == _host()
        and info.pid == os.getpid()
        and info.start == process_start(os.getpid())
    )


def _release_lock(path: str) -> None:
    """Remove the lock at `path` if this process holds it."""
    try:
        if _is_mine(_read_lock(path)):
            os.unlink(path)
    except OSError as exc:
        logger().warning("cannot remove the journal lock %s: %s", path, exc)


def acquire_lock(folder: str) -> str:
    """Take the lock of `folder`'s journal for this process; return the lock file's path.

    Raises:
        JournalLocked: a live driver (another process) holds it.
        OSError: the folder cannot be written.
    """
    where = journal_dir(folder)
    os.makedirs(where, exist_ok=True)
    path = os.path.join(where, LOCK_NAME)
    text = _lock_text()
    for _attempt in range(50):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            holder = _read_lock(path)
            if holder is None:
                continue  # removed meanwhile: try again
            if _is_mine(holder):
                return path
            if holder.alive is None and holder.host == "?":
                time.sleep(0.1)  # being written by a driver starting now
                continue
            if holder.live:
                raise JournalLocked(folder, holder) from None
            # Stale: move it aside (only one of two racing takers wins the rename), then retry.
            aside = f"{path}.stale.{_host()}.{os.getpid()}"
            try:
                os.rename(path, aside)
            except FileNotFoundError:
                continue
            logger().warning(
                "journal %s: taking over the lock of driver pid %s on %s, which is gone",
                folder,
                holder.pid,
                holder.host,
            )
            with contextlib.suppress(OSError):
                os.unlink(aside)
            continue
        try:
            os.write(fd, text)
            os.fsync(fd)
        finally:
            os.close(fd)
        return path
    raise JobError(f"cannot take the journal lock {path!r}: it keeps changing; try again")


_registry_lock = threading.Lock()
_open: weakref.WeakValueDictionary[str, Journal] = weakref.WeakValueDictionary()
_flusher: Optional[threading.Thread] = None
_journals: weakref.WeakSet[Journal] = weakref.WeakSet()


def open_journal(folder: str) -> Journal:
    """The journal writer of `folder` for this process: opened (lock taken) on first use.

    Every JobManager of this process on `folder` shares it. A torn last record left
    by a killed driver is cut off first (and said so in a warning).

    Raises:
        JournalLocked: another live driver holds the folder.
        OSError: the folder cannot be written.
    """
    global _flusher
    with _registry_lock:
        journal = _open.get(folder)
        if journal is not None and not journal.closed:
            return journal
        lock_path = acquire_lock(folder)
        try:
            journal = _open_log(folder, lock_path)
        except BaseException:
            _release_lock(lock_path)
            raise
        _open[folder] = journal
        _journals.add(journal)
        if _flusher is None:
            _flusher = threading.Thread(target=_flush_loop, name="runner-journal", daemon=True)
            _flusher.start()
    return journal


def _open_log(folder: str, lock_path: str) -> Journal:
    where = journal_dir(folder)
    log_path = os.path.join(where, LOG_NAME)
    fd = os.open(log_path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    try:
        info = os.fstat(fd)
        size = info.st_size
        previous = JournalState(folder)
        reader = _Reader(previous, None)
        if size:  # the reader's snapshot, where there is one of this journal: read what follows
            reader.restore(load_snapshot(previous, where, fd, info))
        start = reader.offset
        reader.feed(os.pread(fd, size - start, start) if size > start else b"")
        previous.driver = None
        if size and os.pread(fd, 1, size - 1) != b"\n":
            if previous.good_size == size:  # complete, but cut before its newline
                os.write(fd, b"\n")
            else:
                for note in previous.dropped:
                    logger().warning("journal %s: dropped %s", folder, note)
                os.ftruncate(fd, previous.good_size)
        with contextlib.suppress(FileNotFoundError):  # a request meant for an earlier driver
            os.unlink(os.path.join(where, CANCEL_NAME))
        journal = Journal(folder, previous, fd, lock_path)
        import sys  # noqa: PLC0415 - already loaded; only for argv

        pid = os.getpid()
        journal.write(
            {
                "k": "open",
                "v": FORMAT,
                "s": journal.session,
                "host": _host(),
                "pid": pid,
                "ps": process_start(pid),
                "boot": boot_id(),
                "t": _now(),
                "argv": list(sys.argv),
                "cwd": os.getcwd(),
            }
        )
    except BaseException:
        os.close(fd)
        raise
    return journal


def _flush_loop() -> None:
    """The journal thread: once per FSYNC_INTERVAL, each open journal's `tick()`."""
    while True:
        time.sleep(FSYNC_INTERVAL)
        for journal in list(_journals):
            try:
                journal.tick()
            except Exception:
                logger().exception("journal thread: %r", journal)


def close_all() -> None:
    """Close every journal this process writes (called at the interpreter's exit).

    A journal of `MIN_BYTES` or more is then read once more, which leaves the reader's
    snapshot in `.runner/` (`runner_core._snapshot`): the first `runner status` or
    `runner report` after a long run reads only what comes after it.
    """
    with _registry_lock:
        journals = list(_open.values())
    for journal in journals:
        try:
            journal.close()
        except Exception:
            logger().exception("cannot close %r", journal)
            continue
        leave_snapshot(journal.folder)


def leave_snapshot(folder: str) -> None:
    """Read a closed journal of `MIN_BYTES` or more, so its snapshot is written; never raises."""
    try:
        if os.stat(os.path.join(folder, JOURNAL_DIR, LOG_NAME)).st_size >= MIN_BYTES:
            read_journal(folder)
    except Exception as exc:  # a cache: the run has ended all the same
        logger().debug("journal %s: no snapshot left at exit: %s", folder, exc)


def left_folders() -> list[str]:
    """The folders of the open journals in which the driver left jobs queued at exit."""
    with _registry_lock:
        return [j.folder for j in _open.values() if j.left]


def write_request(folder: str) -> str:
    """Write the cancel request file for `folder`'s live driver; return its path."""
    path = os.path.join(journal_dir(folder), CANCEL_NAME)
    part = f"{path}.{os.getpid()}.part"
    with open(part, "w", encoding="utf-8") as f:
        f.write(f"{_host()} {os.getpid()} {_now()}\n")
    os.replace(part, path)
    return path


def record_outside_ends(
    journal: Journal, records: Iterable[JobRecord], error: str, status: JobStatus
) -> None:
    """Record, for jobs of a driver that is gone, that they ended (cancelled from outside)."""
    for record in records:
        record_outside_end(
            journal,
            record,
            status,
            error=error,
            reason="cancelled" if status is JobStatus.CANCELLED else None,
        )


def record_outside_end(
    journal: Journal,
    record: JobRecord,
    status: JobStatus,
    *,
    exit_code: Optional[int] = None,
    reason: Optional[str] = None,
    error: Optional[str] = None,
    started_at: Optional[float] = None,
    finished_at: Optional[float] = None,
) -> None:
    """Record how a job of a driver that is gone ended, as found from outside (its files, the
    scheduler), and update `record` to match."""
    rec: dict[str, Any] = {
        "k": "end",
        "j": record.number,
        "s": status.value,
        "code": record.exit_code if exit_code is None else exit_code,
        "t": _stamp(finished_at),
    }
    if reason is not None:
        rec["why"] = reason
    if error:
        rec["err"] = error.strip()[:ERROR_CHARS]
    started = record.started_at if started_at is None else started_at
    if started is not None:
        rec["t0"] = started
    if record.submitted_at is not None:
        rec["ts"] = record.submitted_at
    journal.write(rec)
    record.status = status
    record.exit_code = rec["code"]
    record.reason = reason
    record.error = rec.get("err")
    record.started_at = started
    record.finished_at = rec["t"]
