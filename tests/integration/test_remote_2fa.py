"""GridRunner over a two-factor login (a key, then a one-time code): one code prompt per login.

The host is the two-factor sshd of tools/sshd.sh (`test_sshd_2fa`), in front of the local SLURM.
ssh asks for the code on /dev/tty, so each run happens in a driver process (this file run as a
script) whose controlling terminal is a pseudo-terminal the test holds: the test answers every
prompt it sees there and counts them. The driver writes its log (runner_grid's "submitted job"
lines and warnings) and its outcome (JSON) to files, so nothing but ssh's prompts should ever
reach the terminal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import pwd
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import termios
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from integration._schedulers import PATIENCE, ROOT, cancel_ids, queue_ids, require
from runner_core import JobManager, SingleJob
from runner_grid import GridRunner, SshError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from integration.conftest import TwoFactorSshd
    from runner_core import Results

pytestmark = pytest.mark.integration

#: ssh's prompt for the code (pam_exec's text, which cannot be changed): "(user@host) Password: ".
PROMPT = re.compile(rb"\([^()\r\n]*\) Password: ")
#: Seconds a whole driver run may take (a login, 20 short jobs, one reconnect).
DRIVER_TIMEOUT = 240.0
#: The jobs: an array first, then plain ones (the last ones only after the kill, when asked).
ARRAY_JOBS = range(8)
PLAIN_BEFORE = range(8, 14)
PLAIN_AFTER = range(14, 20)
#: Each job sleeps long enough to be in the queue or running when the master is killed.
JOB_SECONDS = 4
#: When the driver kills the master: once all 20 jobs are in the queue (a queue check is the
#: first to find it gone), or between two waves of jobs, the queue empty and idle (copying the
#: folders of the last six jobs before their submission is the first to find it gone).
KILL_WHILE_QUEUED = "while queued"
KILL_BETWEEN_WAVES = "between waves"


# --- the driver (this file run as a script, in a pseudo-terminal) --------------------------------


def _job(i: int) -> SingleJob:
    body = f'sleep {JOB_SECONDS}\necho "job {i}" > "result {i}.txt"\nexit {i % 4}\n'
    return SingleJob(f"job{i:02d}", body)


def _masters(control_parent: str) -> list[int]:
    """The pids of the ssh master connections whose control socket is under `control_parent`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:  # ended meanwhile
            continue
        if (
            os.path.basename(argv[0]) == "ssh"
            and "ControlMaster=yes" in argv
            and any(a.startswith(f"ControlPath={control_parent}/") for a in argv)
        ):
            found.append(int(entry.name))
    return found


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] == "Z"
    except OSError:
        return True


def _outcome(i: int, results: Results) -> dict[str, Any]:
    path = results.job.path
    result = None if path is None else path / f"result {i}.txt"
    return {
        "i": i,
        "status": results.status.name,
        "exit_code": results.exit_code,
        "error": results.error,
        "jobid": results.jobid,
        "file": result.read_text() if result is not None and result.exists() else None,
    }


def _campaign(runner: GridRunner, spec: dict[str, Any]) -> dict[str, Any]:
    manager = JobManager(spec["run_folder"])
    later = PLAIN_AFTER if spec["kill_at"] == KILL_BETWEEN_WAVES else range(0)
    started: dict[int, Results] = {}
    with runner.batch():
        for i in ARRAY_JOBS:
            started[i] = _job(i).run(jobrunner=runner, jobmanager=manager)
    for i in (i for i in (*PLAIN_BEFORE, *PLAIN_AFTER) if i not in later):
        started[i] = _job(i).run(jobrunner=runner, jobmanager=manager)
    deadline = time.monotonic() + PATIENCE
    while any(r.jobid is None and not r.done for r in started.values()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the first {len(started)} jobs were not all submitted in time")
        time.sleep(0.1)
    if later:
        runner.wait(timeout=spec["timeout"])
    # Mid-run, the master dies: the next command finds it gone and the runner logs in again.
    killed = _masters(spec["control_parent"])
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in killed) and time.monotonic() < deadline:
        time.sleep(0.05)
    for i in later:
        started[i] = _job(i).run(jobrunner=runner, jobmanager=manager)
    runner.wait(timeout=spec["timeout"])
    return {"killed_masters": len(killed), "jobs": [_outcome(i, r) for i, r in started.items()]}


def drive(spec_file: str) -> int:
    """The driver: log in (the terminal prompts), run the jobs if asked, write the outcome."""
    spec = json.loads(Path(spec_file).read_text())
    # A session of its own (the test starts it so): make the pty on stdin its terminal, which
    # is where ssh asks for the code.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    logging.basicConfig(
        filename=spec["log"], level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    outcome: dict[str, Any] = {}
    try:
        runner = GridRunner(
            grid="slurm", host=spec["host"], ssh_config=spec["ssh_config"], sleepstep=0.5
        )
    except SshError as exc:
        outcome["login_error"] = {"type": type(exc).__name__, "message": str(exc)}
    else:
        try:
            if spec["jobs"]:
                outcome.update(_campaign(runner, spec))
        finally:
            runner.shutdown(cancel=True, timeout=PATIENCE)
    Path(spec["result"]).write_text(json.dumps(outcome))
    return 0


# --- the test's side ---------------------------------------------------------------------------


@dataclasses.dataclass
class Conversation:
    """What the driver did on its terminal."""

    returncode: int
    prompts: int
    output: bytes

    @property
    def other_output(self) -> str:
        """Whatever the terminal showed besides the prompts (and the line ends after them)."""
        return PROMPT.sub(b"", self.output).decode(errors="replace").strip()


@dataclasses.dataclass
class Driver:
    """One driver run's files, and what the test cleans up after it."""

    sshd: TwoFactorSshd
    folder: Path
    control_parent: str
    run_name: str = dataclasses.field(default_factory=lambda: f"r2fa-{uuid.uuid4().hex[:8]}")

    @property
    def run_folder(self) -> Path:
        """The local run folder (the JobManager's); its jobs live under ~user/<its name> there."""
        return self.folder / self.run_name

    @property
    def remote_root(self) -> Path:
        """The run's folder on the host (the login user's home, on this very machine)."""
        return Path(pwd.getpwnam(self.sshd.login).pw_dir) / self.run_name

    @property
    def log(self) -> Path:
        """The driver's log (runner_grid's "submitted job" lines and warnings)."""
        return self.folder / "driver.log"

    def log_text(self) -> str:
        """The driver's log as it is now ("" before it starts)."""
        return self.log.read_text() if self.log.exists() else ""

    def submitted(self) -> list[str]:
        """The job ids runner_grid logged as submitted."""
        return re.findall(r"submitted job (\S+):", self.log_text())

    def outcome(self) -> dict[str, Any]:
        """What the driver wrote at its end."""
        data: dict[str, Any] = json.loads((self.folder / "outcome.json").read_text())
        return data

    def run(self, answer: str, *, jobs: bool, kill_at: str = KILL_WHILE_QUEUED) -> Conversation:
        """Start the driver in a new pseudo-terminal, answer each code prompt with `answer`."""
        spec = {
            "host": self.sshd.alias,
            "ssh_config": str(self.sshd.config),
            "run_folder": str(self.run_folder),
            "control_parent": self.control_parent,
            "log": str(self.log),
            "result": str(self.folder / "outcome.json"),
            "jobs": jobs,
            "kill_at": kill_at,
            "timeout": DRIVER_TIMEOUT - 30,
        }
        spec_file = self.folder / "spec.json"
        spec_file.write_text(json.dumps(spec))
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("SSH_ASKPASS", "SSH_ASKPASS_REQUIRE", "DISPLAY", "SSH_AUTH_SOCK")
        }
        # The runner's control folder goes here (short, and known to the clean-up).
        env["XDG_RUNTIME_DIR"] = self.control_parent
        env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT / "tests"), *filter(None, [env.get("PYTHONPATH")])]
        )
        argv = [sys.executable, __file__, str(spec_file)]
        return _converse(argv, env, answer.encode(), DRIVER_TIMEOUT)

    def clean_up(self) -> None:
        """End the driver's ssh processes, cancel its jobs still queued, remove its folders."""
        leftover = _processes_under(self.control_parent)
        for pid in leftover:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        ids = {re.split(r"[_.\[]", jobid)[0] for jobid in self.submitted()}
        cancel_ids("slurm", sorted(ids & queue_ids("slurm")))
        shutil.rmtree(self.remote_root, ignore_errors=True)
        shutil.rmtree(self.control_parent, ignore_errors=True)


def _processes_under(folder: str) -> list[int]:
    """The pids of processes with an argument naming something in `folder` (ssh and its master)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            args = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if f"{folder}/" in args:
            found.append(int(entry.name))
    return found


def _converse(argv: list[str], env: dict[str, str], answer: bytes, timeout: float) -> Conversation:
    """Run `argv` in a session of its own whose stdin/out/err is a new pseudo-terminal; answer
    every code prompt shown there with `answer`, until it exits (killed after `timeout` s)."""
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
    finally:
        os.close(slave)
    output = bytearray()
    prompts = answered_to = 0
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the driver ran past {timeout:g} s; its terminal showed:\n"
                    + output.decode(errors="replace")
                )
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: nothing holds the terminal any more
                    chunk = b""
                if not chunk:
                    break
                output += chunk
                for match in PROMPT.finditer(output, answered_to):
                    prompts += 1
                    answered_to = match.end()
                    os.write(master, answer + b"\n")
            elif proc.poll() is not None:
                break
        returncode = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return Conversation(returncode, prompts, bytes(output))


@pytest.fixture
def driver(test_sshd_2fa: TwoFactorSshd, tmp_path: Path) -> Iterator[Driver]:
    """A driver's files; afterwards no process, socket, queued job or remote folder is left."""
    # The control socket's path must stay under 108 bytes: a short folder of its own in /tmp.
    made = Driver(test_sshd_2fa, tmp_path, tempfile.mkdtemp(prefix="r2fa-", dir="/tmp"))
    try:
        yield made
    finally:
        made.clean_up()


def _since(path: Path, offset: int) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        f.seek(offset)
        return f.read()


def _wait_until_gone(folder: str, timeout: float = 10.0) -> list[int]:
    """Wait for the processes naming `folder` to end; return those left after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        left = [pid for pid in _processes_under(folder) if not _gone(pid)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


@pytest.mark.slurm
@pytest.mark.parametrize("kill_at", [KILL_WHILE_QUEUED, KILL_BETWEEN_WAVES])
def test_one_code_prompt_per_login_a_forced_reconnect_prompts_once_more(
    test_sshd_2fa: TwoFactorSshd, driver: Driver, kill_at: str
) -> None:
    """20 jobs (an array and plain ones) with the master killed mid-run: the terminal shows
    exactly two code prompts (the login and the reconnection) and nothing else; the server
    counts two full logins; every job ends with its own exit code and its file comes back."""
    require("slurm")
    log_offset = test_sshd_2fa.log.stat().st_size
    otp_offset = test_sshd_2fa.otp_log.stat().st_size

    talk = driver.run(test_sshd_2fa.code, jobs=True, kill_at=kill_at)

    assert talk.returncode == 0, talk.output.decode(errors="replace")
    assert talk.other_output == "", f"the terminal showed more than the prompts: {talk.output!r}"
    outcome = driver.outcome()
    assert outcome.get("login_error") is None, outcome
    assert outcome["killed_masters"] == 1, outcome
    # One prompt for the run's login and one for the reconnection after the kill; nothing else.
    assert talk.prompts == 2, talk.output
    logins = _since(test_sshd_2fa.log, log_offset)
    assert logins.count("Accepted keyboard-interactive/pam for") == 2, logins
    tries = _since(test_sshd_2fa.otp_log, otp_offset).splitlines()
    assert [t.rsplit("result=", 1)[-1] for t in tries] == ["ok", "ok"], tries
    # The reconnection said beforehand that ssh may ask for the code again.
    log = driver.log_text()
    assert log.count("logging in again (ssh may ask for your password or one-time code)") == 1, log

    jobs = outcome["jobs"]
    assert sorted(j["i"] for j in jobs) == list(range(20))
    for job in jobs:
        i = job["i"]
        assert job["exit_code"] == i % 4, job
        assert job["status"] == ("SUCCESSFUL" if i % 4 == 0 else "CRASHED"), job
        assert job["file"] == f"job {i}\n", job
    # Submitted once each: the array (one id) and the 12 plain jobs, nothing twice.
    ids = driver.submitted()
    assert len(ids) == 1 + len(PLAIN_BEFORE) + len(PLAIN_AFTER), ids
    assert len(set(ids)) == len(ids), ids
    assert not {re.split(r"[_.\[]", i)[0] for i in ids} & queue_ids("slurm")
    # The driver's exit closed its master: no ssh process and no socket of it is left.
    assert _wait_until_gone(driver.control_parent) == []
    assert os.listdir(driver.control_parent) == []


def test_a_wrong_code_is_an_auth_error_naming_the_host_and_nothing_is_submitted(
    test_sshd_2fa: TwoFactorSshd, driver: Driver
) -> None:
    code = test_sshd_2fa.code
    wrong = "000000" if code != "000000" else "111111"
    log_offset = test_sshd_2fa.log.stat().st_size
    otp_offset = test_sshd_2fa.otp_log.stat().st_size

    talk = driver.run(wrong, jobs=True)  # jobs would run if the login went through

    assert talk.returncode == 0, talk.output.decode(errors="replace")
    error = driver.outcome().get("login_error")
    assert error is not None, driver.outcome()
    assert error["type"] == "SshAuthError", error
    assert "runner-test-2fa" in error["message"], error
    assert "Permission denied" in error["message"], error
    # ssh asked as often as its configuration allows (NumberOfPasswordPrompts), each answer wrong.
    assert talk.prompts >= 1, talk.output
    assert talk.other_output == "", f"the terminal showed more than the prompts: {talk.output!r}"
    tries = _since(test_sshd_2fa.otp_log, otp_offset).splitlines()
    assert [t.rsplit("result=", 1)[-1] for t in tries] == ["wrong"] * talk.prompts, tries
    assert "Accepted keyboard-interactive" not in _since(test_sshd_2fa.log, log_offset)
    assert driver.submitted() == []
    assert not driver.remote_root.exists()
    assert _wait_until_gone(driver.control_parent) == []


def test_a_refused_login_leaves_no_control_folder(
    test_sshd_2fa: TwoFactorSshd, driver: Driver
) -> None:
    talk = driver.run("000000" if test_sshd_2fa.code != "000000" else "111111", jobs=False)
    assert driver.outcome()["login_error"]["type"] == "SshAuthError", talk.output
    assert _wait_until_gone(driver.control_parent) == []
    assert os.listdir(driver.control_parent) == []


if __name__ == "__main__":
    sys.exit(drive(sys.argv[1]))
