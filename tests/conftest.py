"""Suite-wide pytest set-up: Hypothesis profiles and the strict-skip rule for CI."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

if TYPE_CHECKING:
    from collections.abc import Generator

# Two cores shared with daemons and other sessions: wall-clock deadlines would make
# property tests flaky without testing anything, so none is set.
settings.register_profile(
    "dev", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

REQUIRE_SCHEDULERS = os.environ.get("RUNNER_REQUIRE_SCHEDULERS", "") not in ("", "0")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Where CI demands real schedulers, a skipped integration test is a failure."""
    report = yield
    if REQUIRE_SCHEDULERS and report.skipped and item.get_closest_marker("integration"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = (
            f"RUNNER_REQUIRE_SCHEDULERS is set, so this integration test may not skip: {reason}"
        )
    return report
