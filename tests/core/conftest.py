"""Fixtures for the runner_core tests: an isolated config and a job folder."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from runner_core import JobManager, config
from runner_core._lifecycle import live_runners

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(autouse=True)
def _isolated_config() -> Iterator[None]:
    """Each test starts from the default config with a short kill grace, and leaves it so.

    Runners the test made are shut down (cancelling) afterwards, so a failed test leaves
    no job running for the exit hook to wait for.
    """
    saved = dict(config)
    before = {id(r) for r in live_runners()}
    config.kill_grace = 0.5
    config.default_jobrunner = None
    config.default_jobmanager = None
    yield
    for runner in live_runners():
        if id(runner) not in before:
            runner.shutdown(cancel=True, timeout=10)
    config.clear()
    config.update(saved)


@pytest.fixture
def manager(tmp_path: Path) -> JobManager:
    """A JobManager rooted in the test's own temporary folder."""
    return JobManager(tmp_path / "work")
