"""The typed scheduler contract: `run`, and the methods composed once from each family's primitives.

Most tests drive `Slurm` subclasses whose `run` answers with outputs recorded from a real
SLURM 22.05 (tests/grid/data), so what the composed methods do with real answers is pinned
without a scheduler; the tests of `run` itself start small Python programs.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Optional, Union

import pytest

from runner_core import Resources
from runner_grid import Listing, Scheduler, SchedulerCommandError, format_command
from runner_grid._poller import SchemeCheck
from runner_grid.schemes import slurm
from runner_grid.schemes._base import DEFAULT_MAX_ARRAY_SIZE
from runner_grid.schemes.pbs import Pbs
from runner_grid.schemes.sge import GridEngine
from runner_grid.schemes.slurm import Slurm

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

DATA = Path(__file__).parent / "data"

Answer = Union[str, subprocess.CompletedProcess[str], Exception]


def answer(argv: Sequence[str], stdout: str = "", stderr: str = "", rc: int = 0) -> Any:
    return subprocess.CompletedProcess(list(argv), rc, stdout, stderr)


class RecordedSlurm(Slurm):
    """SLURM whose commands answer from recordings: program name -> case, answer or error.

    A case is ``folder/name`` under tests/grid/data (``name.stdout``, ``.stderr``, ``.rc``).
    """

    def __init__(self, **answers: Answer) -> None:
        self.answers = answers
        self.ran: list[tuple[list[str], Optional[float]]] = []

    def run(
        self, argv: Sequence[str], *, timeout: Optional[float] = None
    ) -> subprocess.CompletedProcess[str]:
        self.ran.append((list(argv), timeout))
        given = self.answers[argv[0]]
        if isinstance(given, Exception):
            raise given
        if isinstance(given, subprocess.CompletedProcess):
            return given
        case = DATA / given
        return answer(
            argv,
            case.with_suffix(".stdout").read_text(),
            case.with_suffix(".stderr").read_text(),
            int(case.with_suffix(".rc").read_text()),
        )

    @property
    def programs(self) -> list[str]:
        return [argv[0] for argv, _timeout in self.ran]


# --- how a job ended ------------------------------------------------------------------------


def test_how_ended_takes_the_first_query_that_tells() -> None:
    scheduler = RecordedSlurm(scontrol="slurm/scontrol_show_job_exit3", sacct="unused")
    assert scheduler.how_ended("7") == (3, None)
    assert scheduler.ran == [(["scontrol", "show", "job", "7"], None)]


@pytest.mark.parametrize(
    "scontrol",
    [
        "slurm/scontrol_show_job_never_existed",  # exits 1: skipped
        "slurm/scontrol_show_job_running",  # not final yet: the next query is asked
        SchedulerCommandError("scontrol ran longer than 60 s"),  # could not tell: skipped
    ],
)
def test_how_ended_goes_on_to_sacct_when_scontrol_does_not_tell(scontrol: Answer) -> None:
    scheduler = RecordedSlurm(scontrol=scontrol, sacct="slurm-documented/sacct_timeout")
    assert scheduler.how_ended("25") == slurm.parse_end(
        (DATA / "slurm-documented/sacct_timeout.stdout").read_text()
    )
    assert scheduler.how_ended("25") is not None
    assert scheduler.programs[-2:] == ["scontrol", "sacct"]


def test_how_ended_does_not_read_the_output_of_a_failed_query() -> None:
    text = (DATA / "slurm/scontrol_show_job_exit3.stdout").read_text()
    failed = answer(["scontrol"], text, "scontrol: error: slurm_load_jobs: timed out", rc=1)
    scheduler = RecordedSlurm(scontrol=failed, sacct="slurm-documented/sacct_completed")
    assert scheduler.how_ended("7") == (0, None)
    assert scheduler.programs == ["scontrol", "sacct"]


def test_how_ended_is_none_when_nothing_tells() -> None:
    scheduler = RecordedSlurm(
        scontrol="slurm/scontrol_show_job_purged", sacct="slurm-reasons/sacct_no_accounting"
    )
    assert scheduler.how_ended("6") is None
    assert scheduler.programs == ["scontrol", "sacct"]


class SacctOnlySlurm(RecordedSlurm):
    """A site whose scontrol is closed to users: only accounting is asked."""

    def end_argvs(self, jobid: str) -> list[list[str]]:
        return [argv for argv in super().end_argvs(jobid) if argv[0] == "sacct"]


def test_a_subclass_overriding_one_primitive_changes_the_composed_method() -> None:
    scheduler = SacctOnlySlurm(scontrol="slurm/scontrol_show_job_exit3", sacct="unused")
    scheduler.answers["sacct"] = "slurm-documented/sacct_out_of_memory"
    assert scheduler.how_ended("7") == slurm.parse_end(
        (DATA / "slurm-documented/sacct_out_of_memory.stdout").read_text()
    )
    assert scheduler.how_ended("7")[1] == "out_of_memory"  # type: ignore[index]
    assert scheduler.programs == ["sacct", "sacct"]
    assert scheduler.tells_reasons


# --- the queue check --------------------------------------------------------------------------


def test_a_check_through_the_class_on_a_recorded_listing() -> None:
    scheduler = RecordedSlurm(squeue="slurm/squeue_pinned_running")
    check = SchemeCheck(lambda: scheduler)
    queued = check(["20", "21", "22", "23", "24"])
    assert {"20", "21_1", "21_4", "22_3", "22_5", "23", "24"} <= queued
    assert check.started == {"20", "21_1", "21_2", "21_3", "21_4", "21_5", "22_1", "22_2", "25"}
    assert scheduler.ran[0][0][0] == "squeue"
    assert "--jobs=20,21,22,23,24" in scheduler.ran[0][0]


def test_a_recorded_invalid_job_id_answers_for_one_job_only() -> None:
    scheduler = RecordedSlurm(squeue="slurm/squeue_never_existed")
    assert SchemeCheck(lambda: scheduler)(["999999"]) == set()
    with pytest.raises(SchedulerCommandError, match="Invalid job id specified"):
        SchemeCheck(lambda: scheduler)(["999999", "22"])


# --- cancelling ---------------------------------------------------------------------------------


def test_cancel_runs_every_command_and_logs_what_it_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scheduler = RecordedSlurm(scancel="slurm/scancel_running")
    with caplog.at_level(logging.WARNING, logger="runner_grid"):
        assert scheduler.cancel(["32", "33"])
    assert scheduler.ran == [(["scancel", "32", "33"], None)]
    assert [r.getMessage() for r in caplog.records] == ["cancelled grid jobs: scancel 32 33"]


def test_a_failing_cancel_is_done_but_one_that_cannot_run_is_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refused = answer(["scancel"], stderr="scancel: error: Kill job error on job id 5\n", rc=1)
    with caplog.at_level(logging.WARNING, logger="runner_grid"):
        assert RecordedSlurm(scancel=refused).cancel(["5"])
        assert not RecordedSlurm(scancel=SchedulerCommandError("no scancel")).cancel(["5"])
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "scancel 5 exited with status 1 (jobs that had just ended cannot be cancelled): "
        "scancel: error: Kill job error on job id 5",
        "could not cancel jobs: no scancel",
    ]


def test_a_cancel_of_many_ids_is_batched_and_logged_briefly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ids = [str(10**8 + i) for i in range(5000)]
    scheduler = RecordedSlurm(scancel=answer(["scancel"]))
    with caplog.at_level(logging.WARNING, logger="runner_grid"):
        assert scheduler.cancel(ids)
    assert len(scheduler.ran) > 1
    assert [jobid for argv, _t in scheduler.ran for jobid in argv[1:]] == ids
    assert all(len(r.getMessage()) < 200 for r in caplog.records)
    assert caplog.records[0].getMessage().endswith("arguments)")


# --- tags -------------------------------------------------------------------------------------


def test_find_tag_reads_the_listing_and_a_failure_tells_nothing() -> None:
    listing = answer(["squeue"], "1889|(null)\n1896|tagtest-1234\n")
    assert RecordedSlurm(squeue=listing).find_tag("tagtest-1234") == "1896"
    assert RecordedSlurm(squeue=listing).find_tag("other-0000") is None
    failed = answer(["squeue"], stderr="squeue: error: cannot connect\n", rc=1)
    with pytest.raises(SchedulerCommandError, match=r"exited 1 and did not tell: .*cannot connect"):
        RecordedSlurm(squeue=failed).find_tag("tagtest-1234")


def test_find_tag_tries_each_command_in_turn() -> None:
    class QstatThenQacct(GridEngine):
        ran: list[str] = []  # noqa: RUF012 - one test's record

        def run(
            self, argv: Sequence[str], *, timeout: Optional[float] = None
        ) -> subprocess.CompletedProcess[str]:
            self.ran.append(argv[0])
            if argv[0] == "qstat":
                return answer(argv, "Following jobs do not exist: \nlost_r-0d93109d\n", rc=1)
            return answer(argv, "jobname      lost_r-0d93109d\njobnumber    97\n")

    scheduler = QstatThenQacct()
    assert scheduler.find_tag("lost_r-0d93109d") == "97"  # qstat: gone; qacct knows it
    assert scheduler.ran == ["qstat", "qacct"]


# --- arrays -------------------------------------------------------------------------------------


def test_max_array_size_is_the_classes_else_the_schedulers_else_the_default() -> None:
    config = answer(["scontrol"], "Configuration data as of ...\nMaxArraySize            = 1001\n")
    assert RecordedSlurm(scontrol=config).max_array_size() == 1000
    fixed = RecordedSlurm(scontrol=config)
    fixed.array_max_size = 50
    assert fixed.max_array_size() == 50
    assert fixed.ran == []
    for told in (SchedulerCommandError("down"), answer(["scontrol"], "no such line\n")):
        assert RecordedSlurm(scontrol=told).max_array_size() == DEFAULT_MAX_ARRAY_SIZE
    failed = answer(["scontrol"], "MaxArraySize = 5\n", rc=1)
    assert RecordedSlurm(scontrol=failed).max_array_size() == DEFAULT_MAX_ARRAY_SIZE


def test_array_args_and_task_ids_of_each_family() -> None:
    assert Slurm().array_args(5, 2) == ["--array=1-5%2"]
    assert GridEngine().array_args(5, 0) == ["-t", "1-5"]
    assert Pbs().array_args(5, 2) == ["-J", "1-5%2"]
    assert Slurm().task_id("41", 3) == "41_3"
    assert GridEngine().task_id("58.1-5:1", 3) == "58.3"
    assert Pbs().task_id("9[].srv", 3) == "9[3].srv"
    assert all(family().has_arrays for family in (Slurm, GridEngine, Pbs))


# --- submitting -------------------------------------------------------------------------------


def test_submit_argv_of_each_family_carries_the_tag_before_the_users_flags() -> None:
    flags = {"memory": "4G", "name": "mine"}
    assert Slurm().submit_argv("/j/a.grid", "/j", "/j/a.out", "/j/a.err", flags, "a-1") == [
        *["sbatch", "-D", "/j", "-e", "/j/a.err", "-o", "/j/a.out", "--comment=a-1"],
        *["--mem=4096M", "-J", "mine", "/j/a.grid"],
    ]
    assert GridEngine().submit_argv("/j/a.grid", "/j", None, "/j/a.err", flags, "a-1") == [
        *["qsub", "-S", "/bin/sh", "-wd", "/j", "-e", "/j/a.err", "-N", "a-1"],
        *["-l", "h_vmem=4096M", "-N", "mine", "/j/a.grid"],
    ]
    assert Pbs().submit_argv("/j/a.grid", "/j", "/j/a.out", "/j/a.err", {}) == [
        *["qsub", "-e", "/j/a.err", "-o", "/j/a.out", "/j/a.grid"],
    ]


def test_runflag_args_are_the_flags_a_submission_adds() -> None:
    flags = {"partition": "short", "exclusive": True, "mem": "1G", "x": None}
    assert Slurm().runflag_args(flags) == ["-p", "short", "--exclusive", "--mem=1G"]
    assert GridEngine().runflag_args(flags) == ["-q", "short", "-exclusive", "-mem", "1G"]
    argv = Slurm().submit_argv("/j/a.grid", "/j", None, "/j/a.err", flags)
    assert argv[-5:-1] == Slurm().runflag_args(flags)


@pytest.mark.parametrize(("family", "key"), [(Slurm, "comment"), (GridEngine, "name"), (Pbs, "N")])
def test_new_tag_is_none_when_a_runflag_of_the_users_sets_the_tag_flag(
    family: type[Scheduler], key: str
) -> None:
    scheduler = family()
    tag = scheduler.new_tag("myjob.run", {"memory": "1G"})
    assert tag is not None
    assert tag.startswith("myjob-")
    assert tag != scheduler.new_tag("myjob.run", {})
    assert scheduler.new_tag("myjob.run", {key: "mine"}) is None
    assert scheduler.new_tag("myjob.run", {key: None}) is not None  # None adds no flag


def test_new_tag_is_none_without_a_tag_flag_or_a_way_to_find_tags() -> None:
    no_flag = Slurm()
    no_flag.tag_flag = None
    assert no_flag.new_tag("a.run", {}) is None

    class NoLookup(Slurm):
        @property
        def can_find_tags(self) -> bool:
            return False

    assert NoLookup().new_tag("a.run", {}) is None


# --- resources: what each family makes of them, grouping, directives ------------------------

GIB = 1024**3


@pytest.mark.parametrize("family", [Slurm, GridEngine, Pbs])
def test_the_resources_are_taken_out_of_the_runflags_and_mapped_after_the_tag(
    family: type[Scheduler],
) -> None:
    scheduler = family()
    flags = {"x": 1, "memory": "2G", "walltime": "1:00:00", "queue": "q", "name": "mine"}
    resources, rest = scheduler.split_runflags(flags)
    assert resources == Resources(memory=2 * GIB, walltime=3600, queue="q")
    assert rest == {"x": 1, "name": "mine"}
    argv = scheduler.submit_argv("/j/a.grid", "/j", None, "/j/a.err", flags, "t-1")
    mapped = scheduler.resource_args(resources)
    start = argv.index(mapped[0])
    assert argv[start : start + len(mapped)] == mapped
    assert argv[start - 1] == "t-1" or argv[start - 1].endswith("t-1")  # the tag just before
    assert argv[start + len(mapped) :] == [*scheduler.runflag_args(rest), "/j/a.grid"]
    assert scheduler.runflag_args(flags) == [*mapped, *scheduler.runflag_args(rest)]


@pytest.mark.parametrize("family", [Slurm, GridEngine, Pbs])
def test_jobs_asking_the_same_group_together_however_they_spell_it(
    family: type[Scheduler],
) -> None:
    scheduler = family()
    spellings: list[Mapping[str, Any]] = [
        {"memory": "4G", "walltime": "1:00:00", "queue": "q", "x": 1},
        {"memory": "4096M", "walltime": 3600, "partition": "q", "x": 1},
        {"x": 1, "walltime": timedelta(hours=1), "memory": 4 * GIB, "queue": "q"},
        {"memory": "4GB", "walltime": 3599.5, "queue": "q", "partition": "q", "x": 1, "y": None},
    ]
    groups = {tuple(scheduler.runflag_args(flags)) for flags in spellings}
    assert len(groups) == 1
    other = {"memory": "4G", "walltime": "1:00:01", "queue": "q", "x": 1}
    assert tuple(scheduler.runflag_args(other)) not in groups


def test_a_resource_key_named_in_special_stays_the_schemes_own_flag() -> None:
    class PerCpu(Slurm):
        special = MappingProxyType({**Slurm.special, "memory": "--mem-per-cpu="})

    argv = PerCpu().submit_argv("/j/a", "/j", None, "/j/e", {"memory": "1G", "cores": 4})
    assert argv[-3:] == ["--cpus-per-task=4", "--mem-per-cpu=1G", "/j/a"]
    assert PerCpu().directive_overrides({"memory": "1G"}, ["#SBATCH --mem=2G"]) == []


def test_check_runflags_refuses_what_does_not_parse_or_the_scheduler_cannot_give() -> None:
    Slurm().check_runflags({"memory": "4G", "gpus": 2, "anything": object()})
    with pytest.raises(ValueError, match=r"^run flag memory='4X' is not a memory size"):
        Slurm().check_runflags({"memory": "4X"})
    with pytest.raises(ValueError, match=r"^run flag gpus=1: Grid Engine has no standard GPU"):
        GridEngine().check_runflags({"gpus": 1})
    with pytest.raises(ValueError, match=r"^run flag cores=3 is not a multiple of nodes=2"):
        Pbs().check_runflags({"cores": 3, "nodes": 2})


def test_a_scheduler_class_without_resource_args_passes_resource_keys_as_they_are() -> None:
    scheduler = Minimal()
    assert not scheduler.maps_resources
    flags = {"memory": "lots", "walltime": "forever"}
    assert scheduler.split_runflags(flags) == (Resources(), flags)
    scheduler.check_runflags(flags)  # nothing to refuse: they are plain flags
    assert scheduler.runflag_args(flags) == ["-memory", "lots", "-walltime", "forever"]
    assert scheduler.directive_overrides(flags, ["#SBATCH --mem=1G"]) == []
    with pytest.raises(NotImplementedError, match="Minimal does not map resources"):
        scheduler.resource_args(Resources())


def test_directive_overrides_name_the_run_flag_and_the_line() -> None:
    directives = ["#SBATCH --mem=1G", "#SBATCH -p long -t 10", "#SBATCH --hint=x", "#$ -q a"]
    flags = {"memory": "4G", "partition": "short", "cores": 2, "walltime": None}
    assert Slurm().directive_overrides(flags, directives) == [
        "run flag memory='4G' overrides the runscript's directive '#SBATCH --mem=1G' (the "
        "submit command's flags win over directives)",
        "run flag partition='short' overrides the runscript's directive '#SBATCH -p long -t "
        "10' (the submit command's flags win over directives)",
    ]
    assert Slurm().directive_overrides(flags, []) == []
    assert Slurm().directive_overrides({"x": 1}, directives) == []
    assert len(Pbs().directive_overrides({"memory": "1G"}, ["#PBS -l select=1:ncpus=8"])) == 1


# --- run: the one place a command runs ------------------------------------------------------


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_run_drops_unset_env_and_logs_the_command(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SQUEUE_FORMAT", "%j")
    monkeypatch.setenv("SACCT_FORMAT", "x")
    monkeypatch.setenv("RGTEST_KEPT", "yes")
    show = (
        "import os; print(sorted(k for k in os.environ if k[:6] in ('SQUEUE', 'SACCT_', 'RGTEST')))"
    )
    with caplog.at_level(logging.DEBUG, logger="runner_grid"):
        proc = Slurm().run(python(show))
    assert proc.stdout.strip() == "['RGTEST_KEPT']"
    logged = f"slurm runs: {format_command(python(show))}"
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG] == [logged]
    exact = Slurm()
    exact.unset_env = ("RGTEST_KEPT",)
    assert exact.run(python(show)).stdout.strip() == "['SACCT_FORMAT', 'SQUEUE_FORMAT']"


def test_run_times_out_at_check_timeout_unless_told_otherwise() -> None:
    scheduler = Slurm()
    scheduler.check_timeout = 0.3
    with pytest.raises(SchedulerCommandError, match=r"ran longer than 0\.3 s"):
        scheduler.run(python("import time; time.sleep(30)"))
    assert scheduler.run(python("import time; time.sleep(0.5)"), timeout=20).returncode == 0
    with pytest.raises(SchedulerCommandError, match="could not be started"):
        scheduler.run(["/nonexistent/squeue"])


def test_run_gives_back_a_failed_commands_output() -> None:
    proc = Slurm().run(python("import sys; print('out'); sys.exit('err')"))
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "out\n", "err\n")


# --- what a family that gives only the required primitives can do ---------------------------


class Minimal(Scheduler):
    """A scheduler with only what submitting and checking need."""

    name = "minimal"
    submit_command = "msub --queue=q"
    error_flag = "-e"

    def parse_id(self, output: str) -> Optional[str]:
        return output.strip() or None

    def check_argvs(self, ids: Sequence[str]) -> list[list[str]]:
        return [["mq", *ids]]

    def parse_listing(self, output: str) -> Listing:
        return Listing(output.split(), [])

    def run(
        self, argv: Sequence[str], *, timeout: Optional[float] = None
    ) -> subprocess.CompletedProcess[str]:
        raise AssertionError(f"no command may run: {argv}")


def test_a_minimal_scheduler_can_do_nothing_more_and_runs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scheduler = Minimal()
    capabilities = (scheduler.tells_reasons, scheduler.can_cancel, scheduler.can_find_tags)
    assert capabilities == (False, False, False)
    assert not scheduler.has_arrays
    assert scheduler.how_ended("1") is None
    assert scheduler.max_array_size() == DEFAULT_MAX_ARRAY_SIZE
    assert scheduler.new_tag("a.run", {}) is None
    assert scheduler.check_error(["1"], 1, "", "") is None
    with caplog.at_level(logging.WARNING, logger="runner_grid"):
        assert not scheduler.cancel(["1", "2"])
    assert "jobs 1 2 stay in the queue" in caplog.text
    with pytest.raises(SchedulerCommandError, match="cannot look a job up by its tag"):
        scheduler.find_tag("t")
    with pytest.raises(NotImplementedError, match="no job arrays"):
        scheduler.array_args(2, 0)
    with pytest.raises(NotImplementedError, match="no job arrays"):
        scheduler.task_id("1", 1)
    assert scheduler.submit_argv("/j/a", "/j", "/j/o", "/j/e", {"p": 2}) == [
        *["msub", "--queue=q", "-e", "/j/e", "-p", "2", "/j/a"],
    ]
    assert scheduler.probe_argv() == ["msub", "--version"]
    assert scheduler.detect(0, "")
    assert not scheduler.detect(2, "")


def test_the_bare_contract_asks_for_its_primitives() -> None:
    with pytest.raises(NotImplementedError, match="Scheduler must define parse_id"):
        Scheduler().parse_id("1")
    with pytest.raises(NotImplementedError, match="must define check_argvs"):
        Scheduler().check_argvs(["1"])
    with pytest.raises(NotImplementedError, match="must define parse_listing"):
        Scheduler().parse_listing("")
    with pytest.raises(ValueError, match=r"no commands\.submit"):
        Scheduler().submit_argv("/j/a", "/j", None, "/j/e", {})
    assert Scheduler().probe_argv() is None
