"""Campaigns run from "a laptop": GridRunner(host=...) through the private sshd of tools/sshd.sh.

The sshd on 127.0.0.1 stands for a cluster's login node: its user `runnerssh` submits to the
real SLURM and Grid Engine of this machine, and that user's home is the remote side. The
local side (the test's folders, the journal) is root's. The faults are real: the ssh master
process is killed, and the sshd is stopped for 20 s while jobs end.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from typing import TYPE_CHECKING, Any, Callable

import pytest

from integration._schedulers import PATIENCE, queue_ids, wait_for
from runner_core import JobManager, JobStatus, SingleJob, read_journal

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from integration._schedulers import SubmittedIds
    from integration.conftest import TestSshd
    from runner_grid import GridRunner

pytestmark = pytest.mark.integration


#: A job's wait for the test's gate: 2 minutes at most, so a test that failed before it
#: opened the gate (and could not cancel: the link was down) leaves nothing running.
WAIT_FOR_GATE = "n=0; while [ ! -e {gate} ] && [ $n -lt 600 ]; do sleep 0.2; n=$((n+1)); done"


def _logins(sshd: TestSshd, offset: int) -> int:
    with open(sshd.log, encoding="utf-8", errors="replace") as f:
        f.seek(offset)
        return f.read().count("Accepted publickey for")


@pytest.fixture
def remote_root(test_sshd: TestSshd) -> Iterator[str]:
    """A fresh folder under the remote user's home, with spaces in its name; removed after."""
    relative = f"remote runs/{uuid.uuid4().hex[:8]} x"
    yield relative
    home = pwd.getpwnam(test_sshd.login).pw_dir
    shutil.rmtree(os.path.join(home, relative), ignore_errors=True)


@pytest.fixture
def gate() -> Iterator[str]:
    """A path the remote user can see (jobs wait until it exists); its folder removed after."""
    folder = tempfile.mkdtemp(prefix="runner-gate-", dir="/tmp")
    os.chmod(folder, 0o755)
    yield os.path.join(folder, "open")
    shutil.rmtree(folder, ignore_errors=True)


def _remote(
    make_runner: Callable[..., GridRunner], sshd: TestSshd, root: str, **kwargs: Any
) -> GridRunner:
    return make_runner(host=sshd.alias, ssh_config=str(sshd.config), remote_root=root, **kwargs)


def _kill_master(runner: GridRunner) -> None:
    site = runner._site
    assert site is not None
    pid = site.host.master_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)


def test_a_campaign_of_200_jobs_survives_a_killed_master_and_a_stopped_sshd(
    test_sshd: TestSshd,
    make_runner: Callable[..., GridRunner],
    submitted: SubmittedIds,
    remote_root: str,
    tmp_path: Path,
) -> None:
    """200 jobs, an array of 100 and 100 plain ones, each writing a file that must come back.

    The master is killed twice while jobs are submitted and run, and the sshd stopped for
    20 s while they end: every job ends once, with its own exit code, its file back here;
    nothing is submitted twice; one login per run plus one per forced reconnection.
    """
    offset = test_sshd.log.stat().st_size
    runner = _remote(make_runner, test_sshd, remote_root)
    manager = JobManager(str(tmp_path / "my run"))
    script = 'echo "{i}" > "out file.txt"\nexit {code}\n'
    jobs = [SingleJob(f"job{i}", script.format(i=i, code=i % 3)) for i in range(200)]
    with runner.batch():
        for job in jobs[:100]:
            job.run(jobrunner=runner, jobmanager=manager)
    _kill_master(runner)  # 1: before the plain jobs' submissions
    for job in jobs[100:150]:
        job.run(jobrunner=runner, jobmanager=manager)
    wait_for(lambda: len(submitted.snapshot()) >= 10, "some plain submissions")
    _kill_master(runner)  # 2: while submit workers submit
    for job in jobs[150:]:
        job.run(jobrunner=runner, jobmanager=manager)
    wait_for(
        lambda: all(j.results.jobid or j.results.status.done for j in jobs),
        "every job submitted",
    )
    stopped = test_sshd.script("stop")  # 3: the jobs end while the host cannot be reached
    assert stopped.returncode == 0, stopped.stderr
    try:
        time.sleep(20)
    finally:
        before = test_sshd.log.stat().st_size
        started = test_sshd.script("start")  # its check logs in too: counted, left out below
        checks = _logins(test_sshd, before)
        assert started.returncode == 0, started.stderr
    runner.wait(timeout=PATIENCE * 2)

    for i, job in enumerate(jobs):
        results = job.results
        assert results.exit_code == i % 3, (job.name, results.exit_code, results.error)
        assert results.status is (JobStatus.SUCCESSFUL if i % 3 == 0 else JobStatus.CRASHED)
        assert (tmp_path / "my run" / job.name / "out file.txt").read_text() == f"{i}\n"
    ids = submitted.snapshot()
    assert len(ids) == len(set(ids)), "a submission was logged twice"
    arrays = {job.results.jobid for job in jobs[:100]}
    assert len(arrays) == 100  # a task id each
    assert len(ids) <= 100 + 2, f"{len(ids)} submissions for 100 plain jobs and one batch"
    site = runner._site
    assert site is not None
    assert site.host.logins == 4, site.host.logins  # the run's, and 3 forced reconnections
    assert _logins(test_sshd, offset) - checks == 4


@pytest.mark.parametrize("fetch", ["*.txt", None])
def test_fetch_brings_back_what_it_names_and_the_runners_own_files(
    test_sshd: TestSshd,
    make_runner: Callable[..., GridRunner],
    remote_root: str,
    tmp_path: Path,
    fetch: str | None,
) -> None:
    runner = _remote(make_runner, test_sshd, remote_root, fetch=fetch and [fetch])
    manager = JobManager(str(tmp_path / "run"))
    job = SingleJob("one", "echo kept > a.txt\necho left > big.dat\necho said\n")
    job.run(jobrunner=runner, jobmanager=manager)
    runner.wait(timeout=PATIENCE)
    assert job.results.exit_code == 0, job.results.error
    folder = tmp_path / "run" / "one"
    assert (folder / "one.out").read_text() == "said\n"
    assert (folder / "a.txt").exists() is (fetch is not None)
    assert not (folder / "big.dat").exists()
    home = pwd.getpwnam(test_sshd.login).pw_dir
    assert os.path.exists(os.path.join(home, remote_root, "one", "big.dat"))


def test_a_changed_host_key_is_refused_with_the_host_named(
    scheduler: str, test_sshd: TestSshd, tmp_path: Path
) -> None:
    from runner_grid import GridRunner, SshHostKeyError  # noqa: PLC0415 - optional package

    key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    known = tmp_path / "known_hosts"
    port = test_sshd.port
    known.write_text(f"[127.0.0.1]:{port} {(tmp_path / 'other_key.pub').read_text()}")
    config = tmp_path / "ssh_config"
    config.write_text(
        test_sshd.config.read_text().replace(str(test_sshd.state / "known_hosts"), str(known))
    )
    with pytest.raises(SshHostKeyError, match="runner-test"):
        GridRunner(grid=scheduler, host=test_sshd.alias, ssh_config=str(config))


DRIVER = textwrap.dedent(
    """
    import logging, os, signal, sys, time
    from runner_core import JobManager, SingleJob
    from runner_grid import GridRunner

    folder, scheduler, host, config, root, gate, wait_for_gate = sys.argv[1:8]
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    grid = GridRunner(
        grid=scheduler, sleepstep=0.5, host=host, ssh_config=config, remote_root=root
    )
    manager = JobManager(folder)
    jobs = [
        SingleJob(f"j{i}", f"{wait_for_gate}\\n"
                  f"echo {i} > result.txt\\nexit {i}\\n")
        for i in range(3)
    ]
    results = [job.run(jobrunner=grid, jobmanager=manager) for job in jobs]
    while not all(r.jobid for r in results):
        time.sleep(0.05)
    print("QUEUED", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def _runner_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner_core", *args],
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        check=False,
    )


@contextlib.contextmanager
def _dead_driver(
    tmp_path: Path, scheduler: str, sshd: TestSshd, root: str, gate: str
) -> Iterator[Path]:
    """A driver that submitted 3 jobs on the remote host and died by SIGKILL; its run folder."""
    tmp_path.mkdir()
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    folder = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(folder), scheduler, sshd.alias, str(sshd.config),
         root, gate, WAIT_FOR_GATE.format(gate=gate)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=PATIENCE)
        assert out.strip() == "QUEUED", err
        yield folder
    finally:
        if proc.poll() is None:
            proc.kill()
        ids = [r.jobid for r in read_journal(folder).jobs if r.jobid] if folder.exists() else []
        from integration._schedulers import cancel_ids  # noqa: PLC0415 - test helper

        cancel_ids(scheduler, sorted(set(ids) & queue_ids(scheduler)))


def test_status_cancel_and_resume_from_here_with_the_driver_dead(
    scheduler: str, test_sshd: TestSshd, remote_root: str, gate: str, tmp_path: Path
) -> None:
    with _dead_driver(tmp_path / "a", scheduler, test_sshd, remote_root + "/a", gate) as run:
        status = _runner_cli("status", str(run), "--json")
        assert status.returncode == 0, status.stderr
        seen = {j["name"]: j for j in json.loads(status.stdout)["jobs"]}
        assert sorted(seen) == ["j0", "j1", "j2"]
        assert all(j["jobid"] and j["status"] in ("SUBMITTED", "RUNNING") for j in seen.values())
        ids = {j["jobid"] for j in seen.values()}
        offset = test_sshd.log.stat().st_size
        cancelled = _runner_cli("cancel", str(run))
        assert cancelled.returncode == 0, cancelled.stderr
        assert _logins(test_sshd, offset) == 1  # look, cancel, look again: one login
        wait_for(lambda: not ids & queue_ids(scheduler), "the cancelled jobs to leave")
        after = json.loads(_runner_cli("status", str(run), "--json").stdout)["jobs"]
        assert {j["status"] for j in after} == {"CANCELLED"}

    with _dead_driver(tmp_path / "b", scheduler, test_sshd, remote_root + "/b", gate) as run:
        before = {r.name: r.jobid for r in read_journal(run).jobs}
        open(gate, "w").close()  # the jobs end while no driver runs
        resumed = _runner_cli("resume", str(run))
        assert resumed.returncode != 0  # two of the jobs exit non-zero
        for i in range(3):
            assert (run / f"j{i}" / "result.txt").read_text() == f"{i}\n"
        jobs = {r.name: r for r in read_journal(run).jobs}
        assert [jobs[f"j{i}"].exit_code for i in range(3)] == [0, 1, 2]
        assert {name: r.jobid for name, r in jobs.items()} == before  # none submitted again


def test_a_link_down_past_its_time_leaves_the_jobs_queued_for_a_resume(  # noqa: PLR0917
    scheduler: str,
    test_sshd: TestSshd,
    make_runner: Callable[..., GridRunner],
    submitted: SubmittedIds,  # what is left queued when the test fails is cancelled
    remote_root: str,
    gate: str,
    tmp_path: Path,
) -> None:
    """The sshd stays down longer than `reconnect_timeout`: `runner.wait()` raises with the
    command that collects the jobs, which stay in the queue; the resume gets their ends."""
    from runner_grid import SshConnectError, SshHost  # noqa: PLC0415 - optional package

    host = SshHost(test_sshd.alias, config_file=test_sshd.config, reconnect_timeout=3)
    runner = make_runner(host=host, remote_root=remote_root)
    run = tmp_path / "run"
    jobs = [
        SingleJob(f"j{i}", f"{WAIT_FOR_GATE.format(gate=gate)}\necho {i} > r.txt\n")
        for i in range(3)
    ]
    manager = JobManager(str(run))
    for job in jobs:
        job.run(jobrunner=runner, jobmanager=manager)
    wait_for(lambda: all(j.results.jobid for j in jobs), "the jobs submitted")
    ids = {j.results.jobid for j in jobs}
    assert test_sshd.script("stop").returncode == 0
    try:
        with pytest.raises(SshConnectError, match=r"collect them with: runner resume") as lost:
            runner.wait(timeout=PATIENCE)
        assert str(run) in str(lost.value)
        assert ids <= queue_ids(scheduler)  # left there, not cancelled
        assert all(
            j.results.status is JobStatus.SUBMITTED or j.results.status is JobStatus.RUNNING
            for j in jobs
        )
    finally:
        assert test_sshd.script("start").returncode == 0
    manager.close()  # as the driver's exit does, the exception having ended its script
    open(gate, "w").close()
    resumed = _runner_cli("resume", str(run))
    assert resumed.returncode == 0, resumed.stderr
    for i in range(3):
        assert (run / f"j{i}" / "r.txt").read_text() == f"{i}\n"
    assert {r.jobid for r in read_journal(run).jobs} == ids
