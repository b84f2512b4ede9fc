"""Ctrl-C and the main thread (runner_core._interrupts): waits it always gets through, and
steps it cannot cut in half.

The fault the first tests stand for: the kernel hands a SIGINT to a job thread rather
than the main thread. CPython then runs only the C half of its handler there and
nothing wakes a main thread asleep in a lock or in waitpid. CI hit it once on 3.13
(`runner.wait()` ignored a Ctrl-C for good). `signal.pthread_kill` on a side thread
produces the same delivery on demand, so each case below hung before the fix.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from typing import TYPE_CHECKING

import pytest

from core.runner_helpers import TIMEOUT, wait_until
from core.test_process import alive, assert_all_gone, pids_in
from runner_core._interrupts import MAIN_WAIT_SLICE, wait_event, wait_process, wait_slice

if TYPE_CHECKING:
    from pathlib import Path

SIDE_THREAD_SIGINT = """
import signal, sys, threading, time
from runner_core import JobManager, JobRunner, SingleJob, config
config.kill_grace = 0.5
where = sys.argv[2]
manager = JobManager(sys.argv[1])
runner = JobRunner(parallel=where != "serial job", maxthreads=1 if where == "maxthreads" else 256)
body = "sleep 300 &\\necho $! > gc.pid\\necho $$ > sh.pid\\nwait\\n"

def sigint_in_a_side_thread():
    # wait until both pids are written and the main thread sleeps, then take the SIGINT here
    while len(list(manager.path.rglob("*.pid"))) < 2:
        time.sleep(0.01)
    time.sleep(0.5)
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)

threading.Thread(target=sigint_in_a_side_thread, daemon=True).start()
first = SingleJob("first", body)
first.run(runner, manager)  # "serial job": the main thread waits for the process here
if where == "runner.wait":
    runner.wait()
elif where == "results.wait":
    first.results.wait()
elif where == "maxthreads":
    SingleJob("second", "exit 0").run(runner, manager)  # blocks: one job taken already
print("not interrupted", flush=True)
"""


@pytest.mark.parametrize("where", ["runner.wait", "results.wait", "maxthreads", "serial job"])
def test_sigint_taken_by_another_thread_still_interrupts_the_main_thread(
    tmp_path: Path, where: str
) -> None:
    script = tmp_path / "user_script.py"
    script.write_text(textwrap.dedent(SIDE_THREAD_SIGINT))
    work = tmp_path / "work"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(work), where],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        for pid in pids_in(work):  # a hang must not leave `sleep 300` behind either
            if alive(pid):
                os.kill(pid, 9)
    assert "not interrupted" not in out
    assert "KeyboardInterrupt" in err
    assert proc.returncode != 0
    assert_all_gone(pids_in(work))


def test_wait_slice_cuts_waits_in_the_main_thread_only() -> None:
    assert threading.current_thread() is threading.main_thread()  # pytest runs tests here
    assert wait_slice(None) == MAIN_WAIT_SLICE
    assert wait_slice(0.01) == 0.01
    assert wait_slice(60.0) == MAIN_WAIT_SLICE
    seen: list[float | None] = []
    side = threading.Thread(target=lambda: seen.extend([wait_slice(None), wait_slice(60.0)]))
    side.start()
    side.join()
    assert seen == [None, 60.0]


def test_wait_event_in_the_main_thread_sees_a_set_from_another_thread() -> None:
    event = threading.Event()
    timer = threading.Timer(MAIN_WAIT_SLICE * 2.5, event.set)  # lands between two slices
    timer.start()
    assert wait_event(event) is True
    timer.join()


def test_wait_event_times_out_and_reports_a_late_set() -> None:
    event = threading.Event()
    start = time.monotonic()
    assert wait_event(event, 0.3) is False
    assert time.monotonic() - start >= 0.3
    event.set()
    assert wait_event(event, 0) is True


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "no-pidfd"])
def test_wait_process_returns_the_exit_code(monkeypatch: pytest.MonkeyPatch, pidfd: bool) -> None:
    if not pidfd:
        monkeypatch.delattr(os, "pidfd_open", raising=False)
    elif not hasattr(os, "pidfd_open"):
        pytest.fail("os.pidfd_open is missing: this Linux or Python lacks the fast path")
    proc = subprocess.Popen(["sh", "-c", "sleep 0.5; exit 7"])
    assert wait_process(proc) == 7
    assert wait_process(proc) == 7  # a second wait on an ended process is harmless


def test_wait_process_on_a_process_reaped_already() -> None:
    proc = subprocess.Popen(["sh", "-c", "exit 4"])
    wait_until(lambda: proc.poll() is not None, "the process was reaped")
    assert wait_process(proc) == 4


def test_a_job_thread_waits_without_slices() -> None:
    """Off the main thread, waits go straight to the blocking call (no periodic wake-ups)."""
    calls: list[float | None] = []

    class Recorder(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            calls.append(timeout)
            return True

    side = threading.Thread(target=wait_event, args=(Recorder(),))
    side.start()
    side.join()
    assert calls == [None]


DEFERRAL = """
import os, signal, time
from runner_core import JobRunner
from runner_core._interrupts import deferred_interrupts
JobRunner()  # the first runner installs runner_core's SIGINT handler
try:
    with deferred_interrupts():
        with deferred_interrupts():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
            print("inner step ran to its end")
        print("outer step ran to its end")
except KeyboardInterrupt:
    print("raised as the outer step ended")
try:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)
    print("not interrupted")
except KeyboardInterrupt:
    print("raised at once outside a step")
"""


def test_deferred_interrupts_hold_a_ctrl_c_until_the_outermost_step_ends(tmp_path: Path) -> None:
    script = tmp_path / "defer.py"
    script.write_text(DEFERRAL)
    done = subprocess.run(
        [sys.executable, str(script)], check=False, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert done.stdout.splitlines() == [
        "inner step ran to its end",
        "outer step ran to its end",
        "raised as the outer step ended",
        "raised at once outside a step",
    ], done.stderr


# Fake: the SIGINT is sent from inside the start of the job's process, between Popen and
# the runner's record of it, a window a real Ctrl-C hits only by chance (CI did, on 3.9,
# with the machine under load). Before the fix the process ran on after the script ended.
INTERRUPTED_START = """
import os, signal, sys, time
from runner_core import JobManager, JobRunner, SingleJob, config
from runner_core import _process
config.kill_grace = 0.5
original = _process._start

def start_then_ctrl_c(*args):
    proc = original(*args)
    with open(sys.argv[2], "w") as f:
        f.write(str(proc.pid))
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.5)  # the handler runs in here unless the step defers it
    return proc

_process._start = start_then_ctrl_c
SingleJob("late", "exec sleep 300").run(JobRunner(), JobManager(sys.argv[1]))
print("not interrupted")
"""


def test_ctrl_c_between_starting_and_tracking_a_process_still_kills_it(tmp_path: Path) -> None:
    script = tmp_path / "user_script.py"
    script.write_text(INTERRUPTED_START)
    pid_file = tmp_path / "job.pid"
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "work"), str(pid_file)],
        check=False,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    pid = int(pid_file.read_text())
    try:
        assert "not interrupted" not in done.stdout
        assert "KeyboardInterrupt" in done.stderr
        assert_all_gone([pid])
    finally:
        if alive(pid):
            os.kill(pid, 9)
