"""Tests for the queue poller and the scheme check.

The poller is driven by injected check callables and the scheme check by small fake scheduler
commands on a temporary PATH: they stand in for faults a real daemon cannot produce on demand
(checks that fail, time out or print garbage at chosen moments). The real daemons are exercised
by tests/integration. `sleepstep` is an hour in most tests and `wake()` starts each check, so
nothing here depends on timing.
"""

from __future__ import annotations

import queue
import sys
import threading
from typing import TYPE_CHECKING, Any

import pytest

from runner_grid._poller import CheckFailed, QueuePoller, SchemeCheck, query_env
from runner_grid.schemes import slurm

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
    from pathlib import Path

HOUR = 3600.0
TIMEOUT = 30.0


class ScriptedCheck:
    """A check callable that answers from a script and reports every call on a queue."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = list(answers)
        self.calls: queue.Queue[list[str]] = queue.Queue()

    def __call__(self, ids: Sequence[str]) -> Collection[str]:
        self.calls.put(sorted(ids))
        answer = self.answers.pop(0) if self.answers else []
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer):
            return answer(ids)  # type: ignore[no-any-return]
        return answer  # type: ignore[no-any-return]

    def next_call(self) -> list[str]:
        return self.calls.get(timeout=TIMEOUT)


def test_one_check_per_interval_for_all_jobs_and_release_when_gone() -> None:
    check = ScriptedCheck([["1", "2", "3"], ["2"], []])
    poller = QueuePoller(check, HOUR)
    events = {i: poller.register(i) for i in ("1", "2", "3")}
    poller.wake()
    assert check.next_call() == ["1", "2", "3"]
    poller.wake()
    assert check.next_call() == ["1", "2", "3"]
    assert events["1"].wait(TIMEOUT)
    assert events["3"].wait(TIMEOUT)
    assert not events["2"].is_set()
    poller.wake()
    assert check.next_call() == ["2"]
    assert events["2"].wait(TIMEOUT)
    assert check.calls.empty()


@pytest.mark.parametrize(
    "failure", [CheckFailed("squeue timed out"), RuntimeError("bug in a parser"), ValueError("x")]
)
def test_a_failed_check_releases_nothing_and_polling_goes_on(failure: Exception) -> None:
    check = ScriptedCheck([failure, failure, failure, ["1"], []])
    poller = QueuePoller(check, HOUR, backoff_max=HOUR)
    event = poller.register("1")
    for _ in range(3):
        poller.wake()
        assert check.next_call() == ["1"]
        assert not event.is_set()
    poller.wake()
    assert check.next_call() == ["1"]
    assert poller.running
    assert not event.is_set()
    poller.wake()
    assert check.next_call() == ["1"]
    assert event.wait(TIMEOUT)
    assert poller.failures == 0


def test_backoff_doubles_and_is_capped(caplog: pytest.LogCaptureFixture) -> None:
    check = ScriptedCheck([CheckFailed("a"), CheckFailed("b"), CheckFailed("c"), []])
    poller = QueuePoller(check, 1.0, backoff_max=3.0)
    event = poller.register("1")
    with caplog.at_level("WARNING", logger="runner_grid._poller"):
        for _ in range(4):
            poller.wake()
            check.next_call()
        assert event.wait(TIMEOUT)
    waits = [r.getMessage().rsplit("next try in ", 1)[1] for r in caplog.records]
    assert waits == ["2 s", "3 s", "3 s"]


def test_job_registered_during_the_last_check_is_still_polled() -> None:
    """The poller is about to release its last job when another one registers."""
    poller: QueuePoller

    def register_b_then_answer(ids: Sequence[str]) -> list[str]:
        poller.register("B")  # the check runs outside the lock: this must not block
        return []

    check = ScriptedCheck([register_b_then_answer, ["B"], []])
    poller = QueuePoller(check, HOUR)
    event_a = poller.register("A")
    poller.wake()
    assert check.next_call() == ["A"]
    assert event_a.wait(TIMEOUT)
    poller.wake()
    assert check.next_call() == ["B"]
    poller.wake()
    assert check.next_call() == ["B"]
    assert poller.active() == []


def test_job_registered_right_after_the_poller_decided_to_exit_is_polled() -> None:
    """Registration in the window between "no job left" and the thread's end starts a new one."""
    registered: dict[str, threading.Event] = {}
    exited = threading.Event()

    class HookedPoller(QueuePoller):
        def _exited(self) -> None:
            if not exited.is_set():
                exited.set()
                registered["C"] = self.register("C")

    check = ScriptedCheck([[], []])
    poller = HookedPoller(check, HOUR)
    event_a = poller.register("A")
    first_thread = poller._thread
    poller.wake()
    assert check.next_call() == ["A"]
    assert event_a.wait(TIMEOUT)
    assert exited.wait(TIMEOUT)
    assert poller._thread is not first_thread
    poller.wake()
    assert check.next_call() == ["C"]
    assert registered["C"].wait(TIMEOUT)


def test_ids_are_compared_without_server_or_array_suffix() -> None:
    check = ScriptedCheck([["123", "124_4"], ["124_[1-5]"], []])
    poller = QueuePoller(check, HOUR)
    e1 = poller.register("123.server.example.org")
    e2 = poller.register("124")
    poller.wake()
    check.next_call()
    assert not e1.is_set()
    assert not e2.is_set()
    poller.wake()
    check.next_call()
    assert e1.wait(TIMEOUT)
    assert not e2.is_set()
    poller.wake()
    check.next_call()
    assert e2.wait(TIMEOUT)


def test_registering_the_same_id_twice_gives_the_same_event() -> None:
    poller = QueuePoller(ScriptedCheck([]), HOUR)
    assert poller.register("7") is poller.register("7")
    assert poller.active() == ["7"]


# --- the scheme check, with fake scheduler commands --------------------------------------------


def fake_command(bin_dir: Path, name: str, body: str) -> None:
    """Write a small Python program standing in for a scheduler command."""
    path = bin_dir / name
    path.write_text(f"#!{sys.executable}\nimport os, sys, time\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


def slurm_scheme() -> dict[str, Any]:
    return slurm.scheme()


def test_check_pins_the_format_and_drops_squeue_variables(
    fake_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SQUEUE_FORMAT", "%j %u")
    monkeypatch.setenv("SQUEUE_FORMAT2", "jobid:5")
    monkeypatch.setenv("SQUEUE_SORT", "-i")
    monkeypatch.setenv("SQUEUE_STATES", "R")
    fake_command(
        fake_bin,
        "squeue",
        "leaked = sorted(k for k in os.environ if k.startswith('SQUEUE_'))\n"
        "if leaked: print(' '.join(leaked)); sys.exit(0)\n"
        "assert '--format=%i %t' in sys.argv and '--noheader' in sys.argv, sys.argv\n"
        "ids = [a.split('=', 1)[1] for a in sys.argv if a.startswith('--jobs=')][0]\n"
        "print('\\n'.join(i + ' R' for i in ids.split(',')[:1]))",
    )
    check = SchemeCheck(slurm_scheme)
    assert check(["5", "6"]) == {"5"}
    assert check.count == 1
    assert "SQUEUE_FORMAT" not in query_env(slurm_scheme())


def test_check_failure_modes(fake_bin: Path) -> None:
    scheme = slurm_scheme()
    scheme["check_timeout"] = 0.5
    check = SchemeCheck(lambda: scheme)
    fake_command(fake_bin, "squeue", "print('socket timed out', file=sys.stderr); sys.exit(1)")
    with pytest.raises(CheckFailed, match="exited with status 1: socket timed out"):
        check(["5"])
    fake_command(fake_bin, "squeue", "print('JOBID PARTITION NAME')")
    with pytest.raises(CheckFailed, match="parser refused"):
        check(["5"])
    fake_command(fake_bin, "squeue", "time.sleep(60)")
    with pytest.raises(CheckFailed, match=r"ran longer than 0\.5 s"):
        check(["5"])
    (fake_bin / "squeue").unlink()
    with pytest.raises(CheckFailed, match="could not be started"):
        check(["5"])
    assert check.count == 4


def test_invalid_job_id_for_a_single_id_is_an_answer(fake_bin: Path) -> None:
    fake_command(
        fake_bin,
        "squeue",
        "print('slurm_load_jobs error: Invalid job id specified', file=sys.stderr); sys.exit(1)",
    )
    check = SchemeCheck(slurm_scheme)
    assert check(["5"]) == set()
    with pytest.raises(CheckFailed):
        check(["5", "6"])


def test_plams_style_bare_check_command(fake_bin: Path) -> None:
    fake_command(fake_bin, "qwatch", "print('JOB 11 running\\nJOB 12 queued')")
    scheme = {
        "commands": {
            "check": "qwatch --all",
            "running": lambda out: [line.split()[1] for line in out.splitlines()],
        }
    }
    check = SchemeCheck(lambda: scheme)
    assert check(["11", "99"]) == {"11", "12"}
