"""The Scheme view: one validation of a scheme Settings, naming what is wrong."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from runner_core import JobManager, JobStatus, SingleJob
from runner_grid import GridRunner, Scheme, SchemeError
from runner_grid.schemes import SCHEMES
from runner_settings import Settings

if TYPE_CHECKING:
    from pathlib import Path


def plams_scheme() -> dict[str, Any]:
    """A scheme written for PLAMS: only the seed's keys, `check` a bare command."""
    return {
        "workdir": "-D",
        "output": "-o",
        "error": "-e",
        "special": {"nodes": "-N "},
        "commands": {
            "submit": "sbatch",
            "check": "squeue",
            "getid": lambda out: out.split()[-1],
            "running": lambda out: [line.split()[0] for line in out.splitlines()[1:]],
        },
    }


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_every_predefined_scheme_is_valid(name: str) -> None:
    view = Scheme.of(SCHEMES[name](), name)
    assert view.check_timeout > 0
    assert view.get("cancel") is not None
    assert view.get("no_such_command") is None


def test_a_plams_scheme_and_the_seeds_commands_special_spelling_are_accepted() -> None:
    scheme = plams_scheme()
    scheme["commands"]["special"] = {"memory": "--mem="}
    view = Scheme.of(scheme)
    assert (view.check_timeout, view.submit_timeout, view.exitcode_wait) == (60.0, 120.0, 0.0)
    assert view.unset_env == ()
    assert view.directives == ()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"chek_timeout": 5}, "unknown key 'chek_timeout' (did you mean 'check_timeout'?)"),
        ({"specials": {}}, "unknown key 'specials' (did you mean 'special'?)"),
        ({"check_timeout": "60"}, "check_timeout is '60'; it must be a number of seconds >= 0"),
        ({"exitcode_wait": -1}, "exitcode_wait is -1; it must be a number of seconds >= 0"),
        ({"output": 3}, "output is 3; it must be a flag such as '-o', or None"),
        ({"unset_env": "SQUEUE_*"}, "unset_env is 'SQUEUE_*'; it must be a list of strings"),
        ({"special": {"mem": 4}}, "special is {'mem': 4}; it must be a mapping"),
    ],
)
def test_a_misspelled_or_ill_typed_key_is_named(change: dict[str, Any], message: str) -> None:
    scheme = SCHEMES["slurm"]()
    scheme.update(change)
    with pytest.raises(SchemeError) as info:
        Scheme.of(scheme, "slurm")
    assert "grid scheme 'slurm'" in str(info.value)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("cancle", "scancel", "unknown key 'commands.cancle' (did you mean 'commands.cancel'?)"),
        ("exitcode", ["sacct"], "commands.exitcode is ['sacct']; it must be a callable"),
        ("submit", "", "commands.submit is ''; it must be a command"),
        ("check", 7, "commands.check is 7; it must be a command (string or list of strings)"),
    ],
)
def test_a_bad_command_is_named(key: str, value: Any, message: str) -> None:
    scheme = SCHEMES["sge"]()
    scheme["commands"][key] = value
    with pytest.raises(SchemeError, match="grid scheme 'sge'") as info:
        Scheme.of(scheme, "sge")
    assert message in str(info.value)


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
