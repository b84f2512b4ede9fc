"""The adapter from a PLAMS-style scheme Settings to the typed `Scheduler` contract, and its checks.

This is the one place in runner_grid that looks a scheme's commands and parsers up by
their keys (``commands.getid``, ``commands.running``...).
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, Generic, Optional, TypeVar, overload

from runner_grid._commands import batch_commands, special_prefixes, split_command
from runner_grid._limits import Limits
from runner_grid.schemes._base import End, Listing, Scheduler

if TYPE_CHECKING:
    from collections.abc import Sequence

    from runner_core import Resources

T = TypeVar("T")

__all__ = ["REQUIRED_KEYS", "Scheme", "SchemeError", "missing_keys"]

logger = logging.getLogger(__name__)

#: Keys a scheme must have (the seed's); the rest are optional.
REQUIRED_KEYS = (
    "workdir",
    "output",
    "error",
    "commands.submit",
    "commands.check",
    "commands.getid",
    "commands.running",
)

_MISSING = object()

# What each key may hold, as (description for the message, test).
_Check = tuple[str, Callable[[Any], bool]]


def _is_flag(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _is_command(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    return (
        isinstance(value, (list, tuple))
        and bool(value)
        and all(isinstance(part, str) for part in value)
    )


def _is_seconds(value: Any) -> bool:
    return value is None or (
        isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
    )


def _is_strings(value: Any) -> bool:
    return value is None or (
        isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
    )


def _is_special(value: Any) -> bool:
    return value is None or (
        isinstance(value, Mapping)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    )


def _is_bool(value: Any) -> bool:
    return value is None or isinstance(value, bool)


_FLAG: _Check = ("a flag such as '-o', or None", _is_flag)
_COMMAND: _Check = ("a command: a string or a list of strings", _is_command)
_CALLABLE: _Check = ("a callable", callable)
_COMMAND_OR_CALLABLE: _Check = (
    "a command (string or list of strings) or a callable that builds them",
    lambda v: callable(v) or _is_command(v),
)
_SECONDS: _Check = ("a number of seconds >= 0", _is_seconds)
_STRINGS: _Check = ("a list of strings", _is_strings)
_SPECIAL: _Check = ("a mapping of runflag name -> flag prefix (strings)", _is_special)


def _is_faults(value: Any) -> bool:
    return value is None or (
        isinstance(value, Mapping)
        and set(value) <= {"retry", "uncertain", "limit"}
        and all(_is_strings(v) for v in value.values())
    )


def _is_count(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)


_ARRAY: dict[str, _Check] = {
    "index": ("a list of environment variable names (the task's index)", _is_strings),
    "output_index": (
        "what stands for the task's index in an output path ('%a', '$TASK_ID'), or None",
        _is_flag,
    ),
    "throttle": ("True or False", _is_bool),
    "max_size": (
        "a whole number >= 1, or None (ask the scheduler)",
        lambda v: v is None or (_is_count(v) and v >= 1),
    ),
}


def _is_array(value: Any) -> bool:
    return value is None or isinstance(value, Mapping)


_TOP: dict[str, _Check] = {
    "workdir": _FLAG,
    "output": _FLAG,
    "error": _FLAG,
    "special": _SPECIAL,
    "commands": ("a mapping of the scheme's commands", lambda v: isinstance(v, Mapping)),
    "check_timeout": _SECONDS,
    "submit_timeout": _SECONDS,
    "exitcode_wait": _SECONDS,
    "unset_env": _STRINGS,
    "directives": _STRINGS,
    "tag_flag": ("a flag prefix such as '--comment=' or '-N ', or None", _is_flag),
    "long_flags": ("True or False", _is_bool),
    "submit_retries": ("a whole number >= 0", _is_count),
    "submit_backoff": _SECONDS,
    "submit_faults": (
        "a mapping with 'retry', 'uncertain' and/or 'limit', each a list of regular expressions",
        _is_faults,
    ),
    "array": ("a mapping: index, output_index, throttle, max_size", _is_array),
}
_COMMANDS: dict[str, _Check] = {
    "submit": _COMMAND,
    "getid": _CALLABLE,
    "check": _COMMAND_OR_CALLABLE,
    "running": _CALLABLE,
    "started": _CALLABLE,
    "check_error": _CALLABLE,
    "cancel": _COMMAND_OR_CALLABLE,
    "exitcode": _CALLABLE,
    "parse_exitcode": _CALLABLE,
    "parse_end": _CALLABLE,
    "ended_in_part": _CALLABLE,
    "probe": _COMMAND,
    "detect": _CALLABLE,
    "find_tag": _CALLABLE,
    "parse_tag": _CALLABLE,
    "array": _CALLABLE,
    "task_id": _CALLABLE,
    "array_limit": _CALLABLE,
    "parse_array_limit": _CALLABLE,
    "resources": _CALLABLE,
    "directive_resources": _CALLABLE,
    "limits": _CALLABLE,
    "parse_limits": _CALLABLE,
    "special": _SPECIAL,  # the seed's prose spelling of the top-level special
}


class SchemeError(ValueError):
    """A scheme with a missing, unknown or ill-typed key; the message names it and the fix."""


def missing_keys(scheme: Mapping[str, Any]) -> list[str]:
    """Return the required keys a scheme lacks (or holds a non-callable parser under).

    Args:
        scheme: the scheme to check.

    Returns:
        Dotted key names, empty when the scheme is complete.
    """
    missing = []
    for dotted in REQUIRED_KEYS:
        node: Any = scheme
        for part in dotted.split("."):
            node = node.get(part, _MISSING) if isinstance(node, Mapping) else _MISSING
        if node is _MISSING or (
            dotted in ("commands.getid", "commands.running") and not callable(node)
        ):
            missing.append(dotted)
    return missing


def _unknown(name: str, key: str, known: Mapping[str, Any]) -> SchemeError:
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return SchemeError(
        f"grid scheme {name!r} has an unknown key {key!r}{hint}; known keys: "
        f"{', '.join(sorted(known))}"
    )


def _check(name: str, key: str, value: Any, check: _Check) -> None:
    what, ok = check
    if not ok(value):
        raise SchemeError(f"grid scheme {name!r}: {key} is {value!r}; it must be {what}")


def _valid(branch: Any, key: str, checks: Mapping[str, _Check]) -> Any:
    """``branch[key]`` when it passes its check, else None (the default then applies)."""
    value = branch.get(key) if isinstance(branch, Mapping) else None
    return value if value is not None and checks[key][1](value) else None


def _top(raw: Mapping[str, Any], key: str) -> Any:
    return _valid(raw, key, _TOP)


def _array(raw: Mapping[str, Any], key: str) -> Any:
    return _valid(_valid(raw, "array", _TOP), key, _ARRAY)


def _or(value: Any, default: T, kind: Callable[[Any], T]) -> T:
    return default if value is None else kind(value)


def _submit_of(raw: Mapping[str, Any]) -> Any:
    commands = raw.get("commands")
    submit = commands.get("submit") if isinstance(commands, Mapping) else None
    return submit if _is_command(submit) else ()


class _Key(Generic[T]):
    """A contract setting of `Scheme`, read from the scheme's mapping at every use.

    A value set on the instance itself (``scheme.check_timeout = 5``) shadows it, as for
    any class attribute of a `Scheduler`.
    """

    def __init__(self, read: Callable[[Mapping[str, Any]], T]) -> None:
        self._read = read

    @overload
    def __get__(self, obj: None, owner: Any) -> _Key[T]: ...
    @overload
    def __get__(self, obj: Scheme, owner: Any) -> T: ...
    def __get__(self, obj: Optional[Scheme], owner: Any) -> Any:
        return self if obj is None else self._read(obj.raw)


class Scheme(Scheduler):
    """A PLAMS-style scheme mapping (a Settings) as a `Scheduler`, every default filled in.

    Built afresh for each use (`Scheme.of(runner.settings)`), so a change to
    `runner.settings` applies at the next submission or check, and a bad change is an
    error naming the key rather than a silent default. Every method reads the scheme's
    keys: ``commands.getid`` is `parse_id`, ``commands.check`` and ``commands.running``
    are `check_argvs` and `parse_listing`, and so on (the docs page "Writing your own
    scheme" lists them all).

    ``Scheme(raw, name)`` itself checks nothing: a key holding a value of the wrong type
    counts as absent (its default applies). `Scheme.of` refuses such a scheme instead.

    The other attributes are `Scheduler`'s (``check_timeout``, ``tag_flag``,
    ``array_index``...), each read from the key of the same name (``workdir_flag`` from
    ``workdir``, ``array_index`` from ``array.index``...).

    Attributes:
        name: the scheme's name (for messages).
        raw: the mapping itself.
        commands: its ``commands`` mapping.
    """

    # The contract's settings, each read from its key at every use (nothing is copied).
    check_timeout = _Key(lambda raw: float(_top(raw, "check_timeout") or Scheduler.check_timeout))
    submit_timeout = _Key(
        lambda raw: float(_top(raw, "submit_timeout") or Scheduler.submit_timeout)
    )
    exitcode_wait = _Key(lambda raw: float(_top(raw, "exitcode_wait") or 0))
    unset_env = _Key(lambda raw: tuple(_top(raw, "unset_env") or ()))
    directives = _Key(lambda raw: tuple(_top(raw, "directives") or ()))
    tag_flag = _Key(lambda raw: _top(raw, "tag_flag") or None)
    long_flags = _Key(lambda raw: bool(_top(raw, "long_flags")))
    submit_retries = _Key(
        lambda raw: _or(_top(raw, "submit_retries"), Scheduler.submit_retries, int)
    )
    submit_backoff = _Key(
        lambda raw: _or(_top(raw, "submit_backoff"), Scheduler.submit_backoff, float)
    )
    submit_faults = _Key(
        lambda raw: {
            kind: tuple(str(p) for p in patterns or ())
            for kind, patterns in (_top(raw, "submit_faults") or {}).items()
        }
    )
    array_index = _Key(lambda raw: tuple(_array(raw, "index") or ()))
    array_output_index = _Key(lambda raw: _array(raw, "output_index") or None)
    array_throttle = _Key(lambda raw: bool(_array(raw, "throttle")))
    array_max_size = _Key(lambda raw: _array(raw, "max_size") or None)
    submit_command = _Key(_submit_of)
    workdir_flag = _Key(lambda raw: _top(raw, "workdir"))
    output_flag = _Key(lambda raw: _top(raw, "output"))
    error_flag = _Key(lambda raw: _top(raw, "error"))
    special = _Key(special_prefixes)

    def __init__(self, raw: Mapping[str, Any], name: str = "custom") -> None:
        """Wrap a mapping as it is; use `Scheme.of` to validate it first."""
        self.raw = raw
        self.name = name
        commands = raw.get("commands")
        self.commands: Mapping[str, Any] = commands if isinstance(commands, Mapping) else {}

    @classmethod
    def of(cls, raw: Mapping[str, Any], name: str = "custom") -> Scheme:
        """Validate `raw` and return its view.

        Args:
            raw: the scheme (a Settings or any mapping).
            name: its name, for messages.

        Returns:
            The view.

        Raises:
            SchemeError: a required key is missing (all of them are listed), a key is not
                one a scheme has (with the closest known one), or a value has the wrong type.
        """
        missing = missing_keys(raw)
        if missing:
            raise SchemeError(
                f"grid scheme {name!r} lacks {', '.join(missing)}; add them (commands.getid and "
                "commands.running must be callables), see the docs page 'Writing your own scheme'"
            )
        for key, value in raw.items():
            if key not in _TOP:
                raise _unknown(name, str(key), _TOP)
            _check(name, key, value, _TOP[key])
        for key, value in raw["commands"].items():
            if key not in _COMMANDS:
                raise _unknown(name, f"commands.{key}", {f"commands.{k}": 1 for k in _COMMANDS})
            _check(name, f"commands.{key}", value, _COMMANDS[key])
        for key, value in (raw.get("array") or {}).items():
            if key not in _ARRAY:
                raise _unknown(name, f"array.{key}", {f"array.{k}": 1 for k in _ARRAY})
            _check(name, f"array.{key}", value, _ARRAY[key])
        return cls(raw, name)

    def get(self, key: str) -> Optional[Any]:
        """The command or parser `commands.<key>`, or None when the scheme has none."""
        return self.commands.get(key)

    def _argvs(self, key: str, *args: Any) -> list[list[str]]:
        """The argvs the callable ``commands.<key>`` builds from `args`, or [] without one."""
        build = self.get(key)
        if not callable(build):
            return []
        return [split_command(argv, f"commands.{key}") for argv in build(*args)]

    # --- submitting: commands.getid -----------------------------------------------------

    def parse_id(self, output: str) -> Optional[str]:
        """``commands.getid(output)``, as a string; None when it finds no id."""
        found = self.commands["getid"](output)
        return str(found) if found else None

    # --- the queue: commands.check, running, started, check_error -----------------------

    def check_argvs(self, ids: Sequence[str]) -> list[list[str]]:
        """``commands.check(ids)``, or its bare command (PLAMS: a listing of the whole queue)."""
        check = self.commands["check"]
        if callable(check):
            return self._argvs("check", list(ids))
        return [split_command(check, "commands.check")]

    def parse_listing(self, output: str) -> Listing:
        """``commands.running(output)``, and ``commands.started(output)`` when the scheme has it.

        ``started`` is only a hint (a job's own record of its start counts too): when it
        refuses the output, no job counts as started by the listing.

        Raises:
            ValueError, TypeError: ``commands.running`` refused the output.
        """
        queued = [str(jobid) for jobid in self.commands["running"](output)]
        begun: list[str] = []
        started = self.get("started")
        if callable(started):
            try:
                begun = [str(jobid) for jobid in started(output)]
            except (ValueError, TypeError) as exc:
                logger.debug("commands.started of scheme %r refused a listing: %s", self.name, exc)
        return Listing(queued, begun)

    def check_error(
        self, ids: Sequence[str], returncode: int, stdout: str, stderr: str
    ) -> Optional[list[str]]:
        """``commands.check_error(ids, returncode, stdout, stderr)``; None without one."""
        check_error = self.get("check_error")
        if not callable(check_error):
            return None
        answer = check_error(list(ids), returncode, stdout, stderr)
        return None if answer is None else [str(jobid) for jobid in answer]

    # --- how a job ended: commands.exitcode, parse_end, parse_exitcode -----------------

    @property
    def tells_reasons(self) -> bool:
        """Whether the scheme has ``commands.parse_end`` (``parse_exitcode`` gives no reason)."""
        return callable(self.get("parse_end"))

    def ended_in_part(self, stderr_tail: str) -> bool:
        """``commands.ended_in_part(stderr_tail)``; False without it."""
        check = self.get("ended_in_part")
        return bool(check(stderr_tail)) if callable(check) else False

    def end_argvs(self, jobid: str) -> list[list[str]]:
        """``commands.exitcode(jobid)``; [] without it or without a parser for its answers."""
        if self.get("parse_end") is None and self.get("parse_exitcode") is None:
            return []
        return self._argvs("exitcode", jobid)

    def parse_end(self, output: str) -> Optional[End]:
        """``commands.parse_end(output)``, else ``(commands.parse_exitcode(output), None)``."""
        parse_end = self.get("parse_end")
        if callable(parse_end):
            end: Optional[End] = parse_end(output)
            return end
        parse_code = self.get("parse_exitcode")
        code = parse_code(output) if callable(parse_code) else None
        if isinstance(code, int) and not isinstance(code, bool):
            return code, None
        return None

    # --- cancelling: commands.cancel ----------------------------------------------------

    @property
    def can_cancel(self) -> bool:
        """Whether the scheme has ``commands.cancel``."""
        return self.get("cancel") is not None

    def cancel_argvs(self, ids: Sequence[str]) -> list[list[str]]:
        """``commands.cancel(ids)``, or its bare command with the ids appended (batched)."""
        cancel = self.get("cancel")
        if cancel is None:
            return []
        if callable(cancel):
            return self._argvs("cancel", list(ids))
        return batch_commands(split_command(cancel, "commands.cancel"), list(ids))

    # --- tags: commands.find_tag, parse_tag ---------------------------------------------

    @property
    def can_find_tags(self) -> bool:
        """Whether the scheme has ``commands.find_tag`` and ``commands.parse_tag``."""
        return callable(self.get("find_tag")) and callable(self.get("parse_tag"))

    def find_tag_argvs(self, tag: str) -> list[list[str]]:
        """``commands.find_tag(tag)``."""
        return self._argvs("find_tag", tag)

    def parse_tag(self, tag: str, returncode: int, stdout: str, stderr: str) -> Optional[str]:
        """``commands.parse_tag(tag, returncode, stdout, stderr)``; None without one.

        Raises:
            ValueError: the answer does not tell.
        """
        parse = self.get("parse_tag")
        found = parse(tag, returncode, stdout, stderr) if callable(parse) else None
        return str(found) if found else None

    # --- arrays: commands.array, task_id, array_limit, parse_array_limit ----------------

    @property
    def has_arrays(self) -> bool:
        """Whether the scheme has job arrays: ``commands.array``, ``task_id``, ``array.index``."""
        return bool(self.array_index) and bool(self.get("array")) and bool(self.get("task_id"))

    def array_args(self, count: int, throttle: int) -> list[str]:
        """``commands.array(count, throttle)``.

        Raises:
            SchemeError: the scheme has no ``commands.array``.
        """
        build = self.get("array")
        if not callable(build):
            raise SchemeError(f"grid scheme {self.name!r} has no commands.array: no job arrays")
        return split_command(build(count, throttle), "commands.array")

    def task_id(self, array_id: str, index: int) -> str:
        """``commands.task_id(array_id, index)``.

        Raises:
            SchemeError: the scheme has no ``commands.task_id``.
        """
        task_id = self.get("task_id")
        if not callable(task_id):
            raise SchemeError(f"grid scheme {self.name!r} has no commands.task_id: no job arrays")
        return str(task_id(array_id, index))

    def array_limit_argvs(self) -> list[list[str]]:
        """``commands.array_limit()``; [] without it or without ``commands.parse_array_limit``."""
        if self.get("parse_array_limit") is None:
            return []
        return self._argvs("array_limit")

    def parse_array_limit(self, output: str) -> Optional[int]:
        """``commands.parse_array_limit(output)``; None without one."""
        parse = self.get("parse_array_limit")
        found = parse(output) if callable(parse) else None
        return found if isinstance(found, int) and not isinstance(found, bool) else None

    # --- resources: commands.resources, directive_resources -----------------------------

    @property
    def maps_resources(self) -> bool:
        """Whether the scheme has ``commands.resources`` (without, resource keys are plain
        run flags, as in PLAMS: a special key's prefix, or ``-key value``)."""
        return callable(self.get("resources"))

    def resource_args(self, resources: Resources) -> list[str]:
        """``commands.resources(resources)``: the submit flags of a job's resources.

        Raises:
            SchemeError: the scheme has no ``commands.resources``.
            ValueError: the scheduler cannot give a resource asked for.
        """
        build = self.get("resources")
        if not callable(build):
            raise SchemeError(
                f"grid scheme {self.name!r} has no commands.resources: resource run flags "
                "are plain flags there"
            )
        args = build(resources)
        return split_command(args, "commands.resources") if args else []

    def directive_resources(self, line: str) -> list[str]:
        """``commands.directive_resources(line)``; [] without one."""
        read = self.get("directive_resources")
        return [str(key) for key in read(line)] if callable(read) else []

    # --- limits: commands.limits, parse_limits ------------------------------------------

    @property
    def reads_limits(self) -> bool:
        """Whether the scheme has ``commands.limits`` and ``commands.parse_limits``."""
        return callable(self.get("limits")) and callable(self.get("parse_limits"))

    def limit_argvs(self) -> list[list[str]]:
        """``commands.limits()``; [] without it or without ``commands.parse_limits``."""
        return self._argvs("limits") if self.reads_limits else []

    def parse_limits(self, output: str) -> Limits:
        """``commands.parse_limits(output)``.

        Raises:
            ValueError: it gave no `runner_grid.Limits`, or the scheme has none.
        """
        parse = self.get("parse_limits")
        found = parse(output) if callable(parse) else None
        if not isinstance(found, Limits):
            raise ValueError(
                f"grid scheme {self.name!r}: commands.parse_limits gave {found!r}, "
                "not a runner_grid.Limits"
            )
        return found

    # --- detection: commands.probe, detect ----------------------------------------------

    def probe_argv(self) -> Optional[list[str]]:
        """``commands.probe``, else the submit command's program with ``--version`` (as PLAMS).

        Raises:
            ValueError, TypeError: the command is empty or not a command.
        """
        probe = self.get("probe")
        if probe:
            return split_command(probe, "commands.probe")
        submit = self.get("submit")
        return [split_command(submit, "commands.submit")[0], "--version"] if submit else None

    def detect(self, returncode: int, output: str) -> bool:
        """``commands.detect(returncode, output)``, else whether the probe exited 0."""
        detect = self.get("detect")
        return bool(detect(returncode, output)) if callable(detect) else returncode == 0
