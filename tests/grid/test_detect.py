"""Tests for grid="auto" with fake scheduler commands on a temporary PATH.

Each fake is a small shell script printing what the real command prints for the probe (the
Grid Engine and SLURM texts as recorded on this machine, PBS Pro and Torque as their docs show);
they stand in for schedulers this machine does not have (PBS) or for combinations it cannot have.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from runner_grid import DetectionError, GridRunner
from runner_grid._detect import detect_scheme, probe_scheme
from runner_grid.schemes import SCHEMES
from runner_grid.schemes.slurm import Slurm

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
    bin_dir.mkdir(parents=True, exist_ok=True)
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


def plams_scheme(submit: str) -> dict[str, Any]:
    """A scheme with the seed's keys only: no probe, no detect."""
    return {
        "workdir": "-D",
        "output": "-o",
        "error": "-e",
        "commands": {
            "submit": submit,
            "check": "myq",
            "getid": lambda out: out.strip() or None,
            "running": lambda out: out.split(),
        },
    }


def test_custom_scheme_without_probe_uses_version_exit_status(tmp_path: Path) -> None:
    path = fake_path(
        tmp_path,
        mysub='#!/bin/sh\n[ "$1" = --version ] && exit 0\nexit 1\n',
        badsub="#!/bin/sh\nexit 0\n",
    )
    assert probe_scheme(plams_scheme("mysub"), path) is None
    found = {"zz": plams_scheme("mysub"), "aa": plams_scheme("nothere")}
    assert detect_scheme(found, path) == "zz"
    assert probe_scheme(plams_scheme("badsub --x"), path) is None  # exit 0 is enough


def test_a_scheme_with_bad_settings_is_skipped_and_says_why(tmp_path: Path) -> None:
    path = fake_path(tmp_path, sbatch=SBATCH)
    broken = {**SCHEMES["slurm"](), "chek_timeout": 5}
    assert "did you mean 'check_timeout'" in (probe_scheme(broken, path, "mine") or "")
    with pytest.raises(DetectionError, match=r"mine: grid scheme 'mine' has an unknown key"):
        detect_scheme({"mine": broken}, path)
    assert detect_scheme({"mine": broken, "slurm": SCHEMES["slurm"]()}, path) == "slurm"


class SiteSlurm(Slurm):
    """A site's own sbatch wrapper, which prints its own banner for --version."""

    submit_command = "site-sbatch"
    probe_command = ("site-sbatch", "--version")

    def detect(self, returncode: int, output: str) -> bool:
        return returncode == 0 and output.startswith("site wrapper")


def test_a_scheduler_class_is_detected_through_its_probe_and_detect(tmp_path: Path) -> None:
    wrapper = '#!/bin/sh\necho "site wrapper 1.0 around"; echo "slurm 22.05.8"\n'
    path = fake_path(tmp_path, **{"site-sbatch": wrapper, "sbatch": SBATCH})
    assert probe_scheme(SiteSlurm(), path) is None
    assert probe_scheme(Slurm(), path) is None
    schemes: dict[str, Any] = {"a-site": SiteSlurm(), "sge": SCHEMES["sge"]()}
    assert detect_scheme(schemes, path) == "a-site"
    plain = fake_path(tmp_path / "plain", **{"site-sbatch": SBATCH})
    assert probe_scheme(SiteSlurm(), plain) == (
        "site-sbatch --version exited 0 and printed 'slurm-wlm 22.05.8'"
    )


def test_gridrunner_auto_uses_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", fake_path(tmp_path, sbatch=SBATCH))
    runner = GridRunner(sleepstep=1)
    assert runner.scheme_name == "slurm"
    assert runner.settings["commands"]["submit"] == "sbatch"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(DetectionError, match="grid='auto' found no scheduler"):
        GridRunner()
