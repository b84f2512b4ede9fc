"""The `runner` command: parse, build the batch, run it, print the summary, exit status."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from runner_core import JobManager, JobStatus, JournalLocked
from runner_core.cli._args import PROG, UsageError, build_parser, parse_flags
from runner_core.cli._batch import Batch, make_job, read_scripts
from runner_core.cli._folder import command_cancel, command_status, resume_plan
from runner_core.cli._report import command_report
from runner_core.cli._run import run_batch
from runner_core.cli._runners import make_runner, remote_options, retry_policy
from runner_core.cli._summary import json_document, write_table

if TYPE_CHECKING:
    import argparse

    from runner_core import JobRunner

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# What the first progress line adds for a resume that keeps the jobs that crashed or failed.
_ONLY_UNFINISHED = {"unfinished": "; jobs that crashed or failed before are kept as they ended"}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the `runner` command line.

    Args:
        argv: the arguments after the program name; None reads `sys.argv[1:]`.

    Returns:
        The exit status: 0 when every job succeeded, 1 when any did not, 2 for a
        usage error (bad option, missing script, grid support not installed),
        130 when Ctrl-C cancelled the run.

    Raises:
        runner_core.Terminated: SIGTERM or SIGHUP arrived during the run; it is
            raised again once every job is cancelled and the summary printed, so
            the process ends the way the signal ends it.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors end here
        if exc.code is None:
            return EXIT_OK
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE

    handler, previous_level = _configure_logging(getattr(args, "verbose", 0))
    commands = {
        "run": _command_run,
        "status": command_status,
        "cancel": command_cancel,
        "resume": _command_resume,
        "report": command_report,
    }
    try:
        return commands[args.command](args)
    except (UsageError, JournalLocked) as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:  # before any job started: nothing to cancel
        sys.stderr.write(f"{PROG}: interrupted\n")
        return EXIT_INTERRUPTED
    finally:
        root = logging.getLogger()
        root.removeHandler(handler)
        root.setLevel(previous_level)


def _configure_logging(verbosity: int) -> tuple[logging.Handler, int]:
    """Send log records to stderr at the level -v asks for.

    Returns:
        The handler added and the root logger's previous level, to undo it after.
    """
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("runner: %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(level)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(level)
    return handler, previous


def _command_run(args: argparse.Namespace) -> int:
    """`runner run`: everything is checked before the first job starts."""
    flags = parse_flags(args.flags)
    jobs = [make_job(name, text) for name, text in read_scripts(args.scripts)]
    retry = retry_policy(args.retry, args.attempts)
    runner = make_runner(args.grid, args.parallel, args.maxjobs, remote_options(args))
    runner.retry = retry
    batch = Batch(jobs, arrays=args.grid is not None and not args.no_array)
    manager = JobManager(args.workdir, resume=args.resume)

    if args.grid is not None:
        # With "auto" the runner knows which scheduler it found; say so.
        how = f"on grid {getattr(runner, 'scheme_name', args.grid)}"
        if args.host is not None:
            how += f" on {args.host}"
    else:
        how = "in parallel" if args.parallel else "one after another"
    limit = f", at most {args.maxjobs} at once" if args.maxjobs else ""
    if retry is not None:
        limit += f", up to {retry.attempts} attempts on {', '.join(retry.on)}"
    plural = "" if len(jobs) == 1 else "s"
    where = Path(args.workdir).resolve()
    again = ""
    if args.resume:
        again = ", resuming its journal" + _ONLY_UNFINISHED.get(args.resume, "")
    sys.stderr.write(
        f"{PROG}: {len(jobs)} job{plural} {how}{limit}, folders under {where}{again}\n"
    )
    sys.stderr.flush()
    return _run_and_summarise(batch, runner, manager, flags, json_out=args.json)


def _command_resume(args: argparse.Namespace) -> int:
    """`runner resume DIR`: the run's jobs again from its journal (see `resume_plan`)."""
    jobs, runner, notes = resume_plan(args.folder)
    for note in notes:
        sys.stderr.write(f"{PROG}: {note}\n")
    manager = JobManager(args.folder, resume=args.resume)
    kind = runner.journal_info().get("kind", "local")
    only = _ONLY_UNFINISHED.get(args.resume, "")
    sys.stderr.write(
        f"{PROG}: resuming {len(jobs)} job(s) of {manager.path} ({kind} runner){only}\n"
    )
    sys.stderr.flush()
    return _run_and_summarise(Batch(jobs), runner, manager, {}, json_out=args.json)


def _run_and_summarise(
    batch: Batch, runner: JobRunner, manager: JobManager, flags: dict[str, str], *, json_out: bool
) -> int:
    """Run the batch, print the summary, return the exit status (see `main`)."""
    jobs = batch.jobs
    try:
        interrupted = run_batch(batch, runner, manager, flags, sys.stderr)
    finally:
        manager.close()

    if json_out:
        json.dump(json_document(batch), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        write_table(batch, sys.stdout)
    sys.stdout.flush()
    if isinstance(interrupted, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if interrupted is not None:  # SIGTERM/SIGHUP: end the way the signal ends the process
        raise interrupted
    ok = all(batch.status(i) is JobStatus.SUCCESSFUL for i in range(len(jobs)))
    return EXIT_OK if ok else EXIT_FAILED
