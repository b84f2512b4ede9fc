"""grid="auto" on this machine, where SLURM and Grid Engine are both installed."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from integration._schedulers import ORIGINAL_PATH, PATIENCE, require, tool
from runner_core import JobManager, SingleJob
from runner_grid import DetectionError, GridRunner

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slurm, pytest.mark.sge]


#: The submit commands autodetection looks for.
SUBMIT_COMMANDS = ("sbatch", "qsub")


def _only_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *commands: str) -> None:
    """Make PATH one folder with the system's commands but, of the submit commands, only these.

    Debian's qsub is a shell wrapper that needs basename, uname and friends, so the folder links
    every command of the original PATH except the submit commands not asked for.
    """
    folder = tmp_path / "bin"
    folder.mkdir()
    for command in commands:
        if tool(command) is None:
            pytest.skip(f"{command} is not installed (tools/slurm.sh / tools/sge.sh install it)")
    for directory in reversed(ORIGINAL_PATH.split(os.pathsep)):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            if entry.name in SUBMIT_COMMANDS and entry.name not in commands:
                continue
            link = folder / entry.name
            if link.is_symlink():
                link.unlink()
            link.symlink_to(entry.path)
    monkeypatch.setenv("PATH", str(folder))


def _require_installed() -> None:
    missing = [c for c in ("sbatch", "qsub") if tool(c) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not on PATH: run tools/slurm.sh and tools/sge.sh")


def test_auto_picks_grid_engine_here_and_runs_a_job_on_it(tmp_path: Path) -> None:
    """Sorted names are pbs, sge, slurm: pbs is refused (qsub is Grid Engine's), sge works."""
    _require_installed()
    require("sge")
    runner = GridRunner(grid="auto", sleepstep=0.5)
    try:
        assert runner.scheme_name == "sge"
        job = SingleJob(name="auto", runscript='echo "on $SGE_CELL"\n')
        results = job.run(jobrunner=runner, jobmanager=JobManager(tmp_path / "jobs"))
        assert results.wait(timeout=PATIENCE).ok, results.error
        assert job.path is not None
        assert (job.path / "auto.out").read_text().strip() == "on default"
    finally:
        runner.shutdown(cancel=True, timeout=PATIENCE)


def test_grid_engines_qsub_alone_is_never_taken_for_pbs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With only Grid Engine's qsub on PATH, pbs (sorted first) is rejected and sge chosen."""
    _only_on_path(tmp_path, monkeypatch, "qsub")
    assert GridRunner(grid="auto").scheme_name == "sge"


def test_sbatch_alone_gives_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With only sbatch on PATH, pbs and sge are skipped (no qsub) and slurm is chosen."""
    _only_on_path(tmp_path, monkeypatch, "sbatch")
    assert GridRunner(grid="auto").scheme_name == "slurm"


def test_nothing_on_path_names_every_scheme_tried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No scheduler command on PATH: DetectionError lists pbs, sge and slurm."""
    _only_on_path(tmp_path, monkeypatch)
    with pytest.raises(DetectionError) as info:
        GridRunner(grid="auto")
    for name in ("pbs", "sge", "slurm"):
        assert name in str(info.value)
    assert os.environ["PATH"] == str(tmp_path / "bin")
