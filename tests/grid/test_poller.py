"""Tests for the queue poller and the scheme check (of a scheduler class and of a Settings scheme).

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

from runner_grid import Scheduler, SchedulerCommandError, Scheme
from runner_grid._poller import QueuePoller, SchemeCheck
from runner_grid.schemes import slurm
from runner_grid.schemes.slurm import Slurm

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence
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
    "failure",
    [SchedulerCommandError("squeue timed out"), RuntimeError("bug in a parser"), ValueError("x")],
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
    check = ScriptedCheck(
        [SchedulerCommandError("a"), SchedulerCommandError("b"), SchedulerCommandError("c"), []]
    )
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


def slurm_settings() -> Scheme:
    return Scheme.of(slurm.scheme(), "slurm")


#: The two ways a scheduler reaches the check: the class, and the Settings adapted.
SOURCES: dict[str, Callable[[], Scheduler]] = {"class": Slurm, "settings": slurm_settings}


@pytest.fixture(params=sorted(SOURCES))
def source(request: pytest.FixtureRequest) -> Callable[[], Scheduler]:
    return SOURCES[request.param]


def test_check_pins_the_format_and_drops_squeue_variables(
    fake_bin: Path, monkeypatch: pytest.MonkeyPatch, source: Callable[[], Scheduler]
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
    check = SchemeCheck(source)
    assert check(["5", "6"]) == {"5"}
    assert check.started == {"5"}
    assert check.count == 1
    assert "SQUEUE_FORMAT" not in source().environment()
    assert "PATH" in source().environment()


def test_check_failure_modes(fake_bin: Path, source: Callable[[], Scheduler]) -> None:
    scheduler = source()
    scheduler.check_timeout = 0.5
    check = SchemeCheck(lambda: scheduler)
    fake_command(fake_bin, "squeue", "print('socket timed out', file=sys.stderr); sys.exit(1)")
    with pytest.raises(SchedulerCommandError, match="exited with status 1: socket timed out"):
        check(["5"])
    fake_command(fake_bin, "squeue", "print('JOBID PARTITION NAME')")
    with pytest.raises(SchedulerCommandError, match="parser refused"):
        check(["5"])
    fake_command(fake_bin, "squeue", "time.sleep(60)")
    with pytest.raises(SchedulerCommandError, match=r"ran longer than 0\.5 s"):
        check(["5"])
    (fake_bin / "squeue").unlink()
    with pytest.raises(SchedulerCommandError, match="could not be started"):
        check(["5"])
    assert check.count == 4


def test_invalid_job_id_for_a_single_id_is_an_answer(
    fake_bin: Path, source: Callable[[], Scheduler]
) -> None:
    fake_command(
        fake_bin,
        "squeue",
        "print('slurm_load_jobs error: Invalid job id specified', file=sys.stderr); sys.exit(1)",
    )
    check = SchemeCheck(source)
    assert check(["5"]) == set()
    with pytest.raises(SchedulerCommandError):
        check(["5", "6"])


def plams_scheme(**commands: Any) -> Scheme:
    """A scheme as PLAMS users wrote them: the seed's keys only, `check` a bare command."""
    return Scheme.of(
        {
            "workdir": "-D",
            "output": "-o",
            "error": "-e",
            "commands": {
                "submit": "qsub",
                "check": "qwatch --all",
                "getid": lambda out: out.split()[-1],
                "running": lambda out: [line.split()[1] for line in out.splitlines()],
                **commands,
            },
        }
    )


def test_plams_style_bare_check_command(fake_bin: Path) -> None:
    fake_command(
        fake_bin,
        "qwatch",
        "assert sys.argv[1:] == ['--all']; print('JOB 11 running\\nJOB 12 queued')",
    )
    check = SchemeCheck(plams_scheme)
    assert check(["11", "99"]) == {"11", "12"}
    assert check.started == set()  # the scheme has no `started`: the listing tells none


def test_a_started_parser_that_refuses_the_listing_starts_nothing_and_fails_nothing(
    fake_bin: Path,
) -> None:
    fake_command(fake_bin, "qwatch", "print('JOB 11 running\\nJOB 12 queued')")

    def started(out: str) -> list[str]:
        if "running" in out:
            raise ValueError("cannot read it")
        return []

    check = SchemeCheck(lambda: plams_scheme(started=started))
    assert check(["11"]) == {"11", "12"}
    assert check.started == set()
    check = SchemeCheck(
        lambda: plams_scheme(started=lambda out: [line.split()[1] for line in out.splitlines()[:1]])
    )
    assert check(["11"]) == {"11", "12"}
    assert check.started == {"11"}


def test_check_errors_of_a_settings_scheme_may_answer(fake_bin: Path) -> None:
    fake_command(fake_bin, "qwatch", "print('gone: 11', file=sys.stderr); sys.exit(3)")
    seen: list[tuple[list[str], int]] = []

    def check_error(ids: list[str], rc: int, out: str, err: str) -> list[str] | None:
        seen.append((ids, rc))
        return ["12"] if "gone" in err else None

    check = SchemeCheck(lambda: plams_scheme(check_error=check_error))
    assert check(["11", "12"]) == {"12"}
    assert seen == [(["11", "12"], 3)]
    with pytest.raises(SchedulerCommandError, match="exited with status 3: gone: 11"):
        SchemeCheck(plams_scheme)(["11", "12"])
