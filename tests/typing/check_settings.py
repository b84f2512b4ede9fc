"""Typing check (mypy only, never run): typical user code with Settings type-checks."""

from __future__ import annotations

from typing import Any, Dict, Iterator, Tuple

from runner_settings import Settings


def typical_use() -> None:
    """Attribute access is Any; methods keep precise types."""
    s = Settings({"run": {"nodes": 2}}, name="opt")
    s.run.mem = "4G"
    nodes: int = s.run.nodes  # attribute reads are Any, so any annotation is accepted
    name: str = s["name"]
    plain: Dict[Any, Any] = s.as_dict()
    copied: Settings = s.copy()
    merged: Settings = s.merge({"run": {"time": 60}})
    merged = s + {"extra": 1}
    rest: Settings = s - {"name": None}
    soft: Settings = s.soft_update({"a": 1})
    s += {"b": 2}
    s -= {"b": None}
    s |= {"c": 3}
    union: Settings = s | {"d": 4}
    s.update({"run": {"nodes": 4}}, extra=True)
    s.update([("k", "v")])
    flat: Settings = s.flatten()
    back: Settings = Settings.unflatten(flat)
    back = flat.unflatten()
    back = flat.unflatten(unflatten_list=False)
    back = Settings.unflatten({("a", "b"): 1}, unflatten_list=True)
    keys: Iterator[Tuple[Any, ...]] = s.nested_keys(flatten_list=False)
    keys = s.nested_keys(True, include_empty=True)
    keys = s.block_keys(flatten_list=True, include_empty=False)
    found: bool = s.contains_nested(("run", "nodes"))
    found = s.contains_nested(("run", "nodes"), True)
    value: Any = s.get_nested(("run", "nodes"), default=1)
    value = s.get_nested(("run", "nodes"), True)
    s.set_nested(("run", "queue"), "short")
    s.set_nested(("run", "queue"), "short", suppress_missing=True)
    popped: Any = s.pop_nested(["run", "queue"])
    popped = s.pop_nested(["run", "queue"], False, None)
    diff: Dict[str, Dict[Tuple[Any, ...], Any]] = s.compare(back)
    with s.suppress_missing():
        s.run.nodes = 3
    with Settings.suppress_missing():
        pass
    as_unbound: Settings = Settings.copy(s)
    Settings.update(s, {"a": 1})
    del as_unbound
    default: Any = s.setdefault("z", {})
    text: str = str(s) + repr(s)
    is_dict: Dict[str, Any] = s
    del nodes, name, plain, copied, merged, rest, soft, union, keys, found, value
    del popped, diff, default, text, is_dict


class JobSettings(Settings):
    """Subclasses keep their own type through copy and merge."""


def subclass_use() -> None:
    """Self-typed methods return the subclass."""
    j = JobSettings()
    copied: JobSettings = j.copy()
    merged: JobSettings = j.merge({"a": 1})
    back: JobSettings = JobSettings.unflatten({("a",): 1})
    back = JobSettings({("a",): 1}).unflatten()
    del copied, merged, back
