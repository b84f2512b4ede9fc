"""The journal reader's snapshot: its state at a length of the journal, for the next reader.

`<folder>/.runner/snapshot.json` holds what a reader made of the journal's first
`offset` bytes (every try of every job, the sessions, the runners, what was dropped),
with what proves that those bytes are still the journal's: its file's identity
(device and inode), the length, and a SHA-256 of the first HEAD and the last TAIL
bytes before that length. A later reader (`runner status`, `report`, a resume) whose
journal still matches loads it and reads only what was appended since; on a 100,000-job
journal that takes a third of the time of reading every record.

It is a cache, and never trusted beyond that:

- JSON only (never pickle): a file in a folder someone else may write cannot run code;
- read only from a regular file (no symlink, no FIFO, bounded in size) owned by the
  owner of the journal, so it says nothing the journal's own writer did not (a resume
  stops process groups the journal names);
- ignored, whole, when anything in it is unexpected: another format, another file,
  a prefix that changed (the journal was replaced, cut shorter or rewritten), a field
  of the wrong type, an index out of range;
- written atomically (a temporary file, then `os.replace`) by a reader that owns the
  journal (`read_journal`; never the driver, which has no state of its own run), once
  enough was appended since the last one (`worth_saving`), and not written at all where
  the folder cannot be written.

Bump FORMAT whenever what the reader makes of a record (`_journal._Reader`) or the
fields of `JobRecord` change: a snapshot of another format is ignored.
"""

from __future__ import annotations

import contextlib
import gc
import os
import stat
import sys
import time
from array import array
from binascii import a2b_base64, b2a_base64
from collections import deque
from itertools import repeat
from math import isnan
from operator import attrgetter, is_
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from runner_core._log import logger
from runner_core._records import NO_ATTEMPTS, JobRecord, JournalState
from runner_core._status import JobStatus

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["NAME", "Covered", "load", "save", "worth_saving"]

NAME = "snapshot.json"
FORMAT = 1
KIND = "runner_core journal snapshot"
HEAD = 4096  # bytes at the start of the journal that the check covers
TAIL = 65536  # bytes before the snapshot's length that the check covers
MIN_BYTES = 1 << 20  # no snapshot of less: reading that much takes a few hundredths of a second
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NAN = float("nan")

_NONE: type = type(None)
_TEXT: frozenset[type] = frozenset({str, _NONE})
_INT: frozenset[type] = frozenset({int, _NONE})
_TIME: frozenset[type] = frozenset({float, int, _NONE})
# Every field of a JobRecord but `path` (made from the folder), with the types a value may
# have. `status` is kept as its value, `runner` as an index in the snapshot's `infos`.
# A column is a list of the values, or {"all": value} when every record has the same, or
# (times) {"doubles": base64 of the little-endian IEEE doubles, "null": NaN means None}:
# a float costs a tenth of its decimal form to write and to read that way, exactly.
_TYPES: dict[str, frozenset[type]] = {
    "number": frozenset({int}),
    "name": frozenset({str}),
    "folder": frozenset({str}),
    "hash": _TEXT,
    "status": frozenset({str}),
    "exit_code": _INT,
    "reason": _TEXT,
    "error": _TEXT,
    "jobid": _TEXT,
    "native_id": _TEXT,
    "tag": _TEXT,
    "runner": frozenset({int}),
    "flags": frozenset({dict}),
    "pid": _INT,
    "pstart": _INT,
    "boot": _TEXT,
    "host": _TEXT,
    "registered_at": _TIME,
    "submitted_at": _TIME,
    "started_at": _TIME,
    "finished_at": _TIME,
    "session": frozenset({int}),
    "left": frozenset({bool}),
    "attempts": frozenset({list}),
}
_FIELDS = tuple(_TYPES)
_KEYS = frozenset({int, str, float, bool, _NONE})  # what a runner's number may be in a journal
_BY_VALUE = {s.value: s for s in JobStatus}


class Covered(NamedTuple):
    """How much of the journal a state covers: what a snapshot is valid for.

    Attributes:
        offset: the bytes of the journal read (the next read starts here).
        lines: the newlines before `offset`.
        head: the journal's first bytes (at most HEAD, none past `offset`).
        tail: the bytes just before `offset` (at most TAIL).
    """

    offset: int
    lines: int
    head: bytes
    tail: bytes


def worth_saving(offset: int, saved: int) -> bool:
    """True when a reader at `offset`, whose last snapshot covers `saved` bytes, should save one.

    Once at least MIN_BYTES and an eighth of the journal were read past the last
    snapshot: reading what a snapshot leaves out then costs a fraction of loading it, and
    a big live run's snapshot is written again every few thousand jobs, not at every read.
    """
    return offset - saved >= max(MIN_BYTES, offset // 8)


def _check(offset: int, head: bytes, tail: bytes) -> str:
    import hashlib  # noqa: PLC0415 - lazy stdlib import keeps `import runner_core` fast

    digest = hashlib.sha256(b"%d\n" % offset)
    digest.update(head)
    digest.update(b"\n")
    digest.update(tail)
    return digest.hexdigest()


def _limit(size: int) -> int:
    """The largest snapshot of a journal of `size` bytes that is read (a bound, not a guess)."""
    return 8 * size + (1 << 20)


def load(state: JournalState, where: str, fd: int, journal: os.stat_result) -> Optional[Covered]:
    """Fill the empty `state` from the snapshot in `where` if it is one of the journal open as `fd`.

    Args:
        state: a new, empty JournalState of the journal's folder.
        where: the `.runner` folder.
        fd: the journal file, open for reading.
        journal: its `os.fstat`.

    Returns:
        What the state now covers (the reader goes on from its offset); None, with
        `state` untouched, when there is no snapshot or it is not one of this journal.
    """
    import json  # noqa: PLC0415 - lazy stdlib import keeps `import runner_core` fast

    try:
        raw = _read(os.path.join(where, NAME), journal)
        if raw is None:
            return None
        with _no_collector():
            return _restore(state, json.loads(raw), fd, journal)
    except Exception as exc:  # a cache: whatever is wrong with it, it is not used
        logger().debug("journal %s: snapshot not used: %r", where, exc)
        return None


@contextlib.contextmanager
def _no_collector() -> Iterator[None]:
    """The cyclic collector off: it would walk the many new objects again and again, for nothing."""
    collect = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collect:
            gc.enable()


def _read(path: str, journal: os.stat_result) -> Optional[bytes]:
    """The snapshot file's bytes; None unless it is a regular file of the journal's owner."""
    try:
        # O_NONBLOCK: a FIFO put there must not hang the reader; O_NOFOLLOW: no symlink
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | _NO_FOLLOW)
    except FileNotFoundError:
        return None
    with open(fd, "rb") as f:
        info = os.fstat(fd)
        if (
            not stat.S_ISREG(info.st_mode)
            or info.st_uid != journal.st_uid
            or info.st_size > _limit(journal.st_size)
        ):
            logger().debug("snapshot %s: not a file of the journal's owner, or too big", path)
            return None
        return f.read(_limit(journal.st_size) + 1)


def _restore(state: JournalState, doc: Any, fd: int, journal: os.stat_result) -> Optional[Covered]:
    """Check `doc` (a parsed snapshot) whole, then fill `state` from it; None if it is not valid."""
    if type(doc) is not dict or doc.get("kind") != KIND or doc.get("format") != FORMAT:
        return None
    offset, lines, good_size = doc["offset"], doc["lines"], doc["good_size"]
    if not (
        _ints(offset, lines, good_size)
        and 0 < offset <= journal.st_size
        and 0 <= good_size <= offset
        and lines >= 0
        and doc["file"] == [journal.st_dev, journal.st_ino]
    ):
        return None
    head = os.pread(fd, min(HEAD, offset), 0)
    start = max(0, offset - TAIL)
    tail = os.pread(fd, offset - start, start)
    if len(head) != min(HEAD, offset) or len(tail) != offset - start:
        return None
    if doc["check"] != _check(offset, head, tail):
        return None  # the journal's first `offset` bytes are not those the snapshot was made of
    sessions, infos, runners = doc["sessions"], doc["infos"], doc["runners"]
    dropped, count, tries, jobs = doc["dropped"], doc["count"], doc["tries"], doc["jobs"]
    if not (
        _listed(sessions, dict)
        and _listed(infos, dict)
        and _listed(dropped, str)
        and _listed(runners, list)
        and all(
            len(pair) == 2 and type(pair[0]) in _KEYS and _index(pair[1], len(infos))
            for pair in runners
        )
        and _ints(count, tries)
        and 0 <= tries <= count
        # None: the latest tries are every try, in order (no job was run twice in a folder)
        and (
            (jobs is None and tries == count)
            or (_listed(jobs, int) and (not jobs or (min(jobs) >= 0 and max(jobs) < count)))
        )
    ):
        return None
    columns = doc["columns"]
    if type(columns) is not dict or columns.keys() != _TYPES.keys():
        return None
    values: dict[str, list[Any]] = {}
    for field, allowed in _TYPES.items():
        column = _column(columns[field], allowed, count)
        if column is None:
            return None
        values[field] = column
    if not _decode(values, len(infos)):
        return None
    numbers = values["number"]
    records = _records(values, infos, state.folder, count)
    # Valid: only now is `state` changed.
    state.jobs = records if jobs is None else [records[i] for i in jobs]
    state.tries = dict(zip(numbers[:tries], records))
    state.sessions = sessions
    state.runners = {key: infos[at] for key, at in runners}
    state.dropped = dropped
    state.good_size = good_size
    return Covered(offset, lines, head, tail)


def _ints(*values: Any) -> bool:
    return all(type(value) is int for value in values)


def _index(value: Any, size: int) -> bool:
    return type(value) is int and 0 <= value < size


def _listed(values: Any, kind: type) -> bool:
    """True when `values` is a list of `kind` only."""
    return type(values) is list and set(map(type, values)) <= {kind}


def _column(encoded: Any, allowed: frozenset[type], count: int) -> Optional[list[Any]]:
    """A column's `count` values, if each has an allowed type; None if it is not valid."""
    if type(encoded) is list:
        if len(encoded) != count or not set(map(type, encoded)) <= allowed:
            return None
        return encoded
    if type(encoded) is not dict:
        return None
    if encoded.keys() == {"all"}:  # the same value for every record
        value = encoded["all"]
        # no dict or (non-empty) list shared by every record: each has its own
        if type(value) not in allowed or type(value) is dict or (type(value) is list and value):
            return None
        return [value] * count
    if encoded.keys() == {"doubles", "null"} and float in allowed:
        packed, null = encoded["doubles"], encoded["null"]
        if type(packed) is not str or type(null) is not bool:
            return None
        doubles = array("d")
        doubles.frombytes(a2b_base64(packed))
        if len(doubles) != count:
            return None
        if sys.byteorder != "little":
            doubles.byteswap()
        values = doubles.tolist()
        return [None if isnan(value) else value for value in values] if null else values
    return None


def _decode(values: dict[str, list[Any]], infos: int) -> bool:
    """Turn the stored columns into the fields' values in place; False if one is not valid."""
    status = values["status"]
    if not set(status) <= _BY_VALUE.keys():
        return False
    values["status"] = list(map(_BY_VALUE.__getitem__, status))
    runner = values["runner"]
    if runner and (min(runner) < -1 or max(runner) >= infos):
        return False
    attempts = [tries for tries in values["attempts"] if tries]
    if attempts:
        if not all(type(attempt) is dict for tries in attempts for attempt in tries):
            return False
        values["attempts"] = [tries if tries else NO_ATTEMPTS for tries in values["attempts"]]
    else:
        values["attempts"] = [NO_ATTEMPTS] * len(runner)
    return True


def _records(
    values: dict[str, list[Any]], infos: list[Any], folder: str, count: int
) -> list[JobRecord]:
    """The JobRecords of the (checked, decoded) columns; `path` is made from the folder."""
    root = folder if folder.endswith(os.sep) else folder + os.sep
    sep = os.sep
    values["path"] = [name if name[:1] == sep else root + name for name in values["folder"]]
    # the records of one runner share its description, as the reader's records do
    values["runner"] = [infos[at] if at >= 0 else {} for at in values["runner"]]
    records: list[JobRecord] = list(map(JobRecord.__new__, repeat(JobRecord, count)))
    for field, column in values.items():
        # A field of every record at once, through its slot's setter: the loop runs in C,
        # which takes a third of the time of setting each record's fields in Python.
        deque(map(getattr(JobRecord, field).__set__, records, column), maxlen=0)
    return records


def save(
    state: JournalState,
    where: str,
    journal: os.stat_result,
    covered: Covered,
    torn: Optional[str] = None,
) -> bool:
    """Write the snapshot of `state`, which covers the journal `journal` as far as `covered` says.

    Args:
        state: a state just read from the journal (its records as read, not changed since).
        where: the `.runner` folder.
        journal: the journal file's `os.fstat` when it was read.
        covered: how much of it `state` covers.
        torn: the note on a torn last record in `state.dropped`, if any: the next reader
            reads that record again, so the snapshot leaves the note out.

    Returns:
        True when written; False when not (this process does not own the journal, the
        folder cannot be written, the state has a shape a snapshot does not keep). A
        snapshot not written costs the next reader time, nothing else.
    """
    import json  # noqa: PLC0415 - lazy stdlib import keeps `import runner_core` fast

    if os.geteuid() != journal.st_uid:
        return False  # only a snapshot of the journal's owner is read
    with _no_collector():
        doc = _document(state, journal, covered, torn)
        text = None if doc is None else json.dumps(doc, separators=(",", ":"), check_circular=False)
    if text is None:
        logger().debug("journal %s: its state has a shape no snapshot keeps", where)
        return False
    if len(text) > _limit(covered.offset):
        return False
    path = os.path.join(where, NAME)
    part = f"{path}.{os.getpid()}.{time.monotonic_ns()}.part"
    try:
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | _NO_FOLLOW, 0o600)
    except OSError as exc:  # a folder this process cannot write: no snapshot, silently
        logger().debug("journal %s: no snapshot written: %s", where, exc)
        return False
    try:
        try:
            # readable by whoever may read the journal
            os.fchmod(fd, stat.S_IMODE(journal.st_mode) & 0o666)
            view = memoryview(text.encode())  # ASCII: json escapes the rest
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(part, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(part)
        logger().debug("journal %s: no snapshot written: %s", where, exc)
        return False
    return True


def _document(
    state: JournalState, journal: os.stat_result, covered: Covered, torn: Optional[str]
) -> Optional[dict[str, Any]]:
    """The snapshot of `state` as a JSON-ready dict; None if a value has a type it does not keep."""
    records = list(state.tries.values())
    tries = len(records)
    jobs: Optional[list[int]] = None
    if len(state.jobs) != tries or not all(map(is_, state.jobs, records)):
        at = {id(record): i for i, record in enumerate(records)}
        for record in state.jobs:  # a latest try whose number a later try took (a corrupt journal)
            if id(record) not in at:
                at[id(record)] = len(records)
                records.append(record)
        jobs = [at[id(record)] for record in state.jobs]
    infos: list[dict[str, Any]] = []
    info_at: dict[int, int] = {}
    runners: list[list[Any]] = []
    for key, info in state.runners.items():
        if id(info) not in info_at:
            info_at[id(info)] = len(infos)
            infos.append(info)
        runners.append([key, info_at[id(info)]])
    # every field of every record in one pass over the records: a column each
    rows = map(attrgetter(*_FIELDS), records)
    by_field: dict[str, tuple[Any, ...]] = (
        dict(zip(_FIELDS, zip(*rows))) if records else dict.fromkeys(_FIELDS, ())
    )
    runner = list(map(info_at.get, map(id, by_field["runner"]), repeat(-1)))
    for i in [i for i, at in enumerate(runner) if at < 0]:
        own = by_field["runner"][i]
        if own:  # a description no runner number names now (one that was replaced)
            runner[i] = info_at[id(own)] = len(infos)
            infos.append(own)
    by_field["runner"] = tuple(runner)
    by_field["status"] = tuple(status._value_ for status in by_field["status"])
    columns: dict[str, Any] = {}
    for field, allowed in _TYPES.items():
        column = by_field[field]
        kinds = set(map(type, column))
        if not kinds <= allowed:
            return None
        columns[field] = _compact(column, kinds)
    dropped = list(state.dropped)
    if torn is not None and torn in dropped:
        dropped.remove(torn)
    if not (
        _listed(state.sessions, dict)
        and _listed(infos, dict)
        and all(type(key) in _KEYS for key in state.runners)
        and all(type(one) is dict for tries in by_field["attempts"] if tries for one in tries)
    ):
        return None
    return {
        "kind": KIND,
        "format": FORMAT,
        "file": [journal.st_dev, journal.st_ino],
        "offset": covered.offset,
        "lines": covered.lines,
        "check": _check(covered.offset, covered.head, covered.tail),
        "good_size": state.good_size,
        "sessions": state.sessions,
        "infos": infos,
        "runners": runners,
        "dropped": dropped,
        "count": len(records),
        "tries": tries,
        "jobs": jobs,
        "columns": columns,
    }


def _compact(column: tuple[Any, ...], kinds: set[type]) -> Any:
    """A column as stored: {"all": value}, {"doubles": ...} (see `_TYPES`), or a list."""
    if not column:
        return column
    first = column[0]
    if (
        len(kinds) == 1
        and dict not in kinds
        and not (type(first) is list and first)
        and column[-1] == first  # cheap: most columns that are not all one differ here
        and column.count(first) == len(column)
    ):
        return {"all": first}
    if kinds <= {float, _NONE} and float in kinds:
        null = _NONE in kinds
        floats = [_NAN if value is None else value for value in column] if null else column
        if null and any(isnan(value) for value in column if value is not None):
            return list(column)  # a NaN of its own: NaN cannot stand for None here
        doubles = array("d", floats)
        if sys.byteorder != "little":
            doubles.byteswap()
        return {"doubles": b2a_base64(doubles.tobytes(), newline=False).decode(), "null": null}
    return list(column)
