"""Tests for runner_core._resources: parsing, formatting and growing portable resources."""

from __future__ import annotations

import copy
import pickle
import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from runner_core import (
    GROWABLE,
    RESOURCE_KEYS,
    Resources,
    format_memory,
    format_walltime,
    megabytes,
    parse_memory,
    parse_walltime,
)
from strategies import memory_sizes, memory_texts, resources, walltimes

GIB = 1024**3

# --- memory ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [
        ("4G", 4 * GIB),
        ("4GB", 4 * GIB),
        ("4GiB", 4 * GIB),
        ("4g", 4 * GIB),
        (" 4 G ", 4 * GIB),
        ("500M", 500 * 1024**2),
        ("1.5G", 3 * GIB // 2),
        ("2GB", 2 * GIB),
        ("1T", 1024**4),
        ("512K", 512 * 1024),
        ("100B", 100),
        ("0.001K", 2),  # 1.024 bytes, rounded up
        (4096, 4096),
    ],
)
def test_memory_sizes_are_1024_based_whatever_their_spelling(text: Any, nbytes: int) -> None:
    assert parse_memory(text) == nbytes


@given(memory_sizes)
@example(1)
@example(1023)
@example(1536 * 1024**2)
def test_format_memory_round_trips(nbytes: int) -> None:
    text = format_memory(nbytes)
    assert parse_memory(text) == nbytes
    assert re.fullmatch(r"\d+[KMGTPB]", text)


@given(memory_texts)
def test_a_written_size_is_its_number_times_its_unit_rounded_up(text: str) -> None:
    number = Decimal(re.match(r"[\d.]+", text).group())  # type: ignore[union-attr]
    unit = 1024 ** "KMGT".index(text.strip(" 0123456789.")[0].upper()) * 1024
    nbytes = parse_memory(text)
    assert nbytes - 1 < number * unit <= nbytes


@given(memory_sizes)
def test_megabytes_round_up_and_never_lose_a_byte(nbytes: int) -> None:
    mb = megabytes(nbytes)
    assert (mb - 1) * 1024**2 < nbytes <= mb * 1024**2


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "4000",
            "run flag memory='4000' has no unit (SLURM reads a bare number as megabytes, Grid "
            "Engine as bytes); give e.g. memory='4000M' for megabytes, or the int 4000 for bytes",
        ),
        (
            "4X",
            "run flag memory='4X' is not a memory size; give e.g. memory='4G' (units K, M, G, T, "
            "1024-based) or an int of bytes",
        ),
        (
            "",
            "run flag memory='' is not a memory size; give e.g. memory='4G' (units K, M, G, T, "
            "1024-based) or an int of bytes",
        ),
        (
            1.5,
            "run flag memory=1.5 (float) is not a memory size; give e.g. memory='4G' (units K, "
            "M, G, T, 1024-based) or an int of bytes",
        ),
        (
            True,
            "run flag memory=True (bool) is not a memory size; give e.g. memory='4G' (units K, "
            "M, G, T, 1024-based) or an int of bytes",
        ),
        (
            "0G",
            "run flag memory='0G' is not a memory size > 0; give e.g. memory='4G' (units K, M, "
            "G, T, 1024-based) or an int of bytes",
        ),
        (
            -1,
            "run flag memory=-1 is not a memory size > 0; give e.g. memory='4G' (units K, M, G, "
            "T, 1024-based) or an int of bytes",
        ),
    ],
)
def test_a_memory_size_that_does_not_parse_is_refused_with_an_example(
    value: Any, message: str
) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        parse_memory(value)


def test_the_message_names_the_key_it_was_given() -> None:
    with pytest.raises(ValueError, match=r"^run flag mem='x' .* give e\.g\. mem='4G'"):
        parse_memory("x", key="mem")


# --- walltime -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1:00:00", 3600),
        ("0:00:01", 1),
        ("0:0:3", 3),  # as SLURM and Grid Engine take it
        ("48:00:00", 48 * 3600),
        (" 1:30:00 ", 5400),
        ("2-00:00:00", 2 * 86400),
        ("1-02:03:04", 86400 + 2 * 3600 + 3 * 60 + 4),
        (3600, 3600),
        (0.5, 1),  # rounded up: a request never shrinks
        (59.1, 60),
        (timedelta(hours=1, milliseconds=1), 3601),
        (timedelta(days=3), 3 * 86400),
    ],
)
def test_walltimes_in_every_form(value: Any, seconds: int) -> None:
    assert parse_walltime(value) == seconds


@given(walltimes, st.booleans(), st.integers(1, 3))
@example(59, False, 1)
@example(86399, True, 1)
@example(86400, True, 1)
@example(3600, False, 2)
def test_format_walltime_round_trips(seconds: int, days: bool, digits: int) -> None:
    text = format_walltime(seconds, days=days, hour_digits=digits)
    assert parse_walltime(text) == seconds
    assert ("-" in text) == (days and seconds >= 86400)


def test_format_walltime_shapes() -> None:
    assert format_walltime(5400) == "1:30:00"
    assert format_walltime(5400, hour_digits=2) == "01:30:00"
    assert format_walltime(90000) == "25:00:00"
    assert format_walltime(90000, days=True) == "1-01:00:00"


_EXAMPLE = (
    "give e.g. walltime='1:30:00' (H:MM:SS), '2-00:00:00' (D-HH:MM:SS), 5400 (seconds) or a "
    "datetime.timedelta"
)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "90",
            "run flag walltime='90' is a number in a string (SLURM reads it as minutes, Grid "
            "Engine as seconds); give e.g. walltime=90 for seconds, or walltime='90:00:00' for "
            "hours",
        ),
        (
            "2:30",
            "run flag walltime='2:30' may be minutes:seconds or hours:minutes; give e.g. "
            "walltime='0:02:30' or walltime='2:30:00'",
        ),
        ("1-25:00:00", f"run flag walltime='1-25:00:00' is not a time; {_EXAMPLE}"),
        ("1:60:00", f"run flag walltime='1:60:00' is not a time; {_EXAMPLE}"),
        ("an hour", f"run flag walltime='an hour' is not a time; {_EXAMPLE}"),
        ([1], f"run flag walltime=[1] (list) is not a time; {_EXAMPLE}"),
        (None, f"run flag walltime=None (NoneType) is not a time; {_EXAMPLE}"),
        (0, f"run flag walltime=0 is not a time > 0; {_EXAMPLE}"),
        ("0:00:00", f"run flag walltime='0:00:00' is not a time > 0; {_EXAMPLE}"),
        (float("nan"), f"run flag walltime=nan is not a time > 0; {_EXAMPLE}"),
        (timedelta(seconds=-5), "run flag walltime=datetime.timedelta(days=-1, seconds=86395) "
         f"is not a time > 0; {_EXAMPLE}"),
    ],
)  # fmt: skip
def test_a_walltime_that_does_not_parse_is_refused_with_an_example(
    value: Any, message: str
) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        parse_walltime(value)


# --- Resources: from run flags and back ---------------------------------------------------


def test_split_takes_the_resources_out_and_keeps_the_rest_in_order() -> None:
    flags = {"x": 1, "memory": "4G", "J": "a", "walltime": "1:00:00", "cores": "8", "y": None}
    resources, rest = Resources.split(flags)
    assert resources == Resources(cores=8, memory=4 * GIB, walltime=3600)
    assert list(rest.items()) == [("x", 1), ("J", "a"), ("y", None)]
    assert Resources.of(flags) == resources


def test_none_and_false_mean_not_given_as_for_any_run_flag() -> None:
    resources, rest = Resources.split({"memory": None, "walltime": False, "queue": None})
    assert resources == Resources()
    assert rest == {}


def test_queue_and_partition_are_one_resource() -> None:
    assert Resources.of({"partition": "short"}).queue == "short"
    assert Resources.of({"queue": "short", "partition": "short"}).queue == "short"
    assert Resources.of({"queue": "short"}).as_runflags() == {"queue": "short"}
    with pytest.raises(
        ValueError,
        match=r"^run flags queue='a' and partition='b' differ; they name the same thing: "
        r"give one of them$",
    ):
        Resources.of({"queue": "a", "partition": "b"})


def test_every_resource_key_is_read() -> None:
    flags = {
        "cores": 4, "nodes": 2, "memory": "8G", "walltime": 60, "gpus": 2,
        "partition": "gpu", "account": "proj42",
    }  # fmt: skip
    assert set(flags) <= set(RESOURCE_KEYS)
    assert Resources.split(flags) == (
        Resources(cores=4, nodes=2, memory=8 * GIB, walltime=60, gpus=2, queue="gpu",
                  account="proj42"),
        {},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            {"cores": 0},
            "run flag cores=0 is not a whole number >= 1; give e.g. cores=4, or leave it out",
        ),
        (
            {"nodes": "two"},
            "run flag nodes='two' is not a whole number >= 1; give e.g. nodes=4, or leave it out",
        ),
        (
            {"gpus": 1.0},
            "run flag gpus=1.0 is not a whole number >= 1; give e.g. gpus=4, or leave it out",
        ),
        (
            {"cores": True},
            "run flag cores=True is not a whole number >= 1; give e.g. cores=4, or leave it out",
        ),
        (
            {"queue": "a b"},
            "run flag queue='a b' is not a name (one word, no spaces); give e.g. queue='short'",
        ),
        (
            {"partition": ""},
            "run flag partition='' is not a name (one word, no spaces); give "
            "e.g. partition='short'",
        ),
        (
            {"account": 42},
            "run flag account=42 is not a name (one word, no spaces); give e.g. account='proj42'",
        ),
    ],
)
def test_a_resource_that_does_not_parse_is_refused_naming_it(
    flags: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        Resources.split(flags)


@given(resources())
def test_as_runflags_round_trips(request: Resources) -> None:
    flags = request.as_runflags()
    assert Resources.of(flags) == request
    assert set(flags) <= set(RESOURCE_KEYS)


def test_resources_are_immutable_hashable_and_copyable() -> None:
    request = Resources(cores=4, memory=GIB, queue="q")
    assert repr(request) == "Resources(cores=4, memory=1073741824, queue='q')"
    assert {request, copy.deepcopy(request)} == {request}
    assert pickle.loads(pickle.dumps(request)) == request
    assert request.replace(cores=8) == Resources(cores=8, memory=GIB, queue="q")
    assert request != (4, None, GIB)
    with pytest.raises(AttributeError, match=r"Resources cannot change; replace\(cores=\.\.\.\)"):
        request.cores = 8  # type: ignore[misc]
    with pytest.raises(AttributeError, match="Resources cannot change"):
        del request.queue  # type: ignore[misc]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"memory": "4G"},
            "Resources(memory='4G') is not an int of bytes >= 1; parse a run flag with "
            "Resources.of({'memory': '4G'})",
        ),
        (
            {"walltime": 1.5},
            "Resources(walltime=1.5) is not an int of seconds >= 1; parse a run flag with "
            "Resources.of({'walltime': 1.5})",
        ),
        (
            {"cores": 0},
            "Resources(cores=0) is not a whole number >= 1; parse a run flag with "
            "Resources.of({'cores': 0})",
        ),
        (
            {"queue": "a b"},
            "run flag queue='a b' is not a name (one word, no spaces); give e.g. queue='short'",
        ),
    ],
)
def test_the_constructor_takes_parsed_values_only(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        Resources(**fields)


# --- per node -------------------------------------------------------------------------------


def test_per_node_shares_spread_the_totals_over_the_nodes() -> None:
    request = Resources(cores=8, nodes=2, memory=3, gpus=4)
    assert (request.per_node("cores"), request.per_node("gpus"), request.per_node("memory")) == (
        4,
        2,
        2,  # 3 bytes over 2 nodes: rounded up
    )
    assert Resources(cores=3).per_node("cores") == 3
    assert Resources(nodes=2).per_node("memory") is None
    with pytest.raises(
        ValueError,
        match=r"^run flag cores=6 is not a multiple of nodes=4; cores is the job's total, "
        r"spread evenly over its nodes: give e\.g\. cores=4$",
    ):
        Resources(cores=6, nodes=4).per_node("cores")
    with pytest.raises(ValueError, match=r"^per_node takes 'cores', 'gpus' or 'memory', not 'x'$"):
        Resources().per_node("x")


# --- growing a request (Retry) --------------------------------------------------------------


@given(resources(), st.sampled_from(GROWABLE), st.floats(1, 16) | st.integers(1, 16))
@example(Resources(memory=1), "memory", 1.5)
@example(Resources(walltime=3), "walltime", 1.0000001)
def test_growth_is_monotone_and_rounded_up(request: Resources, key: str, factor: float) -> None:
    grown = request.grown({key: factor})
    before, after = getattr(request, key), getattr(grown, key)
    if before is None:
        assert after is None
    else:
        assert after >= before
        assert after - 1 < before * Decimal(factor) <= after
    assert grown.replace(**{key: before}) == request  # nothing else changes


@given(resources(), st.floats(1, 4), st.floats(1, 4))
def test_a_bigger_factor_never_gives_less(request: Resources, small: float, extra: float) -> None:
    one, other = request.grown({"memory": small}), request.grown({"memory": small * extra})
    assert (one.memory or 0) <= (other.memory or 0)


def test_doubling_memory_and_walltime() -> None:
    request = Resources.of({"memory": "100M", "walltime": "1:00:00", "cores": 2})
    grown = request.grown({"memory": 2, "walltime": 2})
    assert grown.as_runflags() == {"cores": 2, "memory": "200M", "walltime": "2:00:00"}
    assert request.grown({}) == request


@pytest.mark.parametrize(
    ("factors", "message"),
    [
        (
            {"cores": 2},
            "cannot grow 'cores': only memory, walltime grow (e.g. {'memory': 2})",
        ),
        (
            {"memory": 0.5},
            "growth factor memory=0.5 is not a number >= 1; give e.g. {'memory': 2}",
        ),
        (
            {"memory": "2"},
            "growth factor memory='2' is not a number >= 1; give e.g. {'memory': 2}",
        ),
        (
            {"walltime": float("inf")},
            "growth factor walltime=inf is not a number >= 1; give e.g. {'walltime': 2}",
        ),
        (
            {"walltime": True},
            "growth factor walltime=True is not a number >= 1; give e.g. {'walltime': 2}",
        ),
    ],
)
def test_a_bad_growth_is_refused(factors: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        Resources(memory=GIB, walltime=60).grown(factors)
