"""Autodetection for ``grid="auto"``: which scheduler's commands are on this machine."""

from __future__ import annotations

import copy
import logging
import shutil
from typing import TYPE_CHECKING, Any, Optional, Union

from runner_grid._commands import SchedulerCommandError, format_command, split_command
from runner_grid.schemes._base import Scheduler, Site
from runner_grid.schemes._settings import Scheme

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["DetectionError", "detect_scheme", "probe_scheme"]

logger = logging.getLogger(__name__)

#: Seconds a probe command may run before it counts as "not this scheduler".
PROBE_TIMEOUT = 10.0


class DetectionError(RuntimeError):
    """No scheme's probe recognised a scheduler on this machine."""


def probe_scheme(
    scheme: Union[Scheduler, Mapping[str, Any]],
    path: Optional[str] = None,
    name: str = "custom",
    site: Optional[Site] = None,
) -> Optional[str]:
    """Tell whether a scheduler is installed here (or on the remote `site`).

    The submit command must be on PATH (checked first, without running anything); then the
    scheduler's probe runs (`Scheduler.probe_argv`; a scheme's ``commands.probe``, by
    default the submit command with ``--version``, as PLAMS did) and `Scheduler.detect`
    judges what it printed (a scheme's ``commands.detect``; by default exit status 0).

    Args:
        scheme: the scheduler, or a scheme Settings (validated, then adapted by `Scheme`).
        path: the PATH to search for the commands (default: the environment's).
        name: the scheme's name, for messages.
        site: the host the scheduler is on, when not this one: the probe runs there as it is
            (a missing command exits non-zero, 127), PATH is the host's.

    Returns:
        None when the scheduler is there, else why not (for the error message).
    """
    try:
        scheduler = scheme if isinstance(scheme, Scheduler) else Scheme.of(scheme, name)
        submit = scheduler.submit_command
        head = split_command(submit, "submit command")[0] if submit else None
        argv = scheduler.probe_argv()
    except (TypeError, ValueError) as exc:  # a SchemeError is a ValueError
        return str(exc)
    if site is not None:
        if argv is None:
            return "it has neither a submit nor a probe command"
        scheduler = copy.copy(scheduler)  # the caller's own object keeps running here
        scheduler.site = site
        return _judge(scheduler, argv, argv)
    if head is not None and shutil.which(head, path=path) is None:
        return f"{head} is not on PATH"
    if argv is None:
        return "it has neither a submit nor a probe command"
    exe = shutil.which(argv[0], path=path)
    if exe is None:
        return f"{argv[0]} is not on PATH"
    return _judge(scheduler, [exe, *argv[1:]], argv)


def _judge(scheduler: Scheduler, run: Sequence[str], argv: Sequence[str]) -> Optional[str]:
    """Run the probe `run` (`argv` as the scheme gives it) and judge what it printed."""
    try:
        proc = scheduler.run(run, timeout=PROBE_TIMEOUT)
    except SchedulerCommandError as exc:
        return str(exc)
    output = proc.stdout + proc.stderr
    if scheduler.detect(proc.returncode, output):
        return None
    first = next((line.strip() for line in output.splitlines() if line.strip()), "no output")
    return f"{format_command(argv)} exited {proc.returncode} and printed {first[:80]!r}"


def detect_scheme(
    schemes: Mapping[str, Union[Scheduler, Mapping[str, Any]]],
    path: Optional[str] = None,
    site: Optional[Site] = None,
) -> str:
    """Return the name of the first scheme, in sorted name order, whose scheduler is here.

    Args:
        schemes: name -> scheme Settings or scheduler (``GridRunner.config``).
        path: the PATH to search (default: the environment's).
        site: the host to look on, when not this one (see `probe_scheme`).

    Returns:
        The scheme's name.

    Raises:
        DetectionError: none was found; the message lists every scheme tried and why it was
            rejected (a scheme whose settings are bad among them).
    """
    reasons: list[str] = []
    for name in sorted(schemes):
        reason = probe_scheme(schemes[name], path, name, site)
        if reason is None:
            logger.info("grid='auto' picked scheme %r", name)
            return name
        logger.debug("grid='auto' rejected scheme %r: %s", name, reason)
        reasons.append(f"{name}: {reason}")
    tried = "; ".join(reasons) or "no scheme in GridRunner.config"
    where = "this machine" if site is None else repr(site)
    raise DetectionError(
        f"grid='auto' found no scheduler on {where} (tried {tried}); install one's client "
        "commands, put them on PATH, or pass grid='slurm', 'pbs', 'sge' or your own Settings"
    )
