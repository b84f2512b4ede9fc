"""The journal reader's snapshot: used when it is one of the journal, ignored whenever it is not."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any, Optional

import pytest

import runner_core._journal as journal_module
import runner_core._snapshot as snapshot_module
from core.runner_helpers import TIMEOUT
from runner_core import JobManager, JobRunner, JobStatus, SingleJob, read_journal
from runner_core._journal import open_journal
from runner_core._records import JobRecord
from runner_core.cli import main

if TYPE_CHECKING:
    from pathlib import Path

    from runner_core import JournalState

MARK = "from the snapshot"


@pytest.fixture(autouse=True)
def _snapshots_of_any_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """Snapshots of the small journals of these tests (a real run's start at 1 MiB)."""
    monkeypatch.setattr(snapshot_module, "MIN_BYTES", 0)


class _Ended:
    """What the journal's writer reads of a job's Results."""

    def __init__(self, **fields: Any) -> None:
        self.exit_code: Optional[int] = None
        self.reason: Optional[str] = None
        self.error: Optional[str] = None
        self.submitted_at: Optional[float] = None
        self.started_at: Optional[float] = None
        self.finished_at: Optional[float] = None
        self.__dict__.update(fields)


def _write(folder: Path, names: list[str], code: int = 0) -> None:
    """A driver session that runs `names` to their end: local jobs, and every third on a grid."""
    journal = open_journal(str(folder))
    local = journal.add_runner({"kind": "local", "parallel": True})
    grid = journal.add_runner({"kind": "grid", "scheme": "slurm"})
    for i, name in enumerate(names):
        on_grid = i % 3 == 0
        flags = {"cores": 4, "memory": "8G"} if on_grid else None
        entry = journal.new_job(name, name, f"hash-{name}", grid if on_grid else local, flags)
        t = time.time()
        if on_grid:
            entry.tag(f"runner-{name}")
            entry.flush(entry.moved(_Ended(submitted_at=t), JobStatus.SUBMITTED))  # type: ignore[arg-type]
            entry.jobid(str(1000 + i))
        entry.flush(entry.moved(_Ended(started_at=t + 1), JobStatus.RUNNING))  # type: ignore[arg-type]
        if not on_grid:
            entry.pid(40_000 + i, 7)
        status = JobStatus.SUCCESSFUL if code == 0 else JobStatus.CRASHED
        end = _Ended(
            exit_code=code,
            error=None if code == 0 else f"Error {code}\nin {name}",
            reason="out_of_memory" if code == 137 else None,
            submitted_at=t if on_grid else None,
            started_at=t + 1,
            finished_at=t + 2.25 + i,
        )
        entry.flush(entry.moved(end, status))  # type: ignore[arg-type]
    journal.close()


def _snapshot(folder: Path) -> Path:
    return folder / ".runner" / snapshot_module.NAME


def _mark(folder: Path) -> None:
    """Change what the snapshot says of every job's error, so that its use shows."""
    doc = json.loads(_snapshot(folder).read_text())
    doc["columns"]["error"] = [MARK] * doc["count"]
    _snapshot(folder).write_text(json.dumps(doc))


def _fields(state: JournalState) -> Any:
    """Everything a state holds, in plain values."""

    def record(r: JobRecord) -> list[Any]:
        return [getattr(r, name) for name in JobRecord.__slots__]

    return (
        [record(r) for r in state.jobs],
        {number: record(r) for number, r in state.tries.items()},
        state.sessions,
        state.runners,
        state.dropped,
        state.size,
        state.good_size,
    )


def _read_both(folder: Path) -> JournalState:
    """Read `folder` through its snapshot; check it is what reading every record gives."""
    plain = read_journal(folder, snapshot=False)
    state = read_journal(folder)
    assert _fields(state) == _fields(plain)
    return state


def test_every_field_of_a_record_is_kept() -> None:
    assert set(snapshot_module._TYPES) | {"path"} == set(JobRecord.__slots__)


def test_a_snapshot_is_written_then_used_and_what_was_appended_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "w"
    _write(folder, ["a", "b", "c"])
    assert not _snapshot(folder).exists()
    first = _read_both(folder)
    assert _snapshot(folder).exists()
    assert first.jobs[0].runner is first.runners[2]  # shared, as the reader shares it
    _mark(folder)
    again = read_journal(folder)
    assert [r.error for r in again.jobs] == [MARK] * 3
    assert again.jobs[0].runner is again.runners[2]
    assert again.jobs[1].runner is again.runners[1]
    # a later session appends (a live run, or a resume): the snapshot and what follows it
    _write(folder, ["d", "e"], code=137)
    state = read_journal(folder)
    assert [r.error for r in state.jobs[:3]] == [MARK] * 3
    assert [(r.name, r.status, r.exit_code, r.reason) for r in state.jobs[3:]] == [
        ("d", JobStatus.CRASHED, 137, "out_of_memory"),
        ("e", JobStatus.CRASHED, 137, "out_of_memory"),
    ]
    assert state.jobs[3].error == "Error 137\nin d"
    plain = read_journal(folder, snapshot=False)
    for record in plain.jobs[:3]:
        record.error = MARK
    assert _fields(state) == _fields(plain)
    assert len(state.sessions) == 2
    assert main(["status", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "5 jobs: 3 SUCCESSFUL, 2 CRASHED" in out


def test_a_live_run_read_again_and_again_shows_what_it_wrote(tmp_path: Path) -> None:
    folder = tmp_path / "w"
    journal = open_journal(str(folder))
    runner = journal.add_runner({"kind": "local"})
    saved = []
    for round_ in range(6):
        entry = journal.new_job(f"j{round_}", f"j{round_}", None, runner, None)
        entry.flush(entry.moved(_Ended(started_at=1.0), JobStatus.RUNNING))  # type: ignore[arg-type]
        state = _read_both(folder)
        assert state.jobs[-1].status is JobStatus.RUNNING
        assert state.driver is not None
        assert state.driver.live
        saved.append(_snapshot(folder).stat().st_mtime_ns)
        end = _Ended(exit_code=0, started_at=1.0, finished_at=2.0)
        entry.flush(entry.moved(end, JobStatus.SUCCESSFUL))  # type: ignore[arg-type]
        assert _read_both(folder).jobs[-1].status is JobStatus.SUCCESSFUL
    journal.close()
    assert len(set(saved)) > 1  # written again as the journal grew


def _replace(log: Path) -> None:
    copy = log.with_name("copy")
    shutil.copyfile(log, copy)
    os.replace(copy, log)


def _cut(log: Path) -> None:
    data = log.read_bytes()
    log.write_bytes(data[: data.rindex(b"\n", 0, len(data) // 2) + 1])


def _cut_and_grown(log: Path) -> None:
    """Cut to half, then a driver appends until it is longer than before."""
    size = log.stat().st_size
    _cut(log)
    names = iter(f"x{i}" for i in range(1000))
    while log.stat().st_size <= size:
        _write(log.parent.parent, [next(names)], code=3)


def _rewritten(log: Path) -> None:
    """Same file, same length: the last job's exit code changed in place."""
    data = log.read_bytes()
    at = data.rindex(b'"code":0')
    with open(log, "r+b") as f:
        f.seek(at)
        f.write(b'"code":7')


def _rewritten_head(log: Path) -> None:
    """Same file, same length: the first session's host changed in place."""
    data = log.read_bytes()
    at = data.index(b'"host":"') + len(b'"host":"')
    with open(log, "r+b") as f:
        f.seek(at)
        f.write(b"X" if data[at : at + 1] != b"X" else b"Y")


@pytest.mark.parametrize(
    "change",
    [_replace, _cut, _cut_and_grown, _rewritten, _rewritten_head],
    ids=lambda f: f.__name__,
)
def test_the_snapshot_of_a_journal_replaced_cut_or_rewritten_is_not_used(
    tmp_path: Path, change: Any
) -> None:
    folder = tmp_path / "w"
    _write(folder, [f"j{i}" for i in range(40)])
    read_journal(folder)
    _mark(folder)
    change(folder / ".runner" / "journal.jsonl")
    state = _read_both(folder)
    assert MARK not in [r.error for r in state.jobs]


class _Evil:
    """Unpickled, it would leave a file: a snapshot that could run code would show it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (shutil.copyfile, (__file__, self.path))


def _doc(folder: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(_snapshot(folder).read_text())
    return doc


def _set_column(field: str, value: Any) -> Any:
    def change(doc: dict[str, Any]) -> dict[str, Any]:
        doc["columns"][field] = value if not callable(value) else value(doc["count"])
        return doc

    return change


def _set(key: str, value: Any) -> Any:
    def change(doc: dict[str, Any]) -> dict[str, Any]:
        doc[key] = value if not callable(value) else value(doc)
        return doc

    return change


def _short_doubles(doc: dict[str, Any]) -> dict[str, Any]:
    column = doc["columns"]["finished_at"]
    assert "doubles" in column  # times are kept as doubles
    column["doubles"] = column["doubles"][:-12]
    return doc


# Changes to a valid snapshot, each of which makes it one not to use.
HOSTILE = {
    "another format": _set("format", 99),
    "another file": _set("file", [1, 2]),
    "longer than the journal": _set("offset", lambda doc: doc["offset"] + 10),
    "a wrong check": _set("check", "0" * 64),
    "numbers as text": _set_column("number", lambda n: ["1"] * n),
    "a folder that is a number": _set_column("folder", lambda n: [1] * n),
    "a column too short": _set_column("name", lambda n: ["x"] * (n - 1)),
    "an unknown state": _set_column("status", {"all": "exploded"}),
    "a runner out of range": _set_column("runner", lambda n: [99] * n),
    "a job out of range": _set("jobs", lambda doc: [doc["count"] + 5]),
    "an attempt that is no dict": _set_column("attempts", lambda n: [[1]] * n),
    "flags shared by all": _set_column("flags", {"all": {"cores": 1}}),
    "doubles cut short": _short_doubles,
    "a bool for a time": _set_column("started_at", lambda n: [True] * n),
    "no columns": _set("columns", []),
    "a session that is no dict": _set("sessions", [1]),
}


def _raw(payload: bytes) -> Any:
    def write(folder: Path) -> None:
        _snapshot(folder).write_bytes(payload)

    return write


def _changed(change: Any) -> Any:
    def write(folder: Path) -> None:
        _snapshot(folder).write_text(json.dumps(change(_doc(folder))))

    return write


def _half(folder: Path) -> None:
    data = _snapshot(folder).read_bytes()
    _snapshot(folder).write_bytes(data[: len(data) // 2])


def _huge(folder: Path) -> None:
    with open(_snapshot(folder), "r+b") as f:  # sparse: costs no disk
        f.truncate(20 * (folder / ".runner" / "journal.jsonl").stat().st_size + (2 << 20))


def _symlink(folder: Path) -> None:
    elsewhere = folder.parent / "elsewhere.json"
    shutil.copyfile(_snapshot(folder), elsewhere)
    _snapshot(folder).unlink()
    _snapshot(folder).symlink_to(elsewhere)


def _directory(folder: Path) -> None:
    _snapshot(folder).unlink()
    _snapshot(folder).mkdir()


def _fifo(folder: Path) -> None:
    _snapshot(folder).unlink()
    os.mkfifo(_snapshot(folder))


def _pickle(folder: Path) -> None:
    _snapshot(folder).write_bytes(pickle.dumps(_Evil(str(folder / "ran"))))


WRITERS = {
    "not JSON": _raw(b"\0\0garbage"),
    "a list": _raw(b"[]"),
    "deep": _raw(b"[" * 200_000 + b"]" * 200_000),
    "cut": _half,
    "huge": _huge,
    "a symlink to a snapshot": _symlink,
    "a directory": _directory,
    "a FIFO": _fifo,
    "a pickle": _pickle,
    **{name: _changed(change) for name, change in HOSTILE.items()},
}


@pytest.mark.parametrize("write", list(WRITERS.values()), ids=list(WRITERS))
def test_a_corrupt_or_hostile_snapshot_is_ignored_and_status_shows_the_journal(
    tmp_path: Path, write: Any
) -> None:
    folder = tmp_path / "w"
    _write(folder, [f"j{i}" for i in range(9)], code=3)
    _write(folder, [f"k{i}" for i in range(3)])
    status = [sys.executable, "-m", "runner_core", "status", str(folder)]
    expected = subprocess.run(status, capture_output=True, text=True, timeout=TIMEOUT, check=True)
    assert not _snapshot(folder).exists()  # that small a journal has none outside these tests
    read_journal(folder)
    _mark(folder)
    write(folder)
    # in a new process, as from another shell: a FIFO must not make it hang
    got = subprocess.run(status, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert (got.returncode, got.stdout, got.stderr) == (0, expected.stdout, expected.stderr)
    assert MARK not in got.stdout
    state = _read_both(folder)
    assert MARK not in [r.error for r in state.jobs]
    assert not (folder / "ran").exists()
    assert not list((folder / ".runner").glob("*.part"))


def test_a_snapshot_of_an_earlier_journal_that_was_cut_and_written_again_is_not_used(
    tmp_path: Path,
) -> None:
    """A torn tail cut off by the next driver: what follows the cut differs from before."""
    folder = tmp_path / "w"
    _write(folder, ["a", "b"])
    log = folder / ".runner" / "journal.jsonl"
    with open(log, "ab") as f:
        f.write(b"\0\0\0corrupt\n" + b'{"k":"job","j":9,"name":"torn"')
    state = _read_both(folder)
    assert len(state.dropped) == 2  # the corrupt line, the torn record
    _mark(folder)
    _write(folder, ["c"])  # cuts the journal back to its last good record, then appends
    state = _read_both(folder)
    assert MARK not in [r.error for r in state.jobs]
    assert [r.name for r in state.jobs] == ["a", "b", "c"]


def _only_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: files of another user are made with chown")


def test_a_snapshot_of_another_user_than_the_journals_owner_is_not_used(tmp_path: Path) -> None:
    _only_root()
    folder = tmp_path / "w"
    _write(folder, ["a", "b"])
    read_journal(folder)
    _mark(folder)
    os.chown(_snapshot(folder), 4321, 4321)
    state = _read_both(folder)
    assert MARK not in [r.error for r in state.jobs]


def test_no_snapshot_is_written_of_a_journal_this_user_does_not_own(tmp_path: Path) -> None:
    _only_root()
    folder = tmp_path / "w"
    _write(folder, ["a", "b"])
    os.chown(folder / ".runner" / "journal.jsonl", 4321, 4321)
    _read_both(folder)
    assert not _snapshot(folder).exists()


def test_a_folder_that_cannot_be_written_is_read_all_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "w"
    _write(folder, ["a", "b", "c"], code=1)
    where = folder / ".runner"
    where.chmod(0o555)
    real_open = os.open

    def refuse(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if os.path.dirname(os.fspath(path)) == str(where) and flags & os.O_CREAT:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    if (
        os.geteuid() == 0
    ):  # root writes a folder whatever its mode: refuse it as the file system would
        monkeypatch.setattr(os, "open", refuse)
    try:
        state = _read_both(folder)
        assert [r.status for r in state.jobs] == [JobStatus.CRASHED] * 3
        assert main(["status", str(folder)]) == 0
        captured = capsys.readouterr()
        assert "3 jobs: 3 CRASHED" in captured.out
        assert captured.err == ""
        assert sorted(p.name for p in where.iterdir()) == ["journal.jsonl"]
    finally:
        where.chmod(0o755)


def _old_journal(folder: Path, jobs: int) -> None:
    """A journal as the first runner-core wrote it (no SUBMITTED, no submit times, ends
    without `t0` or `ts`), non-ASCII kept as it is, every third line with spaces after the
    separators (another JSON writer, an editor), a corrupt line in the middle."""
    records: list[dict[str, Any]] = [
        {"k": "open", "v": 1, "s": 1, "host": "h", "pid": 1, "ps": 1, "boot": "b", "t": 100.0},
        {"k": "runner", "r": 1, "info": {"kind": "local", "parallel": True, "maxjobs": 0}},
    ]
    for j in range(1, jobs + 1):
        name = f"bäd{j}" if j % 2 else f"ok{j}"
        records += [
            {"k": "job", "j": j, "name": name, "dir": name, "hash": f"h{j}", "r": 1, "t": 100.5},
            {"k": "st", "j": j, "s": "running", "t": 101.0 + j},
            {"k": "pid", "j": j, "pid": 4242 + j, "ps": 99},
            {"k": "end", "j": j, "s": "crashed" if j % 2 else "successful", "code": j % 2,
             "t": 103.5 + j, **({"err": "Fehler: ü"} if j % 2 else {})},
        ]  # fmt: skip
    records.append({"k": "close", "s": 1, "t": 104.0})
    lines = [
        json.dumps(r) if i % 3 == 0 else json.dumps(r, separators=(",", ":"), ensure_ascii=False)
        for i, r in enumerate(records)
    ]
    lines.insert(len(lines) // 2, "\0\0garbage")
    (folder / ".runner").mkdir(parents=True)
    (folder / ".runner" / "journal.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_a_journal_of_an_earlier_version_opens_through_its_snapshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "w"
    _old_journal(folder, 30)
    assert main(["status", str(folder)]) == 0
    before = capsys.readouterr()
    assert _snapshot(folder).exists()
    state = _read_both(folder)
    assert len(state.dropped) == 1
    assert "corrupt record" in state.dropped[0]
    assert [r.error for r in state.jobs[:2]] == ["Fehler: ü", None]
    assert main(["status", str(folder)]) == 0
    assert capsys.readouterr() == before
    _mark(folder)
    assert read_journal(folder).jobs[0].error == MARK


def test_a_torn_last_record_is_read_again_once_it_is_whole(tmp_path: Path) -> None:
    folder = tmp_path / "w"
    _write(folder, ["a", "b"])
    log = folder / ".runner" / "journal.jsonl"
    record = b'{"k":"job","j":77,"name":"late","dir":"late","t":5.0}\n'
    with open(log, "ab") as f:
        f.write(record[:20])  # a driver writing it right now
    state = _read_both(folder)
    assert len(state.dropped) == 1
    assert "torn last record" in state.dropped[0]
    assert _doc(folder)["dropped"] == []  # read again by the next reader, not kept
    _mark(folder)
    with open(log, "ab") as f:
        f.write(record[20:])
    state = read_journal(folder)
    assert state.dropped == []
    assert [r.name for r in state.jobs] == ["a", "b", "late"]
    assert state.jobs[0].error == MARK


def test_a_driver_opens_a_journal_whose_last_record_lacks_its_newline_through_its_snapshot(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "w"
    _write(folder, ["a", "b"])
    log = folder / ".runner" / "journal.jsonl"
    with open(log, "ab") as f:
        f.write(b'{"k":"job","j":77,"name":"late","dir":"late","t":5.0}')  # whole, no newline
    state = _read_both(folder)
    assert [r.name for r in state.jobs] == ["a", "b", "late"]
    assert state.dropped == []
    assert _doc(folder)["offset"] == log.stat().st_size  # the snapshot covers all of it
    _write(folder, ["c"])  # the driver ends that line before it appends
    state = _read_both(folder)
    assert state.dropped == []
    assert [r.name for r in state.jobs] == ["a", "b", "late", "c"]
    assert len(state.sessions) == 2


def test_a_resume_starts_from_the_snapshot_and_restores_what_the_journal_says(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "w"
    bodies = {"ok": "exit 0\n", "bad": "exit 3\n"}
    runner = JobRunner(parallel=True, maxjobs=2)
    with JobManager(folder) as manager:
        for name, body in bodies.items():
            SingleJob(name, body).run(jobrunner=runner, jobmanager=manager)
        runner.wait(TIMEOUT)
    read_journal(folder)
    _mark(folder)
    journal = open_journal(str(folder))
    try:
        assert [r.error for r in journal.previous.jobs] == [MARK, MARK]
        assert [r.status for r in journal.previous.jobs] == [
            JobStatus.SUCCESSFUL,
            JobStatus.CRASHED,
        ]
    finally:
        journal.close()
    with JobManager(folder, resume=True) as manager:
        results = [
            SingleJob(name, body).run(jobrunner=runner, jobmanager=manager)
            for name, body in bodies.items()
        ]
        runner.wait(TIMEOUT)
    assert [(r.status, r.exit_code, r.restored) for r in results] == [
        (JobStatus.SUCCESSFUL, 0, True),
        (JobStatus.CRASHED, 3, False),
    ]


@pytest.mark.parametrize("big", [True, False])
def test_a_driver_leaves_a_snapshot_of_a_big_journal_at_its_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, big: bool
) -> None:
    """At the interpreter's exit (`close_all`), a journal of MIN_BYTES or more is read once
    more, so the first `runner status` after a long run reads only what follows."""
    monkeypatch.setattr(journal_module, "MIN_BYTES", 0 if big else 1 << 20)
    manager = JobManager(str(tmp_path / "run"))
    jobs = [SingleJob(f"j{i}", "exit 0\n") for i in range(3)]
    runner = JobRunner(parallel=True)
    for job in jobs:
        job.run(jobrunner=runner, jobmanager=manager)
    runner.wait(TIMEOUT)
    assert not _snapshot(tmp_path / "run").exists()  # a running driver writes none

    journal_module.close_all()

    assert _snapshot(tmp_path / "run").exists() is big
    state = read_journal(tmp_path / "run")
    assert [r.status for r in state.jobs] == [JobStatus.SUCCESSFUL] * 3
