"""Portable resources: the run flags cores, nodes, memory, walltime, gpus, queue and account.

Every scheduler family maps them to its own flags (``--mem``, ``h_vmem``, ``select``...);
here they are parsed once, with one meaning everywhere: `memory` is the job's total in
bytes, `walltime` its limit in seconds, `cores` and `gpus` the job's totals.

Sizes are 1024-based whatever their spelling: ``4G``, ``4GB``, ``4GiB`` and ``4g`` are
all 4 x 1024**3 bytes, as SLURM, PBS and Grid Engine's upper-case units count them.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "GROWABLE",
    "RESOURCE_KEYS",
    "Resources",
    "format_memory",
    "format_walltime",
    "megabytes",
    "parse_memory",
    "parse_walltime",
]

#: The run flags with one meaning on every scheduler (``partition`` is ``queue``'s synonym).
RESOURCE_KEYS = ("cores", "nodes", "memory", "walltime", "gpus", "queue", "partition", "account")

#: The resources a request can be grown by (`Resources.grown`).
GROWABLE = ("memory", "walltime")

#: Bytes per unit of a memory size: 1024-based, as the schedulers count them.
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}
_SIZE = re.compile(r"(\d+)(?:\.(\d+))?\s*(?:([KMGTP])(?:I?B)?|B)", re.IGNORECASE)
_CLOCK = re.compile(r"(?:(\d+)-)?(\d+):([0-5]?\d):([0-5]?\d)")
_NAME = re.compile(r"[^\s\0]+")

_MEMORY_EXAMPLE = "{key}='4G' (units K, M, G, T, 1024-based) or an int of bytes"
_WALLTIME_EXAMPLE = (
    "{key}='1:30:00' (H:MM:SS), '2-00:00:00' (D-HH:MM:SS), 5400 (seconds) or a datetime.timedelta"
)


def _refused(key: str, value: object, what: str, example: str) -> ValueError:
    """The error for a run flag that does not parse: key, value, what is wrong, a good one."""
    return ValueError(f"run flag {key}={value!r} {what}; give e.g. {example.format(key=key)}")


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_memory(value: object, key: str = "memory") -> int:
    """Return a memory size in bytes: ``"4G"``, ``"500M"``, ``"1.5G"``, ``"2GB"`` or an int.

    Units K, M, G, T, P are 1024-based in any case and with or without ``B``/``iB``
    (``4G`` = ``4GB`` = ``4GiB`` = 4 x 1024**3); ``B`` alone is bytes. A fraction is
    rounded up to a whole byte. A string without a unit is refused: SLURM reads ``4000``
    as megabytes, so it is not taken for bytes silently.

    Args:
        value: the size; an int is bytes.
        key: the run flag's name, for the message.

    Returns:
        The size in bytes, >= 1.

    Raises:
        ValueError: the value is not a size or not > 0 (naming `key`, the value and a
            good one).
    """
    if isinstance(value, int) and not isinstance(value, bool):
        nbytes = value
    elif isinstance(value, str):
        text = value.strip()
        match = _SIZE.fullmatch(text)
        if match is None and text.isdigit():
            raise _refused(
                key,
                value,
                "has no unit (SLURM reads a bare number as megabytes, Grid Engine as bytes)",
                f"{key}='{text}M' for megabytes, or the int {text} for bytes",
            )
        if match is None:
            raise _refused(key, value, "is not a memory size", _MEMORY_EXAMPLE)
        whole, fraction, unit = match.groups()
        fraction = fraction or ""
        scaled = int(whole + fraction) * _UNITS[(unit or "").upper()]
        nbytes = _ceil_div(scaled, 10 ** len(fraction))
    else:
        raise _refused(
            key, value, f"({type(value).__name__}) is not a memory size", _MEMORY_EXAMPLE
        )
    if nbytes < 1:
        raise _refused(key, value, "is not a memory size > 0", _MEMORY_EXAMPLE)
    return nbytes


def parse_walltime(value: object, key: str = "walltime") -> int:
    """Return a time limit in whole seconds (rounded up).

    Takes a number of seconds (int or float), ``"H:MM:SS"`` (any number of hours; ``"0:0:3"``
    too), ``"D-HH:MM:SS"`` (days and hours 0 to 23) or a `datetime.timedelta`. A bare number in
    a string and ``"MM:SS"`` are refused: schedulers read them differently (SLURM reads
    ``"90"`` as minutes, Grid Engine as seconds) and people read ``"2:30"`` as hours.

    Args:
        value: the time.
        key: the run flag's name, for the message.

    Returns:
        The time in seconds, >= 1.

    Raises:
        ValueError: the value is not a time, or not > 0 (naming `key`, the value and a
            good one).
    """
    from datetime import timedelta  # noqa: PLC0415 - lazy: keeps `import runner_core` fast

    seconds: float
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str):
        match = _CLOCK.fullmatch(value.strip())
        if match is None or (match.group(1) is not None and int(match.group(2)) > 23):
            raise _refused(key, value, *_time_hint(key, value.strip()))
        days, hours, minutes, secs = (int(part or 0) for part in match.groups())
        seconds = ((days * 24 + hours) * 60 + minutes) * 60 + secs
    else:
        raise _refused(key, value, f"({type(value).__name__}) is not a time", _WALLTIME_EXAMPLE)
    if not math.isfinite(seconds) or seconds <= 0:
        raise _refused(key, value, "is not a time > 0", _WALLTIME_EXAMPLE)
    return math.ceil(seconds)


def _time_hint(key: str, text: str) -> tuple[str, str]:
    """What is wrong with a time that does not parse, and a good one: (what, example)."""
    if text.isdigit():
        return (
            "is a number in a string (SLURM reads it as minutes, Grid Engine as seconds)",
            f"{key}={text} for seconds, or {key}='{text}:00:00' for hours",
        )
    pair = re.fullmatch(r"(\d+):([0-5]\d)", text)
    if pair:
        as_minutes = format_walltime(int(pair.group(1)) * 60 + int(pair.group(2)))
        return (
            "may be minutes:seconds or hours:minutes",
            f"{key}='{as_minutes}' or {key}='{text}:00'",
        )
    return "is not a time", _WALLTIME_EXAMPLE


def _parse_count(value: object, key: str) -> int:
    count = int(value.strip()) if isinstance(value, str) and value.strip().isdigit() else value
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(
            f"run flag {key}={value!r} is not a whole number >= 1; give e.g. {key}=4, "
            "or leave it out"
        )
    return count


def _parse_name(value: object, key: str) -> str:
    if not isinstance(value, str) or _NAME.fullmatch(value) is None:
        example = "'proj42'" if key == "account" else "'short'"
        raise ValueError(
            f"run flag {key}={value!r} is not a name (one word, no spaces); "
            f"give e.g. {key}={example}"
        )
    return value


def megabytes(nbytes: int) -> int:
    """Return `nbytes` in megabytes of 1024**2 bytes, rounded up (a request never shrinks)."""
    return _ceil_div(nbytes, 1024**2)


def format_memory(nbytes: int) -> str:
    """Return a memory size in the largest unit that holds it exactly: ``"4G"``, ``"1536M"``.

    `parse_memory` of the text gives `nbytes` back; sizes of no whole kilobyte end in ``B``.
    """
    for unit in ("P", "T", "G", "M", "K"):
        count, rest = divmod(nbytes, _UNITS[unit])
        if not rest and count:
            return f"{count}{unit}"
    return f"{nbytes}B"


def format_walltime(seconds: int, *, days: bool = False, hour_digits: int = 1) -> str:
    """Return a time in seconds as ``"H:MM:SS"``, or ``"D-HH:MM:SS"`` from a day on with `days`.

    Args:
        seconds: the time, whole seconds >= 0.
        days: write a day or more as ``D-HH:MM:SS`` (SLURM's form) rather than in hours.
        hour_digits: the least digits of the hours (2 gives PBS's ``01:00:00``).

    Returns:
        The text; `parse_walltime` of it gives `seconds` back.
    """
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if days and hours >= 24:
        whole_days, hours = divmod(hours, 24)
        return f"{whole_days}-{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{hours:0{hour_digits}d}:{minutes:02d}:{secs:02d}"


#: The fields of `Resources`, in order.
_FIELDS = ("cores", "nodes", "memory", "walltime", "gpus", "queue", "account")


class Resources:
    """What a job asks of a scheduler, parsed: the same meaning on every scheme.

    Build it from run flags with `Resources.of` or `Resources.split`; the constructor
    takes parsed values and checks them. Any field may be None (not asked for). Immutable
    and hashable; equal when every field is.

    Attributes:
        cores: the job's cores, all nodes together.
        nodes: the nodes it spans.
        memory: the job's memory, all nodes together, in bytes.
        walltime: its time limit in seconds.
        gpus: the job's GPUs, all nodes together.
        queue: the queue or partition (the run flags ``queue`` and ``partition``).
        account: the account charged.

    Raises:
        ValueError: a value is of the wrong type or out of range (naming it).
    """

    # A plain class, not a frozen dataclass: `import dataclasses` (it imports inspect)
    # would add a sixth to the time `import runner_core` takes.
    __slots__ = _FIELDS
    cores: Optional[int]
    nodes: Optional[int]
    memory: Optional[int]
    walltime: Optional[int]
    gpus: Optional[int]
    queue: Optional[str]
    account: Optional[str]

    def __init__(  # noqa: PLR0917 - the fields, as a dataclass would take them
        self,
        cores: Optional[int] = None,
        nodes: Optional[int] = None,
        memory: Optional[int] = None,
        walltime: Optional[int] = None,
        gpus: Optional[int] = None,
        queue: Optional[str] = None,
        account: Optional[str] = None,
    ) -> None:
        """Check the parsed values and keep them; see the class docstring."""
        values = (cores, nodes, memory, walltime, gpus, queue, account)
        for key, value in zip(_FIELDS, values):
            if value is None:
                pass
            elif key in ("queue", "account"):
                _parse_name(value, key)
            elif not _is_int(value) or value < 1:  # type: ignore[operator]
                what = {"memory": "an int of bytes", "walltime": "an int of seconds"}
                raise ValueError(
                    f"Resources({key}={value!r}) is not {what.get(key, 'a whole number')} >= 1; "
                    f"parse a run flag with Resources.of({{{key!r}: {value!r}}})"
                )
            object.__setattr__(self, key, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Resources cannot change; replace({name}=...) gives a new one")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Resources cannot change; replace({name}=None) gives a new one")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, key) for key in _FIELDS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Resources):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        given = (f"{key}={value!r}" for key, value in zip(_FIELDS, self._values()) if value)
        return f"Resources({', '.join(given)})"

    def __reduce__(self) -> tuple[type[Resources], tuple[Any, ...]]:
        return (Resources, self._values())

    def replace(self, **changes: Any) -> Resources:
        """Return a copy with `changes` (field name -> new value, checked as by the constructor).

        Raises:
            TypeError: a name that is not a field.
            ValueError: a value the constructor refuses.
        """
        return Resources(**{**dict(zip(_FIELDS, self._values())), **changes})

    @classmethod
    def split(cls, runflags: Mapping[str, Any]) -> tuple[Resources, dict[str, Any]]:
        """Return the resources among a job's run flags, and the other run flags.

        The keys of `RESOURCE_KEYS` are parsed; a value None or False counts as not
        given, as for any run flag. ``queue`` and ``partition`` are one resource.

        Args:
            runflags: the job's ``settings.run``.

        Returns:
            The resources, and a new dict of the run flags that are not resources, in order.

        Raises:
            ValueError: a resource does not parse (naming the key, the value and a good
                one), or ``queue`` and ``partition`` differ.
        """
        given = {
            key: value
            for key, value in runflags.items()
            if key in RESOURCE_KEYS and value is not None and value is not False
        }
        rest = {key: value for key, value in runflags.items() if key not in RESOURCE_KEYS}
        queue = given.get("queue")
        partition = given.get("partition")
        if queue is not None and partition is not None and queue != partition:
            raise ValueError(
                f"run flags queue={queue!r} and partition={partition!r} differ; they name "
                "the same thing: give one of them"
            )
        named = "queue" if queue is not None else "partition"
        resources = cls(
            cores=_maybe(given, "cores", _parse_count),
            nodes=_maybe(given, "nodes", _parse_count),
            memory=_maybe(given, "memory", parse_memory),
            walltime=_maybe(given, "walltime", parse_walltime),
            gpus=_maybe(given, "gpus", _parse_count),
            queue=_maybe(given, named, _parse_name),
            account=_maybe(given, "account", _parse_name),
        )
        return resources, rest

    @classmethod
    def of(cls, runflags: Mapping[str, Any]) -> Resources:
        """Return the resources among a job's run flags (see `split`); the others are ignored.

        Raises:
            ValueError: as `split`.
        """
        return cls.split(runflags)[0]

    def as_runflags(self) -> dict[str, Any]:
        """Return the run flags that give these resources (`Resources.of` gives them back).

        Memory as `format_memory`, walltime as ``H:MM:SS``, the others as they are; fields
        that are None are left out.
        """
        flags: dict[str, Any] = {}
        for key in _FIELDS:
            value = getattr(self, key)
            if value is None:
                continue
            if key == "memory":
                value = format_memory(value)
            elif key == "walltime":
                value = format_walltime(value)
            flags[key] = value
        return flags

    def per_node(self, key: str) -> Optional[int]:
        """Return the share of one node of `cores`, `gpus` or `memory` (None when not asked).

        Memory is rounded up to a whole byte; cores and GPUs must divide evenly.

        Raises:
            ValueError: `cores` or `gpus` is not a multiple of `nodes`, or `key` is not one
                of the three.
        """
        if key not in ("cores", "gpus", "memory"):
            raise ValueError(f"per_node takes 'cores', 'gpus' or 'memory', not {key!r}")
        total: Optional[int] = getattr(self, key)
        nodes = self.nodes or 1
        if total is None or nodes == 1:
            return total
        if key != "memory" and total % nodes:
            good = nodes * max(total // nodes, 1)
            raise ValueError(
                f"run flag {key}={total} is not a multiple of nodes={nodes}; {key} is the job's "
                f"total, spread evenly over its nodes: give e.g. {key}={good}"
            )
        return _ceil_div(total, nodes)

    def grown(self, factors: Mapping[str, float]) -> Resources:
        """Return the request grown by `factors`: ``{"memory": 2, "walltime": 1.5}``.

        Each grown value is rounded up, so it never shrinks; a resource not asked for
        stays None (there is nothing to grow).

        Args:
            factors: resource (one of `GROWABLE`) -> factor, a number >= 1.

        Returns:
            A new Resources.

        Raises:
            ValueError: a key is not one of `GROWABLE`, or a factor is not a number >= 1.
        """
        changes: dict[str, int] = {}
        for key, factor in factors.items():
            if key not in GROWABLE:
                raise ValueError(
                    f"cannot grow {key!r}: only {', '.join(GROWABLE)} grow (e.g. {{'memory': 2}})"
                )
            if (
                not isinstance(factor, (int, float))
                or isinstance(factor, bool)
                or not math.isfinite(factor)
                or factor < 1
            ):
                raise ValueError(
                    f"growth factor {key}={factor!r} is not a number >= 1; give e.g. {{{key!r}: 2}}"
                )
            value: Optional[int] = getattr(self, key)
            if value is not None:
                numerator, denominator = float(factor).as_integer_ratio()
                changes[key] = _ceil_div(value * numerator, denominator)
        return self.replace(**changes)


def _maybe(given: Mapping[str, Any], key: str, parse: Callable[[Any, str], Any]) -> Any:
    value = given.get(key)
    return None if value is None else parse(value, key)
