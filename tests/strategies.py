"""Hypothesis strategies shared by the test suites (settings trees, grid commands)."""

from __future__ import annotations

# --- settings ----------------------------------------------------------------
import importlib
import os
from typing import Any

from hypothesis import strategies as st

#: The module whose `Settings` the settings tests exercise: the installed package by
#: default, or a vendored copy of _settings.py (the nox session `vendored_settings`).
SETTINGS_MODULE = os.environ.get("RUNNER_SETTINGS_MODULE", "runner_settings")
Settings: Any = importlib.import_module(SETTINGS_MODULE).Settings

#: Keys: short text, plus names that collide with methods, start with `_`, or differ
#: only by case, which is where attribute access is most likely to go wrong.
setting_keys = st.sampled_from(
    ["a", "b", "A", "items", "copy", "update", "keys", "_private", "__dunder__", "0", ""]
) | st.text(max_size=6)

#: Leaf values that survive JSON, repr/eval and equality (no NaN, no infinities).
json_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)


def _json_children(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(children, max_size=3) | st.dictionaries(setting_keys, children, max_size=4)


def _any_children(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return (
        st.lists(children, max_size=3)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(setting_keys, children, max_size=4)
    )


#: Values as JSON has them: nested dicts and lists of JSON leaves.
json_values = st.recursive(json_leaves, _json_children, max_leaves=20)
#: Values with tuples too (pickle, copy and repr keep them; JSON does not).
any_values = st.recursive(json_leaves, _any_children, max_leaves=20)

#: Plain nested dicts, the input a Settings is built from.
plain_trees = st.dictionaries(setting_keys, json_values, max_size=5)
plain_trees_with_tuples = st.dictionaries(setting_keys, any_values, max_size=5)

#: Settings trees (every inner dict converted on construction).
settings_trees = plain_trees.map(Settings)
settings_trees_with_tuples = plain_trees_with_tuples.map(Settings)

#: Paths to read: mostly keys that trees use, so reads go several levels deep.
read_paths = st.lists(setting_keys, min_size=1, max_size=5)

# --- grid --------------------------------------------------------------------
#: Text that shells and naive splitting get wrong: spaces, quotes, $, ;, newlines, non-ASCII.
tricky_texts = st.sampled_from(
    [
        "with space",
        "  leading and trailing  ",
        "it's",
        'say "hi"',
        "$HOME",
        "a;b",
        "x && y",
        "line1\nline2",
        "tab\there",
        "ünïcødé ☃",
        "*?[]",
        "-N",
        "--mem=4G",
        "back\\slash",
        "`date`",
        "#comment",
        " ",
    ]
) | st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=12)

#: Runflag values of every shape the submit-command builder must handle.
flag_values = (
    st.sampled_from([True, False, None, ""])
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | tricky_texts
)

_KEY_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"

#: Runflag names: scheduler-like letters (case matters) and arbitrary identifiers.
runflag_keys = st.sampled_from(
    ["N", "n", "o", "O", "J", "p", "t", "nodes", "walltime", "memory", "queue", "export", "mem"]
) | st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_",
    min_size=1,
    max_size=8,
)

#: Special-key prefixes: glued, separate (trailing white space), split at inner white space.
special_prefix_values = st.sampled_from(
    [
        "--mem=",
        "-N ",
        "-l nodes=",
        "-l walltime=",
        "-pe smp ",
        "--exclusive",
        "-t ",
        "-l  x=",
        "-q\t",
    ]
)

#: Paths with spaces, quotes and non-ASCII characters (never NUL).
grid_paths = st.sampled_from(
    ["/tmp/work/job", "/tmp/my jobs/job 1", "/tmp/it's/ä ☃", "rel/path", "/tmp/$x;y/`z`"]
) | st.text(alphabet=st.characters(blacklist_characters="\x00"), min_size=1, max_size=16)

#: Runflags mappings: any mix of keys and values, in a generated order.
runflag_maps = st.dictionaries(runflag_keys, flag_values, max_size=6)


@st.composite
def specials_for(draw: Any, runflags: dict[str, Any]) -> dict[str, str]:
    """Special keys covering a random subset of the given runflags (plus some unused ones)."""
    chosen = draw(st.lists(st.sampled_from(sorted(runflags)), unique=True)) if runflags else []
    specials = {key: draw(special_prefix_values) for key in chosen}
    specials.update(draw(st.dictionaries(runflag_keys, special_prefix_values, max_size=2)))
    return specials


#: Lines a site wrapper may print before a submit command's answer (never a line break inside).
noise_lines = st.lists(
    st.text(
        alphabet=st.characters(
            blacklist_characters="\x00\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029",
            blacklist_categories=["Cs"],
        ),
        max_size=30,
    ),
    max_size=4,
)


# --- queue listings and job ends (the grid schemes' parsers) ------------------


def jobs_of(ids: list[str]) -> list[str]:
    """The jobs a parser's listing names, in order, once each: array tasks count for their job.

    ``["3", "4_1", "4_2", "9[2].srv", "56.3"]`` gives ``["3", "4", "9", "56"]``.
    """
    jobs: dict[str, None] = {}
    for jobid in ids:
        digits = len(jobid) - len(jobid.lstrip("0123456789"))
        jobs[jobid[:digits] or jobid] = None
    return list(jobs)


@st.composite
def queue_entries(draw: Any) -> list[tuple[int, bool, bool]]:
    """Jobs of a queue listing as (job number, is an array, has finished), numbers unique.

    A listing may show an array job on several lines (one per task) and finished jobs next to
    live ones; what a parser must return is the live numbers, once each, in listing order.
    """
    numbers = draw(st.lists(st.integers(1, 10**7), unique=True, max_size=8))
    return [(n, draw(st.booleans()), draw(st.booleans())) for n in numbers]


#: Server or cluster suffixes an id may carry in a listing (PBS ``N.server``, ``N.server.dom``).
server_suffixes = st.sampled_from(["", ".pbsvm", ".pbs.example.org", ".s-1"])


# --- resources (runner_core.Resources) ----------------------------------------

#: Memory sizes in bytes: odd ones, and whole kilobytes to terabytes.
memory_sizes = st.integers(1, 2**52) | st.builds(
    lambda count, unit: count * 1024**unit, st.integers(1, 4096), st.integers(1, 4)
)

#: Time limits in whole seconds, from one second to over three years.
walltimes = st.integers(1, 10**8)

#: Memory sizes as people write them: a number, maybe a fraction, a unit in any spelling.
memory_texts = st.builds(
    lambda whole, fraction, unit, suffix, space: f"{whole}{fraction}{space}{unit}{suffix}",
    st.integers(0, 10**6).map(str),
    st.sampled_from(["", ".5", ".25", ".001", ".0"]),
    st.sampled_from(list("KMGTkmgt")),
    st.sampled_from(["", "B", "b", "iB", "ib"]),
    st.sampled_from(["", " "]),
).filter(lambda text: any(c in "123456789" for c in text))  # more than 0 bytes

_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-.,", min_size=1, max_size=8)


@st.composite
def resources(draw: Any) -> Any:
    """A `runner_core.Resources` with any mix of fields; cores and GPUs divide by its nodes."""
    from runner_core import Resources  # noqa: PLC0415 - the settings suites run without it

    nodes = draw(st.none() | st.integers(1, 8))
    per_node = st.none() | st.integers(1, 64).map(lambda n: n * (nodes or 1))
    return Resources(
        cores=draw(per_node),
        nodes=nodes,
        memory=draw(st.none() | memory_sizes),
        walltime=draw(st.none() | walltimes),
        gpus=draw(per_node),
        queue=draw(st.none() | _names),
        account=draw(st.none() | _names),
    )
