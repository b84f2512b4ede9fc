"""The `Settings` class: a nested dict with attribute access (standard library only, vendorable)."""

# This file must stay importable on its own under any package name: standard library
# imports only, no relative imports. Projects copy it into their own tree.

from __future__ import annotations

import threading
from collections.abc import Mapping
from contextlib import contextmanager
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Hashable,
    Iterator,
    List,
    NoReturn,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    overload,
)

if TYPE_CHECKING:
    from typing import Protocol

__all__ = ["Settings"]

_S = TypeVar("_S", bound="Settings")
_S_co = TypeVar("_S_co", bound="Settings", covariant=True)

#: Keys of a flattened Settings: the path from the root, list indices included.
FlatKey = Tuple[Hashable, ...]


class _Missing:
    """Marker for "no value given" / "no such key" (distinct from None)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()
_dict_get = dict.get
_dict_setitem = dict.__setitem__
_object_setattr = object.__setattr__


class _SuppressState(threading.local):
    """How many `Settings.suppress_missing()` blocks the current thread is inside."""

    depth = 0


_suppress = _SuppressState()


class _MissingKeyError(KeyError, AttributeError):
    """A read of a missing key inside `Settings.suppress_missing()`.

    A KeyError, as in PLAMS; also an AttributeError, so that `hasattr(s, name)` and
    `getattr(s, name, default)` keep working inside the block.
    """

    def __str__(self) -> str:
        return (
            f"{self.args[0]!r}: no such key (inside Settings.suppress_missing() a missing "
            "key raises KeyError instead of giving an empty Settings)"
        )


def _convert(value: Any) -> Any:
    """Return `value` with every plain dict in it (inside lists and tuples too) made a Settings.

    A value that needs no change is returned as the same object, so a list of numbers
    stored into a Settings stays the list the caller holds.
    """
    if isinstance(value, dict):
        if isinstance(value, Settings):
            if value._parent is not None:
                # A detached branch stored explicitly becomes an ordinary node here.
                _object_setattr(value, "_parent", None)
            return value
        return Settings(value)
    kind = type(value)
    if kind is list or kind is tuple or (isinstance(value, tuple) and hasattr(kind, "_make")):
        items = [_convert(item) for item in value]
        if all(new is old for new, old in zip(items, value)):
            return value
        if kind is list:
            return items
        if kind is tuple:
            return tuple(items)
        return kind._make(items)  # a namedtuple keeps its type
    return value


def _copy_value(value: Any) -> Any:
    """Copy the Settings nodes in `value` (also inside lists and tuples); share everything else."""
    if isinstance(value, Settings):
        return value.copy()
    if isinstance(value, dict):
        # Built item by item: Settings(value) would share the Settings inside `value`.
        new = Settings()
        for key, item in value.items():
            _dict_setitem(new, key, _copy_value(item))
        return new
    kind = type(value)
    if kind is list or kind is tuple or (isinstance(value, tuple) and hasattr(kind, "_make")):
        items = [_copy_value(item) for item in value]
        if all(new is old for new, old in zip(items, value)):
            return value
        if kind is list:
            return items
        if kind is tuple:
            return tuple(items)
        return kind._make(items)
    return value


def _plain(value: Any) -> Any:
    """Turn every Settings in `value` into a plain dict (inside lists and tuples too)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    kind = type(value)
    if kind is list:
        return [_plain(item) for item in value]
    if kind is tuple:
        return tuple(_plain(item) for item in value)
    if isinstance(value, tuple) and hasattr(kind, "_make"):
        return kind._make(_plain(item) for item in value)
    return value


def _pairs(other: Any, kwargs: Mapping[str, Any]) -> Iterator[Tuple[Any, Any]]:
    """Yield the (key, value) pairs of a dict.update-style argument, then of `kwargs`."""
    if hasattr(other, "keys"):
        for key in other.keys():  # noqa: SIM118 - dict.update's protocol is keys()
            yield key, other[key]
    else:
        for index, item in enumerate(other):
            pair = tuple(item)
            if len(pair) != 2:
                raise ValueError(
                    f"update sequence element #{index} is {item!r}, which has {len(pair)} "
                    "items; give (key, value) pairs or a mapping"
                )
            yield pair[0], pair[1]
    yield from kwargs.items()


def _as_path(keys: Any) -> Tuple[Any, ...]:
    """Normalise a nested-key argument: a string is one key, any other sequence a path."""
    if isinstance(keys, (str, bytes)) or not isinstance(keys, Sequence):
        return (keys,)
    return tuple(keys)


def _is_index(key: Any) -> bool:
    return isinstance(key, int) and not isinstance(key, bool)


def _child(node: Any, key: Any) -> Any:
    """Return the child of a Settings or list at `key`, or _MISSING (never creates anything)."""
    if isinstance(node, dict):
        return _dict_get(node, key, _MISSING)
    if isinstance(node, list) and _is_index(key) and -len(node) <= key < len(node):
        return node[key]
    return _MISSING


def _entries(node: Any) -> Any:
    """The (key, value) pairs of a mapping, or the (index, item) pairs of a list."""
    return node.items() if isinstance(node, Mapping) else enumerate(node)


def _check_flag(method: str, suppress_missing: Any) -> None:
    """Refuse a `suppress_missing` that is not a bool.

    Before PLAMS's signatures were adopted the second positional argument of
    `get_nested` and `pop_nested` was `default`; a value given there is caught here
    instead of being read as a flag.
    """
    if not isinstance(suppress_missing, bool):
        raise TypeError(
            f"{method}: suppress_missing must be True or False, got {suppress_missing!r}; "
            f"to give a default, pass it by keyword: {method}(keys, default={suppress_missing!r})"
        )


def _lookup(node: Any, path: Tuple[Any, ...]) -> Tuple[Any, int]:
    """Follow `path` down from `node`: (the value, len(path)), or (_MISSING, failing step)."""
    for depth, key in enumerate(path):
        node = _child(node, key)
        if node is _MISSING:
            return _MISSING, depth
    return node, len(path)


def _missing_path(method: str, path: Tuple[Any, ...], depth: int) -> KeyError:
    return KeyError(
        f"{method}: {path[: depth + 1]!r} does not exist (path {path!r}; "
        "suppress_missing=True makes that an error)"
    )


# ---------------------------------------------------------------- unflatten


def _unflatten(self: _S, unflatten_list: bool = True) -> _S:
    """Return the nested Settings that this flat one describes, the opposite of `flatten`.

    `s.flatten().unflatten() == s` for any Settings with string keys. Each key is a
    path (a tuple of keys; any other key is a path of one key). Called on the class,
    `Settings.unflatten(flat)` does the same for any flat mapping.

    Args:
        unflatten_list: Make an integer key a list index (creating lists, padded with
            None where an index is skipped), as `flatten(flatten_list=True)` writes them.

    Returns:
        A new Settings of this one's class. Settings nodes among the values are
        copied, so the result shares no node with this one.

    Raises:
        ValueError: A key is the empty tuple.
        TypeError: Two paths conflict (one goes below a leaf value of the other).
    """
    return _build(type(self), self, unflatten_list)


def _unflatten_mapping(cls: type[_S], flat: Mapping[Any, Any], unflatten_list: bool = True) -> _S:
    """Build a nested Settings from a flat mapping of paths, the opposite of `flatten`.

    `Settings.unflatten(s.flatten()) == s`; the PLAMS spelling is `s.flatten().unflatten()`.

    Args:
        flat: Mapping from tuples of keys to values; a key that is not a tuple is
            a path of one key.
        unflatten_list: Make an integer key a list index (creating lists, padded with
            None where an index is skipped), as `flatten(flatten_list=True)` writes them.

    Returns:
        The new Settings, of the class `unflatten` was called on.

    Raises:
        ValueError: A key is the empty tuple.
        TypeError: Two paths conflict (one goes below a leaf value of the other).
    """
    return _build(cls, flat, unflatten_list)


_unflatten.__name__ = _unflatten_mapping.__name__ = "unflatten"
_unflatten.__qualname__ = _unflatten_mapping.__qualname__ = "Settings.unflatten"


if TYPE_CHECKING:

    class _UnflattenOnClass(Protocol[_S_co]):
        def __call__(self, flat: Mapping[Any, Any], unflatten_list: bool = True) -> _S_co: ...

    class _UnflattenOnInstance(Protocol[_S_co]):
        def __call__(self, unflatten_list: bool = True) -> _S_co: ...


class _Unflatten:
    """`unflatten` both ways: `flat.unflatten()` (PLAMS) and `Settings.unflatten(flat)`.

    On an instance it is the method that unflattens that instance; on the class it is
    a classmethod that unflattens the mapping it is given. A data descriptor, so no
    key hides it.
    """

    @overload
    def __get__(self, obj: None, owner: type[_S]) -> _UnflattenOnClass[_S]: ...

    @overload
    def __get__(self, obj: _S, owner: Optional[type] = None) -> _UnflattenOnInstance[_S]: ...

    def __get__(self, obj: Any, owner: Optional[type] = None) -> Any:
        if obj is None:
            return _unflatten_mapping.__get__(owner)
        return _unflatten.__get__(obj)

    def __set__(self, obj: Any, value: Any) -> NoReturn:
        raise AttributeError(
            "cannot set attribute 'unflatten': it is the name of a Settings method; "
            f"store the key by item instead: s['unflatten'] = {value!r}"
        )


class Settings(Dict[str, Any]):
    """A nested dict with attribute access: `s.a.b = 1` is `s["a"]["b"] = 1`.

    Settings is a real `dict` (so `json.dumps`, `isinstance(s, dict)` and `**s` work)
    whose dict values are always Settings themselves: every dict stored into it, by
    any path (constructor, item or attribute assignment, `update`, `setdefault`,
    inside lists and tuples), is converted on entry.

    Reading a missing key never changes the Settings. It returns an empty, detached
    branch that joins its parent the first time something is written into it, so
    `s.a.b.c = 1` builds the whole path while `x = s.nothing` leaves `s` untouched.
    Attribute names that start with `_` never do this: they raise AttributeError,
    as Python's protocols (pickle, copy, IPython) expect. Inside
    `with Settings.suppress_missing():` a missing key raises KeyError instead.

    Keys are case-sensitive. A key that has the name of a method (`items`, `copy`,
    ...) can be stored and read by item (`s["items"]`), never by attribute.

    Args:
        *args: At most one mapping or iterable of (key, value) pairs, as for `dict`.
        **kwargs: More keys and values, as for `dict`.

    Raises:
        TypeError: More than one positional argument is given.

    Example:
        >>> s = Settings(job={"name": "opt"})
        >>> s.job.name
        'opt'
        >>> s.run.nodes = 2
        >>> s
        Settings({'job': Settings({'name': 'opt'}), 'run': Settings({'nodes': 2})})
    """

    # "__dict__" is the Settings itself (see __new__): an attribute read of an existing
    # key then finds it in the instance dict, in C, without calling any Python code;
    # only missing keys reach __getattr__. The two slots hold the detached-branch link.
    __slots__ = ("__dict__", "__weakref__", "_key", "_parent")

    _parent: Optional[Settings]
    _key: Any

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _shield(cls)  # a subclass's own methods must not be hidden by keys either

    def __new__(cls: type[_S], *args: Any, **kwargs: Any) -> _S:
        """Create an empty node whose attribute namespace is its own contents."""
        self = super().__new__(cls)
        _object_setattr(self, "__dict__", self)
        _object_setattr(self, "_parent", None)
        _object_setattr(self, "_key", None)
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Fill the Settings like `dict(*args, **kwargs)`, converting dicts to Settings."""
        super().__init__()
        if len(args) > 1:
            raise TypeError(
                f"Settings expected at most 1 positional argument, got {len(args)}; "
                "pass one mapping or iterable of (key, value) pairs"
            )
        # Later duplicates win, exactly as in dict(); no recursive merging here.
        for key, value in _pairs(args[0] if args else (), kwargs):
            _dict_setitem(self, key, _convert(value))

    # ----------------------------------------------------------------- item access

    def __missing__(self, key: Any) -> Settings:
        """Return an empty branch for a missing key without inserting it.

        Args:
            key: The key that was not found.

        Returns:
            A new, empty Settings that joins this one at `key` on its first write.

        Raises:
            KeyError: The current thread is inside `Settings.suppress_missing()`.
        """
        if _suppress.depth:
            raise _MissingKeyError(key)
        branch = Settings()
        _object_setattr(branch, "_parent", self)
        _object_setattr(branch, "_key", key)
        return branch

    def __setitem__(self, key: Any, value: Any) -> None:
        """Store `value` at `key`; dicts become Settings, a detached branch joins its parent."""
        value = _convert(value)
        if self._parent is None:
            _dict_setitem(self, key, value)
            return
        home = self._attach()
        _dict_setitem(self, key, value)
        if home is not self:
            home[key] = value

    def _attach(self) -> Settings:
        """Join a detached branch to its parent; return the node that now holds its place.

        A branch whose place was taken in the meantime by another Settings (two reads
        of the same missing name, written one after the other) forwards its writes to
        that Settings, so no write is lost. A place taken by a value that is not a
        Settings is an error rather than a silent overwrite.
        """
        parent = self._parent
        if parent is None:
            return self
        home = parent._attach()
        key = self._key
        current = _dict_get(home, key, _MISSING)
        if current is _MISSING:
            _dict_setitem(home, key, self)
            _object_setattr(self, "_parent", None)
            return self
        if isinstance(current, Settings):
            return current
        path = ".".join(str(k) for k in self._path())
        raise TypeError(
            f"cannot write into the branch {path!r}: its place now holds {current!r} "
            f"({type(current).__name__}), not a Settings; delete that value first or "
            "read the branch again from its parent"
        )

    def _path(self) -> List[Any]:
        """Keys from the outermost known parent down to this detached branch."""
        keys: List[Any] = []
        node: Optional[Settings] = self
        while node is not None and node._parent is not None:
            keys.append(node._key)
            node = node._parent
        return keys[::-1]

    # ------------------------------------------------------------ attribute access

    def __getattr__(self, name: str) -> Any:
        """Return an empty detached branch for a missing key (existing keys never get here).

        Args:
            name: The attribute name that was not found.

        Returns:
            A detached branch, see `__missing__`.

        Raises:
            AttributeError: `name` starts with `_` (such names never auto-create).
            KeyError: The current thread is inside `Settings.suppress_missing()` (the
                error is an AttributeError too, so `hasattr` gives False).
        """
        if name[:1] == "_":
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {name!r}; names that "
                f"start with '_' are never created on read: use s[{name!r}] for such a key"
            )
        return self.__missing__(name)

    def __setattr__(self, name: str, value: Any) -> None:
        """`s.name = value` is `s["name"] = value`, except for the names of methods.

        Raises:
            AttributeError: `name` is a method or other class attribute of Settings.
        """
        attr = getattr(type(self), name, _MISSING)
        if attr is _MISSING:
            self[name] = value
        elif isinstance(attr, property) and attr.fset is not None:
            _object_setattr(self, name, value)  # a subclass's own property setter
        else:
            raise AttributeError(
                f"cannot set attribute {name!r}: it is the name of a {type(self).__name__} "
                f"method or attribute; store the key by item instead: s[{name!r}] = {value!r}"
            )

    def __delattr__(self, name: str) -> None:
        """`del s.name` is `del s["name"]`.

        Raises:
            AttributeError: There is no key `name`.
        """
        if name not in self:
            raise AttributeError(f"cannot delete {name!r}: there is no such key")
        del self[name]

    def __dir__(self) -> List[str]:
        """Class attributes plus the keys that are valid identifiers (for completion)."""
        names = set(dir(type(self)))
        names.update(k for k in self if isinstance(k, str) and k.isidentifier())
        return sorted(names)

    @classmethod
    @contextmanager
    def suppress_missing(cls) -> Iterator[None]:
        """Make reads of missing keys raise KeyError, for the duration of a `with` block.

        Inside `with s.suppress_missing():` (or `with Settings.suppress_missing():`),
        `s["nothing"]` and `s.nothing` raise KeyError instead of returning an empty
        branch, for every Settings read in the thread that entered the block; other
        threads are not affected. For attribute reads the error is also an
        AttributeError, so `hasattr(s, "nothing")` is False. Blocks may nest.

        Yields:
            None.

        Example:
            >>> s = Settings(a={"b": 1})
            >>> with s.suppress_missing():
            ...     s.a.c = 2        # fine: `a` exists, and writing never raises
            ...     s.x.y = 3        # KeyError: 'x'
            Traceback (most recent call last):
            KeyError: ...
        """
        depth = _suppress.depth
        _suppress.depth = depth + 1
        try:
            yield
        finally:
            _suppress.depth = depth

    # ------------------------------------------------------------- dict overrides

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Recursively overwrite with the keys of `other` and `kwargs`.

        Where both sides hold a mapping at the same key, the update goes down into it;
        everywhere else the value from `other` replaces what was there. Settings nodes
        taken from `other` are copied, so the two trees never share a node.

        Args:
            other: A mapping or an iterable of (key, value) pairs, as for `dict.update`.
            **kwargs: More keys and values.
        """
        for key, value in _pairs(other, kwargs):
            current = _dict_get(self, key, _MISSING)
            if isinstance(current, Settings) and isinstance(value, Mapping):
                current.update(value)
            else:
                self[key] = _copy_value(value)

    def setdefault(self, key: str, default: Any = None) -> Any:
        """Return the value at `key`, first storing `default` there if the key is missing.

        Args:
            key: The key to look up.
            default: Stored (converted to Settings if a dict) when `key` is missing.

        Returns:
            The value now stored at `key`.
        """
        current = _dict_get(self, key, _MISSING)
        if current is not _MISSING:
            return current
        self[key] = default
        return _dict_get(self, key)

    def copy(self: _S) -> _S:
        """Return a new tree of Settings nodes holding the same leaf values.

        Lists and tuples that hold Settings are rebuilt so no node is shared; any
        other value (numbers, strings, lists of plain values, objects) is shared.

        Returns:
            The copy, of the same class as this Settings.
        """
        new = type(self).__new__(type(self))
        for key, value in self.items():
            _dict_setitem(new, key, _copy_value(value))
        return new

    def __copy__(self: _S) -> _S:
        return self.copy()

    def __reduce_ex__(self, protocol: Any) -> Tuple[Any, ...]:
        # Rebuilt from the class and its items: the detached-branch link is not kept,
        # and self-references survive because the object exists before its items.
        return (type(self), (), None, None, iter(self.items()))

    def __or__(self, other: Any) -> Settings:  # type: ignore[override]
        """`s | other`: a copy of `s` recursively updated with `other`."""
        if not isinstance(other, Mapping):
            return NotImplemented
        new = self.copy()
        new.update(other)
        return new

    def __ror__(self, other: Any) -> Settings:  # type: ignore[override]
        """`other | s`: a Settings made from `other`, recursively updated with `s`."""
        if not isinstance(other, Mapping):
            return NotImplemented
        new = Settings()
        new.update(other)
        new.update(self)
        return new

    def __ior__(self: _S, other: Any) -> _S:  # type: ignore[override]
        """`s |= other` is `s.update(other)`."""
        self.update(other)
        return self

    # ------------------------------------------------------------ PLAMS methods

    def soft_update(self: _S, other: Mapping[Any, Any]) -> _S:
        """Add what is missing from `other`, recursively; never overwrite a value.

        Args:
            other: The mapping to take missing keys from. It is not changed.

        Returns:
            This Settings (so `s.soft_update(a).soft_update(b)` chains).
        """
        for key, value in other.items():
            current = _dict_get(self, key, _MISSING)
            if current is _MISSING:
                self[key] = _copy_value(value)
            elif isinstance(current, Settings) and isinstance(value, Mapping):
                current.soft_update(value)
        return self

    def merge(self: _S, other: Mapping[Any, Any]) -> _S:
        """Return a copy of this Settings soft-updated with `other`; both stay unchanged.

        Args:
            other: The mapping whose missing keys are added to the copy.

        Returns:
            The new Settings.
        """
        return self.copy().soft_update(other)

    def remove(self: _S, other: Mapping[Any, Any]) -> _S:
        """Delete every leaf that `other` has, found by its path, as PLAMS does.

        Each path to a leaf of `other` (as `other.flatten()` lists them, list indices
        included) names a value here; that value is deleted, whatever its value in
        `other`. A list keeps the elements `other` does not name, and positions refer
        to the list as it was (`[10, 20, 30] - [None, None]` leaves `[30]`). Branches
        and lists emptied this way stay, as `{}` and `[]`; an empty Settings or empty
        list in `other` is a leaf, so it deletes the whole branch or list. A path that
        does not exist here, or goes below one of its leaf values, changes nothing.
        Lists are replaced by new lists rather than changed in place, because copies
        of a Settings share their lists of plain values.

        Args:
            other: The mapping whose leaves are removed. It is not changed.

        Returns:
            This Settings.
        """
        _remove_paths(self, other)
        return self

    def difference(self: _S, other: Mapping[Any, Any]) -> _S:
        """Return a copy of this Settings with the leaves of `other` removed (see `remove`).

        Args:
            other: The mapping whose leaves are left out.

        Returns:
            The new Settings; both operands are unchanged.
        """
        return self.copy().remove(other)

    __iadd__ = soft_update
    __add__ = merge
    __isub__ = remove
    __sub__ = difference

    def as_dict(self) -> Dict[Any, Any]:
        """Return the whole tree as plain nested dicts (also inside lists and tuples).

        Returns:
            A new dict; leaf values are shared, not copied.
        """
        return {key: _plain(value) for key, value in self.items()}

    def get_nested(
        self, keys: Sequence[Any], suppress_missing: bool = False, default: Any = None
    ) -> Any:
        """Return the value at a path of keys, or `default` if the path does not exist.

        Args:
            keys: The path, e.g. `("run", "nodes")`; integers index into lists. A string
                is a single key.
            suppress_missing: Raise KeyError instead of returning `default` when the
                path does not exist (PLAMS's name and position for this flag).
            default: Returned when any step of the path is missing.

        Returns:
            The value found, or `default`. Nothing is created.

        Raises:
            KeyError: The path does not exist and `suppress_missing` is True.
            TypeError: `suppress_missing` is not a bool (a default given by position).
        """
        _check_flag("get_nested", suppress_missing)
        path = _as_path(keys)
        value, depth = _lookup(self, path)
        if value is _MISSING:
            if suppress_missing:
                raise _missing_path("get_nested", path, depth)
            return default
        return value

    def contains_nested(self, keys: Sequence[Any], suppress_missing: bool = False) -> bool:
        """Tell whether a path of keys exists.

        Args:
            keys: The path, e.g. `("run", "nodes")`; integers index into lists.
            suppress_missing: Raise KeyError instead of returning False (as in PLAMS).

        Returns:
            True if every step of the path exists.

        Raises:
            KeyError: The path does not exist and `suppress_missing` is True.
        """
        _check_flag("contains_nested", suppress_missing)
        path = _as_path(keys)
        value, depth = _lookup(self, path)
        if value is _MISSING and suppress_missing:
            raise _missing_path("contains_nested", path, depth)
        return value is not _MISSING

    def set_nested(self, keys: Sequence[Any], value: Any, suppress_missing: bool = False) -> None:
        """Store `value` at a path of keys, creating the Settings on the way.

        Args:
            keys: The path, e.g. `("run", "nodes")`; integers index into existing lists.
            value: The value to store (dicts become Settings).
            suppress_missing: Create nothing: raise KeyError if a step before the last
                is missing (as in PLAMS). Nothing is changed then.

        Raises:
            ValueError: `keys` is empty.
            KeyError: A step before the last is missing and `suppress_missing` is True.
            TypeError: A step of the path holds a value that is neither a Settings nor
                a list, so nothing can be stored below it.
            IndexError: A list index is out of range.
        """
        _check_flag("set_nested", suppress_missing)
        path = _as_path(keys)
        if not path:
            raise ValueError("set_nested needs at least one key; got an empty path")
        node: Any = self
        for depth, key in enumerate(path[:-1]):
            child = _child(node, key)
            if child is _MISSING:
                if suppress_missing:
                    raise _missing_path("set_nested", path, depth)
                if isinstance(node, list):
                    raise IndexError(f"list index {key!r} out of range at {path[: depth + 1]!r}")
                child = Settings()
                node[key] = child
            elif not isinstance(child, (dict, list)):
                raise TypeError(
                    f"cannot set {path!r}: {path[: depth + 1]!r} holds {child!r} "
                    f"({type(child).__name__}), not a Settings; delete it first"
                )
            node = child
        if isinstance(node, list):
            node[path[-1]] = _convert(value)
        else:
            node[path[-1]] = value

    def pop_nested(
        self, keys: Sequence[Any], suppress_missing: bool = False, default: Any = None
    ) -> Any:
        """Remove the value at a path of keys and return it.

        Args:
            keys: The path, e.g. `("run", "nodes")`; integers index into lists.
            suppress_missing: Raise KeyError instead of returning `default` when the
                path does not exist (PLAMS's name and position for this flag).
            default: Returned when the path does not exist.

        Returns:
            The removed value, or `default` (and nothing changes) if the path is missing.

        Raises:
            KeyError: The path does not exist and `suppress_missing` is True.
            TypeError: `suppress_missing` is not a bool (a default given by position).
        """
        _check_flag("pop_nested", suppress_missing)
        path = _as_path(keys)
        if not path:
            if suppress_missing:
                raise KeyError("pop_nested: the path is empty, so there is nothing to pop")
            return default
        parent, depth = _lookup(self, path[:-1])
        if parent is _MISSING or _child(parent, path[-1]) is _MISSING:
            if suppress_missing:
                raise _missing_path("pop_nested", path, depth)
            return default
        return parent.pop(path[-1])

    def nested_keys(
        self, flatten_list: bool = True, include_empty: bool = False
    ) -> Iterator[FlatKey]:
        """Yield the path of every node, branches and leaves, depth first.

        Args:
            flatten_list: Also go into lists, yielding their indices as keys.
            include_empty: Also yield empty Settings (branches with nothing in them).

        Yields:
            Tuples of keys, e.g. `("a",)`, `("a", "b")`, `("a", "b", "c")`, in insertion
            order, each branch followed by everything below it.
        """
        return _walk((), self, flatten_list, include_empty, leaves=True)

    def block_keys(
        self, flatten_list: bool = True, include_empty: bool = False
    ) -> Iterator[FlatKey]:
        """Yield the path of every branch (PLAMS's "blocks"), depth first.

        A branch is a Settings below this one, or, with `flatten_list`, a list that
        holds something. Leaves (any other value, and empty lists) are left out.

        Args:
            flatten_list: Also go into lists: a non-empty list is a branch, and the
                Settings inside it are branches too.
            include_empty: Also yield empty Settings.

        Yields:
            Tuples of keys, e.g. `("a",)`, `("a", "b")` for `s.a.b.c = 1`.
        """
        return _walk((), self, flatten_list, include_empty, leaves=False)

    def flatten(self, flatten_list: bool = True) -> Settings:
        """Return a one-level Settings whose keys are the paths (tuples) to the leaves.

        Empty Settings and empty lists are kept as leaf values, so `unflatten` gives
        the same tree back: `s.flatten().unflatten() == s`.

        Args:
            flatten_list: Also go into lists, using their indices as keys.

        Returns:
            A new Settings, e.g. `Settings({("a", "b", "c"): 1})`. Leaf values are
            shared; Settings nodes among them (empty ones, or inside lists kept whole)
            are copied, so the result shares no node with this Settings.
        """
        kinds: Tuple[type, ...] = (dict, list) if flatten_list else (dict,)
        flat = Settings()
        by_path: Dict[Any, Any] = flat  # the keys are tuples, not the str of Dict[str, Any]

        def walk(prefix: FlatKey, node: Any) -> None:
            for key, value in _entries(node):
                path = (*prefix, key)
                if isinstance(value, kinds) and value:
                    walk(path, value)
                else:
                    _dict_setitem(by_path, path, _copy_value(value))

        walk((), self)
        return flat

    unflatten = _Unflatten()
    """Return the nested Settings that a flat one describes, the opposite of `flatten`.

    Two spellings: `flat.unflatten(unflatten_list=True)` on a flat Settings (PLAMS's),
    and `Settings.unflatten(flat, unflatten_list=True)` on the class, for any mapping
    from paths (tuples of keys; any other key is a path of one key) to values.
    `s.flatten().unflatten() == s` for any Settings with string keys.

    With `unflatten_list` (the default) an integer key is a list index, creating
    lists (padded with None where a position is skipped), as `flatten()` writes
    them; with `unflatten_list=False` integers stay keys. The result is a new
    Settings of the class `unflatten` was called on (or of the flat one's); Settings
    nodes among the values are copied, so it shares no node with them. The empty
    tuple as a key raises ValueError; two paths that conflict (one goes below a leaf
    of the other), or an `unflatten_list` that is not a bool (a mapping given to
    the instance spelling), raise TypeError.
    """

    def compare(self, other: Mapping[Any, Any]) -> Dict[str, Dict[FlatKey, Any]]:
        """Describe how this Settings differs from `other`, by flattened key.

        Args:
            other: The Settings (or mapping) to compare against.

        Returns:
            A dict with three entries, each keyed by paths (tuples) as in `flatten`:
            `"added"` maps the paths only this Settings has to its values,
            `"removed"` maps the paths only `other` has to its values, and
            `"modified"` maps the paths both have with different values to the pair
            `(value here, value in other)`.
        """
        mine: Dict[Any, Any] = self.flatten()
        theirs: Dict[Any, Any] = (
            other.flatten() if isinstance(other, Settings) else Settings(other).flatten()
        )
        return {
            "added": {k: v for k, v in mine.items() if k not in theirs},
            "removed": {k: v for k, v in theirs.items() if k not in mine},
            "modified": {
                k: (v, theirs[k]) for k, v in mine.items() if k in theirs and theirs[k] != v
            },
        }

    # ------------------------------------------------------------------- display

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict.__repr__(self)})"

    def __str__(self) -> str:
        if not self:
            return "<empty Settings>"
        return "\n".join(self._lines(0))

    def _lines(self, indent: int) -> Iterator[str]:
        pad = " " * indent
        for key, value in self.items():
            if isinstance(value, Settings):
                if value:
                    yield f"{pad}{key}:"
                    yield from value._lines(indent + 2)
                else:
                    yield f"{pad}{key}: <empty Settings>"
            else:
                text = str(value).replace("\n", "\n" + pad + "  ")
                yield f"{pad}{key}: {text}"


# --------------------------------------------------------------------- flat trees


def _walk(
    prefix: FlatKey, node: Any, flatten_list: bool, include_empty: bool, leaves: bool
) -> Iterator[FlatKey]:
    """The paths below `node` for `nested_keys` (leaves=True) and `block_keys` (False)."""
    for key, value in _entries(node):
        path = (*prefix, key)
        if isinstance(value, dict):
            if value or include_empty:
                yield path
                yield from _walk(path, value, flatten_list, include_empty, leaves)
        elif flatten_list and isinstance(value, list) and value:
            yield path
            yield from _walk(path, value, flatten_list, include_empty, leaves)
        elif leaves:
            yield path


def _build(cls: type[_S], flat: Mapping[Any, Any], unflatten_list: bool) -> _S:
    """The nested tree of `cls` that a flat mapping of paths describes (see `unflatten`)."""
    if not isinstance(unflatten_list, bool):
        raise TypeError(
            f"unflatten_list must be True or False, got {unflatten_list!r}; to unflatten "
            "a mapping, call unflatten on the class: Settings.unflatten(flat), or on the "
            "flat Settings itself: flat.unflatten()"
        )
    root = cls()
    for raw_path, value in list(flat.items()):
        path = raw_path if isinstance(raw_path, tuple) else (raw_path,)
        if not path:
            raise ValueError("unflatten got the empty tuple as a key; every path needs a key")
        node: Any = root
        for depth, key in enumerate(path[:-1]):
            wants_list = unflatten_list and _is_index(path[depth + 1])
            child = _child(node, key)
            if child is _MISSING or child is None:
                child = [] if wants_list else Settings()
                _place(node, key, child)
            elif not isinstance(child, (dict, list)):
                raise TypeError(
                    f"unflatten: path {raw_path!r} goes below {path[: depth + 1]!r}, "
                    f"which already holds the leaf {child!r}"
                )
            node = child
        _place(node, path[-1], _copy_value(value))
    return root


def _place(node: Any, key: Any, value: Any) -> None:
    """Store `value` at `key` of a Settings, or at index `key` of a list (padding with None)."""
    if isinstance(node, list):
        if not _is_index(key) or key < 0:
            raise TypeError(f"unflatten: list index must be a non-negative int, got {key!r}")
        node.extend([None] * (key + 1 - len(node)))
        node[key] = value
    else:
        node[key] = value


def _remove_paths(node: Any, other: Any) -> Any:
    """Delete from `node` (a Settings or list) the values at the leaf paths of `other`.

    A Settings is changed in place and returned. A list is never changed in place,
    because `copy` shares lists of plain values between trees (so `a - b` would change
    `a`): the list that should replace it is returned instead.
    """
    entries = list(_entries(other))  # `other` may be `node` itself, or hold it
    if isinstance(node, list):
        size = len(node)
        chosen: Dict[int, Any] = {}
        for key, value in entries:
            if _is_index(key) and -size <= key < size:
                chosen[key % size] = value
        if not chosen:
            return node
        kept = list(node)
        # Positions refer to the list as it was: delete from the end, so none moves.
        for index in sorted(chosen, reverse=True):
            value = chosen[index]
            if _is_branch(value):
                child = kept[index]
                if isinstance(child, (dict, list)):
                    kept[index] = _remove_paths(child, value)
            else:
                del kept[index]
        return kept
    for key, value in entries:
        child = _dict_get(node, key, _MISSING)
        if child is _MISSING:
            continue
        if not _is_branch(value):
            del node[key]
        elif isinstance(child, (dict, list)):
            new = _remove_paths(child, value)
            if new is not child:
                node[key] = new
    return node


def _is_branch(value: Any) -> bool:
    """A value of `other` that `remove` goes into (as `flatten` would), not a leaf to delete."""
    return isinstance(value, (Mapping, list)) and bool(value)


# ------------------------------------------------------------------ method shields


class _Method(property):
    """A method that no key can hide, and that also works called through the class.

    The instance namespace is the Settings itself, and an instance namespace beats a
    plain function on the class: a key "items" would replace `s.items`. A property
    beats the namespace, and binds the method in C, so `s.items` costs what a plain
    method costs. Read on the class (`Settings.update`) a property is itself; this one
    then calls the method and carries its name, doc and `__wrapped__`, so that
    `Settings.update(s, other)`, `inspect.signature(Settings.update)`, `help()` and
    `functools.wraps` work as for any dict subclass.
    """

    def __init__(self, method: Any, owner: type) -> None:
        super().__init__(method.__get__)
        name = getattr(method, "__name__", "?")
        self.__doc__ = getattr(method, "__doc__", None)
        self.__wrapped__ = method
        self.__name__ = name
        self.__qualname__ = f"{owner.__qualname__}.{name}"
        self.__module__ = owner.__module__
        self.__objclass__ = owner

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__wrapped__(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<method {self.__qualname__!r} (a key never hides it)>"

    def __reduce__(self) -> Tuple[Any, ...]:
        return (getattr, (self.__objclass__, self.__name__))


class _ClassLevelShield:
    """Data descriptor for a classmethod or staticmethod: works on the class and instances."""

    def __init__(self, method: Any) -> None:
        self._method = method
        self.__doc__ = getattr(method, "__doc__", None)

    def __get__(self, obj: Any, owner: Optional[type] = None) -> Callable[..., Any]:
        return self._method.__get__(obj, owner if owner is not None else type(obj))  # type: ignore[no-any-return]

    def __set__(self, obj: Any, value: Any) -> None:
        raise AttributeError("cannot set a Settings classmethod or staticmethod by attribute")


def _shield(cls: type) -> None:
    """Make the public methods of `cls` data descriptors, so a key never hides a method.

    Plain methods become `_Method`s; classmethods and staticmethods `_ClassLevelShield`s.
    What already is a data descriptor (a property, `unflatten`) is left as it is.
    """
    for name in dir(cls):
        if name.startswith("_"):
            continue
        raw: Any = _MISSING
        for klass in cls.__mro__:
            if name in klass.__dict__:
                raw = klass.__dict__[name]
                break
        if hasattr(type(raw), "__set__") or not hasattr(raw, "__get__"):
            continue
        if isinstance(raw, (classmethod, staticmethod)) or (
            type(raw).__name__ == "classmethod_descriptor"
        ):
            setattr(cls, name, _ClassLevelShield(raw))
        elif callable(raw):
            setattr(cls, name, _Method(raw, cls))


_shield(Settings)
