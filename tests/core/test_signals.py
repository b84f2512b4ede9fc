"""SIGTERM, SIGHUP and SIGINT to a script with runners: no job process is left, exit status kept."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import pytest

from core.runner_helpers import TIMEOUT, wait_until
from core.signal_scripts import BACKGROUND, DRIVER, NESTED, PIDS_OF, PREAMBLE, UNTIL_GO

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

# After the driver has ended, its jobs' processes may still take a moment to vanish (a
# SIGKILLed process is gone once the kernel tore it down); more than this is a leak.
GONE_WITHIN = 3.0

SERIAL = ({"parallel": False, "bodies": [NESTED]},)
PARALLEL = ({"parallel": True, "bodies": [NESTED, BACKGROUND, NESTED]},)


def _stat(pid: int) -> Optional[list[str]]:
    """The fields of /proc/<pid>/stat from the state on (field 3), or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")


@dataclass(frozen=True)
class Proc:
    """A job's process as seen when it was up: its pid and start time (to spot a reused pid)."""

    pid: int
    start: str

    @classmethod
    def of(cls, pid: int) -> Optional[Proc]:
        fields = _stat(pid)
        if fields is None or fields[0] in ("Z", "X"):
            return None
        return cls(pid, fields[19])  # field 22: start time in clock ticks after boot

    def alive(self) -> bool:
        """True while this very process runs; a zombie or a reused pid counts as gone."""
        try:
            os.kill(self.pid, 0)
        except (ProcessLookupError, PermissionError):  # PermissionError: not ours, reused
            return False
        fields = _stat(self.pid)
        return fields is not None and fields[0] not in ("Z", "X") and fields[19] == self.start

    def kill(self) -> None:
        """SIGKILL this process's group and the process itself (a job's group is its own)."""
        fields = _stat(self.pid)
        if fields is None or not self.alive():
            return
        with contextlib.suppress(OSError):
            os.killpg(int(fields[2]), signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)

    def __str__(self) -> str:
        return f"{self.pid} ({_cmdline(self.pid)})"


def processes_left(procs: Sequence[Proc], within: float = GONE_WITHIN) -> list[Proc]:
    """Wait up to `within` s for every process of `procs` to end; return those still running."""
    deadline = time.monotonic() + within
    while True:
        left = [p for p in procs if p.alive()]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.005)


def describe_left(left: Sequence[Proc], procs: Sequence[Proc]) -> str:
    return f"processes left: {len(left)} of {len(procs)}" + "".join(f"\n  {p}" for p in left)


class Driver:
    """A user's script (signal_scripts.DRIVER) running, and the files it and its jobs write."""

    def __init__(
        self,
        folder: Path,
        runners: Sequence[dict[str, Any]],
        where: str,
        handler: Optional[str] = None,
        subclass: bool = False,
    ) -> None:
        self.folder = folder
        self.pids = folder / "pids"
        self.go = folder / "go"
        self.where = where
        preamble = PREAMBLE.format(pids=shlex.quote(str(self.pids)), go=shlex.quote(str(self.go)))
        self.expected = sum(PIDS_OF[body] for spec in runners for body in spec["bodies"])
        specs = [
            {"parallel": spec["parallel"], "bodies": [preamble + b for b in spec["bodies"]]}
            for spec in runners
        ]
        cfg = {
            "dir": str(folder),
            "work": str(folder / "work"),
            "runners": specs,
            "where": where,
            "handler": handler,
            "subclass": subclass,
        }
        (folder / "driver.json").write_text(json.dumps(cfg))
        script = folder / "driver.py"
        script.write_text(DRIVER)
        self.procs: list[Proc] = []
        self.out = self.err = ""
        # its own session, so a failed test can take down whatever it left
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(folder / "driver.json")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def recorded_pids(self) -> list[int]:
        try:
            text = self.pids.read_text()
        except FileNotFoundError:
            return []
        return [int(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the driver ended before the signal:\n{self.finish()}")
        if len(self.recorded_pids()) < self.expected:
            return False
        if self.where == "job.run":  # the main thread is inside a serial job's run
            return True
        state = self.folder / "state"
        return state.exists() and state.read_text() == self.where

    def wait_ready(self) -> list[Proc]:
        """Wait until every job process is up and the main thread is at `where`; return them."""
        wait_until(self._ready, f"{self.expected} job processes up, the driver at {self.where}")
        pids = self.recorded_pids()
        assert len(pids) == self.expected, f"pids {pids}, expected {self.expected}"
        procs = [Proc.of(pid) for pid in pids]
        self.procs = [p for p in procs if p is not None]
        dead = [pid for pid, p in zip(pids, procs) if p is None]
        assert not dead, f"job processes {dead} ended before the signal"
        return self.procs

    def finish(self) -> str:
        """Wait for the driver to end; return its stderr."""
        try:
            self.out, self.err = self.proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the driver did not end within {TIMEOUT} s") from None
        return self.err

    def jobs(self) -> list[list[Any]]:
        """[name, status, exit code] of each job, as the driver printed them at its end."""
        assert self.out, f"the driver printed no report; stderr:\n{self.err}"
        jobs: list[list[Any]] = json.loads(self.out)["jobs"]
        return jobs

    def cleanup(self) -> None:
        """Kill the driver's session and every job process still up, whatever happened."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.communicate()
        known = {p.pid for p in self.procs}
        late = [Proc.of(pid) for pid in self.recorded_pids() if pid not in known]
        for p in [*self.procs, *late]:
            if p is not None:
                p.kill()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Driver]]:
    """Start a Driver in `tmp_path`; every driver and job process is gone after the test."""
    drivers: list[Driver] = []

    def start(*args: Any, **kwargs: Any) -> Driver:
        drivers.append(Driver(tmp_path, *args, **kwargs))
        return drivers[-1]

    try:
        yield start
    finally:
        for driver in drivers:
            driver.cleanup()


def assert_ended_by(driver: Driver, signum: signal.Signals, procs: Sequence[Proc]) -> None:
    """The driver ended as `signum` unhandled would end it, and no process of a job is left."""
    driver.finish()
    left = processes_left(procs)
    status = driver.proc.returncode
    report = [
        f"exit status {status}, want {-signum} ({signum.name})",
        describe_left(left, procs),
        f"driver stderr:\n{driver.err}",
    ]
    assert not left, "\n".join(report)
    assert status == -signum, "\n".join(report)


SIGNALS = [pytest.param(signal.SIGTERM, id="SIGTERM"), pytest.param(signal.SIGHUP, id="SIGHUP")]
WHERE = [
    pytest.param(SERIAL, "job.run", id="serial-in-job.run"),
    pytest.param(PARALLEL, "runner.wait", id="parallel-in-runner.wait"),
    pytest.param(PARALLEL, "results.wait", id="parallel-in-results.wait"),
    pytest.param(PARALLEL, "exit", id="parallel-at-interpreter-exit"),
]


@pytest.mark.parametrize(("runners", "where"), WHERE)
@pytest.mark.parametrize("signum", SIGNALS)
def test_signal_kills_every_job_process_and_ends_the_script_as_the_signal(
    start: Callable[..., Driver],
    signum: signal.Signals,
    runners: Sequence[dict[str, Any]],
    where: str,
) -> None:
    driver = start(runners, where)
    procs = driver.wait_ready()
    driver.proc.send_signal(signum)
    assert_ended_by(driver, signum, procs)


def test_sigterm_cleans_up_every_live_runner(start: Callable[..., Driver]) -> None:
    # a parallel runner's jobs run while the main thread is in a serial runner's job
    runners = (
        {"parallel": True, "bodies": [NESTED, BACKGROUND]},
        {"parallel": False, "bodies": [NESTED]},
    )
    driver = start(runners, "job.run")
    procs = driver.wait_ready()
    driver.proc.send_signal(signal.SIGTERM)
    assert_ended_by(driver, signal.SIGTERM, procs)


def test_sighup_cleans_up_a_subclass_whose_call_calls_super(start: Callable[..., Driver]) -> None:
    driver = start(PARALLEL, "runner.wait", subclass=True)
    procs = driver.wait_ready()
    assert len((driver.folder / "calls").read_text().splitlines()) == 3
    driver.proc.send_signal(signal.SIGHUP)
    assert_ended_by(driver, signal.SIGHUP, procs)


def test_a_sigterm_handler_of_the_user_is_left_alone(start: Callable[..., Driver]) -> None:
    # Their handler ends the script at once (os._exit skips every clean-up): runner_core,
    # having left the signal to it, does nothing, so the jobs are still running afterwards.
    runners = ({"parallel": True, "bodies": [NESTED, BACKGROUND]},)
    driver = start(runners, "runner.wait", handler="exit")
    procs = driver.wait_ready()
    assert json.loads((driver.folder / "handler_kept").read_text()) is True
    driver.proc.send_signal(signal.SIGTERM)
    err = driver.finish()
    assert driver.proc.returncode == 7, err
    assert (driver.folder / "handled").read_text() == str(int(signal.SIGTERM))
    gone = [p for p in procs if not p.alive()]
    assert not gone, f"runner_core acted on the user's signal: {len(gone)} job processes ended"


def test_a_flag_setting_sigterm_handler_lets_the_script_go_on(start: Callable[..., Driver]) -> None:
    runners = ({"parallel": True, "bodies": [NESTED, BACKGROUND]},)
    driver = start(runners, "wait loop", handler="flag")
    procs = driver.wait_ready()
    assert json.loads((driver.folder / "handler_kept").read_text()) is True
    driver.proc.send_signal(signal.SIGTERM)
    err = driver.finish()
    assert driver.proc.returncode == 0, err
    assert json.loads(driver.out)["stop"] == [int(signal.SIGTERM)]
    assert [status for _, status, _ in driver.jobs()] == ["CANCELLED", "CANCELLED"]
    left = processes_left(procs)  # the user's own shutdown(cancel=True) killed them
    assert not left, describe_left(left, procs)


def test_an_ignored_sighup_stays_ignored_and_the_jobs_finish(start: Callable[..., Driver]) -> None:
    runners = ({"parallel": True, "bodies": [UNTIL_GO, UNTIL_GO]},)
    driver = start(runners, "runner.wait", handler="ignore-hup")
    procs = driver.wait_ready()
    assert json.loads((driver.folder / "handler_kept").read_text()) is True
    driver.proc.send_signal(signal.SIGHUP)
    driver.go.touch()
    err = driver.finish()
    assert driver.proc.returncode == 0, err
    assert driver.jobs() == [["r0j0", "SUCCESSFUL", 0], ["r0j1", "SUCCESSFUL", 0]]
    left = processes_left(procs)
    assert not left, describe_left(left, procs)


def test_ctrl_c_in_runner_wait_still_raises_keyboardinterrupt_and_kills_every_job(
    start: Callable[..., Driver],
) -> None:
    driver = start(PARALLEL, "runner.wait")
    procs = driver.wait_ready()
    driver.proc.send_signal(signal.SIGINT)
    err = driver.finish()
    left = processes_left(procs)
    assert not left, f"{describe_left(left, procs)}\ndriver stderr:\n{err}"
    assert driver.proc.returncode == 1, err
    assert "KeyboardInterrupt" in err
