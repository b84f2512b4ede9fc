"""The job layer: JobStatus, SingleJob (settings, runscript, files), Results, report_failure."""

from __future__ import annotations

import logging
import os
import pathlib
import stat
import threading
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.runner_helpers import TIMEOUT, GateRunner, wait_until
from runner_core import (
    JobError,
    JobManager,
    JobRunner,
    JobStatus,
    Results,
    SingleJob,
    config,
    report_failure,
)
from runner_settings import Settings

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path


def test_status_values_and_done() -> None:
    assert [s.name for s in JobStatus] == [
        "CREATED",
        "QUEUED",
        "SUBMITTED",
        "RUNNING",
        "SUCCESSFUL",
        "CRASHED",
        "FAILED",
        "CANCELLED",
    ]
    assert all(isinstance(s.value, str) for s in JobStatus)
    assert [s.done for s in JobStatus] == [False, False, False, False, True, True, True, True]


def test_default_settings() -> None:
    job = SingleJob("a", "echo hi")
    assert isinstance(job.settings, Settings)
    assert job.settings.runscript.shebang == "#!/bin/sh"
    assert job.settings.runscript.pre == ""
    assert job.settings.runscript.post == ""
    assert job.settings.runscript.stdout_redirect is False
    assert job.settings.run == {}
    assert job.path is None
    assert job.out_path is None
    assert job.err_path is None
    assert job.runscript_name == "a.run"
    assert job.results.status is JobStatus.CREATED
    assert job.results.exit_code is None
    assert job.results.elapsed is None


def test_given_settings_merge_over_the_defaults_without_sharing() -> None:
    mine = {"runscript": {"pre": "module load sim"}, "run": {"queue": "short"}}
    job = SingleJob("a", settings=mine)
    assert job.settings.runscript.pre == "module load sim"
    assert job.settings.runscript.shebang == "#!/bin/sh"
    assert job.settings.run.queue == "short"
    job.settings.run.queue = "long"
    assert mine["run"] == {"queue": "short"}
    other = SingleJob("b")
    assert other.settings.run == {}


def test_full_runscript_parts_in_order() -> None:
    job = SingleJob("x", "./simulate input.dat")
    job.settings.runscript.shebang = "#!/bin/bash"
    job.settings.runscript.pre = "module load sim"
    job.settings.runscript.post = "echo done\n"
    assert job.full_runscript() == (
        "#!/bin/bash\nmodule load sim\n./simulate input.dat\necho done\n"
    )


def test_stdout_redirect_keeps_scheduler_directives_before_the_first_command() -> None:
    settings = {"runscript": {"stdout_redirect": True, "pre": "#SBATCH -t 5\n\n#$ -N x"}}
    job = SingleJob("sim", "#PBS -l nodes=1\necho hi\n", settings=settings)
    assert job.full_runscript() == (
        "#!/bin/sh\n#SBATCH -t 5\n\n#$ -N x\n#PBS -l nodes=1\nexec >'sim.out'\necho hi\n"
    )


def test_stdout_redirect_line_quotes_the_file_name() -> None:
    job = SingleJob("it's", "echo hi", settings={"runscript": {"stdout_redirect": True}})
    assert job.full_runscript() == "#!/bin/sh\nexec >'it'\\''s.out'\necho hi\n"


def test_get_runscript_can_be_overridden(manager: JobManager) -> None:
    class Counting(SingleJob):
        def get_runscript(self) -> str:
            return "exit 7"

    job = Counting("c")
    assert job.full_runscript().endswith("exit 7\n")
    assert job.run(JobRunner(), manager).exit_code == 7


@given(st.text(st.characters(blacklist_characters="/\0", blacklist_categories=["Cs"]), min_size=1))
def test_any_file_name_is_a_valid_job_name(name: str) -> None:
    if name in (".", ".."):
        with pytest.raises(ValueError, match="cannot be used as a file name"):
            SingleJob(name)
    else:
        assert SingleJob(name).runscript_name == name + ".run"


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "nul\0"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="cannot be used as a file name"):
        SingleJob(name)


def test_non_string_name_is_refused() -> None:
    with pytest.raises(TypeError, match="must be a str"):
        SingleJob(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("runscript", "type_name", "fix"),
    [
        (b"echo hi\n", "bytes", r"runscript=data\.decode\(\)"),
        (bytearray(b"echo hi"), "bytearray", r"runscript=data\.decode\(\)"),
        (pathlib.Path("run.sh"), "PosixPath", r"runscript=Path\(\.\.\.\)\.read_text\(\)"),
        (["echo", "hi"], "list", r"e\.g\. runscript='\./simulate input\.dat\\n'"),
        (0, "int", r"pass the script's text"),
    ],
)
def test_a_runscript_that_is_not_text_is_refused_at_creation(
    runscript: object, type_name: str, fix: str
) -> None:
    with pytest.raises(
        TypeError, match=rf"job 'x': runscript must be a str .*not {type_name} .*{fix}"
    ):
        SingleJob(name="x", runscript=runscript)  # type: ignore[arg-type]


def test_a_long_runscript_value_is_shortened_in_the_error() -> None:
    with pytest.raises(TypeError, match=r"\(b'xxxx+\.\.\.\)") as raised:
        SingleJob("x", b"x" * 500)  # type: ignore[arg-type]
    assert len(str(raised.value)) < 200


def test_a_plain_job_without_a_runscript_is_refused_at_creation() -> None:
    with pytest.raises(
        TypeError,
        match=r"job 'opt': runscript is None, so SingleJob has nothing to run; pass the "
        r"script's text, e\.g\. SingleJob\('opt', runscript=.*override get_runscript\(\)",
    ):
        SingleJob(name="opt", runscript=None)

    class Renamed(SingleJob):  # a subclass that still builds nothing itself
        pass

    with pytest.raises(TypeError, match=r"so Renamed has nothing to run"):
        Renamed("opt", None)


def test_a_subclass_that_builds_its_runscript_needs_no_runscript(manager: JobManager) -> None:
    class Builds(SingleJob):
        def get_runscript(self) -> str:
            return "echo built > marker"

    class BuildsAll(SingleJob):
        def full_runscript(self) -> str:
            return "#!/bin/sh\nexit 4\n"

    for job in (Builds("b"), Builds("b", None), Builds(name="b", runscript=None)):
        assert job.runscript == ""
        assert job.full_runscript() == "#!/bin/sh\necho built > marker\n"
    assert BuildsAll("all", None).runscript == ""
    results = Builds("b", None).run(JobRunner(), manager)
    assert results.ok
    assert results.job.path is not None
    assert (results.job.path / "marker").read_text() == "built\n"
    assert BuildsAll("all", None).run(JobRunner(), manager).exit_code == 4
    with pytest.raises(TypeError, match="not bytes"):
        Builds("b", b"echo")  # type: ignore[arg-type]


def test_files_are_written_executable_beside_out_and_err(manager: JobManager) -> None:
    job = SingleJob("files", "echo out; echo err >&2")
    results = job.run(JobRunner(), manager)
    assert results.ok
    assert job.path == manager.path / "files"
    script = job.path / "files.run"
    assert script.read_text() == job.full_runscript()
    assert script.stat().st_mode & stat.S_IXUSR
    assert job.out_path == job.path / "files.out"
    assert job.err_path == job.path / "files.err"
    assert job.out_path.read_text() == "out\n"
    assert job.err_path.read_text() == "err\n"
    assert sorted(os.listdir(job.path)) == ["files.err", "files.out", "files.run"]


def test_results_status_codes_timing_and_repr(manager: JobManager) -> None:
    runner = JobRunner()
    good = SingleJob("good", "exit 0").run(runner, manager)
    bad = SingleJob("bad", "exit 3").run(runner, manager)
    assert isinstance(good, Results)
    assert good.ok
    assert good.done
    assert good.exit_code == 0
    assert good.error is None
    assert not bad.ok
    assert bad.status is JobStatus.CRASHED
    assert bad.exit_code == 3
    for r in (good, bad):
        assert r.started_at is not None
        assert r.finished_at is not None
        assert r.started_at <= r.finished_at
        assert r.elapsed == r.finished_at - r.started_at
    assert "CRASHED" in repr(bad)
    assert "'bad'" in repr(bad.job)


def test_results_wait_times_out_then_returns_the_results(manager: JobManager) -> None:
    runner = GateRunner(parallel=True)
    results = SingleJob("w", "").run(runner, manager)
    wait_until(lambda: results.status is JobStatus.RUNNING, "the job is in call")
    assert results.elapsed is not None
    with pytest.raises(TimeoutError, match="'w' has not ended"):
        results.wait(timeout=0.01)
    runner.gate.set()
    assert results.wait(TIMEOUT) is results
    assert results.ok


def test_running_a_job_twice_is_refused(manager: JobManager) -> None:
    job = SingleJob("once", "exit 0")
    job.run(JobRunner(), manager)
    with pytest.raises(JobError, match="already been run"):
        job.run(JobRunner(), manager)


def test_a_run_flag_the_runner_refuses_raises_in_the_caller_and_fails_the_job_unrun(
    manager: JobManager,
) -> None:
    seen: list[dict[str, object]] = []

    class Picky(JobRunner):
        def check_runflags(self, runflags: Mapping[str, Any]) -> None:
            seen.append(dict(runflags))
            if runflags.get("memory") == "lots":
                raise ValueError("run flag memory='lots' is not a memory size; give e.g. '4G'")

        def call(
            self, runscript: str, workdir: str, out: str | None, err: str, runflags: Settings
        ) -> int:
            raise AssertionError("a refused job never reaches call")

    job = SingleJob("picky", "exit 0", settings={"run": {"x": 1}})
    with pytest.raises(ValueError, match="memory='lots'"):
        job.run(Picky(parallel=True), manager, memory="lots")
    assert seen == [{"x": 1, "memory": "lots"}]  # settings.run and the keywords, merged
    assert job.results.status is JobStatus.FAILED  # at once, in the caller: done callbacks run
    assert "run flag memory='lots' is not a memory size" in (job.results.error or "")
    assert manager.jobs == []
    good = SingleJob("good", "exit 0").run(JobRunner(parallel=True), manager, memory="4G")
    assert good.wait(TIMEOUT).ok


def test_a_local_runner_accepts_any_run_flag(manager: JobManager) -> None:
    assert SingleJob("any", "exit 0").run(JobRunner(), manager, memory="lots", cores=-1).ok


def test_run_without_runner_or_manager_uses_the_config_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    first = SingleJob("d1", "exit 0").run()
    runner = config.default_jobrunner
    manager = config.default_jobmanager
    assert isinstance(runner, JobRunner)
    assert isinstance(manager, JobManager)
    assert not runner.parallel
    assert manager.path == tmp_path / "runner_workdir"
    assert first.ok
    SingleJob("d2", "exit 0").run()
    assert config.default_jobrunner is runner
    assert manager.jobs == [first.job, manager.jobs[1]]


def test_a_configured_default_runner_is_used(manager: JobManager) -> None:
    runner = GateRunner()
    runner.gate.set()
    config.default_jobrunner = runner
    SingleJob("x", "").run(jobmanager=manager)
    assert runner.calls == 1


def test_report_failure_in_call_fails_the_job_keeping_the_exit_code(
    manager: JobManager,
) -> None:
    class Reporting(JobRunner):
        def call(
            self, runscript: str, workdir: str, out: str | None, err: str, runflags: Settings
        ) -> int:
            report_failure("submit refused: no such queue")
            return 1

    results = SingleJob("r", "").run(Reporting(parallel=True), manager).wait(TIMEOUT)
    assert results.status is JobStatus.FAILED
    assert results.error == "submit refused: no such queue"
    assert results.exit_code == 1


def test_report_failure_outside_a_job_only_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="runner_core"):
        report_failure("nothing to fail")
    assert "nothing to fail" in caplog.text


def test_run_from_many_threads_gives_each_job_its_own_folder(manager: JobManager) -> None:
    runner = JobRunner(parallel=True, maxjobs=3)
    jobs = [SingleJob("same", "exit 0") for _ in range(12)]
    threads = [threading.Thread(target=job.run, args=(runner, manager)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    runner.wait(TIMEOUT)
    assert all(j.results.ok for j in jobs)
    assert len({j.path for j in jobs}) == 12
