"""Tests for the job wrapper that records a job's exit code (run here with /bin/sh directly)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from runner_grid._wrapper import (
    NO_TIMES,
    directive_lines,
    exitcode_path,
    read_exitcode,
    read_times,
    remove_temporaries,
    temporary_paths,
    times_for,
    times_path,
    wrapper_path,
    write_wrapper,
)


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
    before = time.time()
    proc = subprocess.run([wrapper], cwd=tmp_path, check=False)
    after = time.time()
    assert proc.returncode == code
    assert read_exitcode(exit_file) == code
    assert (folder / "where").read_text().strip() == str(folder)
    # No temporary file is left: only the exit code and the times beside the job's files.
    assert sorted(p.name for p in folder.iterdir()) == [
        "j.exitcode",
        "j.grid",
        "j.run",
        "j.times",
        "where",
    ]
    times = read_times(times_path(str(folder), "j.run"))
    assert times.started is not None
    assert times.finished is not None
    assert before - 0.01 <= times.started <= times.finished <= after + 0.01
    assert times.native_id is None  # not under SLURM


def test_the_times_file_is_written_at_the_start_and_names_the_slurm_job(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    (tmp_path / "j.run").write_text(
        f"#!/bin/sh\nwhile [ ! -e {gate} ]; do sleep 0.02; done\nsleep 0.3\n"
    )
    wrapper = write_wrapper(str(tmp_path), "j.run")
    times_file = times_path(str(tmp_path), "j.run")
    env = {**os.environ, "SLURM_JOB_ID": "4052"}
    proc = subprocess.Popen([wrapper.path], env=env)
    try:
        deadline = time.monotonic() + 10
        while read_times(times_file).started is None and time.monotonic() < deadline:
            time.sleep(0.01)
        started = read_times(times_file)
        assert started.started is not None
        assert started.finished is None  # still running
        assert started.native_id == "4052"
        gate.touch()
    finally:
        proc.wait(timeout=10)
    ended = read_times(times_file)
    assert ended.started == started.started
    assert ended.finished is not None
    assert 0.3 <= ended.finished - ended.started < 1.3


def test_read_times_of_a_missing_or_garbled_file_knows_nothing(tmp_path: Path) -> None:
    assert read_times(str(tmp_path / "none.times")) == NO_TIMES
    (tmp_path / "bad.times").write_text("start=x end= id=\n")
    assert read_times(str(tmp_path / "bad.times")) == NO_TIMES


def test_a_job_killed_while_writing_leaves_nothing_once_the_runner_tidies(tmp_path: Path) -> None:
    exit_file = str(tmp_path / "j.exitcode")
    for leftover in temporary_paths(exit_file, times_for(exit_file)):
        Path(leftover).write_text("")  # what a kill between printf and mv leaves
    remove_temporaries(exit_file, times_for(exit_file))
    assert list(tmp_path.iterdir()) == []


def test_read_exitcode_of_garbage_is_none(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("not a number")
    assert read_exitcode(str(tmp_path / "x")) is None
    assert read_exitcode(str(tmp_path / "missing")) is None
