"""Helpers for the journal and resume tests: a driver script run as its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any, Optional

from core.runner_helpers import TIMEOUT

if TYPE_CHECKING:
    from pathlib import Path

# A user's script: runs the jobs of the JSON spec in argv[1] in the JobManager folder
# argv[2], prints {name: [status, exit code, restored]} as JSON. Spec:
#   {"jobs": [[name, body], ...], "parallel": bool, "maxjobs": int, "resume": bool}
DRIVER = """\
import json, sys
from runner_core import JobManager, JobRunner, SingleJob, config

spec = json.loads(sys.argv[1])
config.kill_grace = 0.3
runner = JobRunner(parallel=spec.get("parallel", True), maxjobs=spec.get("maxjobs", 2))
manager = JobManager(sys.argv[2], resume=spec.get("resume", False))
results = [SingleJob(n, body).run(jobrunner=runner, jobmanager=manager) for n, body in spec["jobs"]]
runner.wait()
print(json.dumps({r.job.name: [r.status.name, r.exit_code, r.restored] for r in results}))
"""


# A runscript body: counts its starts in its folder, then ends with `code`.
def counting_body(code: int, sleep: float = 0.0) -> str:
    """A runscript that appends a line to `starts` in its folder, sleeps, exits with `code`."""
    nap = f"sleep {sleep}\n" if sleep else ""
    return f"echo start >> starts\n{nap}echo end >> ends\nexit {code}\n"


def run_driver(
    tmp: Path,
    spec: dict[str, Any],
    folder: Path,
    kill_at: Optional[int] = None,
    wait: bool = True,
) -> subprocess.Popen[str]:
    """Start the driver on `folder` (SIGKILLing itself at journal record `kill_at`)."""
    script = tmp / "driver.py"
    if not script.exists():
        script.write_text(DRIVER)
    env = dict(os.environ)
    env.pop("RUNNER_JOURNAL_TEST_KILL_AT", None)
    if kill_at is not None:
        env["RUNNER_JOURNAL_TEST_KILL_AT"] = str(kill_at)
    proc = subprocess.Popen(
        [sys.executable, str(script), json.dumps(spec), str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    if wait:
        proc.wait(TIMEOUT)
    return proc


def outcome(proc: subprocess.Popen[str]) -> dict[str, list[Any]]:
    """The driver's printed results; fails with its stderr when it did not finish."""
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    result: dict[str, list[Any]] = json.loads(out)
    return result


def starts(folder: Path) -> int:
    """How many times the job of `folder` started."""
    try:
        return len((folder / "starts").read_text().splitlines())
    except FileNotFoundError:
        return 0
