"""The run journal: what it records, torn records, the lock of one driver, readers elsewhere."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

import runner_core._journal as journal_module
from core.journal_helpers import run_driver
from core.runner_helpers import TIMEOUT, wait_until
from runner_core import (
    JobManager,
    JobRunner,
    JobStatus,
    JournalLocked,
    SingleJob,
    read_journal,
)
from runner_core._journal import open_journal

if TYPE_CHECKING:
    from pathlib import Path


def _run(folder: Path, bodies: dict[str, str]) -> JobManager:
    manager = JobManager(folder)
    runner = JobRunner(parallel=True, maxjobs=2)
    for name, body in bodies.items():
        SingleJob(name, body).run(jobrunner=runner, jobmanager=manager)
    runner.wait(TIMEOUT)
    manager.close()
    return manager


def test_every_job_is_on_record_with_state_exit_code_hash_and_times(tmp_path: Path) -> None:
    _run(tmp_path / "w", {"ok": "exit 0", "bad": "exit 3", "ok2": "exit 0"})
    state = read_journal(tmp_path / "w")
    assert state.exists
    assert state.dropped == []
    by_name = {r.name: r for r in state.jobs}
    assert by_name["ok"].status is JobStatus.SUCCESSFUL
    assert by_name["bad"].status is JobStatus.CRASHED
    assert by_name["bad"].exit_code == 3
    assert by_name["ok"].folder == "ok"
    assert by_name["ok"].path == str(tmp_path / "w" / "ok")
    assert by_name["ok"].hash == SingleJob("ok", "exit 0").input_hash()
    assert by_name["ok"].hash == by_name["ok2"].hash.replace("x", "x")  # same script, same hash
    assert by_name["ok"].runner == {"kind": "local", "parallel": True, "maxjobs": 2}
    assert by_name["ok"].pid is not None
    assert by_name["ok"].pstart is not None
    for record in state.jobs:
        assert record.registered_at is not None
        assert record.started_at is not None
        assert record.finished_at is not None
    assert state.counts() == {"SUCCESSFUL": 2, "CRASHED": 1}
    assert state.driver is None  # the lock is gone with its driver's close


def test_nothing_is_on_disk_before_the_first_job(tmp_path: Path) -> None:
    manager = JobManager(tmp_path / "w")
    assert not manager.path.exists()
    assert manager.journal_path == tmp_path / "w" / ".runner" / "journal.jsonl"
    assert JobManager(tmp_path / "x", journal=False).journal_path is None


def test_journal_false_records_nothing(tmp_path: Path) -> None:
    manager = JobManager(tmp_path / "w", journal=False)
    SingleJob("a", "exit 0").run(jobrunner=JobRunner(), jobmanager=manager)
    assert not (tmp_path / "w" / ".runner").exists()
    assert not read_journal(tmp_path / "w").exists


def test_bad_arguments_are_named() -> None:
    with pytest.raises(TypeError, match=r"resume must be False.*, not int 1"):
        JobManager("w", resume=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="resume='yes' is not a resume policy"):
        JobManager("w", resume="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="drop journal=False"):
        JobManager("w", resume=True, journal=False)


def test_a_journal_cut_at_any_byte_opens_and_says_what_it_dropped(tmp_path: Path) -> None:
    _run(tmp_path / "w", {"a": "exit 0", "b": "exit 1"})
    data = (tmp_path / "w" / ".runner" / "journal.jsonl").read_bytes()
    whole = read_journal(tmp_path / "w")
    ends = {i + 1 for i, byte in enumerate(data) if byte == ord("\n")}
    cut = tmp_path / "cut"
    (cut / ".runner").mkdir(parents=True)
    log = cut / ".runner" / "journal.jsonl"
    for size in range(len(data) + 1):
        log.write_bytes(data[:size])
        state = read_journal(cut)
        complete = size in ends or size == 0
        # a record cut just before its newline is whole, and kept
        whole_record = data[size : size + 1] == b"\n"
        if complete or whole_record:
            assert state.dropped == [], size
        else:
            assert len(state.dropped) == 1, size
            assert "torn last record" in state.dropped[0]
        assert len(state.jobs) <= len(whole.jobs)
    # the writer opens a torn journal: the torn part is cut off and writing goes on
    middle = sorted(ends)[len(ends) // 2] + 7
    log.write_bytes(data[:middle])
    journal = open_journal(str(cut))
    journal.close()
    again = read_journal(cut)
    assert again.dropped == []
    assert len(again.sessions) == len(whole.sessions) + 1


def test_a_corrupt_line_in_the_middle_is_skipped_and_named(tmp_path: Path) -> None:
    _run(tmp_path / "w", {"a": "exit 0"})
    log = tmp_path / "w" / ".runner" / "journal.jsonl"
    lines = log.read_bytes().split(b"\n")
    lines.insert(2, b"\0\0\0garbage")
    log.write_bytes(b"\n".join(lines))
    state = read_journal(tmp_path / "w")
    assert len(state.dropped) == 1
    assert "corrupt record" in state.dropped[0]
    assert state.jobs[0].status is JobStatus.SUCCESSFUL


# --- one driver per folder -----------------------------------------------------------

HOLDER = """\
import sys, time
from runner_core import JobManager
manager = JobManager(sys.argv[1], resume=True)
print("ready", flush=True)
time.sleep(60)
"""


def _holder(tmp_path: Path, folder: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_a_second_live_driver_is_refused_naming_host_and_pid(tmp_path: Path) -> None:
    folder = tmp_path / "w"
    proc = _holder(tmp_path, folder)
    try:
        with pytest.raises(JournalLocked) as info:
            JobManager(folder, resume=True)
        message = str(info.value)
        assert f"pid {proc.pid}" in message
        assert os.uname().nodename in message
        assert "runner cancel" in message
        assert info.value.driver.pid == proc.pid
        # a plain run is refused too, at its first job, which then does not run
        manager = JobManager(folder)
        job = SingleJob("a", "exit 0")
        with pytest.raises(JournalLocked):
            job.run(jobrunner=JobRunner(), jobmanager=manager)
        assert job.results.status is JobStatus.CANCELLED
        assert read_journal(folder).driver.alive is True  # type: ignore[union-attr]
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
    # the holder was SIGKILLed: its lock is stale and taken over
    assert read_journal(folder).driver.alive is False  # type: ignore[union-attr]
    manager = JobManager(folder, resume=True)
    assert read_journal(folder).driver.pid == os.getpid()  # type: ignore[union-attr]
    manager.close()
    assert read_journal(folder).driver is None


def _fake_lock(folder: Path, **fields: object) -> Path:
    where = folder / ".runner"
    where.mkdir(parents=True, exist_ok=True)
    lock = where / "lock"
    lock.write_text(json.dumps(fields))
    return lock


def test_a_lock_whose_pid_now_names_another_process_is_stale(tmp_path: Path) -> None:
    # our own pid, but another start time: the pid was reused, the driver is gone
    _fake_lock(
        tmp_path,
        host=os.uname().nodename,
        pid=os.getppid(),
        start=1,
        boot=journal_module.boot_id(),
    )
    assert read_journal(tmp_path).driver.alive is False  # type: ignore[union-attr]
    JobManager(tmp_path, resume=True).close()


def test_a_lock_of_another_host_is_stale_only_without_heartbeat(tmp_path: Path) -> None:
    lock = _fake_lock(tmp_path, host="login9.elsewhere", pid=4242, start=5, boot="b")
    with pytest.raises(JournalLocked, match=r"pid 4242 on host 'login9\.elsewhere'"):
        JobManager(tmp_path, resume=True)
    old = time.time() - journal_module.STALE_AFTER - 10
    os.utime(lock, (old, old))
    assert read_journal(tmp_path).driver.alive is False  # type: ignore[union-attr]
    JobManager(tmp_path, resume=True).close()


def test_two_managers_of_one_process_share_the_folders_journal(tmp_path: Path) -> None:
    first, second = JobManager(tmp_path), JobManager(tmp_path)
    runner = JobRunner()
    SingleJob("a", "exit 0").run(jobrunner=runner, jobmanager=first)
    SingleJob("a", "exit 0").run(jobrunner=runner, jobmanager=second)
    state = read_journal(tmp_path)
    assert [r.folder for r in state.jobs] == ["a", "a.002"]
    assert [r.number for r in state.jobs] == [1, 2]
    first.close()
    second.close()


def test_fsync_runs_from_the_journal_thread_only_when_something_was_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    monkeypatch.setattr(journal_module, "_fsync", synced.append)
    journal = open_journal(str(tmp_path))
    journal.tick()
    assert len(synced) == 1  # the open record
    journal.tick()
    assert len(synced) == 1  # nothing new: no fsync
    journal.write({"k": "cancel", "t": 0})
    journal.write({"k": "cancel", "t": 0})
    journal.tick()
    assert len(synced) == 2  # one fsync for both records
    journal.close()


# --- readers in other processes --------------------------------------------------------


def test_status_from_another_process_during_and_after_a_run(tmp_path: Path) -> None:
    folder = tmp_path / "w"
    go = tmp_path / "go"
    body = f"while [ ! -e {go} ]; do sleep 0.02; done\nexit 4\n"
    spec = {"jobs": [["slow", body], ["slow", body]], "parallel": True, "maxjobs": 2}
    driver = run_driver(tmp_path, spec, folder, wait=False)
    try:

        def status() -> dict[str, object]:
            out = subprocess.run(
                [sys.executable, "-m", "runner_core", "status", str(folder), "--json"],
                capture_output=True,
                text=True,
                check=False,
                timeout=TIMEOUT,
            )
            if out.returncode != 0:
                return {}
            document: dict[str, object] = json.loads(out.stdout)
            return document

        wait_until(
            lambda: status().get("counts") == {"RUNNING": 2}, "two jobs RUNNING in the journal"
        )
        during = status()
        assert during["driver"]["pid"] == driver.pid  # type: ignore[index]
        assert during["driver"]["alive"] is True  # type: ignore[index]
        assert [j["folder"] for j in during["jobs"]] == ["slow", "slow.002"]  # type: ignore[index]
        go.write_text("")
        driver.communicate(timeout=TIMEOUT)
        after = status()
        assert after["counts"] == {"CRASHED": 2}
        assert after["driver"] is None
        assert {j["exit_code"] for j in after["jobs"]} == {4}  # type: ignore[union-attr]
    finally:
        go.write_text("")
        if driver.poll() is None:
            driver.send_signal(signal.SIGKILL)
        driver.communicate()
    shutil.rmtree(folder)
