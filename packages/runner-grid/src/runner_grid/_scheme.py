"""One validated view of a scheme Settings: every key, its default and its check in one place."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, Callable, Optional

__all__ = ["REQUIRED_KEYS", "Scheme", "SchemeError", "missing_keys"]

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

#: Seconds a check, cancel or exit-code query may run when the scheme sets no check_timeout.
DEFAULT_QUERY_TIMEOUT = 60.0
#: Seconds the submit command may run when the scheme sets no submit_timeout.
DEFAULT_SUBMIT_TIMEOUT = 120.0
#: Tries after the first for a submission that failed transiently, and the first back-off.
DEFAULT_SUBMIT_RETRIES = 3
DEFAULT_SUBMIT_BACKOFF = 2.0

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
        and set(value) <= {"retry", "uncertain"}
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
    "throttle": ("True or False", lambda v: v is None or isinstance(v, bool)),
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
    "long_flags": ("True or False", lambda v: v is None or isinstance(v, bool)),
    "submit_retries": ("a whole number >= 0", _is_count),
    "submit_backoff": _SECONDS,
    "submit_faults": (
        "a mapping with 'retry' and/or 'uncertain', each a list of regular expressions",
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
    "probe": _COMMAND,
    "detect": _CALLABLE,
    "find_tag": _CALLABLE,
    "parse_tag": _CALLABLE,
    "array": _CALLABLE,
    "task_id": _CALLABLE,
    "array_limit": _CALLABLE,
    "parse_array_limit": _CALLABLE,
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


class Scheme:
    """A read-only, validated view of a scheme mapping, with every default filled in.

    Built afresh for each use (`Scheme.of(runner.settings)`), so a change to
    `runner.settings` applies at the next submission or check, and a bad change is an
    error naming the key rather than a silent default.

    Attributes:
        name: the scheme's name (for messages).
        raw: the mapping itself (what `build_submit_argv` reads its flags from).
        commands: the `commands` mapping.
        check_timeout, submit_timeout, exitcode_wait: seconds.
        unset_env: environment variable names (``*`` suffix: a prefix) left out of queries.
        directives: what a scheduler directive line of a runscript starts with, or ().
        tag_flag: the flag prefix that carries a job's tag in its submission, or None.
        long_flags: whether a plain runflag key of more than one letter becomes
            ``--key=value`` (GNU-style options, SLURM) rather than ``-key value`` (the
            default, PLAMS's rule; Grid Engine and PBS have multi-letter single-dash options).
        submit_retries, submit_backoff: tries after the first for a transient submit
            fault, and the first wait between two (doubled each time, at most 60 s).
        submit_faults: ``{"retry": [...], "uncertain": [...]}`` regular expressions
            telling a failed submission's output apart (see `runner_grid._submitter`).
        array_index: the variables a task of a job array finds its index in (the first one
            set wins), or () when the scheme has no job arrays.
        array_output_index: what the scheduler replaces with a task's index in its output
            paths, or None (each task then redirects its own output).
        array_throttle: whether the scheme's ``commands.array`` can cap the tasks running at
            once (``maxjobs``).
        array_max_size: the most tasks of one array the scheme says, or None (ask the
            scheduler with ``commands.array_limit``, else 1,000).
    """

    __slots__ = (
        "array_index",
        "array_max_size",
        "array_output_index",
        "array_throttle",
        "check_timeout",
        "commands",
        "directives",
        "exitcode_wait",
        "long_flags",
        "name",
        "raw",
        "submit_backoff",
        "submit_faults",
        "submit_retries",
        "submit_timeout",
        "tag_flag",
        "unset_env",
    )

    def __init__(self, raw: Mapping[str, Any], name: str) -> None:
        """Wrap an already validated mapping; use `Scheme.of`."""
        self.raw = raw
        self.name = name
        self.commands: Mapping[str, Any] = raw.get("commands") or {}
        self.check_timeout = float(raw.get("check_timeout") or DEFAULT_QUERY_TIMEOUT)
        self.submit_timeout = float(raw.get("submit_timeout") or DEFAULT_SUBMIT_TIMEOUT)
        self.exitcode_wait = float(raw.get("exitcode_wait") or 0)
        self.unset_env = tuple(str(p) for p in raw.get("unset_env") or ())
        self.directives = tuple(str(p) for p in raw.get("directives") or ())
        self.tag_flag: Optional[str] = raw.get("tag_flag") or None
        self.long_flags = bool(raw.get("long_flags"))
        retries = raw.get("submit_retries")
        self.submit_retries = DEFAULT_SUBMIT_RETRIES if retries is None else int(retries)
        backoff = raw.get("submit_backoff")
        self.submit_backoff = DEFAULT_SUBMIT_BACKOFF if backoff is None else float(backoff)
        faults = raw.get("submit_faults") or {}
        self.submit_faults: dict[str, tuple[str, ...]] = {
            kind: tuple(str(p) for p in patterns or ()) for kind, patterns in faults.items()
        }
        array = raw.get("array") or {}
        self.array_index = tuple(str(v) for v in array.get("index") or ())
        self.array_output_index: Optional[str] = array.get("output_index") or None
        self.array_throttle = bool(array.get("throttle"))
        size = array.get("max_size")
        self.array_max_size: Optional[int] = int(size) if size else None

    @property
    def has_arrays(self) -> bool:
        """Whether the scheme has job arrays: ``commands.array``, ``task_id``, ``array.index``."""
        return bool(self.array_index) and bool(self.get("array")) and bool(self.get("task_id"))

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
