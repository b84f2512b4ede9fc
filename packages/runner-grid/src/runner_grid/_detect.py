"""Autodetection for ``grid="auto"``: which scheduler's commands are on this machine."""

from __future__ import annotations

import logging
import os
import shutil
from typing import TYPE_CHECKING, Any, Optional

from runner_grid._commands import CheckFailed, format_command, run_query, split_command

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["DetectionError", "detect_scheme", "probe_scheme"]

logger = logging.getLogger(__name__)

#: Seconds a probe command may run before it counts as "not this scheduler".
PROBE_TIMEOUT = 10.0


class DetectionError(RuntimeError):
    """No scheme's probe recognised a scheduler on this machine."""


def probe_scheme(scheme: Mapping[str, Any], path: Optional[str] = None) -> Optional[str]:
    """Tell whether a scheme's scheduler is installed here.

    The submit command must be on PATH (checked first, without running anything); then the
    scheme's ``commands.probe`` runs (default: the submit command with ``--version``, as PLAMS
    did) and ``commands.detect(returncode, output)`` judges what it printed (default: exit
    status 0).

    Args:
        scheme: the scheme.
        path: the PATH to search (default: the environment's).

    Returns:
        None when the scheduler is there, else why not (for the error message).
    """
    commands = scheme.get("commands") or {}
    try:
        submit = split_command(commands.get("submit") or "", "commands.submit")
    except (TypeError, ValueError) as exc:
        return str(exc)
    if shutil.which(submit[0], path=path) is None:
        return f"{submit[0]} is not on PATH"
    probe = commands.get("probe")
    argv = split_command(probe, "commands.probe") if probe else [submit[0], "--version"]
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    exe = shutil.which(argv[0], path=path)
    if exe is None:
        return f"{argv[0]} is not on PATH"
    try:
        proc = run_query([exe, *argv[1:]], env, PROBE_TIMEOUT)
    except CheckFailed as exc:
        return str(exc)
    output = proc.stdout + proc.stderr
    detect = commands.get("detect")
    accepted = detect(proc.returncode, output) if callable(detect) else proc.returncode == 0
    if accepted:
        return None
    first = next((line.strip() for line in output.splitlines() if line.strip()), "no output")
    return f"{format_command(argv)} exited {proc.returncode} and printed {first[:80]!r}"


def detect_scheme(schemes: Mapping[str, Mapping[str, Any]], path: Optional[str] = None) -> str:
    """Return the name of the first scheme, in sorted name order, whose scheduler is here.

    Args:
        schemes: name -> scheme (``GridRunner.config``).
        path: the PATH to search (default: the environment's).

    Returns:
        The scheme's name.

    Raises:
        DetectionError: none was found; the message lists every scheme tried and why it was
            rejected.
    """
    reasons: list[str] = []
    for name in sorted(schemes):
        reason = probe_scheme(schemes[name], path)
        if reason is None:
            logger.info("grid='auto' picked scheme %r", name)
            return name
        logger.debug("grid='auto' rejected scheme %r: %s", name, reason)
        reasons.append(f"{name}: {reason}")
    tried = "; ".join(reasons) or "no scheme in GridRunner.config"
    raise DetectionError(
        f"grid='auto' found no scheduler on this machine (tried {tried}); install one's client "
        "commands, put them on PATH, or pass grid='slurm', 'pbs', 'sge' or your own Settings"
    )
