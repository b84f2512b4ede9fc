"""config: the documented defaults, and the defaults run() falls back to."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import runner_core
from runner_core import JobManager, JobRunner, config
from runner_core._defaults import default_jobmanager, default_jobrunner
from runner_settings import Settings

if TYPE_CHECKING:
    import pytest


def test_defaults() -> None:
    assert isinstance(config, Settings)
    assert config.daemon_threads is True
    assert config.wait_at_exit is True
    assert config.default_jobrunner is None
    assert config.default_jobmanager is None
    assert config.kill_grace == 0.5  # the test fixture shortens the default 2.0


def test_default_kill_grace_is_two_seconds() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "from runner_core import config; print(config.kill_grace)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "2.0"


def test_default_runner_and_manager_are_made_once(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(str(tmp_path))
    runner = default_jobrunner()
    assert isinstance(runner, JobRunner)
    assert default_jobrunner() is runner
    assert config.default_jobrunner is runner
    manager = default_jobmanager()
    assert isinstance(manager, JobManager)
    assert default_jobmanager() is manager


def test_public_names() -> None:
    assert sorted(runner_core.__all__) == [
        "Attempt",
        "CancelOutcome",
        "GROWABLE",
        "JobError",
        "JobManager",
        "JobRecord",
        "JobRunner",
        "JobStateError",
        "JobStatus",
        "JournalLocked",
        "JournalState",
        "REASONS",
        "RESOURCE_KEYS",
        "RETRY_REASONS",
        "Resources",
        "Results",
        "Retry",
        "SingleJob",
        "Terminated",
        "__version__",
        "as_completed",
        "cancel_run",
        "config",
        "format_memory",
        "format_walltime",
        "megabytes",
        "parse_memory",
        "parse_walltime",
        "read_journal",
        "report_failure",
    ]
    for name in runner_core.__all__:
        assert getattr(runner_core, name) is not None


def test_import_is_light() -> None:
    code = (
        "import sys, runner_core\n"
        "heavy = {'subprocess', 'logging', 'pathlib', 'typing_extensions', 'runner_grid'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
