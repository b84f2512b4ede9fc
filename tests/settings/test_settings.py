"""Unit tests for Settings: conversion, detached branches, attribute rules and every method."""

from __future__ import annotations

import collections
import copy
import functools
import inspect
import json
import pickle
import pydoc
import threading
from typing import Any

import pytest

from strategies import SETTINGS_MODULE, Settings


def test_module_under_test_is_the_one_named_by_the_environment() -> None:
    assert Settings.__module__.startswith(SETTINGS_MODULE)
    assert Settings.__name__ == "Settings"


# ------------------------------------------------------------------ dict basics


def test_is_a_dict_and_attribute_access_is_item_access() -> None:
    s = Settings()
    s.x = 1
    s["y"] = 2
    assert isinstance(s, dict)
    assert s["x"] == 1
    assert s.y == 2
    assert json.dumps(s) == '{"x": 1, "y": 2}'
    assert dict(**s) == {"x": 1, "y": 2}


def test_keys_are_case_sensitive() -> None:
    s = Settings(n=1, N=2)
    assert s.n == 1
    assert s.N == 2
    assert len(s) == 2


def test_non_string_keys_work_by_item() -> None:
    s = Settings()
    s[1] = "one"
    s[(2, 3)] = "pair"
    assert s[1] == "one"
    assert s[(2, 3)] == "pair"
    assert "1" not in s
    assert dir(s)  # non-string keys must not break dir()


@pytest.mark.parametrize(
    "build",
    [
        lambda: Settings({"a": {"b": {"c": 1}}}),
        lambda: Settings([("a", {"b": {"c": 1}})]),
        lambda: Settings(a={"b": {"c": 1}}),
        lambda: Settings(collections.OrderedDict(a={"b": {"c": 1}})),
    ],
    ids=["mapping", "pairs", "kwargs", "dict-subclass"],
)
def test_constructor_converts_every_nested_dict(build: Any) -> None:
    s = build()
    assert type(s["a"]) is Settings
    assert type(s["a"]["b"]) is Settings
    assert s.a.b.c == 1


def test_constructor_duplicate_keys_last_wins_like_dict() -> None:
    s = Settings([("a", {"x": 1}), ("a", {"y": 2})])
    assert s == {"a": {"y": 2}}


def test_constructor_rejects_two_positional_arguments() -> None:
    with pytest.raises(TypeError, match="at most 1 positional"):
        Settings({}, {})


def test_constructor_rejects_bad_pairs() -> None:
    with pytest.raises(ValueError, match="element #0"):
        Settings([("a", 1, 2)])


@pytest.mark.parametrize(
    "store",
    [
        lambda s, v: s.__setitem__("k", v),
        lambda s, v: setattr(s, "k", v),
        lambda s, v: s.update({"k": v}),
        lambda s, v: s.update([("k", v)]),
        lambda s, v: s.update(k=v),
        lambda s, v: s.setdefault("k", v),
        lambda s, v: s.soft_update({"k": v}),
        lambda s, v: s.__ior__({"k": v}),
        lambda s, v: s.set_nested(("k",), v),
    ],
    ids=[
        "item",
        "attr",
        "update-map",
        "update-pairs",
        "update-kw",
        "setdefault",
        "soft",
        "ior",
        "nested",
    ],
)
def test_every_path_converts_dicts(store: Any) -> None:
    s = Settings()
    store(s, {"inner": {"deep": 1}, "lst": [{"x": 1}], "tup": ({"y": 2},)})
    assert type(s["k"]) is Settings
    assert type(s["k"]["inner"]) is Settings
    assert type(s["k"]["lst"][0]) is Settings
    assert type(s["k"]["tup"]) is tuple
    assert type(s["k"]["tup"][0]) is Settings
    assert s.k.inner.deep == 1


def test_or_converts_and_leaves_operands_alone() -> None:
    s = Settings(a={"x": 1})
    t = s | {"a": {"y": {"z": 2}}}
    assert type(t) is Settings
    assert type(t.a.y) is Settings
    assert t == {"a": {"x": 1, "y": {"z": 2}}}
    assert s == {"a": {"x": 1}}
    u = {"a": {"w": 0}, "b": 1} | s
    assert type(u) is Settings
    assert u == {"a": {"w": 0, "x": 1}, "b": 1}
    assert s.__or__(5) is NotImplemented


def test_lists_and_tuples_are_converted_recursively_keeping_their_type() -> None:
    s = Settings(v=[({"a": [{"b": 1}]},), [{"c": 2}]])
    assert type(s.v) is list
    assert type(s.v[0]) is tuple
    assert type(s.v[0][0]) is Settings
    assert type(s.v[0][0].a[0]) is Settings
    assert type(s.v[1][0]) is Settings


def test_namedtuple_keeps_its_type() -> None:
    point = collections.namedtuple("point", "x y")
    s = Settings(p=point({"a": 1}, 2))
    assert type(s.p) is point
    assert type(s.p.x) is Settings


def test_list_without_dicts_is_stored_as_the_same_object() -> None:
    values = [1, 2, 3]
    s = Settings()
    s.vals = values
    assert s["vals"] is values


def test_stored_settings_is_kept_not_copied() -> None:
    inner = Settings(x=1)
    s = Settings()
    s.inner = inner
    assert s["inner"] is inner


def test_fromkeys_works_on_class_and_converts() -> None:
    s = Settings.fromkeys(["a", "b"], {"x": 1})
    assert type(s) is Settings
    assert type(s.a) is Settings
    assert s == {"a": {"x": 1}, "b": {"x": 1}}


# ----------------------------------------------------------- missing keys


def test_attribute_path_builds_on_write() -> None:
    s = Settings()
    s.a.b.c = 1
    assert s == {"a": {"b": {"c": 1}}}
    assert type(s["a"]["b"]) is Settings


def test_item_path_builds_on_write() -> None:
    s = Settings()
    s["a"]["b"]["c"] = 1
    assert s == {"a": {"b": {"c": 1}}}


def test_reading_a_missing_key_changes_nothing() -> None:
    s = Settings()
    x = s.nothing
    y = s["nothing_either"].deeper.still
    assert x == {}
    assert y == {}
    assert isinstance(x, Settings)
    assert s == {}
    assert "nothing" not in s
    assert "nothing_either" not in s


def test_get_and_contains_do_not_create() -> None:
    s = Settings()
    assert s.get("a") is None
    assert "a" not in s
    assert s == {}


def test_detached_branch_read_then_written_later_attaches() -> None:
    s = Settings(other=1)
    branch = s.a.b
    assert s == {"other": 1}
    branch.c = 3
    assert s == {"other": 1, "a": {"b": {"c": 3}}}
    assert s["a"]["b"] is branch
    branch.d = 4  # attached now: writes go straight in
    assert s.a.b.d == 4


def test_detached_branch_attaches_on_update_and_setdefault() -> None:
    s = Settings()
    s.a.update({"x": 1})
    s.b.setdefault("y", 2)
    s.c.soft_update({"z": 3})
    s.d.set_nested(("e",), 4)
    assert s == {"a": {"x": 1}, "b": {"y": 2}, "c": {"z": 3}, "d": {"e": 4}}


def test_detached_branch_empty_update_does_not_attach() -> None:
    s = Settings()
    s.a.update({})
    s.b.soft_update({})
    assert s == {}


def test_writing_an_empty_dict_attaches_the_path() -> None:
    s = Settings()
    s.a.b = {}
    assert s == {"a": {"b": {}}}


def test_two_detached_reads_of_the_same_name_lose_no_data() -> None:
    # Chosen behaviour: the first write attaches its branch; a second branch for the
    # same place forwards its writes into the attached one (and keeps its own copy).
    s = Settings()
    first = s.x
    second = s.x
    first.a = 1
    second.b = 2
    assert s == {"x": {"a": 1, "b": 2}}
    assert s["x"] is first
    assert second == {"b": 2}
    second.c = 3
    assert s.x.c == 3


def test_detached_nested_reads_join_a_branch_set_meanwhile() -> None:
    s = Settings()
    deep = s.a.b
    s.a = {"keep": 1}
    deep.c = 2
    assert s == {"a": {"keep": 1, "b": {"c": 2}}}


def test_detached_branch_whose_place_got_a_leaf_refuses_to_write() -> None:
    s = Settings()
    deep = s.a.b
    s.a = 5
    with pytest.raises(TypeError, match=r"holds 5 \(int\), not a Settings"):
        deep.c = 1
    assert s == {"a": 5}
    assert deep == {}


def test_detached_branch_stored_elsewhere_becomes_ordinary() -> None:
    s = Settings()
    t = Settings()
    branch = s.nowhere
    t.here = branch
    branch.x = 1
    assert t == {"here": {"x": 1}}
    assert s == {}


@pytest.mark.parametrize(
    "name", ["_x", "__deepcopy__", "_ipython_canary_method_should_not_exist_", "__array__"]
)
def test_underscore_names_never_auto_create(name: str) -> None:
    s = Settings()
    with pytest.raises(AttributeError, match=repr(name)):
        getattr(s, name)
    assert not hasattr(s, name)
    assert s == {}


def test_existing_underscore_key_is_readable_by_attribute() -> None:
    s = Settings({"_x": 1})
    assert s._x == 1


def test_item_read_of_underscore_key_returns_a_detached_branch() -> None:
    s = Settings()
    assert s["_x"] == {}
    assert s == {}


# ------------------------------------------------------- method-name keys


@pytest.mark.parametrize(
    "name",
    [
        "items",
        "copy",
        "update",
        "keys",
        "get",
        "merge",
        "flatten",
        "unflatten",
        "block_keys",
        "suppress_missing",
        "fromkeys",
    ],
)
def test_attribute_assignment_to_a_method_name_is_refused(name: str) -> None:
    s = Settings()
    with pytest.raises(AttributeError, match=rf"s\['{name}'\] = 1"):
        setattr(s, name, 1)
    assert s == {}


@pytest.mark.parametrize("name", ["items", "copy", "update", "keys", "pop"])
def test_key_named_like_a_method_is_stored_by_item_and_never_hides_the_method(name: str) -> None:
    s = Settings()
    s[name] = {"v": 1}
    assert s[name] == {"v": 1}
    assert callable(getattr(s, name))
    assert s.keys() == {name}
    assert s.copy() == s
    s.update({"other": 2})
    assert dict(s.items()) == {name: {"v": 1}, "other": 2}


def test_methods_called_through_the_class_work_like_any_dict_subclass() -> None:
    s = Settings(a={"x": 1})
    s["keys"] = s["copy"] = "keys that share a method's name"
    assert Settings.keys(s) == {"a", "keys", "copy"}
    assert Settings.get(s, "a") == {"x": 1}
    copied = Settings.copy(s)
    assert copied == s
    assert copied.a is not s.a
    assert Settings.update(s, {"a": {"y": 2}}, b=3) is None
    assert s.a == {"x": 1, "y": 2}
    assert s.b == 3
    assert Settings.merge(Settings(), s) == s
    assert list(map(Settings.as_dict, [Settings(q={"r": 1})])) == [{"q": {"r": 1}}]


def test_methods_read_on_the_class_have_signature_name_and_doc() -> None:
    params = inspect.signature(Settings.update).parameters
    assert list(params) == ["self", "other", "kwargs"]
    assert params["other"].kind is inspect.Parameter.POSITIONAL_ONLY
    assert list(inspect.signature(Settings.get_nested).parameters) == [
        "self",
        "keys",
        "suppress_missing",
        "default",
    ]
    assert list(inspect.signature(Settings.unflatten).parameters) == ["flat", "unflatten_list"]
    assert list(inspect.signature(Settings().unflatten).parameters) == ["unflatten_list"]
    assert Settings.update.__name__ == "update"
    assert Settings.update.__qualname__ == "Settings.update"
    assert "Recursively overwrite" in (inspect.getdoc(Settings.update) or "")
    assert "Recursively overwrite" in pydoc.render_doc(Settings.update, renderer=pydoc.plaintext)
    assert "'Settings.update'" in repr(Settings.update)

    @functools.wraps(Settings.soft_update)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return Settings.soft_update(*args, **kwargs)

    assert wrapper.__name__ == "soft_update"
    assert list(inspect.signature(wrapper).parameters) == ["self", "other"]
    assert wrapper(Settings(a=1), {"b": 2}) == {"a": 1, "b": 2}


def test_methods_read_on_the_class_pickle_and_copy_as_themselves() -> None:
    for method in (Settings.update, Settings.keys):
        assert pickle.loads(pickle.dumps(method)) is method
        assert copy.copy(method) is method


def test_subclass_methods_work_through_the_class_too() -> None:
    class Mine(Settings):  # type: ignore[misc,valid-type]
        def describe(self, suffix: str = "") -> str:
            return f"{len(self)} keys{suffix}"

        def update(self, other: Any = (), /, **kwargs: Any) -> None:
            super().update(other, **kwargs)
            self["updated"] = True

    m = Mine(a=1)
    assert Mine.describe(m, "!") == "1 keys!"
    assert list(inspect.signature(Mine.describe).parameters) == ["self", "suffix"]
    Mine.update(m, b=2)
    assert m == {"a": 1, "b": 2, "updated": True}
    assert Mine.keys(m) == {"a", "b", "updated"}


def test_delete_attribute() -> None:
    s = Settings(a=1)
    del s.a
    assert s == {}
    with pytest.raises(AttributeError, match="'a'"):
        del s.a


def test_dir_lists_identifier_keys() -> None:
    s = Settings({"alpha": 1, "not an id": 2, 3: 4})
    names = dir(s)
    assert "alpha" in names
    assert "not an id" not in names
    assert "copy" in names


def test_subclass_methods_are_not_hidden_by_keys() -> None:
    class Mine(Settings):  # type: ignore[misc,valid-type]
        def describe(self) -> str:
            return f"{len(self)} keys"

    m = Mine()
    m["describe"] = "a value"
    assert m.describe() == "1 keys"
    assert type(m.copy()) is Mine


def test_subclass_static_and_class_methods_work_on_class_and_instance() -> None:
    class Tools(Settings):  # type: ignore[misc,valid-type]
        @staticmethod
        def double(x: int) -> int:
            return 2 * x

        @classmethod
        def make(cls) -> Any:
            return cls(made=True)

    t = Tools()
    t["double"] = t["make"] = "keys"
    assert Tools.double(2) == t.double(2) == 4
    assert type(Tools.make()) is Tools
    assert t.make() == {"made": True}
    with pytest.raises(AttributeError, match="'double'"):
        t.double = 1


def test_subclass_property_setter_is_used() -> None:
    class WithProperty(Settings):  # type: ignore[misc,valid-type]
        @property
        def level(self) -> int:
            return int(self["level"])

        @level.setter
        def level(self, value: int) -> None:
            self["level"] = value * 10

    w = WithProperty()
    w.level = 2
    assert w["level"] == 20
    assert w.level == 20


# ---------------------------------------------------------------- copying


def test_copy_makes_new_nodes_and_shares_leaves() -> None:
    leaf = [1, 2]
    s = Settings(a={"b": {"leaf": leaf}}, l=[{"x": 1}])
    c = s.copy()
    assert c == s
    assert type(c) is Settings
    assert c.a is not s.a
    assert c.a.b is not s.a.b
    assert c.a.b.leaf is leaf
    assert c.l[0] is not s.l[0]
    c.a.b.new = 1
    c.l[0].x = 2
    assert "new" not in s.a.b
    assert s.l[0].x == 1


def test_copy_module_shallow_and_deep() -> None:
    s = Settings(a={"b": [1, {"c": 2}]}, t=(1, {"u": 2}))
    shallow = copy.copy(s)
    deep = copy.deepcopy(s)
    assert shallow == s
    assert deep == s
    assert type(deep.a) is Settings
    assert type(deep.t) is tuple
    assert deep.a.b is not s.a.b


def test_deepcopy_and_pickle_keep_self_references() -> None:
    s = Settings(x=1)
    s["me"] = s
    d = copy.deepcopy(s)
    assert d["me"] is d
    p = pickle.loads(pickle.dumps(s))
    assert p["me"] is p


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_every_protocol(protocol: int) -> None:
    s = Settings(a={"b": [{"c": 1}, (2, {"d": 3})]}, items=4, _p=5)
    back = pickle.loads(pickle.dumps(s, protocol))
    assert back == s
    assert type(back.a.b[0]) is Settings
    assert type(back.a.b[1]) is tuple


def test_pickle_of_a_detached_branch_is_standalone() -> None:
    s = Settings()
    branch = s.a
    back = pickle.loads(pickle.dumps(branch))
    back.x = 1
    assert s == {}
    assert back == {"x": 1}


def test_json_round_trip() -> None:
    s = Settings(a={"b": [1, {"c": None}]}, d="text")
    back = Settings(json.loads(json.dumps(s)))
    assert back == s
    assert type(back.a.b[1]) is Settings


# ---------------------------------------------------------------- display


def test_repr_evaluates_back() -> None:
    s = Settings(a={"b": [1, {"c": "x"}]}, t=(1,), items=2)
    text = repr(s)
    assert text.startswith("Settings({")
    assert eval(text, {"Settings": Settings}) == s


def test_str_is_an_indented_tree() -> None:
    s = Settings()
    s.run.nodes = 2
    s.run.opts.mem = "4G"
    s.name = "job"
    s.empty = {}
    s.text = "line one\nline two"
    assert str(s) == (
        "run:\n"
        "  nodes: 2\n"
        "  opts:\n"
        "    mem: 4G\n"
        "name: job\n"
        "empty: <empty Settings>\n"
        "text: line one\n"
        "  line two"
    )
    assert str(Settings()) == "<empty Settings>"


# -------------------------------------------------------- update algebra


def test_update_is_recursive_and_overwrites() -> None:
    s = Settings(a={"x": 1, "y": 2}, b=1)
    s.update({"a": {"y": 20, "z": 30}, "b": {"new": 1}})
    assert s == {"a": {"x": 1, "y": 20, "z": 30}, "b": {"new": 1}}


def test_update_does_not_share_nodes_with_the_source() -> None:
    other = Settings(a={"b": 1})
    s = Settings()
    s.update(other)
    s.a.b = 2
    assert other.a.b == 1


def test_update_from_a_plain_dict_holding_settings_copies_them() -> None:
    inner = Settings(b=1)
    s = Settings()
    s.update({"a": {"inner": inner}})
    s.a.inner.b = 2
    assert inner == {"b": 1}


def test_ror_leaves_the_nested_settings_of_the_left_operand_alone() -> None:
    inner = Settings(x=1)
    left = {"a": inner}
    result = left | Settings(a={"y": 2})
    assert result == {"a": {"x": 1, "y": 2}}
    assert inner == {"x": 1}
    assert left == {"a": {"x": 1}}


def test_update_returns_none_like_dict() -> None:
    assert Settings().update(a=1) is None


def test_soft_update_adds_only_what_is_missing() -> None:
    s = Settings(a={"x": 1}, b=2)
    result = s.soft_update({"a": {"x": 100, "y": 2}, "b": {"c": 3}, "c": 4})
    assert result is s
    assert s == {"a": {"x": 1, "y": 2}, "b": 2, "c": 4}


def test_iadd_is_soft_update() -> None:
    s = Settings(a=1)
    same = s
    s += {"a": 2, "b": 3}
    assert s is same
    assert s == {"a": 1, "b": 3}


def test_merge_and_add_leave_operands_unchanged() -> None:
    a = Settings(x={"y": 1})
    b = Settings(x={"z": 2}, w=3)
    for merged in (a.merge(b), a + b):
        assert merged == {"x": {"y": 1, "z": 2}, "w": 3}
        merged.x.z = 99
    assert a == {"x": {"y": 1}}
    assert b == {"x": {"z": 2}, "w": 3}


def test_remove_is_recursive_and_keeps_emptied_branches_like_plams() -> None:
    s = Settings(a={"x": 1, "y": 2}, b=3, c={"d": 1})
    same = s
    s -= {"a": {"x": None}, "b": None, "c": {"d": 0}, "missing": 1}
    assert s is same
    assert s == {"a": {"y": 2}, "c": {}}


def test_remove_whole_branch_when_other_has_a_leaf() -> None:
    s = Settings(a={"x": 1}, b=2)
    s.remove({"a": True})
    assert s == {"b": 2}


def test_remove_self_leaves_only_empty_containers() -> None:
    s = Settings(a={"b": {"c": 1}}, d=[1], e={}, f=[])
    s.remove(s.copy())
    assert s == {"a": {"b": {}}, "d": []}
    t = Settings(a={"b": 1}, l=[1, {"x": 2}])
    t.remove(t)  # the same object: removing must not trip over its own iteration
    assert t == {"a": {}, "l": [{}]}


def test_remove_with_lists_deletes_the_elements_at_the_positions_other_has() -> None:
    s = Settings(a=[10, 20, 30, 40], keep=[1])
    s -= {"a": [None, "any value"]}
    assert s == {"a": [30, 40], "keep": [1]}
    s -= {"a": [0, 0, 0]}  # longer than what is left: the missing positions change nothing
    assert s == {"a": [], "keep": [1]}  # an emptied list stays, as in PLAMS


def test_remove_and_difference_never_change_a_list_that_copies_share() -> None:
    a = Settings(l=[1, 2, 3], nested=[[1, 2]], b={"m": [4, 5]})
    lists = (a.l, a.nested, a.nested[0], a.b.m)
    copied = a.copy()
    assert copied.l is a.l  # copies share lists of plain values ...
    rest = a - {"l": [None], "nested": [[None]], "b": {"m": [None]}}
    copied -= {"l": [None, None, None]}
    assert rest == {"l": [2, 3], "nested": [[2]], "b": {"m": [5]}}
    assert copied.l == []
    assert a == {"l": [1, 2, 3], "nested": [[1, 2]], "b": {"m": [4, 5]}}  # ... so none changed
    assert all(now is then for now, then in zip((a.l, a.nested, a.nested[0], a.b.m), lists))


def test_remove_positions_refer_to_the_list_as_it_was() -> None:
    s = Settings(l=list(range(40)))
    s.remove({"l": {3: None, 31: None, 0: None}})  # a mapping with int keys names positions too
    assert s.l == [n for n in range(40) if n not in (0, 3, 31)]


def test_remove_goes_into_lists_of_settings_and_lists_of_lists() -> None:
    s = Settings(l=[{"x": 1, "y": 2}, {"x": 3}, [5, 6]])
    s.remove({"l": [{"x": None}, {}, [None]]})
    assert s == {"l": [{"y": 2}, [6]]}  # {} is a leaf: the whole element goes


def test_remove_an_empty_container_in_other_deletes_the_whole_value() -> None:
    s = Settings(a={"x": 1}, l=[1, 2], t=(1, 2))
    s.remove({"a": {}, "l": [], "t": (9,)})
    assert s == {}


def test_remove_paths_that_do_not_exist_here_change_nothing() -> None:
    s = Settings(a=5, l=[1], t=(1, 2), b={"c": 1})
    s.remove({"a": {"x": 1}, "l": {"x": 1}, "t": [None], "b": [None], "missing": [1]})
    assert s == {"a": 5, "l": [1], "t": (1, 2), "b": {"c": 1}}


def test_remove_accepts_plain_dicts_and_leaves_other_unchanged() -> None:
    other = {"a": [{"x": 1}], "b": {"c": None}}
    s = Settings(a=[{"x": 1, "y": 1}], b={"c": 1, "d": 2})
    s.remove(other)
    assert s == {"a": [{"y": 1}], "b": {"d": 2}}
    assert other == {"a": [{"x": 1}], "b": {"c": None}}


def test_difference_and_sub_leave_operands_unchanged() -> None:
    a = Settings(x={"y": 1, "z": 2}, w=3)
    b = Settings(x={"z": 0})
    for result in (a.difference(b), a - b):
        assert result == {"x": {"y": 1}, "w": 3}
    assert a == {"x": {"y": 1, "z": 2}, "w": 3}
    assert b == {"x": {"z": 0}}


def test_as_dict_returns_plain_types_throughout() -> None:
    s = Settings(a={"b": [{"c": 1}, ({"d": 2},)]})
    plain = s.as_dict()
    assert plain == s
    assert type(plain) is dict
    assert type(plain["a"]) is dict
    assert type(plain["a"]["b"][0]) is dict
    assert type(plain["a"]["b"][1]) is tuple
    assert type(plain["a"]["b"][1][0]) is dict


# ---------------------------------------------------------------- nested keys


def test_get_nested() -> None:
    s = Settings(a={"b": [{"c": 1}]})
    assert s.get_nested(("a", "b", 0, "c")) == 1
    assert s.get_nested(["a", "b"]) == [{"c": 1}]
    assert s.get_nested(("a", "zz")) is None
    assert s.get_nested(("a", "b", 5), default="d") == "d"
    assert s.get_nested(("a", "b", 0, "c", "deeper"), default=0) == 0
    assert s.get_nested(("a", "zz"), False, "d") == "d"  # PLAMS's positions
    assert s.get_nested("a") == {"b": [{"c": 1}]}
    assert s == {"a": {"b": [{"c": 1}]}}


def test_get_nested_suppress_missing_is_the_second_positional_argument_as_in_plams() -> None:
    s = Settings(a={"b": [{"c": None}]})
    assert s.get_nested(("a", "b", 0, "c"), True) is None  # exists, holds None
    with pytest.raises(KeyError, match=r"\('a', 'zz'\) does not exist"):
        s.get_nested(("a", "zz", "yy"), True)
    with pytest.raises(KeyError, match=r"\('a', 'b', 3\) does not exist"):
        s.get_nested(("a", "b", 3), suppress_missing=True, default="never used")
    assert s == {"a": {"b": [{"c": None}]}}


@pytest.mark.parametrize("method", ["get_nested", "pop_nested", "contains_nested"])
def test_a_default_given_where_plams_has_suppress_missing_is_refused(method: str) -> None:
    s = Settings()
    with pytest.raises(TypeError, match=rf"True or False, got 'x'.*{method}\(keys, default='x'\)"):
        getattr(s, method)(("a",), "x")
    with pytest.raises(TypeError, match="got 0"):
        getattr(s, method)(("a",), 0)
    with pytest.raises(TypeError, match="got 1"):
        s.set_nested(("a",), 1, 1)
    assert s == {}


def test_contains_nested() -> None:
    s = Settings(a={"b": [{"c": None}]})
    assert s.contains_nested(("a", "b", 0, "c"))
    assert not s.contains_nested(("a", "b", 1))
    assert not s.contains_nested(("x",))
    assert s.contains_nested(("a", "b", 0, "c"), True)
    with pytest.raises(KeyError, match=r"\('a', 'b', 1\) does not exist"):
        s.contains_nested(("a", "b", 1, "c"), True)
    assert s == {"a": {"b": [{"c": None}]}}


def test_set_nested_builds_path() -> None:
    s = Settings()
    s.set_nested(("a", "b", "c"), {"d": 1})
    assert s == {"a": {"b": {"c": {"d": 1}}}}
    assert type(s.a.b.c) is Settings
    s.a.l = [{"x": 1}]
    s.set_nested(("a", "l", 0, "x"), 2)
    s.set_nested(("a", "l", 0), {"y": 3})
    assert s.a.l == [{"y": 3}]
    assert type(s.a.l[0]) is Settings


def test_set_nested_errors() -> None:
    s = Settings(a=5, l=[])
    with pytest.raises(TypeError, match=r"holds 5"):
        s.set_nested(("a", "b"), 1)
    with pytest.raises(ValueError, match="empty path"):
        s.set_nested((), 1)
    with pytest.raises(IndexError, match="out of range"):
        s.set_nested(("l", 3, "x"), 1)
    assert s == {"a": 5, "l": []}


def test_set_nested_suppress_missing_creates_nothing() -> None:
    s = Settings(a={"b": {}})
    s.set_nested(("a", "b", "c"), 1, True)  # only the last key may be new
    assert s == {"a": {"b": {"c": 1}}}
    with pytest.raises(KeyError, match=r"\('a', 'x'\) does not exist"):
        s.set_nested(("a", "x", "y", "z"), 2, suppress_missing=True)
    assert s == {"a": {"b": {"c": 1}}}


def test_pop_nested() -> None:
    s = Settings(a={"b": {"c": 1, "d": 2}}, l=[10, 20])
    assert s.pop_nested(("a", "b", "c")) == 1
    assert s.pop_nested(("a", "b", "c")) is None
    assert s.pop_nested(("a", "x", "y"), default="none") == "none"
    assert s.pop_nested(("a", "x", "y"), False, "none") == "none"  # PLAMS's positions
    assert s.pop_nested(("l", 0)) == 10
    assert s.pop_nested(()) is None
    assert s == {"a": {"b": {"d": 2}}, "l": [20]}


def test_pop_nested_suppress_missing() -> None:
    s = Settings(a={"b": {"d": 2}}, l=[20])
    with pytest.raises(KeyError, match=r"\('a', 'x'\) does not exist"):
        s.pop_nested(("a", "x", "y"), True)
    with pytest.raises(KeyError, match=r"\('a', 'b', 'c'\) does not exist"):
        s.pop_nested(("a", "b", "c"), True)
    with pytest.raises(KeyError, match=r"\('l', 1\) does not exist"):
        s.pop_nested(("l", 1), suppress_missing=True)
    with pytest.raises(KeyError, match="empty"):
        s.pop_nested((), True)
    assert s.pop_nested(("a", "b", "d"), True) == 2
    assert s == {"a": {"b": {}}, "l": [20]}


def test_nested_keys() -> None:
    s = Settings()
    s.a.b.c = True
    s.l = [{"x": 1}]
    s.e = {}
    s.z = 0  # a false value is a value: unlike PLAMS's code, it is yielded
    s.el = []
    assert list(s.nested_keys()) == [
        ("a",),
        ("a", "b"),
        ("a", "b", "c"),
        ("l",),
        ("l", 0),
        ("l", 0, "x"),
        ("z",),
        ("el",),
    ]
    assert list(s.nested_keys(flatten_list=False)) == [
        ("a",),
        ("a", "b"),
        ("a", "b", "c"),
        ("l",),
        ("z",),
        ("el",),
    ]
    assert list(s.nested_keys(include_empty=True))[-3:] == [("e",), ("z",), ("el",)]
    assert ("a", "b", "c") in s.nested_keys(False, True)  # PLAMS's positions


def test_nested_keys_include_empty_reaches_empty_branches_at_any_depth() -> None:
    s = Settings(a={"b": {}, "c": [{}, {"d": {}}]})
    assert list(s.nested_keys()) == [("a",), ("a", "c"), ("a", "c", 1)]
    assert list(s.nested_keys(include_empty=True)) == [
        ("a",),
        ("a", "b"),
        ("a", "c"),
        ("a", "c", 0),
        ("a", "c", 1),
        ("a", "c", 1, "d"),
    ]


def test_block_keys_are_the_branches() -> None:
    s = Settings()
    s.a.b.c = True
    s.a.x = 1
    s.l = [{"x": 1}, 2]
    s.e = {}
    s.el = []
    s.top = "leaf"
    assert list(s.block_keys()) == [("a",), ("a", "b"), ("l",), ("l", 0)]
    assert list(s.block_keys(flatten_list=False)) == [("a",), ("a", "b")]
    assert list(s.block_keys(include_empty=True)) == [("a",), ("a", "b"), ("l",), ("l", 0), ("e",)]
    assert list(s.block_keys(False, True)) == [("a",), ("a", "b"), ("e",)]
    assert list(Settings(x=1).block_keys()) == []


def test_flatten_and_unflatten() -> None:
    s = Settings(a={"b": {"c": 1}}, l=[1, {"x": 2}, [3]], e={}, el=[], t=(1, 2))
    flat = s.flatten()
    assert type(flat) is Settings
    assert flat == {
        ("a", "b", "c"): 1,
        ("l", 0): 1,
        ("l", 1, "x"): 2,
        ("l", 2, 0): 3,
        ("e",): {},
        ("el",): [],
        ("t",): (1, 2),
    }
    for back in (flat.unflatten(), Settings.unflatten(flat), Settings.unflatten(dict(flat))):
        assert back == s
        assert type(back) is Settings
        assert type(back.l) is list
        assert type(back.l[1]) is Settings


def test_flatten_and_unflatten_share_no_node() -> None:
    s = Settings(e={}, l=[{"x": 1}])
    flat = s.flatten(flatten_list=False)
    assert flat[("e",)] is not s.e
    assert flat[("l",)][0] is not s.l[0]
    back = flat.unflatten(unflatten_list=False)
    assert back.e is not flat[("e",)]
    back.e.new = 1
    back.l[0].x = 2
    assert s == {"e": {}, "l": [{"x": 1}]}
    assert flat == {("e",): {}, ("l",): [{"x": 1}]}


def test_flatten_is_plams_spelling_round_trip() -> None:
    s = Settings()
    s.input.ams.task = "GeometryOptimization"
    s.input.ams.properties = [{"name": "x"}]
    assert s.flatten().unflatten() == s
    assert s.flatten(flatten_list=False).unflatten(unflatten_list=False) == s
    assert s.flatten()[("input", "ams", "properties", 0, "name")] == "x"


def test_flatten_without_lists() -> None:
    s = Settings(a={"l": [{"x": 1}]})
    flat = s.flatten(flatten_list=False)
    assert flat == {("a", "l"): [{"x": 1}]}
    assert Settings.unflatten(flat, unflatten_list=False) == s
    assert flat.unflatten(False) == s


def test_unflatten_without_lists_makes_int_keys() -> None:
    assert Settings.unflatten({("a", 0): 1}, unflatten_list=False) == {"a": {0: 1}}
    assert Settings.unflatten({("a", 0): 1}) == {"a": [1]}
    assert Settings({("a", 0): 1}).unflatten(unflatten_list=False) == {"a": {0: 1}}


def test_unflatten_accepts_single_keys_and_pads_lists() -> None:
    assert Settings.unflatten({"a": 1, ("l", 2): "x"}) == {"a": 1, "l": [None, None, "x"]}


def test_unflatten_errors() -> None:
    with pytest.raises(ValueError, match="empty tuple"):
        Settings.unflatten({(): 1})
    with pytest.raises(TypeError, match="already holds the leaf 1"):
        Settings.unflatten({("a",): 1, ("a", "b"): 2})


def test_unflatten_on_the_class_and_on_an_instance_of_a_subclass() -> None:
    class Mine(Settings):  # type: ignore[misc,valid-type]
        pass

    for back in (Mine.unflatten({("a", "b"): 1}), Mine({("a", "b"): 1}).unflatten()):
        assert type(back) is Mine
        assert back == {"a": {"b": 1}}
    assert type(Mine(a={"b": 1}).flatten()) is Settings


def test_unflatten_on_an_instance_with_a_mapping_is_refused() -> None:
    # The classmethod-only spelling of earlier versions, which would now unflatten the
    # (empty) instance and drop the argument.
    with pytest.raises(TypeError, match=r"got \{\('a',\): 1\}; .*Settings.unflatten\(flat\)"):
        Settings().unflatten({("a",): 1})  # type: ignore[arg-type]


def test_unflatten_is_never_hidden_by_a_key() -> None:
    flat = Settings({("a",): 1})
    flat["unflatten"] = "a value"
    with pytest.raises(AttributeError, match=r"s\['unflatten'\] = 1"):
        flat.unflatten = 1
    assert flat.unflatten() == {"a": 1, "unflatten": "a value"}


def test_compare() -> None:
    s = Settings()
    t = Settings()
    s.a.b = 1
    s.c.d = 2
    t.c.d = 3
    t.e.f = 4
    s.same = t.same = "x"
    assert s.compare(t) == {
        "added": {("a", "b"): 1},
        "removed": {("e", "f"): 4},
        "modified": {("c", "d"): (2, 3)},
    }
    assert s.compare({"a": {"b": 1}}) == {
        "added": {("c", "d"): 2, ("same",): "x"},
        "removed": {},
        "modified": {},
    }
    assert s.compare(s) == {"added": {}, "removed": {}, "modified": {}}


# ---------------------------------------------------------- suppress_missing


def test_suppress_missing_makes_missing_reads_raise_key_error() -> None:
    s = Settings(a={"b": 1})
    with s.suppress_missing():
        assert s.a.b == 1
        assert s["a"]["b"] == 1
        with pytest.raises(KeyError, match="'x': no such key"):
            s["x"]
        with pytest.raises(KeyError) as raised:
            _ = s.a.x
        assert raised.value.args == ("x",)
        with pytest.raises(KeyError):
            s.x.y.z = True  # as in PLAMS: the first missing step raises
        s.a.c = 2  # writing is not reading: existing branches take new keys
        assert s.get("x") is None
        assert "x" not in s
    assert s == {"a": {"b": 1, "c": 2}}
    assert s.x == {}  # back to detached branches after the block


def test_suppress_missing_attribute_reads_are_attribute_errors_too() -> None:
    s = Settings(a=1)
    with Settings.suppress_missing():
        assert not hasattr(s, "x")
        assert getattr(s, "x", "default") == "default"
        with pytest.raises(AttributeError):
            _ = s.x
        with pytest.raises(AttributeError, match="never created on read"):
            _ = s._private  # names with '_' keep their own error
    assert copy.deepcopy(s) == s


def test_suppress_missing_nests_and_restores_after_an_error() -> None:
    s = Settings()
    with s.suppress_missing():
        with s.suppress_missing():
            pass
        with pytest.raises(KeyError):
            _ = s.x
    with pytest.raises(RuntimeError, match="boom"), s.suppress_missing():
        raise RuntimeError("boom")
    assert s.x == {}


def test_suppress_missing_affects_only_the_thread_that_entered_it() -> None:
    s = Settings()
    entered, done = threading.Event(), threading.Event()
    seen: list[Any] = []

    def other_thread() -> None:
        entered.wait(5)
        seen.append(s.nothing)
        done.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    with s.suppress_missing():
        entered.set()
        assert done.wait(5)
        with pytest.raises(KeyError):
            _ = s.nothing
    thread.join()
    assert seen == [{}]


# ------------------------------------------------------------------ threads


def test_concurrent_reads_mutate_nothing() -> None:
    s = Settings(a={"b": {"c": 1}}, d=[1, 2])
    before = copy.deepcopy(s.as_dict())
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def read() -> None:
        try:
            barrier.wait()
            for i in range(2000):
                assert s.a.b.c == 1
                assert s[f"missing{i}"].deeper == {}
                assert s.get_nested(("a", "x", "y")) is None
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert s == before
