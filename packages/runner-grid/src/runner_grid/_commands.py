"""Scheduler commands: the argv of a submission (pure functions) and running any such command."""

from __future__ import annotations

import numbers
import os
import re
import secrets
import shlex
import subprocess
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional

__all__ = [
    "MAX_COMMAND_CHARS",
    "LinkError",
    "SchedulerCommandError",
    "batch_commands",
    "build_submit_argv",
    "flag_args",
    "format_command",
    "new_tag",
    "run_query",
    "special_prefixes",
    "split_command",
]


def _no_nul(text: str, what: str) -> str:
    if "\0" in text:
        raise ValueError(
            f"{what} {text!r} holds a NUL byte, which no command line can carry; remove it"
        )
    return text


def split_command(command: str | Sequence[str], what: str = "command") -> list[str]:
    """Turn a scheme's command into an argv list.

    Args:
        command: a string (split like a POSIX shell would, so ``"qsub -S /bin/sh"`` works) or a
            sequence of arguments used as they are.
        what: what the command is, for error messages.

    Returns:
        A new list of arguments.

    Raises:
        ValueError: the command is empty or holds a NUL byte.
        TypeError: the command is neither a string nor a sequence of strings.
    """
    if isinstance(command, str):
        argv = shlex.split(_no_nul(command, what))
    elif isinstance(command, Sequence) and all(isinstance(a, str) for a in command):
        argv = [_no_nul(a, what) for a in command]
    else:
        raise TypeError(f"{what} {command!r} must be a string or a list of strings")
    if not argv:
        raise ValueError(
            f"{what} {command!r} is empty; give the scheduler's command, e.g. 'sbatch'"
        )
    return argv


def special_prefixes(scheme: Mapping[str, Any]) -> dict[str, str]:
    """Return the scheme's special keys, accepting the seed's ``commands.special`` spelling too.

    Args:
        scheme: the scheme (a Settings or any mapping).

    Returns:
        A dict of runflag name -> prefix; entries of the top-level ``special`` win over
        ``commands.special`` where both name the same key.
    """
    merged: dict[str, str] = {}
    commands = scheme.get("commands")
    for source in (
        commands.get("special") if isinstance(commands, Mapping) else None,
        scheme.get("special"),
    ):
        if isinstance(source, Mapping):
            for key, prefix in source.items():
                merged[str(key)] = prefix
    return merged


def _value_text(key: str, value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, os.PathLike):
        text = os.fspath(value)
        if isinstance(text, bytes):
            text = os.fsdecode(text)
    elif isinstance(value, numbers.Number):
        text = str(value)
    else:
        raise TypeError(
            f"runflag {key!r} has a value of type {type(value).__name__} ({value!r}); "
            "give a string, a number, True/'' for a bare flag, or None/False to leave it out"
        )
    return _no_nul(text, f"value of runflag {key!r}")


def flag_args(
    key: str, value: Any, special: Mapping[str, str], *, long_flags: bool = False
) -> list[str]:
    """Return the arguments one runflag adds to the submit command.

    A special key's prefix is glued to the value (``"--mem="`` + ``"4G"`` -> ``--mem=4G``); a prefix
    ending in white space makes the value its own argument (``"-N "`` -> ``-N``, ``2``); a prefix
    with inner white space splits there (``"-l nodes="`` -> ``-l``, ``nodes=2``). Any other key
    ``k`` gives ``-k``, ``value``; with `long_flags` (GNU-style options, as sbatch takes), a key
    of more than one letter gives ``--key=value`` instead (``mem`` -> ``--mem=4G``), while a
    one-letter key keeps ``-k``, ``value``. A key that starts with ``-`` gets one more ``-`` and
    its value as its own argument in either style (``-mem`` -> ``--mem``, ``4G``), as in PLAMS.
    ``True`` or ``""`` gives the flag alone (``--exclusive``), ``None`` or ``False`` gives
    nothing. The value itself is never split or altered.

    Args:
        key: the runflag's name.
        value: its value.
        special: the scheme's special keys (name -> prefix).
        long_flags: the scheme's ``long_flags``: whether a key of more than one letter is a
            long option (``--key=value``) rather than ``-key value``.

    Returns:
        The arguments, possibly none.

    Raises:
        ValueError: the key is empty or holds white space (it would become a flag such as
            ``'-bad key'``, which the scheduler misreads), or the key, prefix or value holds a
            NUL byte.
        TypeError: the value is not a string, number, bool, path or None.
    """
    _no_nul(key, "runflag name")
    if key not in special and (not key or any(c.isspace() for c in key)):
        raise ValueError(
            f"runflag name {key!r} cannot be a submit flag: it is empty or holds white space; "
            "a runflag k=v becomes the arguments -k v, so give the flag's name alone as the key "
            "and what follows it as the value, or add the name to the scheme's 'special' keys"
        )
    if value is None or value is False:
        return []
    bare = value is True or (isinstance(value, str) and value == "")
    text = "" if bare else _value_text(key, value)
    if key in special:
        prefix = special[key]
        if not isinstance(prefix, str):
            raise TypeError(f"special key {key!r} has prefix {prefix!r}; a prefix must be a string")
        parts = _no_nul(prefix, f"prefix of special key {key!r}").split()
        if bare:
            return parts
        if not parts:
            return [text]
        if prefix[-1].isspace():
            return [*parts, text]
        return [*parts[:-1], parts[-1] + text]
    if long_flags and len(key) > 1 and not key.startswith("-"):
        return [f"--{key}"] if bare else [f"--{key}={text}"]
    flag = "-" + key
    return [flag] if bare else [flag, text]


def _flag_of(scheme: Mapping[str, Any], name: str) -> Optional[str]:
    flag = scheme.get(name)
    if flag is None or flag == "":
        return None
    if not isinstance(flag, str):
        raise TypeError(f"scheme key {name!r} is {flag!r}; it must be a flag such as '-o', or None")
    return _no_nul(flag.strip(), f"scheme key {name!r}")


def build_submit_argv(
    scheme: Mapping[str, Any],
    runscript: str,
    workdir: str,
    out: Optional[str],
    err: str,
    *,
    runflags: Mapping[str, Any],
    tag_args: Sequence[str] = (),
    resource_args: Sequence[str] = (),
) -> list[str]:
    """Build the submit command as an argv list (never a string, never for a shell).

    The layout is ``[submit, <workdir flag>, workdir, <error flag>, err, (<output flag>, out)?,
    TAG..., RESOURCES..., FLAGS..., runscript]``: the output pair only when ``out`` is not
    None, the workdir pair only when the scheme has a workdir flag (PBS Pro has none), and
    FLAGS in the order of ``runflags`` (see `flag_args`; the scheme's ``long_flags`` chooses
    how a plain key becomes a flag).

    Args:
        scheme: the scheme: ``workdir``, ``output``, ``error``, ``special``, ``long_flags``,
            ``commands.submit``.
        runscript: path of the script to submit (last argument).
        workdir: the job's folder.
        out: file for the job's standard output, or None when the runscript redirects it itself.
        err: file for the job's standard error.
        runflags: the job's ``settings.run``.
        tag_args: the arguments carrying the job's tag, put before FLAGS (so a flag of the
            user's own that names the job comes later and wins).
        resource_args: the arguments of the job's resources (``Scheduler.resource_args``),
            put after the tag and before FLAGS.

    Returns:
        The argv list.

    Raises:
        ValueError: a path, flag or value holds a NUL byte, or the submit command is empty.
        TypeError: a runflag value or a scheme entry has a type that cannot become an argument.
    """
    commands = scheme.get("commands")
    submit = commands.get("submit") if isinstance(commands, Mapping) else None
    if submit is None:
        raise ValueError("the scheme has no commands.submit; set it to the submit command")
    argv = split_command(submit, "commands.submit")
    workdir_flag = _flag_of(scheme, "workdir")
    if workdir_flag is not None:
        argv += [workdir_flag, _no_nul(workdir, "workdir path")]
    else:
        _no_nul(workdir, "workdir path")
    error_flag = _flag_of(scheme, "error")
    if error_flag is not None:
        argv += [error_flag, _no_nul(err, "error file path")]
    if out is not None:
        output_flag = _flag_of(scheme, "output")
        if output_flag is not None:
            argv += [output_flag, _no_nul(out, "output file path")]
    argv += [_no_nul(a, "tag") for a in tag_args]
    argv += [_no_nul(a, "resource flag") for a in resource_args]
    special = special_prefixes(scheme)
    long_flags = bool(scheme.get("long_flags"))
    for key, value in runflags.items():
        argv += flag_args(str(key), value, special, long_flags=long_flags)
    argv.append(_no_nul(runscript, "runscript path"))
    return argv


def format_command(argv: Sequence[str]) -> str:
    """Return the argv as one line for logs: ``shlex.split`` of it gives back the argv.

    Args:
        argv: the command's arguments.

    Returns:
        The shell-quoted command line.
    """
    return shlex.join(argv)


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def new_tag(name: str) -> str:
    """Return a tag unique to one job: a short, safe form of its name and 8 random hex digits.

    It is valid as a job name on SLURM, Grid Engine (no leading digit, no ``/:@\\*?``) and
    PBS (at most 15 characters, as old Torque servers require).
    """
    stem = _UNSAFE.sub("_", name)[:6] or "job"
    if not stem[0].isalpha():
        stem = "j" + stem[:5]
    return f"{stem}-{secrets.token_hex(4)}"


#: Longest command line (in characters) a check or cancel command is allowed to reach.
MAX_COMMAND_CHARS = 16_384


def batch_commands(
    base: Sequence[str], ids: Sequence[str], max_chars: int = MAX_COMMAND_CHARS
) -> list[list[str]]:
    """Split ``base + ids`` into several commands so that none exceeds ``max_chars``.

    Args:
        base: the command without ids, e.g. ``["scancel"]``.
        ids: the job ids to append.
        max_chars: the longest command line allowed (arguments joined by spaces); a single id
            longer than that still gets a command of its own.

    Returns:
        One argv per batch, every id in exactly one of them, in the order given; no command for an
        empty ``ids``.
    """
    commands: list[list[str]] = []
    base_len = sum(len(a) + 1 for a in base)
    current: list[str] = []
    length = base_len
    for jobid in ids:
        if current and length + len(jobid) + 1 > max_chars:
            commands.append([*base, *current])
            current, length = [], base_len
        current.append(jobid)
        length += len(jobid) + 1
    if current:
        commands.append([*base, *current])
    return commands


class SchedulerCommandError(Exception):
    """A scheduler command that tells nothing: it could not start, ran too long, or failed."""


class LinkError(SchedulerCommandError):
    """A scheduler command on a remote host failed because the link did, not the scheduler.

    The command may have run on the host and only its reply been lost: a submission is looked
    up by its tag before it is sent again.
    """


def old_names(module: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` that gives ``CheckFailed``, the old name of
    `SchedulerCommandError`, with a DeprecationWarning (for the modules that exported it)."""

    def module_getattr(name: str) -> Any:
        if name == "CheckFailed":
            warnings.warn(
                f"{module}.CheckFailed is deprecated; use runner_grid.SchedulerCommandError",
                DeprecationWarning,
                stacklevel=2,
            )
            return SchedulerCommandError
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return module_getattr


__getattr__ = old_names(__name__)


def run_query(
    argv: Sequence[str], env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run a scheduler command (no shell, no stdin) and capture what it prints.

    Every command runner_grid runs goes through here: checks, cancels, exit-code
    queries, submits and probes. Each runs in a session of its own, so a Ctrl-C on
    the terminal reaches the user's script, not a command half-way through.

    Args:
        argv: the command.
        env: its environment.
        timeout: seconds before it is killed.

    Returns:
        The finished process, output decoded with replacement of undecodable bytes.

    Raises:
        SchedulerCommandError: the command could not be started or ran past the time-out.
    """
    try:
        return subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            env=dict(env),
            timeout=timeout,
            check=False,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired as exc:
        raise SchedulerCommandError(
            f"{format_command(argv)} ran longer than {timeout:g} s"
        ) from exc
    except OSError as exc:
        raise SchedulerCommandError(f"{format_command(argv)} could not be started: {exc}") from exc
