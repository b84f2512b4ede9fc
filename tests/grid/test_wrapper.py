"""Tests for the job wrapper that records a job's exit code (run here with /bin/sh directly)."""

from __future__ import annotations

import os
import subprocess
import time
from typing import TYPE_CHECKING

import pytest

from runner_grid._wrapper import (
    NO_TIMES,
    directive_lines,
    exitcode_path,
    leftovers,
    read_exitcode,
    read_times,
    remove_leftovers,
    times_path,
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
    before = time.time()
    proc = subprocess.run([wrapper], cwd=tmp_path, check=False)
    after = time.time()
    assert proc.returncode == code
    assert read_exitcode(exit_file) == code
    assert (folder / "where").read_text().strip() == str(folder)
    # No temporary file: only the exit code and the times beside the job's files.
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


def test_an_older_wrappers_leftover_is_removed_and_nothing_else(tmp_path: Path) -> None:
    exit_file = str(tmp_path / "j.exitcode")
    (tmp_path / "j.exitcode.4711").write_text("")  # what a kill between printf and mv left
    (tmp_path / "j.exitcode.notes").write_text("mine")
    assert leftovers(exit_file) == [str(tmp_path / "j.exitcode.4711")]
    remove_leftovers(exit_file)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.exitcode.notes"]


def test_a_record_without_its_line_end_does_not_count(tmp_path: Path) -> None:
    """What a reader sees while the wrapper writes, or after a kill cut a write short."""
    exit_file = tmp_path / "j.exitcode"
    exit_file.write_text("14")  # "143\n" cut short: not exit code 14
    assert read_exitcode(str(exit_file)) is None
    exit_file.write_text("143\n")
    assert read_exitcode(str(exit_file)) == 143
    times = tmp_path / "j.times"
    times.write_text("start=1796640000.25 id=4052\nend=17966")  # the end line is cut
    assert read_times(str(times)) == (1796640000.25, None, "4052")
    times.write_text("start=17966")
    assert read_times(str(times)) == NO_TIMES
