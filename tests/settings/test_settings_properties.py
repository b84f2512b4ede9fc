"""Hypothesis laws for Settings: round trips, update algebra, reads that never mutate."""

from __future__ import annotations

import copy
import json
import pickle
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from strategies import (
    Settings,
    plain_trees_with_tuples,
    read_paths,
    settings_trees,
    settings_trees_with_tuples,
)


def _snapshot(s: Any) -> Any:
    """A deep, plain copy to compare against after an operation."""
    return copy.deepcopy(s.as_dict())


def _only_settings_inside(value: Any) -> bool:
    """No plain dict anywhere in `value` (lists and tuples included)."""
    if isinstance(value, dict):
        return isinstance(value, Settings) and all(_only_settings_inside(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_only_settings_inside(v) for v in value)
    return True


# --------------------------------------------------------------- conversion


@given(plain_trees_with_tuples)
@example({"items": {"copy": [{"_x": ({},)}]}})
def test_equal_to_the_plain_dict_it_came_from(plain: dict[str, Any]) -> None:
    s = Settings(plain)
    assert s == plain
    assert s.as_dict() == plain
    assert _only_settings_inside(s)


@given(plain_trees_with_tuples)
def test_as_dict_has_no_settings_left(plain: dict[str, Any]) -> None:
    def no_settings(value: Any) -> bool:
        if isinstance(value, dict):
            return type(value) is dict and all(no_settings(v) for v in value.values())
        if isinstance(value, (list, tuple)):
            return all(no_settings(v) for v in value)
        return True

    assert no_settings(Settings(plain).as_dict())


# -------------------------------------------------------------- round trips


@given(settings_trees_with_tuples)
def test_copy_round_trips(s: Any) -> None:
    for other in (s.copy(), copy.copy(s), copy.deepcopy(s)):
        assert other == s
        assert type(other) is type(s)
        assert _only_settings_inside(other)


@given(settings_trees_with_tuples, st.integers(0, pickle.HIGHEST_PROTOCOL))
def test_pickle_round_trips(s: Any, protocol: int) -> None:
    back = pickle.loads(pickle.dumps(s, protocol))
    assert back == s
    assert _only_settings_inside(back)


@given(settings_trees)
def test_json_round_trips(s: Any) -> None:
    back = Settings(json.loads(json.dumps(s)))
    assert back == s
    assert _only_settings_inside(back)


@given(settings_trees_with_tuples)
@example(Settings({"": {"items": ("x", {"'": '"'})}}))
def test_repr_eval_round_trips(s: Any) -> None:
    back = eval(repr(s), {"Settings": Settings})
    assert back == s
    assert _only_settings_inside(back)


@given(settings_trees_with_tuples)
@example(Settings({"a": [[], [{}], {}, [[1]]]}))  # empty lists and Settings inside lists
@example(Settings({"a": [None, {"b": 1}]}))  # a None leaf before a branch in a list
def test_flatten_unflatten_round_trips_in_plams_spelling(s: Any) -> None:
    before = _snapshot(s)
    flat = s.flatten()
    assert type(flat) is Settings
    assert all(type(path) is tuple and path for path in flat)
    assert flat.unflatten() == s
    assert s.flatten(flatten_list=False).unflatten(unflatten_list=False) == s
    assert _only_settings_inside(flat.unflatten())
    assert s == before
    assert flat.unflatten().flatten() == flat  # flattening is idempotent through the round trip


@given(settings_trees_with_tuples)
@example(Settings({"a": [[], [{}], {}, [[1]]]}))
def test_flatten_unflatten_round_trips_on_the_class(s: Any) -> None:
    assert Settings.unflatten(s.flatten()) == s
    assert Settings.unflatten(dict(s.flatten())) == s
    assert Settings.unflatten(s.flatten(flatten_list=False), unflatten_list=False) == s


@given(settings_trees_with_tuples)
def test_unflatten_shares_no_node_with_the_flat_settings(s: Any) -> None:
    flat = s.flatten(flatten_list=False)
    before = _snapshot(flat)
    back = flat.unflatten(unflatten_list=False)
    for path in list(back.nested_keys(include_empty=True)):
        node = back.get_nested(path)
        if isinstance(node, Settings):
            node["__probe__"] = 1
    assert _snapshot(flat) == before
    assert s == flat.unflatten(unflatten_list=False)


@given(settings_trees_with_tuples)
def test_flatten_paths_lead_to_their_values(s: Any) -> None:
    nested = set(s.nested_keys(include_empty=True))
    for path, value in s.flatten().items():
        assert s.get_nested(path) == value
        assert s.get_nested(path, True) == value
        assert s.contains_nested(path)
        assert path in nested
    for path in nested:
        assert s.contains_nested(path)


@given(settings_trees_with_tuples, st.booleans())
@example(Settings({"a": {"b": {}}, "l": [{}, []]}), True)
def test_nested_keys_are_the_branches_and_the_leaves(s: Any, flatten_list: bool) -> None:
    def is_empty_settings(path: tuple[Any, ...]) -> bool:
        node = s.get_nested(path)
        return isinstance(node, Settings) and not node

    everything = list(s.nested_keys(flatten_list, include_empty=True))
    blocks = list(s.block_keys(flatten_list, include_empty=True))
    leaves = set(s.flatten(flatten_list))
    assert len(everything) == len(set(everything))
    assert set(everything) == set(blocks) | leaves
    assert [p for p in everything if p in set(blocks)] == blocks  # same depth-first order
    assert list(s.nested_keys(flatten_list)) == [p for p in everything if not is_empty_settings(p)]
    assert list(s.block_keys(flatten_list)) == [p for p in blocks if not is_empty_settings(p)]
    for path in blocks:
        assert isinstance(s.get_nested(path), (Settings, list))


@given(settings_trees)
def test_compare_with_itself_and_with_empty(s: Any) -> None:
    assert s.compare(s.copy()) == {"added": {}, "removed": {}, "modified": {}}
    assert s.compare(Settings()) == {"added": s.flatten(), "removed": {}, "modified": {}}
    assert Settings().compare(s) == {"added": {}, "removed": s.flatten(), "modified": {}}


# ----------------------------------------------------------- update algebra


def _holds(tree: Any, path: tuple[Any, ...], value: Any) -> bool:
    """`tree` has `value` at `path` (an empty branch may have been filled since)."""
    found = tree.get_nested(path, default=_holds)
    if isinstance(value, Settings) and not value:
        return isinstance(found, Settings)
    return bool(found == value)


@given(settings_trees, settings_trees)
@example(Settings({"a": {}}), Settings({"a": {"b": 1}}))
def test_merge_contains_all_of_a_and_leaves_operands_unchanged(a: Any, b: Any) -> None:
    before_a, before_b = _snapshot(a), _snapshot(b)
    merged = a.merge(b)
    assert merged == a + b
    for path, value in a.flatten().items():
        assert _holds(merged, path, value)
    assert a == before_a
    assert b == before_b
    # and the result shares no node with either operand
    for path in list(merged.nested_keys()):
        node = merged.get_nested(path)
        if isinstance(node, Settings):
            node["__probe__"] = 1
    assert a == before_a
    assert b == before_b


@given(settings_trees, settings_trees)
def test_soft_update_is_idempotent(a: Any, b: Any) -> None:
    once = a.copy().soft_update(b)
    twice = once.copy().soft_update(b)
    assert once == twice


@given(settings_trees, settings_trees)
def test_soft_update_with_itself_changes_nothing(a: Any, b: Any) -> None:
    assert a.merge(a) == a
    assert a.merge(Settings()) == a
    assert Settings().merge(a) == a


@given(settings_trees, settings_trees)
@example(Settings({"k": 5}), Settings({"k": {}}))
@example(Settings({"k": {"x": 1}}), Settings({"k": {}}))
def test_update_then_contains_all_of_b(a: Any, b: Any) -> None:
    before_b = _snapshot(b)
    updated = a.copy()
    updated.update(b)
    for path, value in b.flatten().items():
        assert _holds(updated, path, value)
    assert b == before_b
    also = a.copy()
    also |= b
    assert also == updated
    assert a | b == updated


def _without_paths(node: Any, paths: set[tuple[Any, ...]], prefix: tuple[Any, ...] = ()) -> Any:
    """The model of `remove`: `node` without the nodes at `paths`, found in the original tree."""
    if isinstance(node, dict):
        return {
            key: _without_paths(value, paths, (*prefix, key))
            for key, value in node.items()
            if (*prefix, key) not in paths
        }
    if isinstance(node, list):
        return [
            _without_paths(value, paths, (*prefix, index))
            for index, value in enumerate(node)
            if (*prefix, index) not in paths
        ]
    return node


@st.composite
def trees_and_what_to_remove(draw: Any) -> tuple[Any, Any]:
    """A tree, and a Settings naming some of its leaves (list positions as int keys), or any tree.

    Drawing the second operand from the first makes most removals hit, in lists too; an
    unrelated tree checks that paths which do not exist change nothing.
    """
    a = draw(settings_trees_with_tuples)
    flat = a.flatten()
    how = draw(st.sampled_from(["some leaves", "some leaves, kept whole", "any tree", "itself"]))
    if how == "any tree":
        return a, draw(settings_trees_with_tuples)
    if how == "itself":
        return a, a.copy()
    if how == "some leaves, kept whole":
        flat = a.flatten(flatten_list=False)
    chosen = draw(st.lists(st.sampled_from(sorted(flat, key=repr)), unique=True)) if flat else []
    return a, Settings.unflatten({path: flat[path] for path in chosen}, unflatten_list=False)


@given(trees_and_what_to_remove())
@example((Settings({"l": [10, 20, 30]}), Settings({"l": {0: 1, 2: 1}})))
@example((Settings({"l": [[1, 2], {"x": 1}]}), Settings({"l": [[None], {"x": 0}]})))
@example((Settings({"a": 5, "t": (1, {"x": 1})}), Settings({"a": {"b": 1}, "t": [{"x": 1}]})))
def test_remove_deletes_exactly_the_leaves_other_names(pair: tuple[Any, Any]) -> None:
    a, b = pair[0].copy(), pair[1]  # explicit examples are shared between runs: keep them
    before_a, before_b = _snapshot(a), _snapshot(b)
    expected = _without_paths(before_a, set(b.flatten()))
    rest = a - b
    assert rest == expected
    assert a.difference(b) == expected
    assert a == before_a
    assert b == before_b
    assert _only_settings_inside(rest)
    same = a
    a -= b
    assert a is same
    assert a == expected


@given(settings_trees_with_tuples)
@example(Settings({"a": {"b": [1, {"c": 2}]}, "d": []}))
def test_difference_with_itself_leaves_only_empty_branches_and_lists(a: Any) -> None:
    rest = a.difference(a)
    for value in rest.flatten().values():
        assert isinstance(value, (Settings, list))
        assert not value
    assert a - Settings() == a


# ----------------------------------------------------- reads never mutate


@given(settings_trees, read_paths)
@example(Settings({"a": {"b": 1}}), ["a", "zz", "yy"])
@example(Settings(), ["_private"])
@example(Settings({"items": {"x": 1}}), ["items", "x"])
def test_reading_never_mutates(s: Any, path: list[str]) -> None:
    before = _snapshot(s)
    node: Any = s
    for key in path:
        if not isinstance(node, Settings):
            break
        by_item = node[key]
        try:
            by_attr = getattr(node, key)
        except AttributeError:
            assert key.startswith("_")
            assert key not in node
            by_attr = by_item
        if key in node and not callable(by_attr):
            assert by_attr is by_item
        node = by_item
    s.get_nested(path)
    s.contains_nested(path)
    s.get(path[0])
    str(s)
    repr(s)
    s.flatten()
    list(s.nested_keys())
    s.compare(s)
    assert s == before


@given(settings_trees, read_paths)
@example(Settings({"a": {"b": 1}}), ["a", "zz"])
def test_inside_suppress_missing_a_read_raises_exactly_where_the_key_is_missing(
    s: Any, path: list[str]
) -> None:
    before = _snapshot(s)
    with s.suppress_missing():
        node: Any = s
        for key in path:
            if not isinstance(node, Settings):
                break
            if key in node:
                node = node[key]
                continue
            with pytest.raises(KeyError):
                node[key]
            # an attribute read raises too (an AttributeError), unless a method has the name
            assert hasattr(node, key) == hasattr(type(node), key)
            break
    if s.contains_nested(path):
        assert s.get_nested(path, True) is s.get_nested(path)
    else:
        with pytest.raises(KeyError):
            s.get_nested(path, True)
        with pytest.raises(KeyError):
            s.contains_nested(path, True)
    assert s == before


@given(settings_trees, read_paths)
def test_writing_through_a_missing_path_builds_exactly_that_path(s: Any, path: list[str]) -> None:
    if s.contains_nested(path[:1]):
        return
    node: Any = s
    for key in path:
        node = node[key]
    node["leaf"] = 1
    assert s.get_nested((*path, "leaf")) == 1


@pytest.mark.parametrize("key", ["a", "items"])
def test_item_path_law_for_method_names(key: str) -> None:
    s = Settings()
    s[key][key] = 1
    assert s == {key: {key: 1}}
