"""Runs that outlive their driver, on the real SLURM and Grid Engine.

A driver script submits jobs (plain, or as an array), then dies by SIGKILL with its jobs in
the queue. Running it again with ``JobManager(folder, resume=True)`` waits for those jobs
instead of submitting them again, and each gets its real exit code; ``runner cancel DIR``
cancels the jobs of a dead driver; ``config.grid_jobs_on_exit = "keep"`` leaves them queued
on SIGTERM for a later resume.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

import pytest

from integration._schedulers import PATIENCE, queue_ids, wait_for
from runner_core import JobStatus, read_journal

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

DRIVER = textwrap.dedent(
    """
    import contextlib, json, logging, os, signal, sys, time
    from runner_core import JobManager, SingleJob, config
    from runner_grid import GridRunner

    folder, scheduler, mode, arrays, gate = sys.argv[1:6]
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    config.grid_jobs_on_exit = "keep" if mode == "keep" else "cancel"
    grid = GridRunner(grid=scheduler, sleepstep=0.5)
    manager = JobManager(folder, resume=mode == "resume")
    jobs = [
        SingleJob(f"j{i}", f"while [ ! -e {gate} ]; do sleep 0.2; done\\nexit {i}\\n")
        for i in range(3)
    ]
    with grid.batch() if arrays == "arrays" else contextlib.nullcontext():
        results = [job.run(jobrunner=grid, jobmanager=manager) for job in jobs]
    if mode in ("kill", "keep"):
        while not all(r.jobid for r in results):
            time.sleep(0.05)
        print("QUEUED", flush=True)
        if mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(300)  # the test sends SIGTERM
    grid.wait(120)
    print(json.dumps([[r.job.name, r.status.name, r.exit_code, r.jobid] for r in results]))
    """
)


def _driver(tmp_path: Path, scheduler: str, mode: str, arrays: str) -> subprocess.Popen[str]:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    return subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "run"), scheduler, mode, arrays,
         str(tmp_path / "gate")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _recorded_ids(tmp_path: Path) -> dict[str, str]:
    state = read_journal(tmp_path / "run")
    return {r.name: r.jobid for r in state.jobs if r.jobid is not None}


def _wait_queued(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "QUEUED", (line, proc.stderr.read() if proc.stderr else "")


@pytest.mark.parametrize("arrays", ["plain", "arrays"])
def test_a_killed_driver_is_resumed_without_submitting_again(
    scheduler: str, tmp_path: Path, arrays: str
) -> None:
    first = _driver(tmp_path, scheduler, "kill", arrays)
    drivers = [first]
    try:
        _wait_queued(first)
        first.communicate(timeout=PATIENCE)
        assert first.returncode == -signal.SIGKILL
        ids = _recorded_ids(tmp_path)
        assert sorted(ids) == ["j0", "j1", "j2"]
        assert {i.replace(".", "_").split("_")[0] for i in ids.values()} <= queue_ids(scheduler)

        second = _driver(tmp_path, scheduler, "resume", arrays)
        drivers.append(second)
        # The jobs are still queued (waiting for the gate) when the second driver takes them.
        wait_for(lambda: _adopted(tmp_path), "the second driver to take the jobs over")
        (tmp_path / "gate").touch()
        out, err = second.communicate(timeout=PATIENCE)
        assert second.returncode == 0, err
        assert "submitting" not in err  # nothing submitted again
        ends = {name: (status, code, jobid) for name, status, code, jobid in json.loads(out)}
        assert ends == {
            "j0": ("SUCCESSFUL", 0, ids["j0"]),
            "j1": ("CRASHED", 1, ids["j1"]),
            "j2": ("CRASHED", 2, ids["j2"]),
        }
    finally:
        (tmp_path / "gate").touch()
        for proc in drivers:
            _end(proc)


def _end(proc: subprocess.Popen[str]) -> None:
    """Kill the driver if it still runs, and close its pipes."""
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=PATIENCE)


def _adopted(tmp_path: Path) -> bool:
    """True once the second driver's session has recorded every job (it took them over)."""
    state = read_journal(tmp_path / "run")
    return len(state.jobs) == 3 and all(r.session >= 2 for r in state.jobs)


def test_runner_cancel_cancels_the_queued_jobs_of_a_dead_driver(
    scheduler: str, tmp_path: Path
) -> None:
    first = _driver(tmp_path, scheduler, "kill", "arrays")
    try:
        _wait_queued(first)
        first.communicate(timeout=PATIENCE)
        assert first.returncode == -signal.SIGKILL
        ids = _recorded_ids(tmp_path)
        proc = subprocess.run(
            [sys.executable, "-m", "runner_core", "cancel", str(tmp_path / "run")],
            capture_output=True,
            text=True,
            timeout=PATIENCE,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        bases = {i.replace(".", "_").split("_")[0] for i in ids.values()}
        wait_for(lambda: not bases & queue_ids(scheduler), "the cancelled jobs to leave the queue")
        state = read_journal(tmp_path / "run")
        assert {r.name: r.status for r in state.jobs} == dict.fromkeys(
            ("j0", "j1", "j2"), JobStatus.CANCELLED
        )
    finally:
        (tmp_path / "gate").touch()
        _end(first)


def test_keep_on_sigterm_leaves_the_jobs_queued_for_a_resume(
    scheduler: str, tmp_path: Path
) -> None:
    first = _driver(tmp_path, scheduler, "keep", "plain")
    try:
        _wait_queued(first)
        first.send_signal(signal.SIGTERM)
        _out, err = first.communicate(timeout=PATIENCE)
        assert first.returncode == -signal.SIGTERM, err
        assert "left in the scheduler's queue" in err
        assert "runner resume" in err
        ids = _recorded_ids(tmp_path)
        bases = {i.replace(".", "_").split("_")[0] for i in ids.values()}
        assert bases <= queue_ids(scheduler)  # still queued

        (tmp_path / "gate").touch()
        second = _driver(tmp_path, scheduler, "resume", "plain")
        try:
            out, err = second.communicate(timeout=PATIENCE)
        finally:
            _end(second)
        assert second.returncode == 0, err
        assert "submitting" not in err
        assert [code for _n, _s, code, _j in json.loads(out)] == [0, 1, 2]
    finally:
        (tmp_path / "gate").touch()
        _end(first)
