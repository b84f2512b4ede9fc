"""The `runner` command end to end: real runscripts, exit status, summary, JSON, progress."""

from __future__ import annotations

import ast
import contextlib
import importlib.metadata
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import types
from pathlib import Path
from typing import Any, ClassVar, Iterator

import pytest

import runner_core
import runner_core.cli._runners
import runner_core.ext
from runner_core import JobManager, JobRunner, JobStatus, SingleJob
from runner_core.cli import main
from runner_core.cli._batch import Batch, clock, describe_reason, make_job
from runner_core.cli._folder import resume_plan
from runner_core.cli._summary import json_document, write_table

# A progress line: `[3/10] opt.002 (job 4711) CRASHED exit 3 1.2s [see work/opt.002/opt.err]`.
PLAIN_LINE = re.compile(
    r"\[(?P<done>\d+)/(?P<total>\d+)\] (?P<name>\S+)(?: \(job (?P<jobid>[^)]+)\))?"
    r" (?P<status>[A-Z]+)(?: \((?P<reason>[a-z_]+)\))?(?: exit (?P<exit>-?\d+))?"
    r"(?: (?P<seconds>\d+\.\d)s)?"
    r"(?: \[see (?P<see>[^]]+)\])?"
)


def _script(folder: Path, name: str, body: str) -> str:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    return str(path)


@pytest.fixture
def scripts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder for the scripts; the test runs with tmp_path as its working directory."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "scripts"
    folder.mkdir()
    return folder


def _table_rows(stdout: str) -> dict[str, list[str]]:
    """The summary table as {job: [status, exit, seconds, folder]}."""
    lines = stdout.splitlines()
    assert lines[0].split() == ["job", "status", "exit", "seconds", "folder"], stdout
    rows = {}
    for line in lines[1:]:
        cells = line.split()
        if len(cells) == 5 and cells[1].isupper():
            rows[cells[0]] = cells[1:]
    return rows


# --- exit status and summary ----------------------------------------------------


def test_all_jobs_succeed_exit_0_and_each_runs_in_its_own_folder(
    scripts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _script(scripts, "first.sh", "echo one > result.txt\n")
    second = _script(scripts, "second.sh", "#!/bin/sh\necho two > result.txt\necho to stdout\n")

    status = main(["run", "--parallel", "--workdir", "work", first, second])

    out = capsys.readouterr().out
    assert status == 0
    work = Path("work").resolve()
    assert (work / "first" / "result.txt").read_text() == "one\n"
    assert (work / "second" / "result.txt").read_text() == "two\n"
    assert (work / "second" / "second.out").read_text() == "to stdout\n"
    rows = _table_rows(out)
    assert rows["first"][:2] == ["SUCCESSFUL", "0"]
    assert rows["second"][:2] == ["SUCCESSFUL", "0"]
    assert float(rows["first"][2]) >= 0
    assert rows["first"][3] == str(Path("work") / "first")
    assert out.splitlines()[-1] == "2 succeeded, 0 failed"


def test_one_failing_job_gives_exit_1_and_an_error_line(
    scripts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _script(scripts, "good.sh", "exit 0\n")
    bad = _script(scripts, "bad.sh", "echo 'bad.sh: input has no atoms' >&2\nexit 3\n")

    status = main(["run", "--workdir", "work", good, bad])

    out = capsys.readouterr().out
    assert status == 1
    rows = _table_rows(out)
    assert rows["good"][:2] == ["SUCCESSFUL", "0"]
    assert rows["bad"][:2] == ["CRASHED", "3"]
    # A local run's table is the one it always was: no jobid column.
    assert out.splitlines()[0] == "job   status      exit  seconds  folder"
    assert re.fullmatch(r"bad   CRASHED        3     \d\.\d\d  work/bad", out.splitlines()[2])
    bad_err = Path("work", "bad", "bad.err")
    assert "bad: exit code 3: bad.sh: input has no atoms [see work/bad/bad.err]" in out.splitlines()
    assert bad_err.read_text() == "bad.sh: input has no atoms\n"
    assert "good:" not in out
    assert out.splitlines()[-1] == "1 succeeded, 1 failed"


def test_a_job_that_cannot_start_is_failed_with_the_reason(
    scripts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing_interpreter = _script(scripts, "nointerp.sh", "#!/no/such/interpreter\necho hi\n")

    status = main(["run", "--workdir", "work", missing_interpreter])

    out = capsys.readouterr().out
    assert status == 1
    assert _table_rows(out)["nointerp"][0] == "FAILED"
    error_lines = [line for line in out.splitlines() if line.startswith("nointerp: ")]
    assert len(error_lines) == 1
    assert error_lines[0] != "nointerp: "


def test_shebang_line_becomes_the_runscript_shebang(
    scripts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bash_only = _script(
        scripts, "arrays.sh", "#!/bin/bash\nwords=(a b c)\necho ${#words[@]} > count.txt\n"
    )
    plain = _script(scripts, "plain.sh", "echo plain > plain.txt\n")

    status = main(["run", "--workdir", "work", bash_only, plain])

    assert status == 0, capsys.readouterr()
    work = Path("work")
    assert (work / "arrays" / "count.txt").read_text() == "3\n"
    runscript = (work / "arrays" / "arrays.run").read_text()
    assert runscript.startswith("#!/bin/bash\n")
    assert runscript.count("#!") == 1
    assert (work / "plain" / "plain.run").read_text().startswith("#!/bin/sh")


def test_scripts_with_the_same_stem_get_unique_folders(
    scripts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = _script(scripts / "a", "job.sh", "echo a > which.txt\n")
    two = _script(scripts / "b", "job.sh", "echo b > which.txt\n")

    status = main(["run", "--json", "--workdir", "work", one, two])

    document = json.loads(capsys.readouterr().out)
    assert status == 0
    names = [job["name"] for job in document["jobs"]]
    assert names == ["job", "job.002"]
    contents = [(Path(job["path"]) / "which.txt").read_text() for job in document["jobs"]]
    assert contents == ["a\n", "b\n"]


# --- JSON -------------------------------------------------------------------------


def test_json_document_shape_and_values(scripts: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok = _script(scripts, "ok.sh", "echo fine\n")
    crash = _script(scripts, "crash.sh", "echo 'crash: disk full' >&2\nexit 7\n")

    status = main(["run", "--json", "--parallel", "--workdir", "work", ok, crash])

    captured = capsys.readouterr()
    document = json.loads(captured.out)  # stdout holds the JSON document and nothing else
    assert status == 1
    assert set(document) == {"jobs", "succeeded", "failed"}
    assert (document["succeeded"], document["failed"]) == (1, 1)
    jobs = {job["name"]: job for job in document["jobs"]}
    assert [job["name"] for job in document["jobs"]] == ["ok", "crash"]
    for job in jobs.values():
        assert set(job) == {
            "name",
            "jobid",
            "native_id",
            "status",
            "reason",
            "exit_code",
            "seconds",
            "wait_seconds",
            "submitted_at",
            "started_at",
            "finished_at",
            "path",
            "err_path",
            "error",
            "restored",
        }
        assert job["jobid"] is None  # a local job has no scheduler id
        assert job["native_id"] is None
        assert job["reason"] is None
        # A local job waits in no scheduler's queue; it has a start and an end.
        assert job["wait_seconds"] is None
        assert job["submitted_at"] is None
        assert job["started_at"] <= job["finished_at"]
        assert job["seconds"] == pytest.approx(job["finished_at"] - job["started_at"], abs=0.002)
        assert job["restored"] is False
        assert job["err_path"] == str(Path(job["path"], job["name"] + ".err"))
        assert isinstance(job["seconds"], float)
        assert job["seconds"] >= 0
        assert Path(job["path"]).is_absolute()
        assert Path(job["path"]).is_dir()
    assert jobs["ok"]["status"] == "SUCCESSFUL"
    assert jobs["ok"]["exit_code"] == 0
    assert jobs["ok"]["error"] is None
    assert jobs["ok"]["path"] == str(Path("work", "ok").resolve())
    assert jobs["crash"]["status"] == "CRASHED"
    assert jobs["crash"]["exit_code"] == 7
    assert "crash: disk full" in jobs["crash"]["error"]
    assert runner_core.JobStatus[jobs["crash"]["status"]] is runner_core.JobStatus.CRASHED
    assert "job  status" not in captured.out


# --- options reach the runner ----------------------------------------------------


class _Recording(JobRunner):
    """A local runner that remembers how it was built and what each call received."""

    made: list[dict[str, Any]] = []  # noqa: RUF012 - shared on purpose, reset per test
    calls: list[dict[str, Any]] = []  # noqa: RUF012

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _Recording.made.append(kwargs)

    def call(self, runscript: str, workdir: str, out: str | None, err: str, runflags: Any) -> int:
        _Recording.calls.append({"runscript": runscript, "runflags": dict(runflags)})
        logging.getLogger("runner_core.test_cli").info("recording call of %s", runscript)
        return super().call(runscript, workdir, out, err, runflags)


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> type[_Recording]:
    _Recording.made = []
    _Recording.calls = []
    monkeypatch.setattr(runner_core.cli._runners, "JobRunner", _Recording)
    return _Recording


def test_parallel_and_maxjobs_reach_the_local_runner(
    scripts: Path, recording: type[_Recording], capsys: pytest.CaptureFixture[str]
) -> None:
    job = _script(scripts, "job.sh", "exit 0\n")

    assert main(["run", "--parallel", "--maxjobs", "3", "--workdir", "w1", job]) == 0
    assert main(["run", "--workdir", "w2", job]) == 0

    assert recording.made == [{"parallel": True, "maxjobs": 3}, {"parallel": False, "maxjobs": 0}]
    capsys.readouterr()


def test_flags_become_runflags_in_order(
    scripts: Path, recording: type[_Recording], capsys: pytest.CaptureFixture[str]
) -> None:
    job = _script(scripts, "job.sh", "exit 0\n")

    status = main(
        [
            "run",
            "--flag",
            "t=00:10:00",
            "--flag",
            "mem=4G",
            "--flag",
            "O=",
            "--flag",
            "note=a=b c",
            "--workdir",
            "work",
            job,
        ]
    )

    assert status == 0, capsys.readouterr()
    [call] = recording.calls
    assert call["runflags"] == {"t": "00:10:00", "mem": "4G", "O": "", "note": "a=b c"}
    assert list(call["runflags"]) == ["t", "mem", "O", "note"]
    assert call["runscript"] == "job.run"


@pytest.mark.parametrize(
    ("flag", "says"),
    [
        ("mem", "has no '='"),
        ("=4G", "is not a flag name"),
        ("-t=1", "without dashes"),
        ("1x=1", "is not a flag name"),
        ("jobrunner=x", "parameter of job.run"),
    ],
)
def test_malformed_flags_are_refused_before_anything_runs(
    scripts: Path, capsys: pytest.CaptureFixture[str], flag: str, says: str
) -> None:
    job = _script(scripts, "job.sh", "echo ran > ran.txt\n")

    status = main(["run", f"--flag={flag}", "--workdir", "work", job])

    err = capsys.readouterr().err
    assert status == 2
    assert says in err
    assert repr(flag) in err
    assert not Path("work").exists()


def test_a_flag_given_twice_is_refused(scripts: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = _script(scripts, "job.sh", "exit 0\n")

    status = main(["run", "--flag", "mem=1G", "--flag", "mem=2G", job])

    assert status == 2
    assert "'mem' given twice" in capsys.readouterr().err


def test_a_script_name_that_cannot_be_a_job_name_is_refused(
    scripts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dots = _script(scripts, "..sh", "exit 0\n")  # its stem is "."

    assert main(["run", "--workdir", "work", dots]) == 2
    assert "cannot make a job of the script named '.'" in capsys.readouterr().err
    assert not Path("work").exists()


@pytest.mark.parametrize("value", ["-1", "two"])
def test_bad_maxjobs_is_a_usage_error(
    scripts: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    job = _script(scripts, "job.sh", "exit 0\n")

    assert main(["run", "--maxjobs", value, job]) == 2
    assert "--maxjobs" in capsys.readouterr().err


# --- scripts that cannot be read --------------------------------------------------


def test_missing_script_is_named_and_nothing_runs(
    scripts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _script(scripts, "good.sh", "echo ran > ran.txt\n")
    missing = str(scripts / "nope.sh")
    folder = _script(scripts, "dir.sh/inner", "")  # dir.sh is a folder
    latin1 = scripts / "latin1.sh"
    latin1.write_bytes(b"echo caf\xe9\n")

    status = main(
        ["run", "--workdir", "work", good, missing, str(Path(folder).parent), str(latin1)]
    )

    err = capsys.readouterr().err
    assert status == 2
    assert f"{missing}: no such file" in err
    assert "dir.sh: is a folder" in err
    assert "latin1.sh: not UTF-8 text" in err
    assert "good.sh" not in err
    assert not Path("work").exists()


def test_unreadable_script_is_named(
    scripts: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = Path(_script(scripts, "locked.sh", "exit 0\n"))
    locked.chmod(0)
    if os.access(locked, os.R_OK):  # root reads whatever the mode: refuse it by hand
        read_text = Path.read_text

        def refuse(self: Path, *args: Any, **kwargs: Any) -> str:
            if self.name == "locked.sh":
                raise PermissionError(13, "Permission denied", str(self))
            return read_text(self, *args, **kwargs)

        monkeypatch.setattr(Path, "read_text", refuse)

    assert main(["run", "--workdir", "work", str(locked)]) == 2
    assert f"{locked}: not readable (permission denied)" in capsys.readouterr().err
    assert not Path("work").exists()


# --- grid -------------------------------------------------------------------------

GRID_ENTRY_POINT = importlib.metadata.EntryPoint(
    name="GridRunner", value="runner_grid:GridRunner", group="runner_core.grid_runners"
)


@pytest.fixture
def grid_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI sees runner-grid's entry point, whatever this environment has installed."""
    monkeypatch.setattr(runner_core.cli._runners, "grid_entry_points", lambda: [GRID_ENTRY_POINT])


@pytest.mark.usefixtures("grid_entry_point")
def test_grid_without_runner_grid_says_to_install_the_extra(
    scripts: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    job = _script(scripts, "job.sh", "echo ran > ran.txt\n")
    monkeypatch.setitem(sys.modules, "runner_grid", None)  # the import now fails

    status = main(["run", "--grid", "auto", "--workdir", "work", job])

    err = capsys.readouterr().err
    assert status == 2
    assert "pip install 'runner-core[grid]'" in err
    assert "--grid auto" in err
    assert not Path("work").exists()


def test_grid_without_the_entry_point_says_to_install_the_extra(
    scripts: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    job = _script(scripts, "job.sh", "echo ran > ran.txt\n")
    monkeypatch.setattr(runner_core.cli._runners, "grid_entry_points", list)  # none installed

    status = main(["run", "--grid", "slurm", "--workdir", "work", job])

    err = capsys.readouterr().err
    assert status == 2
    assert "pip install 'runner-core[grid]'" in err
    assert "--grid slurm" in err
    assert "'runner_core.grid_runners'" in err
    assert not Path("work").exists()


def test_runner_grid_registers_its_grid_runner_entry_point() -> None:
    runner_grid = pytest.importorskip("runner_grid")

    found = [e for e in runner_core.cli._runners.grid_entry_points() if e.name == "GridRunner"]

    assert [e.value for e in found] == ["runner_grid:GridRunner"], (
        "runner-grid's entry point is missing: reinstall it (pip install -e packages/runner-grid)"
    )
    assert runner_core.cli._runners.find_grid_runner("auto") is runner_grid.GridRunner


@pytest.mark.usefixtures("grid_entry_point")
def test_an_entry_point_that_is_not_a_jobrunner_is_refused(
    scripts: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    job = _script(scripts, "job.sh", "exit 0\n")
    module = types.ModuleType("runner_grid")
    module.GridRunner = object  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "runner_grid", module)

    assert main(["run", "--grid", "slurm", "--workdir", "work", job]) == 2
    assert "not a JobRunner subclass" in capsys.readouterr().err
    assert not Path("work").exists()


def _fake_runner_grid(made: list[dict[str, Any]], refuse: bool = False) -> types.ModuleType:
    class GridRunner(JobRunner):
        def __init__(self, grid: str = "auto", maxjobs: int = 0) -> None:
            if refuse:
                raise ValueError(f"grid {grid!r} is not a known scheme")
            super().__init__(parallel=True, maxjobs=maxjobs)
            made.append({"grid": grid, "maxjobs": maxjobs})

    module = types.ModuleType("runner_grid")
    module.GridRunner = GridRunner  # type: ignore[attr-defined]
    return module


@pytest.mark.usefixtures("grid_entry_point")
def test_grid_builds_a_gridrunner_with_name_and_maxjobs(
    scripts: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    job = _script(scripts, "job.sh", "echo ran > ran.txt\n")
    made: list[dict[str, Any]] = []
    monkeypatch.setitem(sys.modules, "runner_grid", _fake_runner_grid(made))

    status = main(["run", "--grid", "slurm", "--maxjobs", "5", "--workdir", "work", job])

    assert status == 0, capsys.readouterr()
    assert made == [{"grid": "slurm", "maxjobs": 5}]
    assert Path("work", "job", "ran.txt").is_file()


@pytest.mark.usefixtures("grid_entry_point")
def test_grid_runner_refusal_is_a_usage_error(
    scripts: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    job = _script(scripts, "job.sh", "exit 0\n")
    monkeypatch.setitem(sys.modules, "runner_grid", _fake_runner_grid([], refuse=True))

    assert main(["run", "--grid", "slrum", job]) == 2
    assert "'slrum' is not a known scheme" in capsys.readouterr().err


class _BatchingRunner(JobRunner):
    """A grid runner whose `batch()` records which jobs reach `call` while a batch is open."""

    seen: ClassVar[list[tuple[str, bool]]] = []

    def __init__(self, grid: str = "auto", maxjobs: int = 0) -> None:
        super().__init__(parallel=True, maxjobs=maxjobs)
        self.open = False

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        self.open = True
        try:
            yield
            self.wait()  # as GridRunner's: every job has reached call() when the block ends
        finally:
            self.open = False

    def call(self, runscript: str, workdir: str, out: str | None, err: str, runflags: Any) -> int:
        self.seen.append((runscript, self.open))
        return super().call(runscript, workdir, out, err, runflags)


@pytest.mark.parametrize(("option", "inside"), [([], True), (["--no-array"], False)])
def test_grid_jobs_are_handed_over_inside_batch_unless_no_array(
    scripts: Path,
    monkeypatch: pytest.MonkeyPatch,
    grid_entry_point: None,
    option: list[str],
    inside: bool,
) -> None:
    module = types.ModuleType("runner_grid")
    module.GridRunner = _BatchingRunner  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "runner_grid", module)
    monkeypatch.setattr(_BatchingRunner, "seen", [])
    jobs = [_script(scripts, f"j{i}.sh", "exit 0\n") for i in range(3)]

    assert main(["run", "--grid", "slurm", *option, "--workdir", "work", *jobs]) == 0

    assert sorted(_BatchingRunner.seen) == [(f"j{i}.run", inside) for i in range(3)]


def test_local_runs_never_use_batch(scripts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jobs = [_script(scripts, f"j{i}.sh", "exit 0\n") for i in range(2)]
    entered = []
    monkeypatch.setattr(JobRunner, "batch", entered.append, raising=False)
    assert main(["run", "--parallel", "--workdir", "work", *jobs]) == 0
    assert entered == []


# --- scheduler job ids -------------------------------------------------------------

SUBMIT_FAILED = (
    "sbatch: error: Batch job submission failed: Invalid account or account/partition\n"
    "sbatch: error: check the account with sacctmgr"
)


class _ReportsJobids(JobRunner):
    """A grid runner without a scheduler: says which job id each job got, then runs it here.

    `nosub.run` gets no id and fails the way a refused submission does, without
    running (so it leaves no error file).
    """

    JOBIDS: ClassVar[dict[str, str]] = {"ok.run": "4710", "bad.run": "4711"}

    def __init__(self, grid: str = "auto", maxjobs: int = 0) -> None:
        super().__init__(parallel=True, maxjobs=maxjobs)

    def call(self, runscript: str, workdir: str, out: str | None, err: str, runflags: Any) -> int:
        if runscript == "nosub.run":
            runner_core.ext.report_failure(SUBMIT_FAILED, reason="submit_failed")
            return 1
        runner_core.ext.report_jobid(self.JOBIDS[runscript])
        return super().call(runscript, workdir, out, err, runflags)


@pytest.fixture
def jobid_scripts(
    scripts: Path, monkeypatch: pytest.MonkeyPatch, grid_entry_point: None
) -> list[str]:
    """`--grid` gets `_ReportsJobids`; the scripts `ok` (job 4710), `bad` (4711), `nosub`."""
    module = types.ModuleType("runner_grid")
    module.GridRunner = _ReportsJobids  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "runner_grid", module)
    return [
        _script(scripts, "ok.sh", "echo fine\n"),
        _script(scripts, "bad.sh", "echo 'bad: no atoms in input.xyz' >&2\nexit 3\n"),
        _script(scripts, "nosub.sh", "echo never runs\n"),
    ]


def test_the_table_gets_a_jobid_column_when_a_job_has_a_jobid(
    jobid_scripts: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["run", "--grid", "slurm", "--workdir", "work", *jobid_scripts])

    out = capsys.readouterr().out.splitlines()
    assert status == 1
    # nosub's submission was refused: the table gets a reason column for it.
    assert out[0] == "job    jobid  status      reason         exit  seconds  folder"
    assert re.fullmatch(
        r"ok     4710   SUCCESSFUL  -                 0     \d\.\d\d  work/ok", out[1]
    )
    assert re.fullmatch(
        r"bad    4711   CRASHED     -                 3     \d\.\d\d  work/bad", out[2]
    )
    assert re.fullmatch(
        r"nosub  -      FAILED      submit_failed     1     \d\.\d\d  work/nosub", out[3]
    )


def test_failure_lines_name_the_jobid_and_the_error_file(
    jobid_scripts: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["run", "--grid", "slurm", "--workdir", "work", *jobid_scripts])

    out = capsys.readouterr().out.splitlines()
    assert status == 1
    assert not Path("work", "nosub", "nosub.err").exists()
    # One line per job that did not succeed, in script order; only the first line of
    # a longer error, and no pointer to an error file that is not there.
    assert out[4:] == [
        "bad (job 4711): exit code 3: bad: no atoms in input.xyz [see work/bad/bad.err]",
        "nosub: sbatch: error: Batch job submission failed: Invalid account or account/partition",
        "1 succeeded, 2 failed",
    ]


def test_progress_lines_name_the_jobid_and_a_failed_jobs_error_file(
    jobid_scripts: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["run", "--grid", "slurm", "--workdir", "work", *jobid_scripts])

    err = capsys.readouterr().err
    assert status == 1
    ended = {}
    for line in err.splitlines():
        m = PLAIN_LINE.fullmatch(line)
        if m:
            ended[m["name"]] = (m["jobid"], m["status"], m["exit"], m["see"])
    assert ended == {
        "ok": ("4710", "SUCCESSFUL", "0", None),
        "bad": ("4711", "CRASHED", "3", "work/bad/bad.err"),
        "nosub": (None, "FAILED", "1", None),
    }
    assert re.search(
        r"^\[\d/3\] bad \(job 4711\) CRASHED exit 3 \d+\.\ds \[see work/bad/bad.err\]$", err, re.M
    )


def test_json_has_the_jobid_and_the_error_file_of_every_job(
    jobid_scripts: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["run", "--grid", "slurm", "--json", "--workdir", "work", *jobid_scripts])

    jobs = {job["name"]: job for job in json.loads(capsys.readouterr().out)["jobs"]}
    assert status == 1
    assert {name: job["jobid"] for name, job in jobs.items()} == {
        "ok": "4710",
        "bad": "4711",
        "nosub": None,
    }
    for name, job in jobs.items():
        # The path of the error file whether or not the job wrote one (nosub did not).
        assert job["err_path"] == str(Path("work", name, f"{name}.err").resolve())
    assert jobs["bad"]["error"] == "exit code 3: bad: no atoms in input.xyz"
    assert jobs["nosub"]["error"] == SUBMIT_FAILED


def test_a_job_that_never_got_a_folder_has_no_err_path() -> None:
    batch = Batch([make_job("never", "exit 0\n")])
    batch.cancelled = True  # the run was cut short before the job was handed over

    [record] = json_document(batch)["jobs"]
    table = io.StringIO()
    write_table(batch, table)

    assert (record["path"], record["err_path"], record["jobid"]) == (None, None, None)
    assert record["status"] == "CANCELLED"
    assert table.getvalue().splitlines()[1:] == [
        "never  CANCELLED  cancelled     -        -  -",
        "never: cancelled",
        "0 succeeded, 1 failed",
    ]


def test_the_error_file_outside_the_current_directory_is_shown_in_full(
    scripts: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    bad = _script(scripts, "bad.sh", "echo 'no input' >&2\nexit 2\n")

    assert main(["run", "--workdir", str(elsewhere), bad]) == 1

    captured = capsys.readouterr()
    err_file = elsewhere.resolve() / "bad" / "bad.err"
    assert f"bad: exit code 2: no input [see {err_file}]" in captured.out.splitlines()
    assert f"[see {err_file}]" in captured.err


# --- progress ---------------------------------------------------------------------


def test_plain_progress_lines_when_stderr_is_not_a_terminal(
    scripts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = [f"step{i}" for i in range(4)]
    paths = [_script(scripts, f"{n}.sh", f"exit {i % 2}\n") for i, n in enumerate(names)]

    status = main(["run", "--parallel", "--maxjobs", "2", "--workdir", "work", *paths])

    err = capsys.readouterr().err
    assert status == 1
    assert "\r" not in err
    lines = [PLAIN_LINE.fullmatch(line) for line in err.splitlines()]
    matched = [m for m in lines if m]
    assert [int(m["done"]) for m in matched] == [1, 2, 3, 4]
    assert {m["total"] for m in matched} == {"4"}
    assert sorted(m["name"] for m in matched) == names
    for m in matched:
        failed = int(m["name"][-1]) % 2 == 1
        assert m["status"] == ("CRASHED" if failed else "SUCCESSFUL")
        assert m["exit"] == str(int(failed))
        assert m["jobid"] is None
        # `exit 1` writes nothing to stderr: no pointer to an empty error file.
        assert m["see"] is None


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_status_line_on_a_terminal(
    scripts: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    ok = _script(scripts, "ok.sh", "exit 0\n")
    bad = _script(scripts, "bad.sh", "exit 1\n")

    status = main(["run", "--workdir", "work", ok, bad])

    shown = terminal.getvalue()
    assert status == 1
    assert "\r" in shown
    # What the terminal shows last, once every carriage return has done its work:
    final = [line.rsplit("\r", 1)[-1].replace("\x1b[K", "") for line in shown.split("\n")]
    assert re.fullmatch(r"2/2 done \(1 failed\), 0 running, 0 waiting, \d+\.\ds", final[-2])
    assert capsys.readouterr().out.splitlines()[-1] == "1 succeeded, 1 failed"


# --- help, version, logging ------------------------------------------------------


def test_top_level_help_lists_the_run_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: runner" in out
    assert "run" in out
    assert "--version" in out


def test_run_help_lists_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: runner run" in out
    for option in ("--parallel", "--maxjobs", "--grid", "--workdir", "--flag", "--json", "-v"):
        assert option in out
    assert "Exit status" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"runner (runner-core) {runner_core.__version__}"


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: runner" in capsys.readouterr().err


def test_run_without_scripts_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run"]) == 2
    assert "SCRIPT" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "shown"),
    [(["run"], False), (["run", "-v"], True), (["-v", "run"], True), (["run", "-vv"], True)],
)
def test_verbose_shows_info_logging(
    scripts: Path,
    recording: type[_Recording],
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    shown: bool,
) -> None:
    job = _script(scripts, "job.sh", "exit 0\n")
    level = logging.getLogger().level

    assert main([*command, "--workdir", "work", job]) == 0

    assert ("recording call of job.run" in capsys.readouterr().err) is shown
    assert logging.getLogger().level == level  # main() put things back as they were


# --- public names only -------------------------------------------------------------


def test_the_cli_package_imports_no_private_runner_core_module() -> None:
    package = Path(runner_core.cli.__file__).parent
    private = []
    for source in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            private += [
                f"{source.name}: {name}"
                for name in names
                if name.startswith("runner_core._") and name != "runner_core.__about__"
            ]
    assert private == []


# --- as a separate process ----------------------------------------------------------


def _python_m(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner_core", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_python_m_runner_core_help(tmp_path: Path) -> None:
    done = _python_m("--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "usage: runner" in done.stdout

    done = _python_m("run", "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "--maxjobs" in done.stdout


def test_python_m_runner_core_run_plain_progress(tmp_path: Path) -> None:
    ok = _script(tmp_path, "ok.sh", "echo hello\n")
    bad = _script(tmp_path, "bad.sh", "echo 'bad: no input' >&2\nexit 4\n")

    done = _python_m("run", "--parallel", "--workdir", "work", ok, bad, cwd=tmp_path)

    assert done.returncode == 1, done.stderr
    progress = sorted(
        (m["name"], m["status"], m["exit"], m["see"])
        for m in map(PLAIN_LINE.fullmatch, done.stderr.splitlines())
        if m
    )
    assert progress == [
        ("bad", "CRASHED", "4", "work/bad/bad.err"),
        ("ok", "SUCCESSFUL", "0", None),
    ]
    assert "bad: exit code 4: bad: no input [see work/bad/bad.err]" in done.stdout.splitlines()
    assert (tmp_path / "work" / "ok" / "ok.out").read_text() == "hello\n"


@pytest.mark.parametrize("mode", [["--parallel", "--maxjobs", "1"], []], ids=["parallel", "serial"])
def test_ctrl_c_cancels_every_job_and_exits_130(tmp_path: Path, mode: list[str]) -> None:
    fifo = tmp_path / "started"
    os.mkfifo(fifo)
    # The first job says it has started through the FIFO, then would sleep for a minute
    # as the same process; the second waits for its turn and must never start.
    slow = _script(
        tmp_path, "slow.sh", f"echo $$ > slow.pid\necho started > '{fifo}'\nexec sleep 60\n"
    )
    waiting = _script(tmp_path, "waiting.sh", "echo ran > ran.txt\n")
    command = [sys.executable, "-m", "runner_core", "run", "--json", *mode]
    command += ["--workdir", "work", slow, waiting]
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Should the job never start, this opens the FIFO's other end so the test fails
    # instead of blocking for ever.
    watchdog = threading.Timer(60, lambda: open(fifo, "w").close())
    watchdog.start()
    try:
        with open(fifo) as started:  # blocks until the job has started
            assert started.read() == "started\n", "the first job did not start within 60 s"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        watchdog.cancel()
        process.kill()
        process.wait()

    assert process.returncode == 130, err
    assert "interrupted" in err
    jobs = {job["name"]: job for job in json.loads(out)["jobs"]}
    assert jobs["slow"]["status"] == "CANCELLED"
    assert jobs["waiting"]["status"] == "CANCELLED"
    assert not (tmp_path / "work" / "waiting" / "ran.txt").exists()
    pid = int((tmp_path / "work" / "slow" / "slow.pid").read_text())
    with pytest.raises(ProcessLookupError):  # the job's process is gone, not orphaned
        os.kill(pid, 0)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
@pytest.mark.parametrize("mode", [["--parallel", "--maxjobs", "1"], []], ids=["parallel", "serial"])
def test_sigterm_and_sighup_cancel_every_job_then_end_by_the_signal(
    tmp_path: Path, mode: list[str], signum: signal.Signals
) -> None:
    fifo = tmp_path / "started"
    os.mkfifo(fifo)
    slow = _script(
        tmp_path, "slow.sh", f"echo $$ > slow.pid\necho started > '{fifo}'\nexec sleep 60\n"
    )
    waiting = _script(tmp_path, "waiting.sh", "echo ran > ran.txt\n")
    command = [sys.executable, "-m", "runner_core", "run", "--json", *mode]
    command += ["--workdir", "work", slow, waiting]
    process = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    watchdog = threading.Timer(60, lambda: open(fifo, "w").close())
    watchdog.start()
    try:
        with open(fifo) as started:
            assert started.read() == "started\n", "the first job did not start within 60 s"
        process.send_signal(signum)
        out, err = process.communicate(timeout=60)
    finally:
        watchdog.cancel()
        process.kill()
        process.wait()

    assert process.returncode == -signum, err  # ended by the signal, as its parent sees it
    assert f"{signum.name} received, cancelling every job" in err
    jobs = {job["name"]: job for job in json.loads(out)["jobs"]}  # the summary came first
    assert jobs["slow"]["status"] == "CANCELLED"
    assert jobs["waiting"]["status"] == "CANCELLED"
    assert not (tmp_path / "work" / "waiting" / "ran.txt").exists()
    pid = int((tmp_path / "work" / "slow" / "slow.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# --- reasons and times in the summary --------------------------------------------------


class _TimedOut(JobRunner):
    """Stands in for a grid runner whose scheduler killed the job at its time limit.

    The job runs locally (so its stderr is real) and is reported killed for its
    walltime, with SLURM's message last on its stderr, as a real timeout leaves it.
    """

    def __init__(self, grid: str = "auto", maxjobs: int = 0) -> None:
        super().__init__(parallel=True, maxjobs=maxjobs)

    def call(self, runscript: str, workdir: str, out: str | None, err: str, runflags: Any) -> int:
        runner_core.ext.report_jobid("4031_1", native_id="4052")
        super().call(runscript, workdir, out, err, runflags)
        runner_core.ext.report_reason("timeout")
        return 143


def test_a_timeout_shows_its_reason_and_run_time_in_the_table_lines_and_json(
    scripts: Path,
    monkeypatch: pytest.MonkeyPatch,
    grid_entry_point: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    module = types.ModuleType("runner_grid")
    module.GridRunner = _TimedOut  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "runner_grid", module)
    slow = _script(
        scripts,
        "slow.sh",
        "echo 'step 1 done' >&2\n"
        "echo 'slurmstepd: error: *** JOB 4052 CANCELLED DUE TO TIME LIMIT ***' >&2\n",
    )

    assert main(["run", "--grid", "slurm", "--workdir", "work", slow]) == 1
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert out[0].split() == ["job", "jobid", "status", "reason", "exit", "seconds", "folder"]
    assert out[1].split()[:6] == ["slow", "4031_1", "(4052)", "CRASHED", "timeout", "143"]
    assert out[2] == (
        "slow (job 4031_1 (4052)): timeout after 0:00:00 of walltime, exit code 143: "
        "slurmstepd: error: *** JOB 4052 CANCELLED DUE TO TIME LIMIT *** [see work/slow/slow.err]"
    )
    assert "CRASHED (timeout) exit 143" in captured.err

    assert main(["run", "--grid", "slurm", "--json", "--workdir", "work2", slow]) == 1
    (job,) = json.loads(capsys.readouterr().out)["jobs"]
    assert (job["jobid"], job["native_id"], job["reason"]) == ("4031_1", "4052", "timeout")
    assert job["error"].startswith("timeout after 0:00:00 of walltime, exit code 143: slurmstepd")


def test_a_crashed_jobs_error_is_the_tail_of_its_stderr_built_by_the_library(
    tmp_path: Path,
) -> None:
    lines = "".join(f"line {i}\n" for i in range(20))
    job = SingleJob("crash", f"cat >&2 <<'EOF'\n{lines}EOF\nexit 4\n")
    results = job.run(jobrunner=JobRunner(), jobmanager=JobManager(tmp_path / "w"))
    assert results.status is JobStatus.CRASHED
    assert results.error == "\n".join(f"line {i}" for i in range(15, 20))
    assert runner_core.ext.tail_of(str(job.err_path), 2) == "line 18\nline 19"


def test_describe_reason_and_clock() -> None:
    assert describe_reason(None, 3.0) is None
    assert describe_reason("timeout", 61.4) == "timeout after 0:01:01 of walltime"
    assert describe_reason("timeout", None) == "timeout (killed at its time limit)"
    assert describe_reason("out_of_memory", 1.0) == "out of memory (killed at its memory limit)"
    assert clock(3725) == "1:02:05"


# --- retries ------------------------------------------------------------------------


def test_retry_runs_a_crashed_job_again_and_the_journal_keeps_each_attempt(
    scripts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flaky = _script(
        scripts,
        "flaky.sh",
        "if [ -e tried ]; then echo fine; else touch tried; echo first >&2; exit 4; fi\n",
    )
    status = main(["run", "--retry", "crashed", "--attempts", "2", "--workdir", "work", flaky])
    captured = capsys.readouterr()
    assert status == 0, captured
    assert "up to 2 attempts on crashed" in captured.err
    assert _table_rows(captured.out)["flaky"][:2] == ["SUCCESSFUL", "0"]
    assert Path("work", "flaky", "flaky.attempt1.err").read_text() == "first\n"
    (record,) = runner_core.read_journal("work").jobs
    assert [(a["reason"], a["exit_code"]) for a in record.attempts] == [("crashed", 4)]
    assert record.runner["retry"]["attempts"] == 2


def test_attempts_alone_retries_the_default_reasons_and_a_bad_reason_is_a_usage_error(
    scripts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crash = _script(scripts, "crash.sh", "exit 4\n")
    assert main(["run", "--attempts", "3", "--workdir", "work", crash]) == 1
    out = capsys.readouterr()
    assert "on out_of_memory, timeout, node_fail, preempted" in out.err
    assert "not run again" not in out.out  # a plain crash is no reason to retry
    assert main(["run", "--retry", "out_of_disk", "--workdir", "w2", crash]) == 2
    err = capsys.readouterr().err
    assert "--retry out_of_disk: 'out_of_disk' is not an end reason to retry on" in err
    assert not Path("w2").exists()
    assert main(["run", "--attempts", "0", crash]) == 2
    assert "--attempts: must be at least 1, not 0" in capsys.readouterr().err


def test_status_shows_a_retried_jobs_last_attempt_and_resume_keeps_the_policy(
    scripts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flaky = _script(
        scripts, "flaky.sh", "if [ -e tried ]; then exit 0; else touch tried; exit 4; fi\n"
    )
    once = _script(scripts, "once.sh", "exit 0\n")
    assert main(["run", "--retry", "crashed", "--workdir", "work", flaky, once]) == 0
    capsys.readouterr()
    assert main(["status", "work"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:3]}
    assert " SUCCESSFUL (attempt 2) " in rows["flaky"]
    assert "attempt" not in rows["once"]
    assert main(["status", "work", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    flaky_json = next(job for job in document["jobs"] if job["name"] == "flaky")
    assert [a["exit_code"] for a in flaky_json["attempts"]] == [4]

    _jobs, runner, _notes = resume_plan("work")
    assert runner.retry == runner_core.Retry(on=["crashed"])
    runner.shutdown()


# --- a remote cluster: --host and its options ---------------------------------------


@pytest.fixture
def grid_made(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What the grid runner was built with; a local runner stands in for it (no cluster)."""
    made: list[dict[str, Any]] = []

    def grid_runner(**kwargs: Any) -> JobRunner:
        made.append(kwargs)
        return JobRunner(parallel=True)

    monkeypatch.setattr(runner_core.cli._runners, "find_grid_runner", lambda grid: grid_runner)
    return made


@pytest.mark.parametrize(
    ("fetch", "given"),
    [
        ([], "all"),
        (["--fetch", "none"], None),
        (["--fetch", "*.log, out/*.h5"], ["*.log", "out/*.h5"]),
    ],
)
def test_host_and_its_options_reach_the_grid_runner(
    scripts: Path,
    grid_made: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    fetch: list[str],
    given: Any,
) -> None:
    job = _script(scripts, "job.sh", "exit 0\n")
    argv = ["run", "--grid", "slurm", "--host", "me@cluster", "--remote-root", "scratch/a b"]
    status = main([*argv, "--ssh-config", "cfg", *fetch, "--workdir", "w", job])
    assert status == 0, capsys.readouterr()
    assert grid_made == [
        {
            "grid": "slurm",
            "maxjobs": 0,
            "host": "me@cluster",
            "remote_root": "scratch/a b",
            "ssh_config": "cfg",
            "fetch": given,
        }
    ]
    assert "on grid slurm on me@cluster" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--host", "cluster"], "give --grid too"),
        (["--grid", "slurm", "--remote-root", "x"], "--remote-root only mean"),
        (["--grid", "slurm", "--fetch", "none"], "--fetch only mean"),
        (["--grid", "slurm", "--ssh-config", "f"], "--ssh-config only mean"),
    ],
)
def test_remote_options_without_their_partner_are_refused(
    scripts: Path,
    grid_made: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    says: str,
) -> None:
    job = _script(scripts, "job.sh", "exit 0\n")
    assert main(["run", *options, "--workdir", "w", job]) == 2
    assert says in capsys.readouterr().err
    assert grid_made == []
    assert not Path("w").exists()
