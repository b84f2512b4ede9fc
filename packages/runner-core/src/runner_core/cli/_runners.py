"""Choosing the batch's runner: a local JobRunner, or the grid runner that runner-grid registers.

runner-core names no module of runner-grid. runner-grid registers its runner class
as an entry point, in its pyproject.toml::

    [project.entry-points."runner_core.grid_runners"]
    GridRunner = "runner_grid:GridRunner"

Only when `--grid NAME` is given does the command look up the entry point named
`GridRunner` in the group `runner_core.grid_runners`, load it and build
`GridRunner(grid=NAME, maxjobs=N)`, which must be a JobRunner. When no installed
distribution registers it (runner-core installed without its `grid` extra), the
command says to `pip install 'runner-core[grid]'`.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any, Callable, Optional

from runner_core import JobRunner, Retry
from runner_core.cli._args import UsageError

if TYPE_CHECKING:
    from collections.abc import Mapping
    from importlib.metadata import EntryPoint

logger = logging.getLogger(__name__)

GRID_RUNNERS_GROUP = "runner_core.grid_runners"
GRID_RUNNER_NAME = "GridRunner"
INSTALL_HINT = "install it with: pip install 'runner-core[grid]'"


def make_runner(
    grid: Optional[str], parallel: bool, maxjobs: int, remote: Optional[Mapping[str, Any]] = None
) -> JobRunner:
    """Return the runner for the batch.

    Args:
        grid: the `--grid` value (a scheme name or "auto"), or None to run locally.
        parallel: `--parallel` (a grid runner always submits in parallel).
        maxjobs: `--maxjobs`, 0 for no limit.
        remote: with `--host`: the grid runner's `host`, `remote_root`, `ssh_config` and
            `fetch` (`remote_options`).

    Returns:
        `JobRunner(parallel=..., maxjobs=...)`, or the registered grid runner class
        called as `GridRunner(grid=grid, maxjobs=maxjobs, **remote)`.

    Raises:
        UsageError: no grid runner is installed, it refused the grid name, or `--host`
            came without `--grid`.
    """
    if grid is None:
        if remote:
            raise UsageError("--host runs jobs on a cluster's scheduler: give --grid too")
        return JobRunner(parallel=parallel, maxjobs=maxjobs)
    grid_runner = find_grid_runner(grid)
    try:
        return grid_runner(grid=grid, maxjobs=maxjobs, **(remote or {}))
    except Exception as exc:
        where = f" --host {remote['host']}" if remote else ""
        raise UsageError(f"--grid {grid}{where}: {exc}") from exc


def remote_options(args: Any) -> Optional[dict[str, Any]]:
    """The remote arguments of `runner run` (`--host` and the rest), or None without --host.

    Raises:
        UsageError: --remote-root, --ssh-config or --fetch given without --host.
    """
    if args.host is None:
        given = [
            flag
            for flag, value in (
                ("--remote-root", args.remote_root),
                ("--ssh-config", args.ssh_config),
            )
            if value is not None
        ]
        if args.fetch != "all":
            given.append("--fetch")
        if given:
            raise UsageError(f"{', '.join(given)} only mean something with --host")
        return None
    fetch: Any = args.fetch
    if fetch == "none":
        fetch = None
    elif fetch != "all":
        fetch = [glob.strip() for glob in fetch.split(",") if glob.strip()]
    return {
        "host": args.host,
        "remote_root": args.remote_root,
        "ssh_config": args.ssh_config,
        "fetch": fetch,
    }


def retry_policy(reasons: Optional[str], attempts: Optional[int]) -> Optional[Retry]:
    """Return the `Retry` that `--retry REASON[,REASON]` and `--attempts N` ask for, or None.

    Raises:
        UsageError: a reason that is not one (naming those there are), or `--attempts`
            of 1 given alone.
    """
    if reasons is None and attempts is None:
        return None
    try:
        return Retry(attempts=3 if attempts is None else attempts, on=reasons)
    except ValueError as exc:
        raise UsageError(f"--retry {reasons}: {exc}") from None


def find_grid_runner(grid: str) -> Callable[..., JobRunner]:
    """Load the grid runner class registered under `runner_core.grid_runners`.

    Args:
        grid: the `--grid` value, for the messages.

    Returns:
        The class (runner-grid's `GridRunner`), a JobRunner subclass whose
        constructor takes `grid` and `maxjobs`.

    Raises:
        UsageError: no distribution registers it, it cannot be imported, or what it
            names is not a JobRunner subclass.
    """
    found = [entry for entry in grid_entry_points() if entry.name == GRID_RUNNER_NAME]
    if not found:
        raise UsageError(
            f"--grid {grid} needs the runner-grid package, which is not installed (no "
            f"entry point {GRID_RUNNER_NAME!r} in group {GRID_RUNNERS_GROUP!r}); {INSTALL_HINT}"
        )
    entry = found[0]
    if len(found) > 1:
        logger.warning(
            "%d entry points %r in group %r (%s); using %s",
            len(found),
            GRID_RUNNER_NAME,
            GRID_RUNNERS_GROUP,
            ", ".join(e.value for e in found),
            entry.value,
        )
    try:
        loaded = entry.load()
    except (ImportError, AttributeError) as exc:
        raise UsageError(
            f"--grid {grid} needs the runner-grid package, which is not installed "
            f"({exc}); {INSTALL_HINT}"
        ) from None
    if not (isinstance(loaded, type) and issubclass(loaded, JobRunner)):
        raise UsageError(
            f"--grid {grid}: the entry point {entry.name} = {entry.value!r} in group "
            f"{GRID_RUNNERS_GROUP!r} gives {loaded!r}, not a JobRunner subclass; "
            "reinstall runner-grid: pip install --force-reinstall 'runner-core[grid]'"
        )
    return loaded


def grid_entry_points() -> list[EntryPoint]:
    """Return the installed entry points of the group `runner_core.grid_runners`."""
    # importlib.metadata takes ~25 ms to import; only --grid needs it.
    import importlib.metadata  # noqa: PLC0415 - lazy stdlib import keeps `runner` fast to start

    if sys.version_info < (3, 10):
        # Python 3.9: entry_points() takes no selection and returns {group: entry points}.
        return list(importlib.metadata.entry_points().get(GRID_RUNNERS_GROUP, ()))
    return list(importlib.metadata.entry_points(group=GRID_RUNNERS_GROUP))
