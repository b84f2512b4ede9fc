"""The adapter from a scheme Settings to the Scheduler contract: its checks, defaults and reads."""

from __future__ import annotations

import functools
import logging
import subprocess
from typing import TYPE_CHECKING, Any, Optional

import pytest

from runner_core import JobManager, JobStatus, Resources, SingleJob
from runner_grid import (
    GridRunner,
    Listing,
    QueueLimits,
    Scheduler,
    SchedulerCommandError,
    Scheme,
    SchemeError,
)
from runner_grid.schemes import SCHEMES, pbs, sge, slurm
from runner_grid.schemes._base import DEFAULT_MAX_ARRAY_SIZE
from runner_grid.schemes._settings import REQUIRED_KEYS, missing_keys
from runner_grid.schemes.pbs import Pbs
from runner_grid.schemes.sge import GridEngine
from runner_grid.schemes.slurm import Slurm
from runner_settings import Settings

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

FAMILIES: dict[str, type[Scheduler]] = {"pbs": Pbs, "sge": GridEngine, "slurm": Slurm}


def plams_scheme(**commands: Any) -> dict[str, Any]:
    """A scheme written for PLAMS: only the seed's keys, `check` a bare command."""
    return {
        "workdir": "-D",
        "output": "-o",
        "error": "-e",
        "special": {"nodes": "-N "},
        "commands": {
            "submit": "sbatch",
            "check": "squeue",
            "getid": lambda out: out.split()[-1] if out.split() else None,
            "running": lambda out: [line.split()[0] for line in out.splitlines()[1:]],
            **commands,
        },
    }


class Ran(Scheme):
    """The adapter with `run` answering from a table (program -> stdout), recording each argv."""

    answers: dict[str, str]
    ran: list[list[str]]

    def run(
        self, argv: Sequence[str], *, timeout: Optional[float] = None
    ) -> subprocess.CompletedProcess[str]:
        self.ran.append(list(argv))
        return subprocess.CompletedProcess(list(argv), 0, self.answers.get(argv[0], ""), "")


def ran(raw: dict[str, Any], **answers: str) -> Ran:
    scheme = Ran.of(raw)
    assert isinstance(scheme, Ran)
    scheme.answers, scheme.ran = answers, []
    return scheme


# --- the predefined schemes: the Settings users edit say what the classes say ----------------

#: The attributes a scheme Settings gives its adapter, and a family class its own.
ATTRIBUTES = [
    "check_timeout",
    "submit_timeout",
    "exitcode_wait",
    "unset_env",
    "directives",
    "submit_retries",
    "submit_backoff",
    "submit_faults",
    "array_index",
    "array_output_index",
    "array_throttle",
    "array_max_size",
    "workdir_flag",
    "output_flag",
    "error_flag",
    "special",
    "long_flags",
    "tag_flag",
    "tells_reasons",
    "can_cancel",
    "can_find_tags",
    "has_arrays",
    "reads_limits",
]


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_every_predefined_scheme_is_valid_and_says_what_its_class_says(name: str) -> None:
    view = Scheme.of(SCHEMES[name](), name)
    family = FAMILIES[name]()
    assert family.name == name
    for attribute in ATTRIBUTES:
        assert getattr(view, attribute) == getattr(family, attribute), attribute
    assert view.check_timeout > 0
    assert view.get("cancel") is not None
    assert view.get("no_such_command") is None


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_every_predefined_scheme_builds_the_commands_its_class_builds(name: str) -> None:
    view = Scheme.of(Settings(SCHEMES[name]()), name)
    family = FAMILIES[name]()
    flags = {"memory": "4G", "walltime": "1:00:00", "x": True}
    for method, args in [
        ("submit_argv", ("/j/a.grid", "/j", "/j/a.out", "/j/a.err", flags, "a-1")),
        ("submit_argv", ("/j/a.grid", "/j", None, "/j/a.err", {}, None)),
        ("runflag_args", (flags,)),
        ("check_argvs", (["12", "13_4"],)),
        ("end_argvs", ("12",)),
        ("cancel_argvs", (["12", "13"],)),
        ("find_tag_argvs", ("a-1",)),
        ("array_args", (5, 2)),
        ("task_id", ("12", 3)),
        ("array_limit_argvs", ()),
        ("limit_argvs", ()),
        ("probe_argv", ()),
    ]:
        assert getattr(view, method)(*args) == getattr(family, method)(*args), method


@pytest.mark.parametrize(
    ("name", "listing", "end", "submitted"),
    [
        ("slurm", "20 R\n21_[2-3] PD\n6 CD\n", "JobId=7 JobState=TIMEOUT ExitCode=0:15", "7\n"),
        (
            "sge",
            "job-ID prior name user state submit/start at queue slots ja-task-ID\n"
            "----------------------------------------------------------------\n"
            "     41 0.55500 exit0.sh root r 11/24/2026 14:26:30 all.q@vm 1\n",
            "==============================================================\n"
            "failed       0\nexit_status  3\n",
            'Your job 41 ("exit0.sh") has been submitted\n',
        ),
        (
            "pbs",
            "Job id  Name  User  Time Use S Queue\n----- ---- ---- ---- - -----\n"
            "12.srv  a  root  00:00:00 R workq\n",
            "Job Id: 12.srv\n    job_state = F\n    Exit_status = 3\n    substate = 92\n",
            "12.srv\n",
        ),
    ],
)
def test_every_predefined_scheme_reads_what_its_class_reads(
    name: str, listing: str, end: str, submitted: str
) -> None:
    view = Scheme.of(SCHEMES[name](), name)
    family = FAMILIES[name]()
    assert view.parse_listing(listing) == family.parse_listing(listing)
    assert view.parse_listing(listing).queued
    assert view.parse_end(end) == family.parse_end(end) is not None
    assert view.parse_id(submitted) == family.parse_id(submitted) is not None
    assert view.detect(0, "nothing") == family.detect(0, "nothing") is False


def test_a_copy_of_a_predefined_scheme_edited_by_a_user_is_what_runs() -> None:
    raw = Settings(slurm.scheme())
    raw.commands.submit = ["sbatch", "--clusters=blue"]
    raw.special.memory = "--mem-per-cpu="
    raw.unset_env = ["SQUEUE_*"]
    raw.commands.cancel = "scancel --clusters=blue"
    view = Scheme.of(raw, "slurm")
    assert view.submit_argv("/j/a", "/j", None, "/j/e", {"memory": "1G"})[:2] == [
        "sbatch",
        "--clusters=blue",
    ]
    assert "--mem-per-cpu=1G" in view.submit_argv("/j/a", "/j", None, "/j/e", {"memory": "1G"})
    assert view.unset_env == ("SQUEUE_*",)
    assert view.cancel_argvs(["1", "2"]) == [["scancel", "--clusters=blue", "1", "2"]]
    assert "memory" not in Slurm().special  # the class is not changed
    assert "memory" not in slurm.scheme()["special"]  # a resource, mapped by commands.resources


def test_the_scheme_factories_give_fresh_plain_copies() -> None:
    first, second = sge.scheme(), sge.scheme()
    first["special"]["name"] = "-X "
    first["submit_faults"]["retry"].append("x")
    assert second["special"]["name"] == "-N "
    assert "x" not in second["submit_faults"]["retry"]
    assert GridEngine.special["name"] == "-N "
    assert sge.scheme()["commands"]["submit"] == ["qsub", "-S", "/bin/sh"]
    assert slurm.scheme()["commands"]["submit"] == "sbatch"
    assert pbs.scheme()["workdir"] is None


# --- a PLAMS-era scheme: the seed's keys only --------------------------------------------


def test_a_plams_scheme_gets_the_defaults_and_can_do_what_the_seed_did() -> None:
    scheme = plams_scheme()
    scheme["commands"]["special"] = {"memory": "--mem="}
    view = Scheme.of(scheme)
    assert view.name == "custom"
    assert (view.check_timeout, view.submit_timeout, view.exitcode_wait) == (60.0, 120.0, 0.0)
    assert (view.submit_retries, view.submit_backoff, dict(view.submit_faults)) == (3, 2.0, {})
    assert view.unset_env == ()
    assert view.directives == ()
    assert dict(view.special) == {"nodes": "-N ", "memory": "--mem="}
    capabilities = (view.tells_reasons, view.can_cancel, view.can_find_tags, view.has_arrays)
    assert capabilities == (False, False, False, False)
    assert view.new_tag("a.run", {}) is None
    assert view.end_argvs("1") == []
    assert view.cancel_argvs(["1"]) == []
    assert view.array_limit_argvs() == []
    assert (view.reads_limits, view.limit_argvs(), view.limits()) == (False, [], None)
    assert view.check_argvs(["1", "2"]) == [["squeue"]]  # the whole queue, as PLAMS asked
    assert view.parse_listing("JOBID\n12 R\n13 PD\n") == Listing(["12", "13"], [])
    assert view.parse_id("Submitted batch job 12\n") == "12"
    assert view.parse_id("") is None
    assert view.submit_argv("/j/a", "/j", "/j/o", "/j/e", {"nodes": 2, "memory": "1G"}) == [
        *["sbatch", "-D", "/j", "-e", "/j/e", "-o", "/j/o", "-N", "2", "--mem=1G", "/j/a"],
    ]
    assert view.probe_argv() == ["sbatch", "--version"]
    assert view.detect(0, "anything")
    assert not view.detect(1, "slurm 22.05.8")


def test_a_plams_scheme_runs_no_command_it_does_not_have(
    caplog: pytest.LogCaptureFixture,
) -> None:
    view = ran(plams_scheme(), squeue="JOBID\n12 R\n")
    assert view.how_ended("12") is None
    assert view.max_array_size() == DEFAULT_MAX_ARRAY_SIZE
    with caplog.at_level(logging.WARNING, logger="runner_grid"):
        assert not view.cancel(["12"])
    assert "scheme 'custom' has no cancel command (commands.cancel): jobs 12 stay" in caplog.text
    with pytest.raises(SchedulerCommandError, match="cannot look a job up by its tag"):
        view.find_tag("t")
    assert view.ran == []


def test_a_plams_parser_giving_numbers_gives_strings() -> None:
    view = Scheme.of(
        plams_scheme(getid=lambda out: 12, running=lambda out: [12, 13], started=lambda out: [12])
    )
    assert view.parse_id("") == "12"
    assert view.parse_listing("") == Listing(["12", "13"], ["12"])


def test_a_bare_cancel_command_gets_the_ids_appended_in_batches() -> None:
    view = Scheme.of(plams_scheme(cancel="qdel -W force"))
    assert view.can_cancel
    assert view.cancel_argvs(["1", "2"]) == [["qdel", "-W", "force", "1", "2"]]
    many = view.cancel_argvs([str(10**8 + i) for i in range(5000)])
    assert len(many) > 1
    assert all(argv[:3] == ["qdel", "-W", "force"] for argv in many)
    built = Scheme.of(plams_scheme(cancel=lambda ids: [["mydel", i] for i in ids]))
    assert built.cancel_argvs(["1", "2"]) == [["mydel", "1"], ["mydel", "2"]]


def test_parse_exitcode_alone_tells_the_code_and_no_reason() -> None:
    codes: dict[str, Any] = {"3": 3, "yes": True}
    view = ran(
        plams_scheme(
            exitcode=lambda jobid: [f"myacct {jobid}"],
            parse_exitcode=lambda out: codes.get(out.strip()),
        ),
        myacct="3",
    )
    assert not view.tells_reasons
    assert view.end_argvs("12") == [["myacct", "12"]]
    assert view.how_ended("12") == (3, None)
    assert view.parse_end("3") == (3, None)
    assert view.parse_end("yes") is None  # a bool is no exit code
    assert view.parse_end("") is None
    assert Scheme.of(plams_scheme(exitcode=lambda jobid: [["x"]])).end_argvs("1") == []


def test_parse_end_wins_over_parse_exitcode() -> None:
    view = ran(
        plams_scheme(
            exitcode=lambda jobid: [["myacct", jobid]],
            parse_end=lambda out: (int(out), "timeout"),
            parse_exitcode=lambda out: 99,
        ),
        myacct="5",
    )
    assert view.tells_reasons
    assert view.how_ended("12") == (5, "timeout")


def test_tags_and_arrays_of_a_settings_scheme_are_its_callables() -> None:
    view = ran(
        {
            **plams_scheme(
                find_tag=lambda tag: [["mylook", tag]],
                parse_tag=lambda tag, rc, out, err: out.strip() or None,
                array=lambda size, throttle: f"--range=1-{size}",
                task_id=lambda array_id, index: f"{array_id}:{index}",
                array_limit=lambda: [["mylimits"]],
                parse_array_limit=int,
            ),
            "tag_flag": "--label=",
            "array": {"index": ["MY_INDEX"]},
        },
        mylook="77\n",
        mylimits="40",
    )
    assert view.can_find_tags
    assert view.has_arrays
    assert view.find_tag("t-1") == "77"
    assert view.array_args(5, 0) == ["--range=1-5"]
    assert view.task_id("77", 2) == "77:2"
    assert view.max_array_size() == 40
    assert view.ran == [["mylook", "t-1"], ["mylimits"]]
    tag = view.new_tag("job.run", {})
    assert tag is not None
    assert f"--label={tag}" in view.submit_argv("/j/a", "/j", None, "/j/e", {}, tag)


def test_arrays_need_all_of_their_keys() -> None:
    index = {"array": {"index": ["I"]}}
    no_task_id = Scheme.of({**plams_scheme(array=lambda n, t: []), **index})
    assert not no_task_id.has_arrays
    with pytest.raises(SchemeError, match=r"has no commands\.task_id"):
        no_task_id.task_id("1", 1)
    no_array = Scheme.of({**plams_scheme(task_id=lambda a, i: a), **index})
    assert not no_array.has_arrays
    with pytest.raises(SchemeError, match=r"has no commands\.array"):
        no_array.array_args(2, 0)
    both = {"array": lambda n, t: ["-a"], "task_id": lambda a, i: a}
    assert not Scheme.of(plams_scheme(**both)).has_arrays  # no array.index
    assert Scheme.of({**plams_scheme(**both), **index}).has_arrays


# --- validation: every message names the key, the value and what it must be -----------------


def test_missing_keys_are_all_listed() -> None:
    assert missing_keys(plams_scheme()) == []
    with pytest.raises(SchemeError) as info:
        Scheme.of({"workdir": "-D", "commands": {"submit": "x", "getid": "not callable"}}, "mine")
    assert str(info.value) == (
        "grid scheme 'mine' lacks output, error, commands.check, commands.getid, "
        "commands.running; add them (commands.getid and commands.running must be callables), "
        "see the docs page 'Writing your own scheme'"
    )
    assert missing_keys({"commands": 5}) == list(REQUIRED_KEYS)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"chek_timeout": 5}, "unknown key 'chek_timeout' (did you mean 'check_timeout'?)"),
        ({"specials": {}}, "unknown key 'specials' (did you mean 'special'?)"),
        ({"zzz": 1}, "unknown key 'zzz'; known keys: array, check_timeout, commands, directives"),
        ({"workdir": 3}, "workdir is 3; it must be a flag such as '-o', or None"),
        ({"output": 3}, "output is 3; it must be a flag such as '-o', or None"),
        ({"error": ["-e"]}, "error is ['-e']; it must be a flag such as '-o', or None"),
        (
            {"special": {"mem": 4}},
            "special is {'mem': 4}; it must be a mapping of runflag name -> flag prefix (strings)",
        ),
        ({"check_timeout": "60"}, "check_timeout is '60'; it must be a number of seconds >= 0"),
        ({"submit_timeout": True}, "submit_timeout is True; it must be a number of seconds >= 0"),
        ({"exitcode_wait": -1}, "exitcode_wait is -1; it must be a number of seconds >= 0"),
        ({"submit_backoff": "2"}, "submit_backoff is '2'; it must be a number of seconds >= 0"),
        ({"unset_env": "SQUEUE_*"}, "unset_env is 'SQUEUE_*'; it must be a list of strings"),
        ({"directives": [1]}, "directives is [1]; it must be a list of strings"),
        (
            {"tag_flag": 5},
            "tag_flag is 5; it must be a flag prefix such as '--comment=' or '-N ', or None",
        ),
        ({"long_flags": "yes"}, "long_flags is 'yes'; it must be True or False"),
        ({"submit_retries": -1}, "submit_retries is -1; it must be a whole number >= 0"),
        ({"submit_retries": 1.5}, "submit_retries is 1.5; it must be a whole number >= 0"),
        (
            {"submit_faults": {"retri": []}},
            "submit_faults is {'retri': []}; it must be a mapping with 'retry', 'uncertain' "
            "and/or 'limit', each a list of regular expressions",
        ),
        (
            {"array": [1]},
            "array is [1]; it must be a mapping: index, output_index, throttle, max_size",
        ),
    ],
)
def test_a_misspelled_or_ill_typed_key_is_named(change: dict[str, Any], message: str) -> None:
    scheme = SCHEMES["slurm"]()
    scheme.update(change)
    with pytest.raises(SchemeError) as info:
        Scheme.of(scheme, "slurm")
    assert str(info.value).startswith("grid scheme 'slurm'")
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("cancle", "scancel", "unknown key 'commands.cancle' (did you mean 'commands.cancel'?)"),
        (
            "resource",
            sge.resource_args,
            "unknown key 'commands.resource' (did you mean 'commands.resources'?)",
        ),
        (
            "resources",
            "-l h_vmem=1G",
            "commands.resources is '-l h_vmem=1G'; it must be a callable",
        ),
        (
            "directive_resources",
            ["memory"],
            "commands.directive_resources is ['memory']; it must be a callable",
        ),
        ("exitcode", ["sacct"], "commands.exitcode is ['sacct']; it must be a callable"),
        ("limits", "qconf -sq", "commands.limits is 'qconf -sq'; it must be a callable"),
        ("parse_limits", None, "commands.parse_limits is None; it must be a callable"),
        ("started", "squeue", "commands.started is 'squeue'; it must be a callable"),
        ("submit", "", "commands.submit is ''; it must be a command: a string or a list"),
        ("submit", ["qsub", 1], "commands.submit is ['qsub', 1]; it must be a command"),
        ("probe", [], "commands.probe is []; it must be a command: a string or a list"),
        (
            "check",
            7,
            "commands.check is 7; it must be a command (string or list of strings) or a "
            "callable that builds them",
        ),
        ("cancel", "  ", "commands.cancel is '  '; it must be a command (string or list"),
        (
            "special",
            {"n": None},
            "commands.special is {'n': None}; it must be a mapping of runflag name -> flag",
        ),
    ],
)
def test_a_bad_command_is_named(key: str, value: Any, message: str) -> None:
    scheme = SCHEMES["sge"]()
    scheme["commands"][key] = value
    with pytest.raises(SchemeError, match="grid scheme 'sge'") as info:
        Scheme.of(scheme, "sge")
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("thrtotle", True, "unknown key 'array.thrtotle' (did you mean 'array.throttle'?)"),
        (
            "index",
            "MY_INDEX",
            "array.index is 'MY_INDEX'; it must be a list of environment variable names",
        ),
        (
            "output_index",
            1,
            "array.output_index is 1; it must be what stands for the task's index in an "
            "output path ('%a', '$TASK_ID'), or None",
        ),
        ("throttle", "yes", "array.throttle is 'yes'; it must be True or False"),
        (
            "max_size",
            0,
            "array.max_size is 0; it must be a whole number >= 1, or None (ask the scheduler)",
        ),
    ],
)
def test_a_bad_array_key_is_named(key: str, value: Any, message: str) -> None:
    scheme = SCHEMES["pbs"]()
    scheme["array"][key] = value
    with pytest.raises(SchemeError, match="grid scheme 'pbs'") as info:
        Scheme.of(scheme, "pbs")
    assert message in str(info.value)


def test_a_view_without_validation_reads_bad_values_as_their_defaults() -> None:
    raw = {
        **plams_scheme(cancel="qdel"),
        "check_timeout": "fast",
        "submit_retries": -2,
        "unset_env": "SQUEUE_*",
        "tag_flag": 5,
        "array": {"max_size": 0, "index": "X"},
    }
    view = Scheme(raw, "broken")
    assert (view.check_timeout, view.submit_retries, view.unset_env) == (60.0, 3, ())
    assert (view.tag_flag, view.array_max_size, view.array_index) == (None, None, ())
    assert view.cancel_argvs(["5"]) == [["qdel", "5"]]  # so a runner can still cancel
    with pytest.raises(SchemeError, match="check_timeout is 'fast'"):
        Scheme.of(raw)


# --- resources through a scheme Settings ----------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_every_predefined_scheme_maps_resources_as_its_class_does(name: str) -> None:
    view = Scheme.of(Settings(SCHEMES[name]()), name)
    family = FAMILIES[name]()
    assert view.maps_resources
    assert family.maps_resources
    request = Resources.of(
        {"cores": 4, "memory": "6G", "walltime": "2-00:00:00", "queue": "q", "account": "a"}
    )
    assert view.resource_args(request) == family.resource_args(request)
    assert view.resource_args(Resources()) == family.resource_args(Resources()) == []
    lines = ["#SBATCH --mem=1G -t 5", "#$ -l h_vmem=1G,h_rt=60", "#PBS -l walltime=1:00:00"]
    for line in lines:
        assert view.directive_resources(line) == family.directive_resources(line), line
    flags = {"memory": "6G", "walltime": 60, "cores": 2}
    assert view.directive_overrides(flags, lines) == family.directive_overrides(flags, lines)
    with pytest.raises(ValueError, match="walltime='soon'"):
        view.check_runflags({"walltime": "soon"})


def test_a_plams_scheme_passes_resource_keys_exactly_as_before() -> None:
    view = Scheme.of(plams_scheme(special={"memory": "--mem="}))
    flags = {"memory": "4000", "walltime": "forever", "cores": 4, "nodes": 2, "queue": "q"}
    assert not view.maps_resources
    view.check_runflags(flags)  # nothing is parsed: a bare 4000 means what the site says
    assert view.submit_argv("/j/a", "/j", None, "/j/e", flags) == [
        *["sbatch", "-D", "/j", "-e", "/j/e", "--mem=4000", "-walltime", "forever"],
        *["-cores", "4", "-N", "2", "-queue", "q", "/j/a"],
    ]
    assert view.directive_overrides(flags, ["#SBATCH --mem=1G"]) == []
    with pytest.raises(SchemeError, match=r"has no commands\.resources"):
        view.resource_args(Resources())


def test_a_settings_scheme_maps_resources_with_a_function_of_its_own() -> None:
    raw = Settings(sge.scheme())
    raw.commands.resources = functools.partial(
        sge.resource_args, parallel_environment="mpi", gpu_resource="gpu"
    )
    raw.commands.directive_resources = functools.partial(
        sge.directive_resources, gpu_resource="gpu"
    )
    view = Scheme.of(raw, "sge")
    assert view.runflag_args({"cores": 8, "gpus": 1}) == ["-pe", "mpi", "8", "-l", "gpu=1"]
    assert view.directive_resources("#$ -l gpu=2") == ["gpus"]
    raw.commands.resources = lambda resources: "-l mem=1"  # a string is split as a shell would
    assert Scheme.of(raw, "sge").resource_args(Resources()) == ["-l", "mem=1"]
    raw.commands.resources = lambda resources: [1]
    with pytest.raises(TypeError, match=r"commands\.resources \[1\] must be a string or a list"):
        Scheme.of(raw, "sge").resource_args(Resources())


# --- a runner and its scheme Settings -----------------------------------------------------


def test_a_runner_refuses_a_bad_scheme_at_once() -> None:
    with pytest.raises(SchemeError, match="unknown key 'workdri'"):
        GridRunner(grid=Settings({**plams_scheme(), "workdri": "-D"}))


def test_a_bad_change_to_runner_settings_fails_the_next_submission(tmp_path: Path) -> None:
    runner = GridRunner(grid=Settings(plams_scheme()), sleepstep=0.05)
    runner.settings.submit_timeout = "fast"
    results = SingleJob(name="x", runscript=":\n").run(
        jobrunner=runner, jobmanager=JobManager(tmp_path)
    )
    runner.wait(timeout=30)
    assert results.status is JobStatus.FAILED
    assert results.reason == "submit_failed"
    assert "submit_timeout is 'fast'" in (results.error or "")


def test_a_settings_scheme_s_limits_are_its_callables_and_must_give_limits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scheme = SCHEMES["slurm"]()
    assert Scheme.of(scheme, "slurm").parse_limits("PartitionName=a MaxTime=1:00:00\n").queues == {
        "a": QueueLimits(walltime=3600)
    }
    scheme["commands"]["parse_limits"] = lambda output: {"a": 3600}
    view = ran(scheme, scontrol="PartitionName=a MaxTime=1:00:00\n")
    with caplog.at_level(logging.WARNING, logger="runner_grid"):
        assert view.limits() is None
    assert "commands.parse_limits gave {'a': 3600}, not a runner_grid.Limits" in caplog.text
