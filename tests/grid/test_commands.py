"""Tests for the submit-command builder: exact argv layout, no splitting, shlex round trip."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import PurePosixPath
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from runner_grid import SchedulerCommandError, Scheme, SchemeError
from runner_grid._commands import (
    batch_commands,
    build_submit_argv,
    flag_args,
    format_command,
    special_prefixes,
    split_command,
)
from runner_grid.schemes import SCHEMES
from strategies import flag_values, grid_paths, runflag_keys, runflag_maps, specials_for

SCHEME_NAMES = sorted(SCHEMES)


def plams_scheme() -> dict[str, Any]:
    """A scheme as written for PLAMS: only the seed's keys, special under `commands`."""
    return {
        "workdir": "-D",
        "output": "-o",
        "error": "-e",
        "commands": {
            "submit": "sbatch",
            "check": "squeue",
            "getid": lambda out: out.split()[-1],
            "running": lambda out: out.split(),
            "special": {"nodes": "-N ", "memory": "--mem="},
        },
    }


def scheme_of(name: str, special: dict[str, str]) -> dict[str, Any]:
    scheme = plams_scheme() if name == "plams" else SCHEMES[name]()
    scheme["special"] = dict(special)
    return scheme


def expected_group(
    key: str, value: Any, special: dict[str, str], long_flags: bool = False
) -> list[str]:
    """The documented rule for one runflag, written out independently of the builder."""
    if value is None or value is False:
        return []
    bare = value is True or value == ""
    text = "" if bare else str(value)
    if key not in special and long_flags and len(key) >= 2 and key[0] != "-":
        return [f"--{key}"] if bare else [f"--{key}={text}"]
    if key not in special:
        return [f"-{key}"] if bare else [f"-{key}", text]
    prefix = special[key]
    words = prefix.split()
    if bare:
        return words
    if prefix[-1] in " \t\n":
        return [*words, text]
    return [*words[:-1], words[-1] + text]


@st.composite
def submissions(draw: Any) -> tuple[str, dict[str, Any], str, str, Any, str, dict[str, Any]]:
    name = draw(st.sampled_from([*SCHEME_NAMES, "plams"]))
    runflags = draw(runflag_maps)
    special = draw(specials_for(runflags))
    workdir = draw(grid_paths)
    err = draw(grid_paths)
    out = draw(st.none() | grid_paths)
    runscript = draw(grid_paths)
    return name, scheme_of(name, special), workdir, err, out, runscript, runflags


SEED_CASE = (
    "slurm",
    scheme_of("slurm", {"queue": "-p ", "nodes": "-N "}),
    "/w d",
    "/w d/j.err",
    "/w d/j.out",
    "/w d/j.run",
    {"queue": "short", "nodes": 2, "J": "something", "O": ""},
)


@given(submissions())
@example(SEED_CASE)
@example(("sge", scheme_of("sge", {"smp": "-pe smp "}), "/a", "/e", None, "/r", {"smp": 4}))
@example(("pbs", scheme_of("pbs", {"m": "-l mem="}), "/a b", "/e", "/o", "/r", {"m": "1 gb"}))
# sbatch read `-mem 4G` as `-m em` and refused it ("Invalid --distribution specification").
@example(("slurm", scheme_of("slurm", {}), "/w", "/e", "/o", "/r", {"mem": "4G", "t": 10}))
@example(("sge", scheme_of("sge", {}), "/w", "/e", "/o", "/r", {"hold_jid": "12", "-x": ""}))
def test_argv_has_the_documented_layout(
    case: tuple[str, dict[str, Any], str, str, Any, str, dict[str, Any]],
) -> None:
    _name, scheme, workdir, err, out, runscript, runflags = case
    argv = build_submit_argv(scheme, runscript, workdir, out, err, runflags=runflags)
    submit = (
        shlex.split(scheme["commands"]["submit"])
        if isinstance(scheme["commands"]["submit"], str)
        else list(scheme["commands"]["submit"])
    )
    head = list(submit)
    if scheme["workdir"]:
        head += [scheme["workdir"], workdir]
    head += [scheme["error"], err]
    if out is not None:
        head += [scheme["output"], out]
    assert argv[: len(head)] == head
    assert argv[-1] == runscript
    special = special_prefixes(scheme)
    long_flags = bool(scheme.get("long_flags"))
    groups = [expected_group(k, v, special, long_flags) for k, v in runflags.items()]
    assert argv[len(head) : -1] == [a for g in groups for a in g]


@given(submissions())
@example(SEED_CASE)
def test_logged_command_splits_back_to_the_argv(
    case: tuple[str, dict[str, Any], str, str, Any, str, dict[str, Any]],
) -> None:
    _name, scheme, workdir, err, out, runscript, runflags = case
    argv = build_submit_argv(scheme, runscript, workdir, out, err, runflags=runflags)
    assert shlex.split(format_command(argv)) == argv


@given(
    runflag_keys,
    flag_values,
    st.none() | st.sampled_from(["--mem=", "-N ", "-l nodes="]),
    st.booleans(),
)
@example("x", "a b", "-l nodes=", False)
@example("x", "line1\nline2", "-N ", False)
@example("mem", "a b", None, True)
@example("comment", "a=b c", None, True)
def test_a_value_is_never_split_or_altered(
    key: str, value: Any, prefix: Any, long_flags: bool
) -> None:
    special = {} if prefix is None else {key: prefix}
    group = flag_args(key, value, special, long_flags=long_flags)
    long = long_flags and len(key) > 1
    if value is None or value is False:
        assert group == []
    elif value is True or value == "":
        assert group == (prefix.split() if prefix else [f"--{key}" if long else f"-{key}"])
    else:
        text = str(value)
        expected = {
            None: [f"--{key}={text}"] if long else [f"-{key}", text],
            "-N ": ["-N", text],
            "-l nodes=": ["-l", "nodes=" + text],
            "--mem=": ["--mem=" + text],
        }[prefix]
        assert group == expected


def test_seed_example_gives_the_seed_command() -> None:
    _n, scheme, workdir, err, out, runscript, runflags = SEED_CASE
    argv = build_submit_argv(scheme, runscript, workdir, out, err, runflags=runflags)
    assert argv == [
        "sbatch", "-D", "/w d", "-e", "/w d/j.err", "-o", "/w d/j.out",
        "-p", "short", "-N", "2", "-J", "something", "-O", "/w d/j.run",
    ]  # fmt: skip


def test_prefix_rules() -> None:
    special = {"mem": "--mem=", "n": "-N ", "nodes": "-l nodes=", "ex": "--exclusive"}
    assert flag_args("mem", "4G", special) == ["--mem=4G"]
    assert flag_args("n", 2, special) == ["-N", "2"]
    assert flag_args("nodes", 2, special) == ["-l", "nodes=2"]
    assert flag_args("ex", True, special) == ["--exclusive"]
    assert flag_args("n", True, special) == ["-N"]
    assert flag_args("J", "my job", special) == ["-J", "my job"]
    assert flag_args("O", "", special) == ["-O"]
    assert flag_args("O", None, special) == []
    assert flag_args("O", False, special) == []
    assert flag_args("t", 1.5, special) == ["-t", "1.5"]
    assert flag_args("f", PurePosixPath("/a b"), special) == ["-f", "/a b"]


def test_slurm_gives_a_key_of_several_letters_as_a_long_option() -> None:
    """`mem=4G` became `-mem 4G`, which sbatch refuses: every such job ended FAILED."""
    argv = build_submit_argv(
        SCHEMES["slurm"](),
        "r",
        "w",
        None,
        "e",
        runflags={"mem": "4G", "time": 10, "t": 10, "exclusive": "", "hint": True, "x": ""},
    )
    assert argv[5:-1] == [
        "--mem=4G", "--time=10", "-t", "10", "--exclusive", "--hint", "-x",
    ]  # fmt: skip
    assert flag_args("mem", "4G", {}, long_flags=True) == ["--mem=4G"]
    assert flag_args("J", "my job", {}, long_flags=True) == ["-J", "my job"]
    assert flag_args("job-name", "a b", {}, long_flags=True) == ["--job-name=a b"]
    assert flag_args("mem", None, {}, long_flags=True) == []
    assert flag_args("mem", False, {}, long_flags=True) == []


def test_a_key_that_starts_with_a_dash_gets_one_more_in_every_style() -> None:
    """As in PLAMS, where `{"-mem": "4G"}` was the way to write `--mem 4G`."""
    for long_flags in (False, True):
        assert flag_args("-mem", "4G", {}, long_flags=long_flags) == ["--mem", "4G"]
        assert flag_args("-x", True, {}, long_flags=long_flags) == ["--x"]
    argv = build_submit_argv(SCHEMES["slurm"](), "r", "w", None, "e", runflags={"-mem": "4G"})
    assert argv[5:-1] == ["--mem", "4G"]


@pytest.mark.parametrize("name", ["sge", "pbs", "plams"])
def test_other_schemes_keep_single_dash_options(name: str) -> None:
    """Grid Engine (`-hold_jid`, `-pe`) and PBS have options of several letters after one dash."""
    scheme = scheme_of(name, {})
    assert not scheme.get("long_flags")
    argv = build_submit_argv(scheme, "r", "w", None, "e", runflags={"hold_jid": 12, "V": True})
    assert argv[-4:-1] == ["-hold_jid", "12", "-V"]


def test_long_flags_is_a_checked_scheme_key() -> None:
    assert Scheme.of(SCHEMES["slurm"](), "slurm").long_flags
    assert not Scheme.of(SCHEMES["sge"](), "sge").long_flags
    assert not Scheme.of(SCHEMES["pbs"](), "pbs").long_flags
    assert not Scheme.of(plams_scheme()).long_flags
    with pytest.raises(SchemeError, match="long_flags is 'yes'; it must be True or False"):
        Scheme.of({**plams_scheme(), "long_flags": "yes"})


def test_same_flag_twice_keeps_the_order_given() -> None:
    scheme = scheme_of("slurm", {"nodes": "-N "})
    argv = build_submit_argv(scheme, "r", "w", None, "e", runflags={"N": 1, "nodes": 2})
    assert argv[5:-1] == ["-N", "1", "-N", "2"]
    argv = build_submit_argv(scheme, "r", "w", None, "e", runflags={"nodes": 2, "N": 1})
    assert argv[5:-1] == ["-N", "2", "-N", "1"]


def test_out_none_leaves_the_output_flag_out() -> None:
    scheme = scheme_of("slurm", {})
    assert build_submit_argv(scheme, "r", "w", None, "e", runflags={}) == [
        "sbatch", "-D", "w", "-e", "e", "r",
    ]  # fmt: skip


def test_pbs_has_no_workdir_flag_and_sge_forces_sh() -> None:
    pbs = build_submit_argv(SCHEMES["pbs"](), "r", "/w", "/o", "/e", runflags={})
    assert pbs == ["qsub", "-e", "/e", "-o", "/o", "r"]
    sge = build_submit_argv(SCHEMES["sge"](), "r", "/w", "/o", "/e", runflags={})
    assert sge == ["qsub", "-S", "/bin/sh", "-wd", "/w", "-e", "/e", "-o", "/o", "r"]


def test_commands_special_is_an_alias_and_top_level_wins() -> None:
    scheme = plams_scheme()
    assert flag_args("memory", "4G", special_prefixes(scheme)) == ["--mem=4G"]
    scheme["special"] = {"memory": "--mem-per-cpu="}
    assert flag_args("memory", "4G", special_prefixes(scheme)) == ["--mem-per-cpu=4G"]
    assert flag_args("nodes", 3, special_prefixes(scheme)) == ["-N", "3"]


@pytest.mark.parametrize(
    ("where", "kwargs"),
    [
        ("value of runflag 'J'", {"runflags": {"J": "a\x00b"}}),
        ("runflag name", {"runflags": {"a\x00": "x"}}),
        ("workdir path", {"workdir": "/a\x00"}),
        ("error file path", {"err": "/e\x00"}),
        ("output file path", {"out": "/o\x00"}),
        ("runscript path", {"runscript": "r\x00"}),
    ],
)
def test_nul_is_refused_naming_what(where: str, kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {
        "runscript": "r",
        "workdir": "w",
        "out": "o",
        "err": "e",
        "runflags": {},
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=where):
        build_submit_argv(SCHEMES["slurm"](), **args)


@pytest.mark.parametrize("key", ["bad key", "", " J", "J ", "a\tb", "a\nb"])
def test_a_runflag_name_with_white_space_or_none_is_refused_naming_it(key: str) -> None:
    with pytest.raises(ValueError, match=f"runflag name {re.escape(repr(key))} cannot be"):
        flag_args(key, 1, {})
    with pytest.raises(ValueError, match="white space"):
        build_submit_argv(SCHEMES["slurm"](), "r", "w", "o", "e", runflags={key: "1"})


def test_a_special_key_may_hold_what_a_plain_flag_may_not() -> None:
    assert flag_args("my mem", "4G", {"my mem": "--mem="}) == ["--mem=4G"]


def test_nul_in_a_special_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match="prefix of special key 'x'"):
        flag_args("x", "1", {"x": "--a\x00="})


def test_unusable_value_type_is_refused_naming_the_key() -> None:
    with pytest.raises(TypeError, match="runflag 'J' has a value of type list"):
        flag_args("J", ["a"], {})


def test_split_command() -> None:
    assert split_command("qsub -S /bin/sh") == ["qsub", "-S", "/bin/sh"]
    assert split_command(["my sub", "x"]) == ["my sub", "x"]
    with pytest.raises(ValueError, match="empty"):
        split_command("  ")
    with pytest.raises(TypeError):
        split_command(3)  # type: ignore[arg-type]


@given(st.lists(st.text(alphabet="0123456789", min_size=1, max_size=12), max_size=300),
       st.integers(20, 400))  # fmt: skip
def test_batches_keep_every_id_once_in_order_and_lines_short(ids: list[str], limit: int) -> None:
    batches = batch_commands(["scancel"], ids, max_chars=limit)
    assert [i for b in batches for i in b[1:]] == ids
    assert all(b[0] == "scancel" for b in batches)
    for b in batches:
        assert len(" ".join(b)) <= limit or len(b) == 2


@pytest.mark.parametrize("module", ["runner_grid", "runner_grid._commands", "runner_grid._poller"])
def test_check_failed_is_a_deprecated_alias_of_scheduler_command_error(module: str) -> None:
    imported = importlib.import_module(module)
    with pytest.warns(
        DeprecationWarning, match=r"CheckFailed is deprecated; use .*SchedulerCommandError"
    ):
        alias = imported.CheckFailed
    assert alias is SchedulerCommandError
    with pytest.raises(AttributeError, match="has no attribute 'CheckFaild'"):
        imported.CheckFaild  # noqa: B018 - the module's __getattr__ must not invent names
    assert "CheckFailed" not in getattr(imported, "__all__", ())
