"""`runner status --watch` on live runs (through a pipe and a pseudo-terminal), and the
journal read a little at a time (`read_journal(since=...)`) that it redraws from."""

from __future__ import annotations

import json
import os
import pty
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Optional

import pytest

from core.runner_helpers import TIMEOUT, wait_until
from runner_core import JobStatus, read_journal
from runner_core.cli import main
from runner_core.cli._progress import watch_lines

if TYPE_CHECKING:
    from pathlib import Path

ESC = "\x1b"


def _start_run(tmp_path: Path, count: int = 3) -> tuple[subprocess.Popen[str], Path, Path]:
    """A live `runner run` of `count` jobs: job 0 fails at once, the others wait for `go`."""
    folder = tmp_path / "scripts"
    folder.mkdir()
    go = tmp_path / "go"
    paths = []
    for i in range(count):
        script = folder / f"job{i}.sh"
        if i == 0:
            script.write_text("#!/bin/sh\necho 'no convergence' >&2\nexit 3\n")
        else:
            script.write_text(f"#!/bin/sh\nwhile [ ! -e {go} ]; do sleep 0.05; done\n")
        paths.append(str(script))
    work = tmp_path / "work"
    driver = subprocess.Popen(
        [sys.executable, "-m", "runner_core", "run", "--parallel", "--workdir", str(work), *paths],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    wait_until(
        lambda: (
            sum(r.status is JobStatus.RUNNING for r in read_journal(work).jobs) == count - 1
            and read_journal(work).counts().get("CRASHED") == 1
        ),
        "jobs running and one crashed",
    )
    return driver, work, go


def _watch(work: Path, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "runner_core", "status", str(work), "--watch", "--interval", "0.2"],
        text=True,
        **kwargs,  # type: ignore[call-overload]
    )


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_in_a_pipe_it_prints_plain_snapshots_and_ends_with_the_run(tmp_path: Path) -> None:
    driver, work, go = _start_run(tmp_path)
    watcher = _watch(work, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert watcher.stdout is not None
        first = [watcher.stdout.readline() for _ in range(4)]
        assert first[0].startswith("runner status --watch: ")
        assert "driver: pid" in first[1]
        assert "running" in first[1]
        assert first[2].strip() == "3 jobs: 2 RUNNING, 1 CRASHED"
        assert first[3].startswith("done: 1/3 (33%)")
        time.sleep(0.5)
        assert watcher.poll() is None  # the run goes on, so does the view
        go.write_text("")
        out, err = watcher.communicate(timeout=TIMEOUT)
    finally:
        _stop(watcher)
        driver.wait(TIMEOUT)
    assert watcher.returncode == 0, err
    assert ESC not in out
    snapshots = [s for s in (first[0] + "".join(first[1:]) + out).split("\n\n") if s.strip()]
    assert len(snapshots) >= 3  # two views at least, then the closing line
    assert snapshots[-1] == "the run has no live driver: the view ends\n"
    last = snapshots[-2]
    assert "3 jobs: 2 SUCCESSFUL, 1 CRASHED" in last
    assert "done: 3/3 (100%)" in last
    assert "time left: nothing left" in last
    assert "job0  CRASHED exit 3  no convergence" in last
    assert "driver: none (the run has ended)" in last


def _read_pty(
    fd: int, until: float, stop: str = "", proc: Optional[subprocess.Popen[str]] = None
) -> str:
    """What the terminal got until `stop` appears, `proc` has ended and all is read, or `until`.

    The test keeps the terminal's other side open, so the end of `proc` is no hang-up
    (which may overtake the last output on Linux) and everything it wrote is read.
    """
    seen = b""
    while time.monotonic() < until:
        ended = proc is not None and proc.poll() is not None
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            if ended:
                break
            continue
        seen += os.read(fd, 65536)
        if stop and stop in seen.decode(errors="replace"):
            break
    return seen.decode(errors="replace")


def test_on_a_terminal_it_redraws_in_place_and_ends_with_the_run(tmp_path: Path) -> None:
    driver, work, go = _start_run(tmp_path)
    main, secondary = pty.openpty()
    watcher = _watch(work, stdin=secondary, stdout=secondary, stderr=secondary)
    try:
        screen = _read_pty(main, time.monotonic() + TIMEOUT, stop="1 CRASHED\x1b[K")
        assert "\x1b[?25l\x1b[H\x1b[2J" in screen  # cursor hidden, screen cleared once
        assert "3 jobs: 2 RUNNING, 1 CRASHED" in screen
        screen += _read_pty(main, time.monotonic() + 1.0)
        assert screen.count("\x1b[H") >= 2  # redrawn in place
        go.write_text("")
        screen += _read_pty(main, time.monotonic() + TIMEOUT, proc=watcher)
        watcher.wait(TIMEOUT)
    finally:
        _stop(watcher)
        os.close(main)
        os.close(secondary)
        driver.wait(TIMEOUT)
    assert watcher.returncode == 0
    assert "3 jobs: 2 SUCCESSFUL, 1 CRASHED" in screen
    assert screen.rstrip().endswith("the run has no live driver: the view ends")
    assert "\x1b[?25h" in screen  # the cursor is shown again


def test_ctrl_c_ends_it_cleanly(tmp_path: Path) -> None:
    driver, work, go = _start_run(tmp_path)
    main, secondary = pty.openpty()
    watcher = _watch(work, stdin=secondary, stdout=secondary, stderr=secondary)
    try:
        screen = _read_pty(main, time.monotonic() + TIMEOUT, stop="1 CRASHED\x1b[K")
        watcher.send_signal(signal.SIGINT)
        screen += _read_pty(main, time.monotonic() + TIMEOUT, proc=watcher)
        watcher.wait(TIMEOUT)
    finally:
        _stop(watcher)
        os.close(main)
        os.close(secondary)
        go.write_text("")
        driver.wait(TIMEOUT)
    assert watcher.returncode == 0
    assert "Traceback" not in screen
    assert screen.endswith("\x1b[?25h")
    assert driver.returncode == 1  # the run went on to its end (job0 crashed), not cut short


def test_the_view_of_an_ended_run_is_shown_once(tmp_path: Path) -> None:
    driver, work, go = _start_run(tmp_path, count=2)
    go.write_text("")
    driver.wait(TIMEOUT)
    result = subprocess.run(
        [sys.executable, "-m", "runner_core", "status", str(work), "--watch"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("runner status --watch: ") == 1
    assert "2 jobs: 1 SUCCESSFUL, 1 CRASHED" in result.stdout


def test_watch_lines_pace_time_left_oldest_waiting(tmp_path: Path) -> None:
    state = read_journal(tmp_path)  # empty; filled by hand below
    from runner_core import JobRecord  # noqa: PLC0415 - only here

    now = 10_000.0
    for i in range(10):
        record = JobRecord(i + 1, f"j{i}", f"j{i}", str(tmp_path / f"j{i}"))
        record.registered_at = now - 600
        if i < 6:  # six ended in the last two minutes
            record.status = JobStatus.SUCCESSFUL if i else JobStatus.FAILED
            record.finished_at = now - 20 * i
            record.error = None if i else "\n  Traceback (most recent call last):\n"
        elif i < 8:
            record.status = JobStatus.RUNNING
        else:
            record.status = JobStatus.SUBMITTED
            record.submitted_at = now - 100 * i
            record.jobid = f"77{i}"
        state.jobs.append(record)
    lines = watch_lines(state, "driver: pid 1 on host h: running", now)
    text = "\n".join(lines)
    assert "10 jobs: 2 SUBMITTED, 2 RUNNING, 5 SUCCESSFUL, 1 FAILED" in text
    # 6 in the last 300 s: 1.2 a minute; 4 left: about 3m20s
    assert "done: 6/10 (60%), finished per minute: 1.2 (last 5m00s), time left: about 3m20s" in text
    assert "oldest waiting: j9 (SUBMITTED, job 779, for 15m00s)" in text
    assert "recent failures (1 of 1):" in text
    assert "j0  FAILED  Traceback (most recent call last):" in text


# --- the journal read a little at a time ---------------------------------------------------


def _append(log: Path, *records: dict[str, object], raw: bytes = b"") -> None:
    with open(log, "ab") as f:
        f.write(b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in records))
        f.write(raw)


def test_read_since_applies_what_was_appended_and_a_torn_tail_once(tmp_path: Path) -> None:
    log = tmp_path / ".runner" / "journal.jsonl"
    log.parent.mkdir()
    _append(log, {"k": "open", "v": 1, "s": 1, "t": 1.0})
    _append(log, {"k": "job", "j": 1, "name": "a", "dir": "a", "t": 1.0})
    state = read_journal(tmp_path)
    assert [r.status for r in state.jobs] == [JobStatus.QUEUED]
    _append(log, {"k": "st", "j": 1, "s": "running", "t": 2.0}, raw=b'{"k":"end","j":1,"s":"succ')
    again = read_journal(tmp_path, since=state)
    assert again is state
    assert state.jobs[0].status is JobStatus.RUNNING
    assert len(state.dropped) == 1
    assert "torn last record" in state.dropped[0]
    _append(log, raw=b'essful","code":0,"t":3.0}\n')
    read_journal(tmp_path, since=state)
    assert state.dropped == []
    assert state.jobs[0].status is JobStatus.SUCCESSFUL
    assert state.good_size == state.size == log.stat().st_size
    # a whole record with its newline still to come is applied once
    _append(log, {"k": "job", "j": 2, "name": "b", "dir": "b", "t": 4.0})
    _append(log, raw=b'{"k":"try","j":2,"n":1,"a":{"reason":"timeout"}}')
    read_journal(tmp_path, since=state)
    _append(log, raw=b"\n")
    read_journal(tmp_path, since=state)
    assert len(state.jobs[1].attempts) == 1
    fresh = read_journal(tmp_path)
    assert [(r.folder, r.status, len(r.attempts)) for r in fresh.jobs] == [
        (r.folder, r.status, len(r.attempts)) for r in state.jobs
    ]


def test_read_since_reads_a_replaced_journal_whole(tmp_path: Path) -> None:
    log = tmp_path / ".runner" / "journal.jsonl"
    log.parent.mkdir()
    _append(log, {"k": "open", "v": 1, "s": 1, "t": 1.0})
    _append(log, {"k": "job", "j": 1, "name": "a", "dir": "a", "t": 1.0})
    _append(log, {"k": "job", "j": 2, "name": "b", "dir": "b", "t": 1.0})
    state = read_journal(tmp_path)
    log.unlink()
    _append(log, {"k": "open", "v": 1, "s": 1, "t": 1.0})
    _append(log, {"k": "job", "j": 1, "name": "c", "dir": "c", "t": 1.0})
    again = read_journal(tmp_path, since=state)
    assert again is not state
    assert [r.folder for r in again.jobs] == ["c"]


@pytest.mark.parametrize("name", ["plain", "naïve-ü"])
def test_a_corrupt_line_is_named_by_its_byte_and_line_also_after_non_ascii(
    tmp_path: Path, name: str
) -> None:
    log = tmp_path / ".runner" / "journal.jsonl"
    log.parent.mkdir()
    _append(log, {"k": "open", "v": 1, "s": 1, "t": 1.0})
    _append(log, {"k": "job", "j": 1, "name": name, "dir": name, "t": 1.0})
    start = log.stat().st_size
    _append(log, raw=b"not json\n")
    spaced = b' {"k": "st", "j": 1, "s": "running", "t": 2.0} \n'  # white space: kept
    _append(log, raw=spaced)
    _append(log, {"k": "st", "j": 1, "s": "nonsense", "t": 3.0})
    state = read_journal(tmp_path)
    assert state.dropped[0] == f"a corrupt record of 8 bytes at byte {start} (line 3)"
    assert state.dropped[1].startswith(
        f"a record it does not understand at byte {start + 9 + len(spaced)}"
    )
    assert state.jobs[0].status is JobStatus.RUNNING
    assert state.jobs[0].started_at == 2.0
    assert state.good_size == log.stat().st_size


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--watch", "--json"], "pick one"),
        (["--interval", "5"], "--interval 5 is for the live view: add --watch"),
        (["--watch", "--interval", "0"], "too short"),
        (["--watch", "--interval", "soon"], "is not a number of seconds"),
    ],
)
def test_options_that_do_not_go_together_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    (tmp_path / ".runner").mkdir()
    (tmp_path / ".runner" / "journal.jsonl").write_text('{"k":"open","v":1,"s":1,"t":1.0}\n')
    assert main(["status", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_in_tmux_the_counts_change_on_screen_and_the_view_ends(tmp_path: Path) -> None:
    driver, work, go = _start_run(tmp_path)
    tmux = ["tmux", "-L", f"runner-watch-{os.getpid()}", "-f", os.devnull]
    ended = tmp_path / "exit-status"
    watch = shlex.join(
        [sys.executable, "-m", "runner_core", "status", str(work), "--watch", "--interval", "0.2"]
    )
    command = f"{watch}; echo $? > {shlex.quote(str(ended))}"

    def screen() -> str:
        return subprocess.run(
            [*tmux, "capture-pane", "-p", "-t", "watch"],
            capture_output=True,
            text=True,
            check=True,
            timeout=TIMEOUT,
        ).stdout

    def pane(what: str) -> str:
        return subprocess.run(
            [*tmux, "display-message", "-p", "-t", "watch", what],
            capture_output=True,
            text=True,
            check=True,
            timeout=TIMEOUT,
        ).stdout.strip()

    subprocess.run(
        [*tmux, "new-session", "-d", "-s", "watch", "-x", "120", "-y", "30", command],
        check=True,
        timeout=TIMEOUT,
    )
    try:
        subprocess.run(
            [*tmux, "set-option", "-w", "-t", "watch", "remain-on-exit", "on"],
            check=True,
            timeout=TIMEOUT,
        )
        wait_until(lambda: "3 jobs: 2 RUNNING, 1 CRASHED" in screen(), "the first counts")
        assert "job0  CRASHED exit 3  no convergence" in screen()
        go.write_text("")
        wait_until(lambda: "3 jobs: 2 SUCCESSFUL, 1 CRASHED" in screen(), "the counts change")
        wait_until(lambda: pane("#{pane_dead}") == "1", "the view ends by itself")
        assert ended.read_text().strip() == "0"
        assert "the run has no live driver: the view ends" in screen()
    finally:
        subprocess.run([*tmux, "kill-server"], check=False, timeout=TIMEOUT)
        go.write_text("")
        driver.wait(TIMEOUT)
