"""GridRunner's hooks for the run journal: what it records of itself, and finding a job again.

The end-to-end paths (a driver killed with jobs queued, then resumed; ``runner cancel`` of a
dead driver's jobs; ``grid_jobs_on_exit = "keep"``) run on the real SLURM and Grid Engine in
tests/integration/test_resume_grid.py.
"""

from __future__ import annotations

import sys

import pytest

from runner_grid import GridRunner, Scheme
from runner_grid._submitter import find_recorded
from runner_grid.schemes import pbs, sge, slurm
from runner_settings import Settings


@pytest.mark.parametrize("name", ["slurm", "sge", "pbs"])
def test_journal_info_builds_the_same_runner_again(name: str) -> None:
    runner = GridRunner(grid=name, sleepstep=2.5, maxjobs=7, submit_workers=3)
    info = runner.journal_info()
    assert info["kind"] == "grid"
    again = GridRunner.from_journal_info(info)
    assert repr(again) == repr(runner)
    assert again.journal_info() == info


def test_a_custom_scheme_cannot_be_built_from_the_journal() -> None:
    runner = GridRunner(grid=Settings(slurm.scheme()))
    with pytest.raises(ValueError, match=r"running its script again"):
        GridRunner.from_journal_info(runner.journal_info())


def _scheme_finding(module: object, found: str) -> Scheme:
    """The module's scheme, with a tag lookup that always finds `found` (stands in for squeue)."""
    raw = Settings(module.scheme())  # type: ignore[attr-defined]
    raw.commands.find_tag = lambda tag: [[sys.executable, "-c", f"print({found!r})"]]
    raw.commands.parse_tag = lambda tag, rc, out, err: out.strip() or None
    return Scheme.of(raw)


@pytest.mark.parametrize(
    ("module", "found", "task"),
    [(slurm, "4711", "4711_3"), (sge, "4711", "4711.3"), (pbs, "4711[].srv", "4711[3].srv")],
)
def test_a_recorded_tag_finds_the_job_or_the_array_task(
    module: object, found: str, task: str
) -> None:
    scheme = _scheme_finding(module, found)
    assert find_recorded(scheme, "job-1a2b3c4d") == found
    assert find_recorded(scheme, "job-1a2b3c4d/3") == task
    assert find_recorded(scheme, None) is None


def test_a_tag_lookup_that_cannot_tell_refuses_rather_than_submit_again() -> None:
    raw = Settings(slurm.scheme())
    raw.commands.find_tag = lambda tag: [[sys.executable, "-c", "import sys; sys.exit(1)"]]
    with pytest.raises(RuntimeError, match="not submitted again"):
        find_recorded(Scheme.of(raw), "job-1a2b3c4d")
