"""The run journal: what it records, torn records, the lock of one driver, readers elsewhere."""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import runner_core._journal as journal_module
import runner_core._process as process_module
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
from runner_core._process import process_start
from runner_core.ext import report_failure, report_reason

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


# --- what the writer costs: records written together, encoded directly -----------------


def _json_equal(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return type(a) is type(b) and a == b


@given(value=st.none() | st.booleans() | st.integers() | st.floats())
@example(value=1796648830.9021823)
@example(value=-0.0)
@example(value=float("inf"))
def test_numbers_are_encoded_as_the_general_encoder_writes_them(value: object) -> None:
    general = json.dumps(value, separators=(",", ":"))
    assert journal_module._num(value) == general
    assert _json_equal(json.loads(journal_module._num(value)), value)


@given(value=st.text())
@example(value='quote " backslash \\ newline \n tab \t bell \x07 del \x7f')
@example(value="naïve 名前 \u2028 \U0001f600")
def test_text_is_encoded_as_the_general_encoder_writes_it(value: str) -> None:
    general = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert journal_module._text(value) == general
    assert json.loads(journal_module._text(value)) == value


def _journal_writes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every `os.write` of journal lines from now on (runscripts start with "#!").

    The journal thread is kept from writing queued records meanwhile, so the writes
    counted are those the steps make.
    """
    monkeypatch.setattr(journal_module.Journal, "tick", lambda self: None)
    writes: list[bytes] = []
    real = os.write

    def counting(fd: int, data: Any) -> int:
        if bytes(data[:5]) == b'{"k":':
            writes.append(bytes(data))
        return real(fd, data)

    monkeypatch.setattr(os, "write", counting)
    return writes


def test_a_jobs_life_replays_exactly_as_its_results_saw_it(tmp_path: Path) -> None:
    class Noisy(JobRunner):
        def call(self, runscript: str, workdir: str, out: Any, err: Any, runflags: Any) -> int:
            if runscript.startswith("fails"):
                report_failure('it said "no" \\ naïvely\nover two lines')
            if runscript.startswith("late"):
                report_reason("timeout")
            return super().call(runscript, workdir, out, err, runflags)

    manager = JobManager(tmp_path / "w")
    runner = Noisy(parallel=True, maxjobs=2)
    bodies = {
        "ok": "exit 0",
        "crash": "echo 'bad \"thing\" é' >&2\nexit 3",
        "fails": "exit 0",
        "late": "exit 0",
    }
    results = {
        name: SingleJob(name, body).run(jobrunner=runner, jobmanager=manager, flags="x")
        for name, body in bodies.items()
    }
    runner.wait(TIMEOUT)
    manager.close()
    state = read_journal(tmp_path / "w")
    assert state.dropped == []
    for record in state.jobs:
        seen = results[record.name]
        assert record.status is seen.status, record.name
        assert record.exit_code == seen.exit_code
        assert record.reason == seen.reason
        assert record.error == (seen.error.strip()[:300] if seen.error else None)
        assert record.started_at == seen.started_at  # exactly: no float is rounded
        assert record.finished_at == seen.finished_at
        assert record.flags == {"flags": "x"}
        assert record.pid is not None
    assert state.counts() == {"SUCCESSFUL": 2, "CRASHED": 1, "FAILED": 1}
    assert results["late"].reason == "timeout"


def test_a_jobs_registration_goes_out_with_its_start_in_one_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = _journal_writes(monkeypatch)
    manager = JobManager(tmp_path / "w")
    SingleJob("a", "exit 0").run(jobrunner=JobRunner(), jobmanager=manager)
    manager.close()
    kinds = [[json.loads(line)["k"] for line in w.splitlines()] for w in writes]
    # open; then the runner, the job and its start together, before its process starts;
    # its pid; its end; the close
    assert kinds == [["open"], ["runner", "job", "st"], ["pid"], ["end"], ["close"]]


def test_a_driver_killed_after_a_registration_left_its_start_on_record_too(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "w"
    spec = {"jobs": [["a", "exit 0"]], "parallel": False}
    killed = run_driver(tmp_path, spec, folder, kill_at=3)  # open, runner, job: killed here
    killed.communicate()
    assert killed.returncode == -signal.SIGKILL
    (record,) = read_journal(folder).jobs
    assert record.status is JobStatus.RUNNING  # in the same write as its registration
    assert record.pid is None
    assert read_journal(folder).dropped == []


def test_records_ready_together_go_out_in_one_write_and_a_written_one_is_not_written_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = open_journal(str(tmp_path))
    writes = _journal_writes(monkeypatch)
    entries = [journal.new_job(f"j{i}", f"j{i}", None, None, None) for i in range(3)]
    assert writes == []  # registrations wait for their job's next step
    assert read_journal(tmp_path).jobs == []
    jobs = [SingleJob(f"j{i}", "") for i in range(3)]
    for job in jobs:
        job.results.started_at = time.time()
    tickets = [e.moved(j.results, JobStatus.RUNNING) for e, j in zip(entries, jobs)]
    entries[1].flush(tickets[1])  # writes what was queued up to and after it: all six
    entries[0].flush(tickets[0])
    entries[2].flush(tickets[2])
    assert len(writes) == 1
    assert [r.status for r in read_journal(tmp_path).jobs] == [JobStatus.RUNNING] * 3
    journal.close()


def test_a_queued_registration_is_written_by_the_journal_thread(tmp_path: Path) -> None:
    journal = open_journal(str(tmp_path))
    journal.new_job("a", "a", None, None, None)
    journal.tick()  # what the journal thread does once per FSYNC_INTERVAL
    assert [r.name for r in read_journal(tmp_path).jobs] == ["a"]
    journal.close()


def test_an_end_the_journal_cannot_write_still_releases_waiters_and_callbacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = open_journal(str(tmp_path))
    job = SingleJob("a", "")
    results = job.results
    results._journal = journal.new_job("a", "a", None, None, None)
    seen: list[JobStatus] = []
    results.add_done_callback(lambda r: seen.append(r.status))
    results._move(JobStatus.QUEUED)
    real = os.write

    def full(fd: int, data: Any) -> int:
        if bytes(data[:5]) == b'{"k":':
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError, match="No space"):
        results._move(JobStatus.FAILED, error="x")
    monkeypatch.setattr(os, "write", real)
    assert results.wait(0) is results
    assert seen == [JobStatus.FAILED]
    journal.close()


def test_a_record_written_at_once_takes_the_queued_ones_along_in_one_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = open_journal(str(tmp_path))
    writes = _journal_writes(monkeypatch)
    entry = journal.new_job("a", "a", None, None, None)
    job = SingleJob("a", "")
    job.results.started_at = time.time()
    ticket = entry.moved(job.results, JobStatus.RUNNING)
    entry.pid(os.getpid(), 12345)  # written at once, after what was queued before it
    entry.flush(ticket)  # on record already: nothing more to write
    assert [[json.loads(line)["k"] for line in w.splitlines()] for w in writes] == [
        ["job", "st", "pid"]
    ]
    (record,) = read_journal(tmp_path).jobs
    assert (record.status, record.pid, record.pstart) == (JobStatus.RUNNING, os.getpid(), 12345)
    journal.close()


@pytest.mark.parametrize("clock", ["trusted", "lying"])
def test_a_spawned_process_has_the_start_time_proc_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: str
) -> None:
    # The start time the pid record keeps is what a resume compares with /proc to know
    # the process is that one: from the clock at the spawn, it must be the same number.
    if process_start(os.getpid()) is None:
        pytest.skip("no /proc here: start times are not recorded")
    if clock == "trusted":
        monkeypatch.setattr(process_module, "_clock_checks", 0)
    else:  # a clock that disagrees with /proc is caught at once and not used again
        monkeypatch.setattr(process_module, "_clock_checks", process_module._CLOCK_CHECKS)
        monkeypatch.setattr(process_module, "_boot_tick", lambda: 7)
    script = tmp_path / "quick.run"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    for _ in range(100):
        proc = process_module._start(str(script), str(tmp_path), None, str(tmp_path / "err"))
        assert not isinstance(proc, tuple), proc
        try:
            assert process_module.spawned_start(proc) == process_start(proc.pid)  # a zombie too
        finally:
            proc.wait()
    assert process_module._clock_checks == (0 if clock == "trusted" else -1)


def test_the_pid_record_names_the_runscripts_own_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if process_start(os.getpid()) is None:
        pytest.skip("no /proc here: start times are not recorded")
    monkeypatch.setattr(process_module, "_clock_checks", 0)  # the clock, not /proc
    # field 22 of /proc/$$/stat is the start time; the command name (job.run) has no space
    body = "echo $$ > pid\ncut -d' ' -f22 /proc/$$/stat > start\n"
    _run(tmp_path / "w", {f"job{i}": body for i in range(20)})
    for record in read_journal(tmp_path / "w").jobs:
        assert record.status is JobStatus.SUCCESSFUL
        folder = tmp_path / "w" / record.folder
        assert record.pid == int((folder / "pid").read_text())
        assert record.pstart == int((folder / "start").read_text())


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
        # the folders follow the job.run() order; the records, the order job threads register
        assert sorted(j["folder"] for j in during["jobs"]) == ["slow", "slow.002"]  # type: ignore[index]
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
