"""Tests for grid="auto" with fake scheduler commands on a temporary PATH.

Each fake is a small shell script printing what the real command prints for the probe (the
Grid Engine and SLURM texts as recorded on this machine, PBS Pro and Torque as their docs show);
they stand in for schedulers this machine does not have (PBS) or for combinations it cannot have.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from runner_grid import DetectionError, GridRunner
from runner_grid._detect import detect_scheme, probe_scheme
from runner_grid.schemes import SCHEMES

if TYPE_CHECKING:
    from pathlib import Path

SGE_QSUB = """#!/bin/sh
case "$1" in
  -help) echo "SGE 8.1.9"; echo "usage: qsub [options]"; exit 0 ;;
  *) echo "qsub: invalid option argument \\"$1\\"" >&2; exit 2 ;;
esac
"""
PBSPRO_QSUB = """#!/bin/sh
case "$1" in
  --version) echo "pbs_version = 2022.1.1"; exit 0 ;;
  *) echo "qsub: invalid option -- '$1'" >&2; exit 2 ;;
esac
"""
TORQUE_QSUB = """#!/bin/sh
[ "$1" = --version ] && { echo "Version: 6.1.3"; echo "Commit: 0123abc"; exit 0; }
exit 2
"""
SBATCH = """#!/bin/sh
[ "$1" = --version ] && { echo "slurm-wlm 22.05.8"; exit 0; }
exit 1
"""
BROKEN_SBATCH = """#!/bin/sh
echo "sbatch: error: resolve_ctls_from_dns_srv: res_nsearch error" >&2
exit 1
"""


def fake_path(tmp_path: Path, **scripts: str) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return str(bin_dir)


def schemes() -> dict[str, dict[str, object]]:
    return {name: factory() for name, factory in SCHEMES.items()}


@pytest.mark.parametrize(
    ("scripts", "expected"),
    [
        ({"qsub": SGE_QSUB}, "sge"),
        ({"qsub": PBSPRO_QSUB}, "pbs"),
        ({"qsub": TORQUE_QSUB}, "pbs"),
        ({"sbatch": SBATCH}, "slurm"),
        ({"sbatch": SBATCH, "qsub": SGE_QSUB}, "sge"),  # this machine: sorted order picks sge
        ({"sbatch": SBATCH, "qsub": PBSPRO_QSUB}, "pbs"),
        ({"sbatch": BROKEN_SBATCH, "qsub": SGE_QSUB}, "sge"),
    ],
)
def test_detects_the_first_working_scheme_in_sorted_order(
    tmp_path: Path, scripts: dict[str, str], expected: str
) -> None:
    assert detect_scheme(schemes(), fake_path(tmp_path, **scripts)) == expected


def test_grid_engine_qsub_is_never_taken_for_pbs(tmp_path: Path) -> None:
    reason = probe_scheme(SCHEMES["pbs"](), fake_path(tmp_path, qsub=SGE_QSUB))
    assert reason is not None
    assert "qsub --version exited 2" in reason


def test_nothing_found_lists_what_was_tried_and_why(tmp_path: Path) -> None:
    path = fake_path(tmp_path, sbatch=BROKEN_SBATCH)
    with pytest.raises(DetectionError) as info:
        detect_scheme(schemes(), path)
    message = str(info.value)
    assert "pbs: qsub is not on PATH" in message
    assert "sge: qsub is not on PATH" in message
    assert "slurm: sbatch --version exited 1" in message
    assert "resolve_ctls_from_dns_srv" in message


def test_missing_submit_command_is_skipped_without_running_anything(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    probe = f"#!/bin/sh\ntouch {marker}\nexit 0\n"
    path = fake_path(tmp_path, sbatch=SBATCH, qprobe=probe)
    scheme = SCHEMES["sge"]()
    scheme["commands"]["probe"] = ["qprobe"]
    assert probe_scheme(scheme, path) == "qsub is not on PATH"
    assert not marker.exists()


def test_custom_scheme_without_probe_uses_version_exit_status(tmp_path: Path) -> None:
    path = fake_path(tmp_path, mysub='#!/bin/sh\n[ "$1" = --version ] && exit 0\nexit 1\n')
    scheme = {"commands": {"submit": "mysub"}}
    assert probe_scheme(scheme, path) is None
    assert detect_scheme({"zz": scheme, "aa": {"commands": {"submit": "nothere"}}}, path) == "zz"


def test_gridrunner_auto_uses_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", fake_path(tmp_path, sbatch=SBATCH))
    runner = GridRunner(sleepstep=1)
    assert runner.scheme_name == "slurm"
    assert runner.settings["commands"]["submit"] == "sbatch"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(DetectionError, match="grid='auto' found no scheduler"):
        GridRunner()
