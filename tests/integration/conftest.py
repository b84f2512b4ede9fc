"""Fixtures for tests against the real SLURM and Grid Engine (tools/slurm.sh, tools/sge.sh)."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pytest

from integration._schedulers import (
    PATIENCE,
    ROOT,
    SCHEDULERS,
    SubmittedIds,
    cancel_ids,
    queue_ids,
    require,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from runner_grid import GridRunner


@pytest.fixture(params=list(SCHEDULERS.values()))
def scheduler(request: pytest.FixtureRequest) -> str:
    """Each real scheduler in turn ("slurm", "sge"); skips with the reason where it does not run."""
    name: str = request.param
    require(name)
    return name


@pytest.fixture
def submitted(scheduler: str) -> Iterator[SubmittedIds]:
    """The ids of jobs the test's runners submit; any still queued at the end are cancelled."""
    handler = SubmittedIds()
    logger = logging.getLogger("runner_grid")
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        cancel_ids(scheduler, sorted(set(handler.snapshot()) & queue_ids(scheduler)))


@pytest.fixture
def make_runner(scheduler: str) -> Iterator[Callable[..., GridRunner]]:
    """Factory for GridRunners on the test's scheduler (sleepstep 0.5 s); all shut down after."""
    from runner_grid import GridRunner  # noqa: PLC0415 - optional package: absent in some installs

    runners: list[GridRunner] = []

    def make(**kwargs: Any) -> GridRunner:
        kwargs.setdefault("sleepstep", 0.5)
        runner = GridRunner(grid=scheduler, **kwargs)
        runners.append(runner)
        return runner

    yield make
    for runner in runners:
        runner.shutdown(cancel=True, timeout=PATIENCE)


# --- the test sshd (tools/sshd.sh) ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TestSshd:
    """Where the private sshd of tools/sshd.sh keeps things (see the script's header)."""

    state: Path
    alias: str = "runner-test"

    @property
    def config(self) -> Path:
        """The client configuration, for ``ssh -F`` / ``SshHost(config_file=...)``."""
        return self.state / "ssh_config"

    @property
    def log(self) -> Path:
        """sshd's log: one "Accepted publickey" per login, one "Starting session" per command."""
        return self.state / "sshd.log"

    @property
    def port(self) -> int:
        """The port it listens on (127.0.0.1)."""
        return int((self.state / "port").read_text().strip())

    @property
    def login(self) -> str:
        """The remote user (its home stands for the cluster's)."""
        return os.environ.get("RUNNER_SSHD_USER", "runnerssh")

    def script(self, command: str) -> subprocess.CompletedProcess[str]:
        """Run ``tools/sshd.sh COMMAND`` (start, stop, status) and return what it did."""
        return subprocess.run(
            ["bash", str(SSHD_SCRIPT), command],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
            check=False,
        )


SSHD_SCRIPT = ROOT / "tools" / "sshd.sh"


@pytest.fixture(scope="session")
def test_sshd() -> TestSshd:
    """The private sshd on 127.0.0.1 (tools/sshd.sh), started when it does not run.

    Skips with the reason when it cannot run (not root, no openssh-server): a failure under
    RUNNER_REQUIRE_SCHEDULERS=1, since every test using it is marked integration.
    """
    sshd = TestSshd(Path(os.environ.get("RUNNER_SSHD_DIR", "/run/runner-sshd")))
    if shutil.which("ssh") is None:
        pytest.skip(f"no ssh client on PATH (install it as root: bash {SSHD_SCRIPT} install)")
    if sshd.script("status").returncode == 0:
        return sshd
    if os.geteuid() != 0:
        pytest.skip(
            f"the test sshd does not run and starting it needs root: bash {SSHD_SCRIPT} start"
        )
    started = sshd.script("start")
    if started.returncode != 0:
        pytest.skip(f"{SSHD_SCRIPT} start failed: {(started.stderr or started.stdout).strip()}")
    return sshd


@dataclasses.dataclass(frozen=True)
class TwoFactorSshd(TestSshd):
    """The two-factor sshd of tools/sshd.sh (``start-2fa``): a key, then a one-time code.

    Its files are in ``<state>/2fa``; `log` counts a full login as one "Accepted
    keyboard-interactive/pam" line. Its client configuration has no BatchMode, so a login
    prompts for the code on the terminal.
    """

    alias: str = "runner-test-2fa"

    @property
    def code(self) -> str:
        """The one code the server accepts."""
        return (self.state / "code").read_text().strip()

    @property
    def otp_log(self) -> Path:
        """The code checker's log: one line per code tried, ending "result=ok" or "result=wrong"."""
        return self.state / "otp.log"


@pytest.fixture(scope="session")
def test_sshd_2fa(test_sshd: TestSshd) -> TwoFactorSshd:
    """The two-factor sshd on 127.0.0.1 (``tools/sshd.sh start-2fa``), started when it does not run.

    Skips where `test_sshd` skips (no ssh client; not running and not root); anywhere else a
    server that does not start is a failure, not a skip.
    """
    sshd = TwoFactorSshd(test_sshd.state / "2fa")
    if sshd.script("status-2fa").returncode == 0:
        return sshd
    if os.geteuid() != 0:
        pytest.skip(
            "the two-factor test sshd does not run and starting it needs root: "
            f"bash {SSHD_SCRIPT} start-2fa"
        )
    started = sshd.script("start-2fa")
    if started.returncode != 0:
        pytest.fail(f"{SSHD_SCRIPT} start-2fa failed: {(started.stderr or started.stdout).strip()}")
    return sshd
