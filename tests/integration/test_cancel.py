"""Cancelling on real schedulers: shutdown(cancel=True) and Ctrl-C leave none of the jobs queued."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
from typing import TYPE_CHECKING, Callable

import pytest

from integration._schedulers import PATIENCE, SubmittedIds, queue_ids, wait_for
from runner_core import JobManager, JobStatus, SingleJob

if TYPE_CHECKING:
    from pathlib import Path

    from runner_grid import GridRunner

pytestmark = pytest.mark.integration


def test_shutdown_cancel_leaves_none_of_the_runners_jobs_queued(
    scheduler: str,
    make_runner: Callable[..., GridRunner],
    submitted: SubmittedIds,
    tmp_path: Path,
) -> None:
    """Two queued jobs are cancelled in the scheduler; a third, waiting for a slot, never runs."""
    runner = make_runner(maxjobs=2)
    manager = JobManager(tmp_path / "jobs")
    results = [
        SingleJob(name=f"long{i}", runscript="sleep 120\n").run(
            jobrunner=runner, jobmanager=manager
        )
        for i in range(3)
    ]
    ids = wait_for(lambda: len(submitted.snapshot()) == 2 and submitted.snapshot(), "2 submits")
    wait_for(lambda: set(ids) <= queue_ids(scheduler), "both jobs in the real queue")

    runner.shutdown(cancel=True, timeout=PATIENCE)

    assert [r.status for r in results] == [JobStatus.CANCELLED] * 3
    assert not set(ids) & queue_ids(scheduler)
    assert len(submitted.snapshot()) == 2, "the job waiting for a slot was submitted anyway"


def test_job_cancel_removes_that_job_only(
    scheduler: str,
    make_runner: Callable[..., GridRunner],
    submitted: SubmittedIds,
    tmp_path: Path,
) -> None:
    """job.cancel() on a queued grid job takes it out of the queue; its sibling keeps running."""
    runner = make_runner()
    manager = JobManager(tmp_path / "jobs")
    doomed, sibling = (SingleJob(name=n, runscript="sleep 120\n") for n in ("doomed", "sibling"))
    results = [job.run(jobrunner=runner, jobmanager=manager) for job in (doomed, sibling)]
    wait_for(lambda: len(runner.queued) == 2, "both jobs in the runner's queue")
    ids = set(runner.queued)
    wait_for(lambda: ids <= queue_ids(scheduler), "both jobs in the real queue")

    doomed.cancel()
    results[0].wait(timeout=PATIENCE)

    assert results[0].status is JobStatus.CANCELLED
    left = set(runner.queued)
    assert len(left) == 1
    assert left <= queue_ids(scheduler), "the sibling left the queue too"
    assert not (ids - left) & queue_ids(scheduler), "the cancelled job is still queued"
    assert not results[1].done


USER_SCRIPT = textwrap.dedent(
    """
    import json, logging, sys, time
    from runner_core import JobManager, SingleJob
    from runner_grid import GridRunner

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    grid, workdir, mode = sys.argv[1:4]
    runner = GridRunner(grid=grid, sleepstep=0.5)
    manager = JobManager(workdir)
    jobs = [SingleJob(name=f"long{i}", runscript="sleep 120\\n") for i in range(2)]

    def start():
        results = [job.run(jobrunner=runner, jobmanager=manager) for job in jobs]
        while len(runner.queued) < 2:
            time.sleep(0.05)
        print("READY " + " ".join(runner.queued), flush=True)
        return results

    if mode == "with":
        try:
            with runner:
                results = start()
                for r in results:
                    r.wait()
        except KeyboardInterrupt:
            print("STATUS " + json.dumps([r.status.name for r in results]), flush=True)
            sys.exit(130)
    else:
        results = start()
        for r in results:
            r.wait()
    """
)


@pytest.mark.parametrize(
    ("mode", "signum"),
    [
        ("with", signal.SIGINT),
        ("bare", signal.SIGINT),
        ("bare", signal.SIGTERM),
        ("bare", signal.SIGHUP),
    ],
    ids=["with-SIGINT", "bare-SIGINT", "bare-SIGTERM", "bare-SIGHUP"],
)
def test_a_signal_to_the_users_script_cancels_its_jobs(
    scheduler: str, submitted: SubmittedIds, tmp_path: Path, mode: str, signum: int
) -> None:
    """SIGINT, SIGTERM or SIGHUP to a user's script waiting on grid jobs cancels them.

    ``with``: the script runs its jobs in ``with runner:`` and reports the statuses after the
    KeyboardInterrupt (all CANCELLED). ``bare``: the signal's exception is not caught at all;
    the library's exit hook cancels the jobs, and after SIGTERM/SIGHUP the script then ends
    by that signal.
    """
    script = tmp_path / "user_script.py"
    script.write_text(USER_SCRIPT)
    stderr_file = tmp_path / "stderr.txt"
    with stderr_file.open("w") as stderr_sink:
        proc = subprocess.Popen(
            [sys.executable, str(script), scheduler, str(tmp_path / "jobs"), mode],
            stdout=subprocess.PIPE,
            stderr=stderr_sink,
            text=True,
        )
    lines: list[str] = []

    def read() -> None:
        for line in proc.stdout or ():
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    ids: list[str] = []
    try:
        ready = wait_for(
            lambda: next((s for s in lines if s.startswith("READY")), None) or proc.poll(),
            "the script's READY line",
        )
        assert isinstance(ready, str), f"script ended early: {stderr_file.read_text()}"
        ids = ready.split()[1:]
        submitted.ids.extend(ids)  # the fixture cancels them should the test fail
        assert len(ids) == 2
        assert set(ids) <= queue_ids(scheduler), "jobs not in the real queue"
        proc.send_signal(signum)
        proc.wait(timeout=PATIENCE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(PATIENCE)
        if proc.stdout is not None:
            proc.stdout.close()
    stderr = stderr_file.read_text()
    assert proc.returncode != 0
    if signum != signal.SIGINT:
        assert proc.returncode == -signum, f"ended with {proc.returncode}; stderr:\n{stderr_file}"
    assert not set(ids) & queue_ids(scheduler), f"still queued after Ctrl-C; stderr:\n{stderr}"
    if mode == "with":
        status = next(s for s in lines if s.startswith("STATUS"))
        assert json.loads(status.split(" ", 1)[1]) == ["CANCELLED", "CANCELLED"]
