"""Tests for GridRunner against a fake scheduler on a temporary PATH.

`fsub`, `fstat`, `fcancel` and `facct` are small Python programs standing in for a scheduler's
submit, queue check, cancel and accounting commands. They produce on demand what a real daemon
cannot: submit failures, answers without an id, checks that fail a given number of times, jobs
killed without a trace. A job runs the submitted script as a background process group; a job
that must stay queued waits for a "gate" file the test creates. The real SLURM and Grid Engine
are exercised by tests/integration.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from runner_core import JobManager, JobStatus, SingleJob
from runner_grid import GridRunner
from runner_grid.schemes import slurm
from runner_settings import Settings

TIMEOUT = 60.0

FAKE = r"""
import fcntl, json, os, signal, subprocess, sys, time
state = os.environ["FAKE_SCHED_DIR"]
name = os.path.basename(sys.argv[0])
args = sys.argv[1:]

def ids_alive():
    out = []
    for f in sorted(os.listdir(state)):
        if f.endswith(".pid") and not os.path.exists(os.path.join(state, f[:-4] + ".done")):
            out.append(f[:-4])
    return out

def countdown(var):
    path = os.environ.get(var)
    if not path or not os.path.exists(path):
        return False
    with open(path) as fh:
        n = int(fh.read() or 0)
    if n <= 0:
        return False
    with open(path, "w") as fh:
        fh.write(str(n - 1))
    return True

if name == "fsub":
    with open(os.path.join(state, "lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        alive = len(ids_alive())  # once: a job may end meanwhile (its .done is not locked)
        limit = os.environ.get("FAKE_SUBMIT_LIMIT")  # a QOS's MaxSubmitJobsPerUser
        refused = bool(limit) and alive >= int(limit or 0)
        with open(os.path.join(state, "submits.jsonl"), "a") as fh:
            fh.write(json.dumps({"argv": args, "queued": alive, "refused": refused}) + "\n")
        if os.environ.get("FAKE_SUBMIT") == "fail":
            print("fsub: error: Batch job submission failed: Invalid partition", file=sys.stderr)
            sys.exit(1)
        if refused:
            open(os.path.join(state, "refusals.log"), "a").write("refused\n")
            print("fsub: error: QOSMaxSubmitJobPerUserLimit", file=sys.stderr)
            print("fsub: error: Batch job submission failed: Job violates accounting/QOS "
                  "policy (job submit limit, user's size and/or time limits)", file=sys.stderr)
            sys.exit(1)
        gate = os.environ.get("FAKE_SUBMIT_GATE")
        if gate:
            open(gate + ".waiting", "w").close()
            while not os.path.exists(gate):
                time.sleep(0.01)
        if os.environ.get("FAKE_SUBMIT") == "noid":
            print("Welcome to the cluster")
            sys.exit(0)
        counter = os.path.join(state, "counter")
        n = int(open(counter).read()) + 1 if os.path.exists(counter) else 100
        open(counter, "w").write(str(n))
        opts = dict(zip(args[:-1:2], args[1:-1:2]))
        out = opts.get("-o", os.devnull)
        proc = subprocess.Popen(
            ["sh", "-c", '"$0"; echo $? > "$1"', args[-1], os.path.join(state, f"{n}.done")],
            cwd=opts["-D"], stdout=open(out, "ab"), stderr=open(opts["-e"], "ab"),
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        open(os.path.join(state, f"{n}.pid"), "w").write(str(proc.pid))
        late_gate = os.environ.get("FAKE_SUBMIT_LATE_GATE")  # queued, id not printed yet
        if late_gate:
            open(late_gate + ".waiting", "w").close()
            while not os.path.exists(late_gate):
                time.sleep(0.01)
    print("Submitted batch job", n)
elif name == "fstat":
    with open(os.path.join(state, "checks.log"), "a") as fh:
        fh.write(" ".join(args) + "\n")
    if countdown("FAKE_CHECK_FAILS"):
        print("fstat: error: Socket timed out on send/recv operation", file=sys.stderr)
        sys.exit(1)
    for i in ids_alive():
        print(i, "R")
elif name == "fcancel":
    gate = os.environ.get("FAKE_CANCEL_GATE")  # a slow cancel command: waits for the test
    if gate:
        open(gate + ".waiting", "w").close()
        while not os.path.exists(gate):
            time.sleep(0.01)
    with open(os.path.join(state, "cancels.log"), "a") as fh:
        fh.write(" ".join(args) + "\n")
    for i in args:
        try:
            os.killpg(int(open(os.path.join(state, f"{i}.pid")).read()), signal.SIGKILL)
        except (OSError, ValueError):
            pass
        open(os.path.join(state, f"{i}.done"), "w").write("killed")
elif name == "facct":
    path = os.path.join(state, f"{args[0]}.acct")
    if os.path.exists(path):
        print(open(path).read())
"""


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The fake scheduler's state folder; its commands are first on PATH."""
    state = tmp_path / "sched"
    state.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("fsub", "fstat", "fcancel", "facct"):
        (bin_dir / name).write_text(f"#!{sys.executable}\n{FAKE}")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SCHED_DIR", str(state))
    yield state
    # a failed test may leave fake jobs running: end their process groups
    for pid_file in state.glob("*.pid"):
        if not pid_file.with_suffix(".done").exists():
            with contextlib.suppress(OSError, ValueError):
                os.killpg(int(pid_file.read_text()), signal.SIGKILL)


def fake_scheme(**extra: Any) -> Settings:
    scheme = Settings(
        {
            "workdir": "-D",
            "output": "-o",
            "error": "-e",
            "special": {"memory": "--mem=", "nodes": "-N ", "select": "-l select="},
            "commands": {
                "submit": "fsub",
                "getid": slurm.getid,
                "check": ["fstat", "--all"],
                "running": slurm.running,
                "cancel": "fcancel",
                "exitcode": lambda jobid: [["facct", jobid]],
                "parse_exitcode": lambda out: int(out) if out.strip() else None,
            },
            "exitcode_wait": 0,
        }
    )
    scheme.update(extra)
    return scheme


def wait_until(condition: Callable[[], bool]) -> None:
    """Poll a condition the fake scheduler's files reveal (they offer no event to wait on)."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def submits(state: Path) -> list[dict[str, Any]]:
    path = state / "submits.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def run_jobs(
    runner: GridRunner, manager: JobManager, jobs: list[SingleJob], **flags: Any
) -> list[Any]:
    results = [job.run(jobrunner=runner, jobmanager=manager, **flags) for job in jobs]
    runner.wait(timeout=TIMEOUT)
    return results


def test_real_exit_codes_and_one_check_command_per_interval(fake: Path, tmp_path: Path) -> None:
    runner = GridRunner(grid=fake_scheme(), sleepstep=0.05)
    manager = JobManager(tmp_path / "work")
    jobs = [
        SingleJob(name=f"j{code}", runscript=f"echo out {code}\nexit {code}\n")
        for code in (0, 3, 7)
    ]
    results = run_jobs(runner, manager, jobs)
    assert [(r.status, r.exit_code) for r in results] == [
        (JobStatus.SUCCESSFUL, 0),
        (JobStatus.CRASHED, 3),
        (JobStatus.CRASHED, 7),
    ]
    assert (jobs[1].path / "j3.out").read_text() == "out 3\n"
    checks = (fake / "checks.log").read_text().splitlines()
    assert checks
    assert all(line == "--all" for line in checks)
    assert runner.check_count == len(checks)
    assert runner.queued == []


def test_submit_argv_layout_flags_spaces_and_wrapper(fake: Path, tmp_path: Path) -> None:
    runner = GridRunner(grid=fake_scheme(), sleepstep=0.05)
    manager = JobManager(tmp_path / "my work")
    job = SingleJob(name="two words", runscript="echo fine\n")
    job.settings.runscript.pre = "#SBATCH --comment='kept'\n"
    (result,) = run_jobs(runner, manager, [job], memory="4G", nodes=2, J="a b; $x", O="", x=None)
    assert result.status is JobStatus.SUCCESSFUL, result.error
    (submit,) = submits(fake)
    folder = str(job.path)
    assert submit["argv"] == [
        "-D", folder, "-e", f"{folder}/two words.err", "-o", f"{folder}/two words.out",
        "--mem=4G", "-N", "2", "-J", "a b; $x", "-O", f"{folder}/two_words.grid",
    ]  # fmt: skip
    wrapper = Path(folder, "two_words.grid").read_text().splitlines()
    assert wrapper[:2] == ["#!/bin/sh", "#SBATCH --comment='kept'"]
    assert Path(folder, "two words.exitcode").read_text() == "0\n"


def test_stdout_redirect_leaves_the_output_flag_out(fake: Path, tmp_path: Path) -> None:
    runner = GridRunner(grid=fake_scheme(), sleepstep=0.05)
    job = SingleJob(name="live", runscript="echo live output\n")
    job.settings.runscript.stdout_redirect = True
    (result,) = run_jobs(runner, JobManager(tmp_path / "w"), [job])
    assert result.ok
    assert "-o" not in submits(fake)[0]["argv"]
    assert (job.path / "live.out").read_text() == "live output\n"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("fail", "fsub: error: Batch job submission failed: Invalid partition"),
        ("noid", "printed no job id"),
    ],
)
def test_submit_failure_ends_failed_with_the_stderr(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, expected: str
) -> None:
    monkeypatch.setenv("FAKE_SUBMIT", mode)
    runner = GridRunner(grid=fake_scheme(), sleepstep=0.05)
    (result,) = run_jobs(runner, JobManager(tmp_path / "w"), [SingleJob(name="x", runscript=":\n")])
    assert result.status is JobStatus.FAILED
    assert result.reason == "submit_failed"
    assert result.exit_code == 1
    assert expected in result.error
    assert "fsub -D" in result.error
    assert runner.check_count == 0


LIMITED = {"limit": [r"QOSMaxSubmitJobPerUserLimit"]}


def submit_log(state: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (state / "submits.jsonl").read_text().splitlines()]


def test_a_submit_limit_holds_jobs_back_instead_of_failing_them(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FAKE_SUBMIT_LIMIT", "3")
    caplog.set_level(logging.WARNING, logger="runner_grid")
    runner = GridRunner(grid=fake_scheme(submit_faults=LIMITED), sleepstep=0.05)
    jobs = [SingleJob(name=f"j{i}", runscript="sleep 0.2\n") for i in range(10)]
    results = run_jobs(runner, JobManager(tmp_path / "w"), jobs)
    assert [r.status for r in results] == [JobStatus.SUCCESSFUL] * 10, [r.error for r in results]
    assert len({r.jobid for r in results}) == 10  # each job submitted exactly once
    accepted = [e for e in submit_log(fake) if not e["refused"]]
    assert len(accepted) == 10
    assert all(e["queued"] < 3 for e in accepted)
    refused = (fake / "refusals.log").read_text().count("refused")
    assert refused >= 1
    assert len(submit_log(fake)) == 10 + refused
    logged = [r for r in caplog.records if r.getMessage().startswith("submit limit:")]
    assert len(logged) == refused
    assert "QOSMaxSubmitJobPerUserLimit" in logged[0].getMessage()
    runner.shutdown()


def test_at_a_submit_limit_a_runner_tries_at_most_once_per_sleepstep(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the queue holds one long job of someone else's: no room frees while the test runs
    monkeypatch.setenv("FAKE_SUBMIT_LIMIT", "1")
    other = GridRunner(grid=fake_scheme(), sleepstep=0.05)
    blocker = SingleJob(name="blocker", runscript="sleep 30\n").run(
        jobrunner=other, jobmanager=JobManager(tmp_path / "o")
    )
    wait_until(lambda: blocker.jobid is not None)
    runner = GridRunner(grid=fake_scheme(submit_faults=LIMITED), sleepstep=0.5, submit_workers=1)
    manager = JobManager(tmp_path / "w")
    held = [
        SingleJob(name=f"h{i}", runscript=":\n").run(jobrunner=runner, jobmanager=manager)
        for i in range(20)
    ]
    time.sleep(2.2)
    refused = (fake / "refusals.log").read_text().count("refused")
    assert 2 <= refused <= 7, refused  # the first try, then one per sleepstep: never a loop
    assert all(r.status is JobStatus.QUEUED for r in held)
    held[0].job.cancel()  # a job waiting for room ends at once, never submitted
    assert held[0].wait(timeout=TIMEOUT).status is JobStatus.CANCELLED
    runner.shutdown(cancel=True)
    assert {r.status for r in held} == {JobStatus.CANCELLED}
    refused = (fake / "refusals.log").read_text().count("refused")  # tries went on meanwhile
    assert len(submit_log(fake)) == 1 + refused  # the blocker, and nothing but refusals
    other.shutdown(cancel=True)


def test_a_blocking_call_at_a_submit_limit_waits_for_room_in_its_thread(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SUBMIT_LIMIT", "2")

    class OwnCall(GridRunner):
        def call(self, *args: Any) -> int:
            return super().call(*args)

    runner = OwnCall(grid=fake_scheme(submit_faults=LIMITED), sleepstep=0.05, maxthreads=6)
    jobs = [SingleJob(name=f"b{i}", runscript="sleep 0.2\nexit 3\n") for i in range(6)]
    results = run_jobs(runner, JobManager(tmp_path / "w"), jobs)
    assert [r.exit_code for r in results] == [3] * 6
    log = submit_log(fake)
    refused = (fake / "refusals.log").read_text().count("refused")
    assert refused >= 1
    assert sum(not e["refused"] for e in log) == 6  # each job once, with room
    assert all(e["queued"] < 2 for e in log if not e["refused"])
    assert len(log) == 6 + refused
    runner.shutdown()


def test_a_runflag_name_with_a_space_fails_the_job_before_any_submit(
    fake: Path, tmp_path: Path
) -> None:
    runner = GridRunner(grid=fake_scheme(), sleepstep=0.05)
    job = SingleJob(name="x", runscript=":\n")
    (result,) = run_jobs(runner, JobManager(tmp_path / "w"), [job], **{"bad key": 1})
    assert result.status is JobStatus.FAILED
    assert result.reason == "submit_failed"
    assert "runflag name 'bad key' cannot be a submit flag" in (result.error or "")
    assert submits(fake) == []


def test_failing_checks_release_no_job_and_all_finish_with_their_codes(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fails = tmp_path / "fails"
    fails.write_text("3")
    monkeypatch.setenv("FAKE_CHECK_FAILS", str(fails))
    runner = GridRunner(grid=fake_scheme(), sleepstep=0.02)
    runner._queue.poller.backoff_max = 0.05
    gate = tmp_path / "gate"
    jobs = [
        SingleJob(
            name=f"g{i}", runscript=f"while [ ! -e '{gate}' ]; do sleep 0.02; done\nexit {i}\n"
        )
        for i in range(3)
    ]
    results = [job.run(jobrunner=runner, jobmanager=JobManager(tmp_path / "w")) for job in jobs]
    log = fake / "checks.log"

    def three_failed_and_two_answered() -> bool:
        assert not any(r.done for r in results)
        lines = log.read_text().splitlines() if log.exists() else []
        return fails.read_text() == "0" and len(lines) >= 5

    wait_until(three_failed_and_two_answered)
    assert not any(r.done for r in results)
    gate.touch()
    runner.wait(timeout=TIMEOUT)
    assert [(r.status, r.exit_code) for r in results] == [
        (JobStatus.SUCCESSFUL, 0),
        (JobStatus.CRASHED, 1),
        (JobStatus.CRASHED, 2),
    ]


def test_maxjobs_caps_jobs_in_the_queue(fake: Path, tmp_path: Path) -> None:
    runner = GridRunner(grid=fake_scheme(), sleepstep=0.02, maxjobs=2)
    jobs = [SingleJob(name=f"m{i}", runscript="sleep 0.1\n") for i in range(5)]
    results = run_jobs(runner, JobManager(tmp_path / "w"), jobs)
    assert all(r.ok for r in results)
    assert max(s["queued"] for s in submits(fake)) <= 1  # the one being submitted makes 2


def test_cancel_removes_every_queued_job_and_results_say_cancelled(
    fake: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runner = GridRunner(grid=fake_scheme(), sleepstep=0.02)
    jobs = [SingleJob(name=f"c{i}", runscript="sleep 600\n") for i in range(3)]
    results = [job.run(jobrunner=runner, jobmanager=JobManager(tmp_path / "w")) for job in jobs]
    wait_until(lambda: len(runner.queued) == 3 and not any(r.done for r in results))
    ids = sorted(runner.queued)
    with caplog.at_level(logging.INFO, logger="runner_grid"):
        runner.shutdown(cancel=True, timeout=TIMEOUT)
    assert [r.status for r in results] == [JobStatus.CANCELLED] * 3
    assert sorted((fake / "cancels.log").read_text().split()) == ids
    assert runner.queued == []
    assert any("cancelled grid jobs: fcancel" in r.getMessage() for r in caplog.records)


def test_exit_code_from_the_scheduler_when_the_job_left_no_file(fake: Path, tmp_path: Path) -> None:
    runner = GridRunner(grid=fake_scheme(), sleepstep=0.02)
    # The runscript kills the wrapper (its parent) so no exit-code file is written, like a job
    # killed by the scheduler; the fake accounting then reports 137.
    (fake / "100.acct").write_text("137")
    job = SingleJob(name="k", runscript="kill -9 $PPID\n")
    (result,) = run_jobs(runner, JobManager(tmp_path / "w"), [job])
    assert (result.status, result.exit_code) == (JobStatus.CRASHED, 137)
    assert not (job.path / "k.exitcode").exists()


def test_unknown_exit_code_falls_back_to_1_with_a_warning(
    fake: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runner = GridRunner(grid=fake_scheme(), sleepstep=0.02)
    with caplog.at_level(logging.WARNING, logger="runner_grid"):
        (result,) = run_jobs(
            runner, JobManager(tmp_path / "w"), [SingleJob(name="k", runscript="kill -9 $PPID\n")]
        )
    assert (result.status, result.exit_code) == (JobStatus.CRASHED, 1)
    assert any("exit code of job 100 is unknown" in r.getMessage() for r in caplog.records)


def test_plams_style_settings_work_unchanged(fake: Path, tmp_path: Path) -> None:
    scheme = Settings()
    scheme.workdir = "-D"
    scheme.output = "-o"
    scheme.error = "-e"
    scheme.commands.submit = "fsub"
    scheme.commands.check = "fstat"
    scheme.commands.getid = lambda out: out.split()[-1]
    scheme.commands.running = lambda out: [line.split()[0] for line in out.splitlines()]
    scheme.commands.special.memory = "--mem="
    runner = GridRunner(grid=scheme, sleepstep=0.02)
    assert runner.scheme_name == "custom"
    (result,) = run_jobs(
        runner, JobManager(tmp_path / "w"), [SingleJob(name="p", runscript="exit 4\n")], memory="1G"
    )
    assert (result.status, result.exit_code) == (JobStatus.CRASHED, 4)
    assert "--mem=1G" in submits(fake)[0]["argv"]


def test_bad_name_and_incomplete_scheme_are_refused() -> None:
    with pytest.raises(ValueError) as info:
        GridRunner(grid="slrum")
    assert str(info.value) == (
        "grid 'slrum' is not a known scheme (did you mean 'slurm'? known: pbs, sge, slurm); "
        "pass a Settings for your own, or a Scheduler"
    )
    with pytest.raises(ValueError, match=r"lacks output, commands\.check, commands\.running"):
        GridRunner(grid={"workdir": "-D", "error": "-e", "commands": {"submit": "x", "getid": len}})
    with pytest.raises(ValueError, match=r"lacks commands\.getid"):
        GridRunner(grid=fake_scheme(commands={"getid": "not callable"}) | {})
    with pytest.raises(TypeError, match="grid must be a scheme name"):
        GridRunner(grid=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sleepstep must be a number of seconds > 0"):
        GridRunner(grid="slurm", sleepstep=0)


def test_scheme_is_copied_into_the_runner() -> None:
    first = GridRunner(grid="slurm")
    second = GridRunner(grid="slurm")
    first.settings.special.mailtype = "--mail-type="
    first.settings.workdir = "--chdir"
    assert "mailtype" not in GridRunner.config.slurm.special
    assert GridRunner.config.slurm.workdir == "-D"
    assert "mailtype" not in second.settings.special
    assert first.settings.special.mailtype == "--mail-type="
    assert first.scheme_name == "slurm"
    assert sorted(GridRunner.config) == ["pbs", "sge", "slurm"]


def test_defaults_and_properties() -> None:
    runner = GridRunner(grid="sge")
    assert (runner.parallel, runner.maxjobs, runner.maxthreads, runner.sleepstep) == (
        True,
        0,
        256,
        5,
    )
    assert runner.check_count == 0
    runner.sleepstep = 0.5
    assert runner.sleepstep == 0.5
    assert "GridRunner(grid='sge'" in repr(runner)


def test_cancelling_one_job_removes_it_from_the_queue_only(fake: Path, tmp_path: Path) -> None:
    runner = GridRunner(grid=fake_scheme(), sleepstep=0.02)
    gate = tmp_path / "gate"
    body = f"while [ ! -e '{gate}' ]; do sleep 0.02; done\n"
    jobs = [SingleJob(name=f"one{i}", runscript=body) for i in range(2)]
    results = [job.run(jobrunner=runner, jobmanager=JobManager(tmp_path / "w")) for job in jobs]
    wait_until(lambda: len(runner.queued) == 2)
    jobs[0].cancel()
    assert results[0].wait(timeout=TIMEOUT).status is JobStatus.CANCELLED
    assert len((fake / "cancels.log").read_text().split()) == 1
    assert not results[1].done
    gate.touch()
    assert results[1].wait(timeout=TIMEOUT).ok


def test_a_cancel_that_races_the_submission_sends_one_cancel_command(
    fake: Path, tmp_path: Path
) -> None:
    # The race CI met: `job.cancel()` lands after the job entered the runner's queue and
    # before its thread looks for a cancel asked during the submission; both saw it.
    # The runner's own queue is wrapped (a private field) to cancel at that very point.
    runner = GridRunner(grid=fake_scheme(), sleepstep=0.02)
    job = SingleJob(name="racing", runscript="sleep 30\n")
    queue = runner._queue
    add = queue.add

    def add_then_cancel(*args: Any, **kwargs: Any) -> None:
        add(*args, **kwargs)
        job.cancel()
        wait_until((fake / "cancels.log").exists)  # the canceller's command ran

    queue.add = add_then_cancel  # type: ignore[method-assign]
    results = job.run(jobrunner=runner, jobmanager=JobManager(tmp_path / "w"))
    assert results.wait(timeout=TIMEOUT).status is JobStatus.CANCELLED
    time.sleep(0.2)  # a second command would come from the job's thread, after the add
    assert len((fake / "cancels.log").read_text().split()) == 1


def test_job_cancel_returns_while_the_cancel_command_still_runs(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cancel_gate = tmp_path / "cancel-gate"
    monkeypatch.setenv("FAKE_CANCEL_GATE", str(cancel_gate))
    runner = GridRunner(grid=fake_scheme(), sleepstep=0.02)
    gate = tmp_path / "gate"
    job = SingleJob(name="slow-cancel", runscript=f"while [ ! -e '{gate}' ]; do sleep 0.02; done\n")
    results = job.run(jobrunner=runner, jobmanager=JobManager(tmp_path / "w"))
    wait_until(lambda: len(runner.queued) == 1)
    job.cancel()  # returns at once: the cancel command runs in a thread of the runner's
    wait_until(lambda: Path(str(cancel_gate) + ".waiting").exists())
    assert not (fake / "cancels.log").exists()
    assert not results.done
    cancel_gate.touch()
    assert results.wait(timeout=TIMEOUT).status is JobStatus.CANCELLED
    assert results.reason == "cancelled"
    gate.touch()


def test_a_job_submitted_while_the_runner_cancels_is_cancelled_once_its_id_is_known(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = tmp_path / "submit-gate"
    monkeypatch.setenv("FAKE_SUBMIT_GATE", str(gate))
    runner = GridRunner(grid=fake_scheme(), sleepstep=0.02)
    job = SingleJob(name="late", runscript="sleep 600\n")
    result = job.run(jobrunner=runner, jobmanager=JobManager(tmp_path / "w"))
    wait_until((tmp_path / "submit-gate.waiting").exists)
    shutdown = threading.Thread(target=runner.shutdown, kwargs={"timeout": TIMEOUT})
    shutdown.start()
    wait_until(runner._queue.stopped.is_set)
    assert not (fake / "cancels.log").exists()  # nothing was queued when cancelling began
    gate.touch()
    shutdown.join(TIMEOUT)
    assert not shutdown.is_alive()
    assert result.status is JobStatus.CANCELLED
    assert (fake / "cancels.log").read_text().split() == ["100"]


CTRL_C_WHILE_SUBMITTING = """
import sys
from runner_core import JobManager, SingleJob
from runner_grid import GridRunner
from runner_grid.schemes import slurm
from runner_settings import Settings
scheme = Settings({
    "workdir": "-D", "output": "-o", "error": "-e", "special": {},
    "commands": {"submit": "fsub", "getid": slurm.getid, "check": ["fstat", "--all"],
                 "running": slurm.running, "cancel": "fcancel"},
})
runner = GridRunner(grid=scheme, sleepstep=0.05, parallel=False)
SingleJob("queued", "sleep 300").run(runner, JobManager(sys.argv[1]))
print("not interrupted")
"""


def test_ctrl_c_while_a_submit_command_runs_still_cancels_the_job(
    fake: Path, tmp_path: Path
) -> None:
    """The terminal's Ctrl-C (SIGINT to the whole process group) lands after the scheduler
    queued the job but before the submit command printed its id. The submit command must
    live on to print it, and the script must cancel that job on its way out."""
    script = tmp_path / "user_script.py"
    script.write_text(CTRL_C_WHILE_SUBMITTING)
    gate = tmp_path / "gate"
    env = dict(os.environ, FAKE_SUBMIT_LATE_GATE=str(gate))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "work")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group, standing for the user's terminal
    )
    try:
        wait_until(lambda: Path(str(gate) + ".waiting").exists())
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.3)  # let the SIGINT land everywhere before the id comes out
        gate.touch()
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "not interrupted" not in out
    assert "KeyboardInterrupt" in err
    (queued,) = [p.stem for p in fake.glob("*.pid")]
    assert (fake / "cancels.log").read_text().split() == [queued]
    assert (fake / f"{queued}.done").read_text() == "killed"


# --- a job in the queue holds no thread ---------------------------------------------------


def _job_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t is not threading.main_thread()]


def test_run_returns_at_once_past_maxthreads_and_queued_jobs_hold_no_thread(
    fake: Path, tmp_path: Path
) -> None:
    n = 30  # more than maxthreads, at which job.run() used to block
    runner = GridRunner(grid=fake_scheme(), sleepstep=0.05, maxthreads=8)
    gate = tmp_path / "gate"
    body = f"while [ ! -e '{gate}' ]; do sleep 0.05; done\n"
    before = len(_job_threads())
    jobs = [SingleJob(name=f"held{i}", runscript=body) for i in range(n)]
    manager = JobManager(tmp_path / "w")
    results = [job.run(jobrunner=runner, jobmanager=manager) for job in jobs]
    assert runner.snapshot().room_waiters == 0
    wait_until(lambda: len(runner.queued) == n)
    snap = runner.snapshot()
    assert (snap.detached, snap.tasks, snap.queued) == (n, n, 0)
    wait_until(lambda: runner.snapshot().threads == 0)  # the submit workers have ended
    assert len(_job_threads()) - before <= 3  # the poller, perhaps the finisher
    assert all(r.status in (JobStatus.SUBMITTED, JobStatus.RUNNING) for r in results)
    assert all(r.submitted_at is not None for r in results)
    assert {r.jobid for r in results} == set(runner.queued)
    # The fake scheduler starts every job; the poller sees each one's start in its folder.
    wait_until(lambda: all(r.status is JobStatus.RUNNING for r in results))
    assert all(r.started_at is not None for r in results)
    gate.touch()
    runner.wait(timeout=TIMEOUT)
    assert all(r.ok for r in results)


def test_at_most_submit_workers_submit_commands_run_at_once(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = tmp_path / "submit-gate"
    monkeypatch.setenv("FAKE_SUBMIT_GATE", str(gate))
    runner = GridRunner(grid=fake_scheme(), sleepstep=0.05, submit_workers=3)
    jobs = [SingleJob(name=f"s{i}", runscript=":\n") for i in range(12)]
    manager = JobManager(tmp_path / "w")
    results = [job.run(jobrunner=runner, jobmanager=manager) for job in jobs]
    wait_until(lambda: Path(str(gate) + ".waiting").exists())
    snap = runner.snapshot()
    assert (snap.threads, snap.queued) == (3, 9)
    runner.submit_workers = 1
    assert runner.snapshot().threads <= 3
    gate.touch()
    runner.wait(timeout=TIMEOUT)
    assert all(r.ok for r in results)
    assert "submit_workers=1" in repr(runner)
    with pytest.raises(ValueError, match="submit_workers must be an int >= 1, got 0"):
        runner.submit_workers = 0


def test_a_subclass_that_overrides_call_blocks_a_thread_per_job(fake: Path, tmp_path: Path) -> None:
    calls: list[int] = []

    class Logged(GridRunner):
        def call(
            self, runscript: str, workdir: str, out: str | None, err: str, runflags: Settings
        ) -> int:
            code = super().call(runscript, workdir, out, err, runflags)
            calls.append(code)  # the real exit code: the job had ended when call returned
            return code

    runner = Logged(grid=fake_scheme(), sleepstep=0.02, maxthreads=2)
    jobs = [SingleJob(name=f"o{i}", runscript=f"exit {i}\n") for i in range(4)]
    results = run_jobs(runner, JobManager(tmp_path / "w"), jobs)
    assert sorted(calls) == [0, 1, 2, 3]
    assert [r.exit_code for r in results] == [0, 1, 2, 3]
    assert runner.snapshot().detached == 0


def test_a_serial_grid_runner_waits_for_each_job(fake: Path, tmp_path: Path) -> None:
    runner = GridRunner(grid=fake_scheme(), sleepstep=0.02, parallel=False)
    results = SingleJob(name="serial", runscript="exit 5\n").run(
        jobrunner=runner, jobmanager=JobManager(tmp_path / "w")
    )
    assert results.done
    assert (results.status, results.exit_code) == (JobStatus.CRASHED, 5)
    assert results.jobid is not None


def test_a_job_whose_end_is_not_known_yet_holds_up_no_other(fake: Path, tmp_path: Path) -> None:
    runner = GridRunner(grid=fake_scheme(exitcode_wait=30), sleepstep=0.02)
    gate = tmp_path / "gate"
    body = f"while [ ! -e '{gate}' ]; do sleep 0.02; done\n"
    manager = JobManager(tmp_path / "w")
    late, quick = (SingleJob(name=n, runscript=body).run(runner, manager) for n in ("late", "b"))
    wait_until(lambda: len(runner.queued) == 2)
    # Killed from outside: it leaves the queue with no exit-code file and no accounting yet.
    subprocess.run(["fcancel", str(late.jobid)], check=True)
    gate.touch()
    assert quick.wait(timeout=TIMEOUT).ok
    assert not late.done  # still waiting for its record, without holding up `quick`
    (fake / f"{late.jobid}.acct").write_text("7")
    assert late.wait(timeout=TIMEOUT).exit_code == 7
    assert late.status is JobStatus.CRASHED


# --- resources: mapped, refused at job.run(), winning over directives ----------------------


def resources_scheme() -> Settings:
    """The fake scheme mapping resources as SLURM does (no special key of its own for them)."""
    scheme = fake_scheme(
        commands={
            "resources": slurm.resource_args,
            "directive_resources": slurm.directive_resources,
        }
    )
    scheme.special = {"select": "-l select="}
    return scheme


def test_resources_are_mapped_into_the_submission(fake: Path, tmp_path: Path) -> None:
    runner = GridRunner(grid=resources_scheme(), sleepstep=0.05)
    job = SingleJob(name="r", runscript="exit 0\n")
    (result,) = run_jobs(
        runner, JobManager(tmp_path / "w"), [job], memory="1.5G", walltime=5400, cores=2, J="x"
    )
    assert result.ok, result.error
    (submit,) = submits(fake)
    assert submit["argv"][6:] == [
        *["--cpus-per-task=2", "--mem=1536M", "--time=1:30:00", "-J", "x"],
        str(job.path / "r.grid"),
    ]


def test_a_bad_resource_is_refused_at_job_run_and_nothing_is_submitted(
    fake: Path, tmp_path: Path
) -> None:
    runner = GridRunner(grid=resources_scheme(), sleepstep=0.05)
    manager = JobManager(tmp_path / "w")
    job = SingleJob(name="bad", runscript="exit 0\n")
    with pytest.raises(
        ValueError,
        match=r"^run flag memory='4X' is not a memory size; give e\.g\. memory='4G' \(units K, "
        r"M, G, T, 1024-based\) or an int of bytes$",
    ):
        job.run(jobrunner=runner, jobmanager=manager, memory="4X")
    assert job.results.status is JobStatus.FAILED
    late = SingleJob(name="late", runscript="exit 0\n")
    with pytest.raises(ValueError, match=r"^run flag walltime='2:30' may be minutes:seconds"):
        late.run(jobrunner=runner, jobmanager=manager, walltime="2:30")
    runner.wait(timeout=TIMEOUT)
    assert submits(fake) == []
    fixed = SingleJob(name="fixed", runscript="exit 0\n")
    assert fixed.run(jobrunner=runner, jobmanager=manager, memory="4G").wait(TIMEOUT).ok
    assert "--mem=4096M" in submits(fake)[0]["argv"]


def test_a_scheme_without_resources_takes_any_value_as_before(fake: Path, tmp_path: Path) -> None:
    runner = GridRunner(grid=fake_scheme(), sleepstep=0.05)
    job = SingleJob(name="plams", runscript="exit 0\n")
    (result,) = run_jobs(runner, JobManager(tmp_path / "w"), [job], memory="4000", nodes=2)
    assert result.ok
    assert submits(fake)[0]["argv"][6:-1] == ["--mem=4000", "-N", "2"]


def test_a_run_flag_wins_over_a_directive_and_the_log_says_so(
    fake: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manager = JobManager(tmp_path / "w")
    pre = "#SBATCH --mem=1G\n#SBATCH --time=10\n"
    job = SingleJob(name="d", runscript="exit 0\n", settings={"runscript": {"pre": pre}})
    with caplog.at_level(logging.WARNING, logger="runner_grid"):
        (result,) = run_jobs(
            GridRunner(resources_scheme(), sleepstep=0.05), manager, [job], memory="4G"
        )
    assert result.ok
    notes = [r.getMessage() for r in caplog.records if "overrides" in r.getMessage()]
    assert notes == [
        f"{job.path / 'd.run'}: run flag memory='4G' overrides the runscript's directive "
        "'#SBATCH --mem=1G' (the submit command's flags win over directives)"
    ]
    assert "--mem=4096M" in submits(fake)[0]["argv"]  # the flag; the wrapper keeps the line
    assert "#SBATCH --mem=1G" in (job.path / "d.grid").read_text().splitlines()
    caplog.clear()
    plain = SingleJob(name="p", runscript="exit 0\n", settings={"runscript": {"pre": pre}})
    with caplog.at_level(logging.WARNING, logger="runner_grid"):
        run_jobs(GridRunner(fake_scheme(), sleepstep=0.05), manager, [plain], memory="4G")
    assert "overrides" not in caplog.text  # a scheme without resources: as before


def limits_scheme(tmp_path: Path, answer: str, returncode: int = 0) -> Settings:
    """The resources scheme with a limit query that answers `answer`, logging each call."""
    script = tmp_path / "flimits"
    script.write_text(
        f"#!{sys.executable}\nimport sys\nopen({str(tmp_path / 'asked')!r}, 'a').write('x')\n"
        f"sys.stdout.write({answer!r})\nsys.exit({returncode})\n"
    )
    script.chmod(0o755)
    scheme = resources_scheme()
    scheme.commands.limits = lambda: [[str(script)]]
    scheme.commands.parse_limits = slurm.parse_limits
    return scheme


PARTITIONS = (
    "PartitionName=debug Default=YES MaxTime=UNLIMITED MaxMemPerNode=UNLIMITED\n"
    "PartitionName=short Default=NO MaxTime=00:05:00 MaxMemPerNode=2000\n"
)


def test_a_job_above_a_partition_s_limits_is_refused_at_job_run_and_limits_are_asked_once(
    fake: Path, tmp_path: Path
) -> None:
    runner = GridRunner(grid=limits_scheme(tmp_path, PARTITIONS), sleepstep=0.05)
    manager = JobManager(tmp_path / "w")
    plain = SingleJob(name="plain", runscript="exit 0\n")
    assert plain.run(jobrunner=runner, jobmanager=manager).wait(TIMEOUT).ok
    # read at the first submission, for its submit limits; then never again
    assert (tmp_path / "asked").read_text() == "x"
    long = SingleJob(name="long", runscript="exit 0\n")
    with pytest.raises(
        ValueError,
        match=r"^walltime 48:00:00 exceeds partition 'short' MaxTime 0:05:00 \(use partition "
        r"'debug', or less walltime\)$",
    ):
        long.run(jobrunner=runner, jobmanager=manager, walltime="48:00:00", queue="short")
    assert long.results.status is JobStatus.FAILED
    assert "MaxTime 0:05:00" in (long.results.error or "")
    fits = [SingleJob(name=f"f{i}", runscript="exit 0\n") for i in range(5)]
    results = run_jobs(runner, manager, fits, walltime="0:01:00", partition="short")
    assert all(r.ok for r in results)
    assert len(submits(fake)) == 6  # the refused job was never submitted
    assert (tmp_path / "asked").read_text() == "x"


def test_limits_that_cannot_be_read_leave_the_job_to_the_scheduler(
    fake: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runner = GridRunner(grid=limits_scheme(tmp_path, PARTITIONS, returncode=1), sleepstep=0.05)
    jobs = [SingleJob(name=f"j{i}", runscript="exit 0\n") for i in range(3)]
    with caplog.at_level(logging.WARNING, logger="runner_grid"):
        results = run_jobs(
            runner, JobManager(tmp_path / "w"), jobs, walltime="48:00:00", queue="short"
        )
    assert all(r.ok for r in results)
    assert len(submits(fake)) == 3
    warned = [r for r in caplog.records if "could not read the queues' limits" in r.message]
    assert len(warned) == 1
    assert (tmp_path / "asked").read_text() == "x"


# --- submit limits read in advance: the runner stays under them ------------------------------

#: The partitions, then `sacctmgr show qos` and `show assoc` in the pinned formats: the QOS
#: "normal", the user's default, lets 3 jobs be queued (MaxSubmitPU).
SUBMIT_LIMITS = PARTITIONS + "normal|||3\nme|acct||normal|||\n"


def limited_scheme(tmp_path: Path, answer: str = SUBMIT_LIMITS) -> Settings:
    scheme = limits_scheme(tmp_path, answer)
    scheme.submit_faults = LIMITED
    return scheme


def refusals(state: Path) -> int:
    log = state / "refusals.log"
    return log.read_text().count("refused") if log.exists() else 0


@pytest.mark.parametrize("workers", [1, 4])
def test_a_submit_limit_read_in_advance_is_never_refused(
    fake: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    workers: int,
) -> None:
    monkeypatch.setenv("FAKE_SUBMIT_LIMIT", "3")  # the scheduler's own count: what it refuses
    caplog.set_level(logging.INFO, logger="runner_grid")
    runner = GridRunner(grid=limited_scheme(tmp_path), sleepstep=0.05, submit_workers=workers)
    jobs = [SingleJob(name=f"j{i}", runscript="sleep 0.5\n") for i in range(12)]
    results = run_jobs(runner, JobManager(tmp_path / "w"), jobs)
    assert [r.status for r in results] == [JobStatus.SUCCESSFUL] * 12, [r.error for r in results]
    assert len({r.jobid for r in results}) == 12  # each job submitted exactly once
    assert refusals(fake) == 0  # never over the limit: 4 workers at once cannot overshoot
    log = submit_log(fake)
    assert len(log) == 12
    assert max(e["queued"] for e in log) <= 2
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "refused" in m]
    told = [m for m in messages if "lets 3 jobs be queued" in m]  # the limit was reached
    assert told == [
        "keeping under a submit limit: QOS 'normal' lets 3 jobs be queued; the jobs over it "
        "wait in the runner for room"
    ]
    assert (tmp_path / "asked").read_text() == "x"  # the limits were read once
    runner.shutdown()


def test_a_job_held_under_a_limit_read_in_advance_waits_queued_and_cancels_at_once(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SUBMIT_LIMIT", "1")
    gate = tmp_path / "gate"
    answer = PARTITIONS + "normal|||1\nme|acct||normal|||\n"
    runner = GridRunner(grid=limited_scheme(tmp_path, answer), sleepstep=0.05)
    manager = JobManager(tmp_path / "w")
    jobs = [
        SingleJob(name=f"g{i}", runscript=f"while [ ! -e {gate} ]; do sleep 0.02; done\n")
        for i in range(4)
    ]
    results = [job.run(jobrunner=runner, jobmanager=manager) for job in jobs]
    wait_until(lambda: any(r.jobid is not None for r in results))
    time.sleep(0.3)  # several sleepsteps: nothing is tried while the one place is taken
    assert len(submit_log(fake)) == 1
    held = [i for i, r in enumerate(results) if r.jobid is None]
    assert len(held) == 3
    assert all(results[i].status is JobStatus.QUEUED for i in held)
    jobs[held[0]].cancel()  # waiting for room: it ends at once, never submitted
    assert results[held[0]].wait(timeout=TIMEOUT).status is JobStatus.CANCELLED
    gate.touch()
    runner.wait(timeout=TIMEOUT)
    statuses = [r.status for r in results]
    assert statuses.count(JobStatus.SUCCESSFUL) == 3
    assert statuses[held[0]] is JobStatus.CANCELLED
    assert len(submit_log(fake)) == 3
    assert refusals(fake) == 0
    runner.shutdown()


def test_jobs_submitted_outside_the_runner_still_cause_refusals_which_are_waited_out(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one job of the user's from elsewhere fills one of the 3 places the runner thinks it has
    monkeypatch.setenv("FAKE_SUBMIT_LIMIT", "3")
    gate = tmp_path / "gate"
    other = GridRunner(grid=fake_scheme(), sleepstep=0.05)
    blocker = SingleJob(
        name="blocker", runscript=f"while [ ! -e {gate} ]; do sleep 0.02; done\n"
    ).run(jobrunner=other, jobmanager=JobManager(tmp_path / "o"))
    wait_until(lambda: blocker.jobid is not None)
    runner = GridRunner(grid=limited_scheme(tmp_path), sleepstep=0.05)
    jobs = [SingleJob(name=f"j{i}", runscript="sleep 0.2\n") for i in range(8)]
    results = run_jobs(runner, JobManager(tmp_path / "w"), jobs)
    assert [r.status for r in results] == [JobStatus.SUCCESSFUL] * 8, [r.error for r in results]
    assert len({r.jobid for r in results}) == 8
    assert refusals(fake) >= 1  # the runner counts its own jobs only
    assert sum(not e["refused"] for e in submit_log(fake)) == 9  # the blocker and each job once
    gate.touch()
    assert blocker.wait(timeout=TIMEOUT).ok
    runner.shutdown()
    other.shutdown()


def test_a_blocking_call_waits_for_room_under_a_limit_read_in_advance(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SUBMIT_LIMIT", "2")

    class OwnCall(GridRunner):
        def call(self, *args: Any) -> int:
            return super().call(*args)

    answer = PARTITIONS + "normal|||2\nme|acct||normal|||\n"
    runner = OwnCall(grid=limited_scheme(tmp_path, answer), sleepstep=0.05, maxthreads=6)
    jobs = [SingleJob(name=f"b{i}", runscript="sleep 0.2\nexit 3\n") for i in range(6)]
    results = run_jobs(runner, JobManager(tmp_path / "w"), jobs)
    assert [r.exit_code for r in results] == [3] * 6
    assert refusals(fake) == 0
    assert len(submit_log(fake)) == 6
    runner.shutdown()
