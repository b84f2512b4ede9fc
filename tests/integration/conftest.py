"""Fixtures for tests against the real SLURM and Grid Engine (tools/slurm.sh, tools/sge.sh)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

import pytest

from integration._schedulers import (
    PATIENCE,
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
