"""Transient submit faults on real schedulers: a lost reply is found by its tag, not resubmitted.

A PATH shim stands in front of the real sbatch/qsub. It runs the real command, so the job
is really queued, and then loses the reply: it prints what a socket time-out prints and
exits 1, or it hangs until the runner's submit time-out kills it. These are the faults a
busy controller produces now and then and this one cannot be made to produce on demand.
The runner must find the queued job by its tag in the real queue and not submit it again.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Callable

import pytest

from integration._schedulers import tool
from runner_core import JobManager, JobStatus, SingleJob

if TYPE_CHECKING:
    from pathlib import Path

    from runner_grid import GridRunner

pytestmark = pytest.mark.integration

SUBMIT = {"slurm": "sbatch", "sge": "qsub"}

SHIM = r"""
import os, subprocess, sys, time
real = os.environ["REAL_SUBMIT"]
log = os.environ["SHIM_LOG"]
proc = subprocess.run([real, *sys.argv[1:]], capture_output=True, text=True)
with open(log, "a") as fh:
    fh.write(f"{proc.returncode} {proc.stdout.strip()!r}\n")
if proc.returncode != 0:
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    sys.exit(proc.returncode)
if os.environ["SHIM_FAULT"] == "hang":
    time.sleep(60)
# the reply is lost: the job is queued, the caller hears a time-out
print("error: Socket timed out on send/recv operation; unable to send message to qmaster",
      file=sys.stderr)
sys.exit(1)
"""


@pytest.mark.parametrize("fault", ["lost", "hang"])
def test_a_lost_submit_reply_is_found_by_its_tag_and_not_submitted_again(
    scheduler: str,
    make_runner: Callable[..., GridRunner],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
) -> None:
    real = tool(SUBMIT[scheduler])
    assert real is not None
    bin_dir = tmp_path / "shim"
    bin_dir.mkdir()
    shim = bin_dir / SUBMIT[scheduler]
    shim.write_text(f"#!{sys.executable}\n{SHIM}")
    shim.chmod(0o755)
    log = tmp_path / "submits.log"
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("REAL_SUBMIT", real)
    monkeypatch.setenv("SHIM_LOG", str(log))
    monkeypatch.setenv("SHIM_FAULT", fault)
    runner = make_runner()
    runner.settings.submit_timeout = 5  # the hang is cut here
    runner.settings.submit_backoff = 0.1
    results = SingleJob(name="lost_reply", runscript="exit 3\n").run(
        jobrunner=runner, jobmanager=JobManager(tmp_path / "jobs")
    )
    runner.wait(timeout=120)
    assert (results.status, results.exit_code) == (JobStatus.CRASHED, 3), results.error
    assert results.jobid is not None
    lines = log.read_text().splitlines()
    assert len(lines) == 1, f"submitted {len(lines)} times: {lines}"
    assert lines[0].startswith("0 ")
    assert results.jobid in lines[0]
