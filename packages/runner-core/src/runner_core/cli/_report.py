"""`runner report DIR`: the run's report as one HTML file, or its numbers as JSON."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

from runner_core import JobRunner
from runner_core.cli._args import PROG, UsageError
from runner_core.cli._folder import load
from runner_core.cli._runners import find_grid_runner
from runner_core.report import UsageReport, build_report, render_html

if TYPE_CHECKING:
    import argparse

    from runner_core import JobRecord, JournalState

EXIT_OK = 0
DEFAULT_OUTPUT = "report.html"


def runner_class(kind: str) -> Any:
    """The runner class that answers for records of `kind`, or a UsageError saying why none."""
    if kind == "local":
        return JobRunner
    if kind == "grid":
        return find_grid_runner("(from the journal)")
    raise UsageError(f"no runner of kind {kind!r} is known here")


def gather_usage(state: JournalState) -> UsageReport:
    """Ask each kind of runner of the run what its jobs used (`JobRunner.usage_recorded`).

    A runner that cannot be loaded or whose scheduler cannot be asked leaves its jobs
    without figures and says why; the report is made all the same.
    """
    kinds: dict[str, list[JobRecord]] = {}
    for record in state.jobs:
        kinds.setdefault(record.kind, []).append(record)
    usage: dict[str, Any] = {}
    absent: list[str] = []
    for kind, records in sorted(kinds.items()):
        try:
            found = runner_class(kind).usage_recorded(records)
        except UsageError as exc:
            absent.append(f"{len(records)} {kind} jobs: {exc}")
            continue
        except Exception as exc:  # a report must show what it has
            absent.append(f"{len(records)} {kind} jobs: asking for their use failed: {exc}")
            continue
        usage.update(found.usage)
        if found.absent_because:
            absent.append(
                found.absent_because if len(kinds) == 1 else f"{kind} jobs: {found.absent_because}"
            )
    return UsageReport(usage, "; ".join(absent) or None)


def command_report(args: argparse.Namespace) -> int:
    """`runner report DIR [-o FILE] [--json] [--no-accounting]`."""
    state = load(args.folder)
    usage = None if args.no_accounting else gather_usage(state)
    report = build_report(state, usage)
    if args.json:
        # dumps, not dump: one call of the C encoder instead of a write per token
        sys.stdout.write(json.dumps(report.as_dict(), separators=(",", ":")) + "\n")
        sys.stdout.flush()
        if args.output is None:
            return EXIT_OK
    path = args.output or DEFAULT_OUTPUT
    page = render_html(report)
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(page)
    except OSError as exc:
        raise UsageError(f"cannot write the report to {path}: {exc}; give another -o FILE") from exc
    sys.stderr.write(
        f"{PROG}: report of {len(report.tries):,} tries of {report.jobs:,} jobs written to "
        f"{os.path.abspath(path)} ({len(page.encode('utf-8')) / 1024:,.0f} KiB)\n"
    )
    return EXIT_OK
