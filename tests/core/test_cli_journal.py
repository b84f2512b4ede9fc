"""`runner run --resume`, `runner status`, `runner cancel` and `runner resume` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from core.journal_helpers import counting_body, starts
from core.runner_helpers import TIMEOUT, wait_until
from runner_core import JobManager, JobRunner, JobStatus, SingleJob, read_journal
from runner_core._process import process_start
from runner_core.cli import main

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def scripts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "scripts"
    folder.mkdir()
    for name, code in (("ok", 0), ("bad", 3)):
        (folder / f"{name}.sh").write_text("#!/bin/sh\n" + counting_body(code))
    return folder


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner_core", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_run_resume_keeps_what_succeeded_and_reruns_the_rest(
    scripts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = [str(scripts / "ok.sh"), str(scripts / "bad.sh")]
    assert main(["run", "--workdir", "work", *batch]) == 1
    capsys.readouterr()
    assert main(["run", "--resume", "--json", "--workdir", "work", *batch]) == 1
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    by_name = {j["name"]: j for j in document["jobs"]}
    assert by_name["ok"]["restored"] is True
    assert by_name["bad"]["restored"] is False
    assert "(restored: succeeded in an earlier run)" in captured.err
    assert "resuming its journal" in captured.err
    assert starts(scripts.parent / "work" / "ok") == 1
    assert starts(scripts.parent / "work" / "bad") == 2


def test_run_resume_unfinished_keeps_what_crashed_and_exits_1(
    scripts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = [str(scripts / "ok.sh"), str(scripts / "bad.sh")]
    work = scripts.parent / "work"
    assert main(["run", "--workdir", "work", *batch]) == 1
    capsys.readouterr()
    assert main(["run", "--resume-unfinished", "--json", "--workdir", "work", *batch]) == 1
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert [(j["name"], j["status"], j["exit_code"], j["restored"]) for j in document["jobs"]] == [
        ("ok", "SUCCESSFUL", 0, True),
        ("bad", "CRASHED", 3, True),
    ]
    assert document["failed"] == 1
    assert "resuming its journal; jobs that crashed or failed before are kept" in captured.err
    assert starts(work / "ok") == 1
    assert starts(work / "bad") == 1
    assert main(["run", "--resume", "--workdir", "work", *batch]) == 1  # now it runs again
    out = capsys.readouterr().out
    assert "bad  CRASHED" in out
    assert starts(work / "bad") == 2


def test_resume_and_resume_unfinished_together_are_a_usage_error(
    scripts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = str(scripts / "ok.sh")
    assert main(["run", "--resume", "--resume-unfinished", "--workdir", "work", script]) == 2
    assert "not allowed with argument --resume" in capsys.readouterr().err
    assert not (scripts.parent / "work").exists()


def test_the_progress_line_of_a_restored_crash_says_so(
    scripts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = [str(scripts / "ok.sh"), str(scripts / "bad.sh")]
    main(["run", "--workdir", "work", *batch])
    capsys.readouterr()
    main(["run", "--resume-unfinished", "--workdir", "work", *batch])
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if line.startswith("[2/2] bad ")]
    assert "CRASHED" in line
    assert "restored" in line
    assert "succeeded" not in line


def test_status_table_and_json(scripts: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["run", "--workdir", "work", str(scripts / "ok.sh"), str(scripts / "bad.sh")])
    capsys.readouterr()
    assert main(["status", "work"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = ["job", "status", "jobid", "exit", "reason", "wait", "run", "folder"]
    assert lines[0].split() == header
    assert lines[1].split()[:6] == ["ok", "SUCCESSFUL", "-", "0", "-", "-"]
    assert lines[2].split()[:6] == ["bad", "CRASHED", "-", "3", "-", "-"]
    assert float(lines[1].split()[6]) >= 0  # a local job has a run time and no wait
    assert "2 jobs: 1 SUCCESSFUL, 1 CRASHED" in out
    assert "driver: none (the run has ended)" in out
    assert main(["status", "work", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert set(document) == {"folder", "driver", "counts", "jobs", "dropped"}
    assert document["counts"] == {"SUCCESSFUL": 1, "CRASHED": 1}
    job = document["jobs"][0]
    for key in ("name", "status", "jobid", "exit_code", "reason", "folder", "path"):
        assert key in job


def test_status_of_a_folder_without_journal_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", str(tmp_path)]) == 2
    assert "no run journal here" in capsys.readouterr().err
    assert main(["cancel", str(tmp_path)]) == 2
    assert main(["resume", str(tmp_path)]) == 2


def _long_run(tmp_path: Path, count: int = 2) -> tuple[subprocess.Popen[str], Path]:
    folder = tmp_path / "scripts"
    folder.mkdir(exist_ok=True)
    paths = []
    for i in range(count):
        script = folder / f"long{i}.sh"
        fast = tmp_path / "fast"
        script.write_text(f"#!/bin/sh\necho $$ > pid\n[ -e {fast} ] || sleep 30\n")
        paths.append(str(script))
    work = tmp_path / "work"
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner_core", "run", "--parallel", "--workdir", str(work), *paths],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: all(_has_pid(work / f"long{i}") for i in range(count)), "jobs started")
    wait_until(
        lambda: (
            all(r.pid is not None for r in read_journal(work).jobs)
            and len(read_journal(work).jobs) == count
        ),
        "pids on record",
    )
    return proc, work


def _has_pid(folder: Path) -> bool:
    """The job in `folder` has written its pid (the file is made before it is written)."""
    try:
        return (folder / "pid").read_text().strip() != ""
    except FileNotFoundError:
        return False


def _pids(work: Path, count: int = 2) -> list[int]:
    return [int((work / f"long{i}" / "pid").read_text()) for i in range(count)]


def test_cancel_with_a_live_driver_ends_its_jobs_cancelled_and_it_exits_1(tmp_path: Path) -> None:
    driver, work = _long_run(tmp_path)
    pids = _pids(work)
    try:
        result = _cli("cancel", str(work))
        assert result.returncode == 0, result.stderr
        assert "asking driver pid" in result.stderr
        assert "2 job(s) cancelled by its driver" in result.stderr
        out, _err = driver.communicate(timeout=TIMEOUT)
        assert driver.returncode == 1
        assert out.count("CANCELLED") == 2
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    state = read_journal(work)
    assert [r.status for r in state.jobs] == [JobStatus.CANCELLED] * 2
    wait_until(lambda: all(process_start(p) is None for p in pids), "job processes gone")


def test_cancel_with_a_dead_driver_kills_the_jobs_and_records_them(tmp_path: Path) -> None:
    driver, work = _long_run(tmp_path)
    pids = _pids(work)
    driver.kill()
    driver.communicate()
    assert all(process_start(p) is not None for p in pids)  # orphaned, running on
    status = _cli("status", str(work))
    assert "gone (killed?)" in status.stdout
    result = _cli("cancel", str(work))
    assert result.returncode == 0, result.stderr
    assert "2 job(s) cancelled from here (its driver was gone)" in result.stderr
    wait_until(lambda: all(process_start(p) is None for p in pids), "job processes gone")
    state = read_journal(work)
    assert [r.status for r in state.jobs] == [JobStatus.CANCELLED] * 2
    assert state.driver is None
    again = _cli("cancel", str(work))
    assert again.returncode == 0
    assert "nothing to cancel" in again.stderr


def test_resume_dir_reruns_the_unfinished_jobs_of_a_dead_driver(tmp_path: Path) -> None:
    driver, work = _long_run(tmp_path, count=1)
    pid = _pids(work, 1)[0]
    driver.kill()
    driver.communicate()
    assert process_start(pid) is not None
    (tmp_path / "fast").write_text("")  # its rerun ends at once
    result = _cli("resume", str(work), "--json")
    assert result.returncode == 0, result.stderr
    assert "stopped job long0, left running by a driver that is gone" in result.stderr
    document = json.loads(result.stdout)
    assert [(j["name"], j["status"]) for j in document["jobs"]] == [("long0", "SUCCESSFUL")]
    assert process_start(pid) is None
    assert int((work / "long0" / "pid").read_text()) != pid


def test_resume_dir_only_unfinished_keeps_what_crashed(
    scripts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = scripts.parent / "work"
    main(["run", "--workdir", "work", str(scripts / "ok.sh"), str(scripts / "bad.sh")])
    capsys.readouterr()
    assert main(["resume", "work", "--only-unfinished", "--json"]) == 1
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert [(j["name"], j["status"], j["restored"]) for j in document["jobs"]] == [
        ("ok", "SUCCESSFUL", True),
        ("bad", "CRASHED", True),
    ]
    assert "(local runner); jobs that crashed or failed before are kept" in captured.err
    assert starts(work / "bad") == 1
    assert main(["resume", "work", "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert [(j["name"], j["restored"]) for j in document["jobs"]] == [
        ("ok", True),
        ("bad", False),
    ]
    assert starts(work / "bad") == 2


def test_resume_dir_restores_successful_jobs(
    scripts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["run", "--workdir", "work", str(scripts / "ok.sh"), str(scripts / "bad.sh")])
    capsys.readouterr()
    assert main(["resume", "work", "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert [(j["name"], j["status"], j["restored"]) for j in document["jobs"]] == [
        ("ok", "SUCCESSFUL", True),
        ("bad", "CRASHED", False),
    ]
    assert starts(scripts.parent / "work" / "ok") == 1
    assert starts(scripts.parent / "work" / "bad") == 2


def _old_journal(folder: Path, ok_hash: str) -> None:
    """A journal as the first runner-core wrote it (no SUBMITTED, no submit times, an end
    without `ts`), non-ASCII kept as it is; two lines as a person's editor or another
    JSON writer would leave them (spaces after the separators)."""
    records: list[dict[str, object]] = [
        {"k": "open", "v": 1, "s": 1, "host": "h", "pid": 1, "ps": 1, "boot": "b", "t": 100.0},
        {"k": "runner", "r": 1, "info": {"kind": "local", "parallel": True, "maxjobs": 0}},
        {"k": "job", "j": 1, "name": "ok", "dir": "ok", "hash": ok_hash, "r": 1, "t": 100.5},
        {"k": "st", "j": 1, "s": "running", "t": 101.0},
        {"k": "pid", "j": 1, "pid": 4242, "ps": 99},
        {"k": "end", "j": 1, "s": "successful", "code": 0, "t": 103.5, "t0": 101.0},
        {"k": "job", "j": 2, "name": "bäd", "dir": "bäd", "hash": "x", "r": 1, "t": 100.6},
        {"k": "st", "j": 2, "s": "running", "t": 101.0},
        {"k": "end", "j": 2, "s": "crashed", "code": 3, "t": 102.0, "err": "Fehler: 3"},
        {"k": "close", "s": 1, "t": 104.0},
    ]
    lines = [json.dumps(r, separators=(",", ":"), ensure_ascii=False) for r in records]
    lines[3] = json.dumps(records[3])
    lines[8] = json.dumps(records[8])
    (folder / ".runner").mkdir(parents=True)
    (folder / ".runner" / "journal.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "ok").mkdir()
    (folder / "bäd").mkdir()


def test_a_journal_of_the_first_version_opens_for_status_and_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    job = SingleJob("ok", "exit 0\n")
    work = tmp_path / "work"
    _old_journal(work, job.input_hash())
    assert main(["status", "work"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[1].split() == ["ok", "SUCCESSFUL", "-", "0", "-", "-", "2.5", "work/ok"]
    assert lines[2].split() == ["bäd", "CRASHED", "-", "3", "-", "-", "1.0", "work/bäd"]
    assert "2 jobs: 1 SUCCESSFUL, 1 CRASHED" in captured.out
    assert "dropped" not in captured.err
    assert main(["status", "work", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["counts"] == {"SUCCESSFUL": 1, "CRASHED": 1}
    assert [(j["name"], j["error"], j["submitted_at"]) for j in document["jobs"]] == [
        ("ok", None, None),
        ("bäd", "Fehler: 3", None),
    ]
    with JobManager(work, resume=True) as manager:
        results = job.run(jobrunner=JobRunner(), jobmanager=manager)
    assert results.restored
    assert (results.status, results.exit_code, results.started_at) == (
        JobStatus.SUCCESSFUL,
        0,
        101.0,
    )


def test_status_json_of_a_run_without_jobs_yet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / ".runner").mkdir()
    (tmp_path / ".runner" / "journal.jsonl").write_text('{"k":"open","v":1,"s":1,"t":1.0}\n')
    assert main(["status", str(tmp_path), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["jobs"], document["counts"], document["dropped"]) == ([], {}, [])
