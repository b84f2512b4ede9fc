"""Tests for the job wrapper that records a job's exit code (run here with /bin/sh directly)."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

import pytest

from runner_grid._wrapper import (
    directive_lines,
    exitcode_path,
    read_exitcode,
    wrapper_path,
    write_wrapper,
)

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    ("runscript", "name"),
    [
        ("opt.run", "opt.grid"),
        ("my job.run", "my_job.grid"),
        ("1st.run", "job_1st.grid"),
        ("ünï.run", "job__n_.grid"),
        ("a:b@c.run", "a_b_c.grid"),
    ],
)
def test_wrapper_name_is_a_valid_job_name(runscript: str, name: str) -> None:
    assert wrapper_path("/w", runscript) == f"/w/{name}"


def test_directives_are_kept_from_anywhere_in_order() -> None:
    script = (
        "#!/bin/bash\nexec >x.out\n#SBATCH -N 2\n#$ -pe smp 4\necho\n#PBS -l walltime=1:00\n# no\n"
    )
    assert directive_lines(script) == ["#SBATCH -N 2", "#$ -pe smp 4", "#PBS -l walltime=1:00"]


@pytest.mark.parametrize("code", [0, 3, 255])
def test_wrapper_runs_the_runscript_in_its_folder_and_records_the_code(
    tmp_path: Path, code: int
) -> None:
    folder = tmp_path / "it's a $folder"
    folder.mkdir()
    script = folder / "j.run"
    script.write_text(f"#!/bin/sh\n#SBATCH -J x\npwd > where\nexit {code}\n")
    script.chmod(0o644)  # not executable: the wrapper writer fixes that
    (folder / "j.exitcode").write_text("99\n")  # a stale file from an earlier run goes
    wrapper, exit_file, directives = write_wrapper(str(folder), "j.run")
    assert directives == ("#SBATCH -J x",)
    assert exit_file == exitcode_path(str(folder), "j.run") == str(folder / "j.exitcode")
    assert read_exitcode(exit_file) is None
    lines = (folder / "j.grid").read_text().splitlines()
    assert lines[:2] == ["#!/bin/sh", "#SBATCH -J x"]
    proc = subprocess.run([wrapper], cwd=tmp_path, check=False)
    assert proc.returncode == code
    assert read_exitcode(exit_file) == code
    assert (folder / "where").read_text().strip() == str(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["j.exitcode", "j.grid", "j.run", "where"]


def test_read_exitcode_of_garbage_is_none(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("not a number")
    assert read_exitcode(str(tmp_path / "x")) is None
    assert read_exitcode(str(tmp_path / "missing")) is None
