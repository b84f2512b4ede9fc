"""The `runner` command line: run a batch of runscripts as jobs, show progress, summarise."""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional, Sequence, TextIO

from runner_core.__about__ import __version__
from runner_core._jobs import JobStatus, SingleJob
from runner_core._manager import JobManager
from runner_core._runner import JobRunner

__all__ = ["main"]

logger = logging.getLogger(__name__)

PROG = "runner"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
# How often the progress display looks at the jobs (seconds): a few times a second
# is smooth enough for people and costs nothing next to the jobs themselves.
REFRESH = 0.2
# runflags are passed as keyword arguments to `job.run`, whose own parameters they
# must not shadow.
RESERVED_FLAGS = frozenset({"jobrunner", "jobmanager"})
FLAG_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_\-]*\Z")


class UsageError(Exception):
    """A mistake on the command line or in its inputs: reported, exit status 2."""


# --- the parser ------------------------------------------------------------------


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; give 0 (no limit) or more")
    return value


def _build_parser() -> argparse.ArgumentParser:
    verbosity = argparse.ArgumentParser(add_help=False)
    verbosity.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="log more to stderr: -v for INFO, -vv for DEBUG (default: warnings only)",
    )

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run computational jobs (runscripts) locally or on a cluster scheduler.",
        epilog="Run `runner run --help` for the options of a batch run.",
        parents=[verbosity],
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s (runner-core) {__version__}"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "run",
        parents=[verbosity],
        help="run each SCRIPT as a job in its own folder and summarise the results",
        description=(
            "Run each SCRIPT as a job in its own folder under --workdir, show progress on\n"
            "stderr and print a summary on stdout.\n\n"
            "Exit status: 0 when every job succeeded, 1 when any job did not, 2 for a\n"
            "usage error (nothing ran), 130 after Ctrl-C (every job cancelled)."
        ),
        epilog=(
            "Example: runner run --parallel --maxjobs 4 --workdir work jobs/*.sh\n"
            "         runner run --grid slurm --flag t=00:10:00 --flag mem=4G jobs/*.sh"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "scripts", metavar="SCRIPT", nargs="+", help="runscript files; each becomes one job"
    )
    run.add_argument(
        "--parallel",
        action="store_true",
        help="run jobs at the same time, each in its own thread (default: one after another)",
    )
    run.add_argument(
        "--maxjobs",
        metavar="N",
        type=_non_negative_int,
        default=0,
        help="at most N jobs run at once; 0 means no limit (default: 0)",
    )
    run.add_argument(
        "--grid",
        metavar="NAME|auto",
        help=(
            "submit to a scheduler through runner_grid.GridRunner: slurm, pbs, sge or auto "
            "(needs runner-core[grid]; jobs are always submitted in parallel)"
        ),
    )
    run.add_argument(
        "--workdir",
        metavar="DIR",
        default="runner_workdir",
        help="folder that holds one subfolder per job (default: ./runner_workdir)",
    )
    run.add_argument(
        "--flag",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        dest="flags",
        help=(
            "a runflag for every job (repeatable), e.g. --flag mem=4G; KEY= gives an empty "
            "value, which grid schemes turn into the flag alone"
        ),
    )
    run.add_argument(
        "--json",
        action="store_true",
        help="print the summary as a JSON document on stdout instead of a table",
    )
    return parser


def _parse_flags(pairs: Sequence[str]) -> dict[str, str]:
    """Turn `KEY=VALUE` strings into runflags, in the order given.

    Raises:
        UsageError: a pair without `=`, a key that is not a plain name, a key given
            twice, or a key that `job.run` uses itself.
    """
    flags: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"--flag {pair!r} has no '='; write it as KEY=VALUE, e.g. mem=4G")
        if not FLAG_KEY.match(key):
            hint = " (write the key without dashes)" if key.startswith("-") else ""
            raise UsageError(
                f"--flag {pair!r}: key {key!r} is not a flag name{hint}; a key starts with a "
                "letter and holds only letters, digits, '_' and '-'"
            )
        if key in RESERVED_FLAGS:
            raise UsageError(
                f"--flag {pair!r}: {key!r} is a parameter of job.run, not a runflag; "
                "use the --grid / --parallel / --workdir options instead"
            )
        if key in flags:
            raise UsageError(f"--flag {key!r} given twice ({flags[key]!r} and {value!r}); keep one")
        flags[key] = value
    return flags


# --- building the jobs -------------------------------------------------------------


def _read_scripts(paths: Sequence[str]) -> list[tuple[str, str]]:
    """Read every script before anything runs.

    Returns:
        (job name, text) for each path, in order.

    Raises:
        UsageError: naming every path that is missing, not a file or not readable.
    """
    problems: list[str] = []
    scripts: list[tuple[str, str]] = []
    for name in paths:
        path = Path(name)
        try:
            if path.is_dir():
                problems.append(f"{name}: is a folder, not a script file")
                continue
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            problems.append(f"{name}: no such file")
            continue
        except PermissionError:
            problems.append(f"{name}: not readable (permission denied)")
            continue
        except UnicodeDecodeError as exc:
            problems.append(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})")
            continue
        except OSError as exc:
            problems.append(f"{name}: cannot be read ({exc.strerror or exc})")
            continue
        scripts.append((path.stem or path.name, text))
    if problems:
        raise UsageError("cannot run, nothing was started:\n  " + "\n  ".join(problems))
    return scripts


def _make_job(name: str, text: str) -> SingleJob:
    """A job whose runscript is `text`; a leading `#!` line becomes its shebang.

    Raises:
        UsageError: the job layer refuses `name` as a job name.
    """
    shebang = None
    if text.startswith("#!"):
        shebang, _, text = text.partition("\n")
    try:
        job = SingleJob(name=name, runscript=text)
    except ValueError as exc:
        raise UsageError(f"cannot make a job of the script named {name!r}: {exc}") from None
    if shebang is not None:
        job.settings.runscript.shebang = shebang.rstrip("\r")
    return job


def _make_runner(args: argparse.Namespace) -> JobRunner:
    """The local JobRunner, or a GridRunner when --grid was given.

    Raises:
        UsageError: runner_grid is not installed, or it refused the grid name.
    """
    if args.grid is None:
        return JobRunner(parallel=args.parallel, maxjobs=args.maxjobs)
    try:
        from runner_grid import GridRunner
    except ImportError as exc:
        raise UsageError(
            f"--grid {args.grid} needs the runner-grid package, which is not installed "
            f"({exc}); install it with: pip install 'runner-core[grid]'"
        ) from None
    try:
        return GridRunner(grid=args.grid, maxjobs=args.maxjobs)
    except Exception as exc:
        raise UsageError(f"--grid {args.grid}: {exc}") from exc


# --- watching the jobs -------------------------------------------------------------


class _Batch:
    """The jobs of one run and what the command knows about each beyond its results."""

    def __init__(self, jobs: list[SingleJob]) -> None:
        self.jobs = jobs
        self.submit_errors: dict[int, str] = {}
        self.cancelled = False
        self.started = time.monotonic()

    def status(self, index: int) -> JobStatus:
        """The status to show: a job that never reached the runner is FAILED or CANCELLED."""
        if index in self.submit_errors:
            return JobStatus.FAILED
        job = self.jobs[index]
        results = job.results
        status = results.status
        if not status.done and self.cancelled and results.started_at is None:
            return JobStatus.CANCELLED
        return status

    def label(self, index: int) -> str:
        """The job's folder name (unique in the run), or its name before it has one."""
        job = self.jobs[index]
        return job.path.name if job.path is not None else job.name

    def error(self, index: int) -> Optional[str]:
        """Why the job did not succeed, in full; None when it succeeded or still runs."""
        if index in self.submit_errors:
            return self.submit_errors[index]
        status = self.status(index)
        if status is JobStatus.SUCCESSFUL or not status.done:
            return None
        results = self.jobs[index].results
        if results.error:
            return results.error
        if status is JobStatus.CANCELLED:
            return "cancelled before it finished" if results.started_at else "cancelled"
        detail = f"exit code {results.exit_code}"
        last = self._last_stderr_line(index)
        return f"{detail}: {last}" if last else detail

    def _last_stderr_line(self, index: int) -> Optional[str]:
        err_path = self.jobs[index].err_path
        if err_path is None:
            return None
        try:
            text = err_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return lines[-1] if lines else None

    def seconds(self, index: int) -> Optional[float]:
        """Seconds the job ran (its call), or None when it never started."""
        if index in self.submit_errors:
            return None
        elapsed = self.jobs[index].results.elapsed
        return None if elapsed is None else round(elapsed, 3)

    def counts(self) -> tuple[int, int, int, int]:
        """(ended, failed, running, waiting) over the whole batch."""
        ended = failed = running = 0
        for i in range(len(self.jobs)):
            status = self.status(i)
            if status.done:
                ended += 1
                failed += status is not JobStatus.SUCCESSFUL
            elif status is JobStatus.RUNNING:
                running += 1
        return ended, failed, running, len(self.jobs) - ended - running


class _Progress:
    """Progress on stderr: one updating status line on a terminal, plain lines otherwise."""

    def __init__(self, batch: _Batch, stream: TextIO) -> None:
        self.batch = batch
        self.stream = stream
        self.tty = _isatty(stream)
        self.reported = 0
        # Jobs not reported yet: each refresh looks at these only, so a long batch
        # costs less and less to watch as it goes.
        self.pending = list(range(len(batch.jobs)))
        self.line_shown = False

    def refresh(self) -> None:
        """Report the jobs that ended since the last call; redraw the status line."""
        batch = self.batch
        ended = [i for i in self.pending if batch.status(i).done]
        if ended:
            gone = set(ended)
            self.pending = [i for i in self.pending if i not in gone]
        # Report in the order the jobs finished, so the lines read as a timeline.
        ended.sort(key=lambda i: (batch.jobs[i].results.finished_at or 0.0, i))
        if ended and self.line_shown:
            self._clear_line()
        for i in ended:
            self.reported += 1
            self.stream.write(self._ended_line(i) + "\n")
        if self.tty:
            self.stream.write("\r" + self._status_line() + "\x1b[K")
            self.line_shown = True
        self.stream.flush()

    def finish(self) -> None:
        """Report what is left and end the status line so later output starts afresh."""
        self.refresh()
        if self.line_shown:
            self.stream.write("\n")
            self.line_shown = False
        self.stream.flush()

    def note(self, message: str) -> None:
        """Write a line of its own, above the status line if one is shown."""
        if self.line_shown:
            self._clear_line()
        self.stream.write(message + "\n")
        self.stream.flush()

    def _clear_line(self) -> None:
        self.stream.write("\r\x1b[K")
        self.line_shown = False

    def _ended_line(self, index: int) -> str:
        batch = self.batch
        status = batch.status(index)
        code = batch.jobs[index].results.exit_code if index not in batch.submit_errors else None
        seconds = batch.seconds(index)
        parts = [
            f"[{self.reported}/{len(batch.jobs)}]",
            batch.label(index),
            status.name,
        ]
        if code is not None:
            parts.append(f"exit {code}")
        if seconds is not None:
            parts.append(f"{seconds:.1f}s")
        return " ".join(parts)

    def _status_line(self) -> str:
        ended, failed, running, waiting = self.batch.counts()
        total = len(self.batch.jobs)
        elapsed = time.monotonic() - self.batch.started
        return (
            f"{ended}/{total} done ({failed} failed), {running} running, "
            f"{waiting} waiting, {_format_duration(elapsed)}"
        )


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{rest:02d}s" if hours else f"{minutes}m{rest:02d}s"


# --- running -----------------------------------------------------------------------


def _submit_all(
    batch: _Batch, runner: JobRunner, manager: Any, flags: dict[str, str], stop: threading.Event
) -> None:
    """Hand every job to the runner, in order; in serial mode each runs here."""
    for i, job in enumerate(batch.jobs):
        if stop.is_set():
            return
        try:
            job.run(jobrunner=runner, jobmanager=manager, **flags)
        except Exception as exc:
            if stop.is_set():
                logger.debug("job %s not started: the run was interrupted (%s)", job.name, exc)
                return
            logger.debug("job %s could not be started", job.name, exc_info=True)
            # The job layer marks a job it refused as ended; anything else is ours to say.
            if not job.results.done:
                batch.submit_errors[i] = f"could not be started: {type(exc).__name__}: {exc}"


def _run_batch(batch: _Batch, runner: JobRunner, manager: Any, flags: dict[str, str]) -> bool:
    """Run the batch to the end with progress on stderr.

    Returns:
        False when Ctrl-C cut the run short (every job then cancelled), else True.
    """
    progress = _Progress(batch, sys.stderr)
    stop = threading.Event()
    submitter = threading.Thread(
        target=_submit_all,
        args=(batch, runner, manager, flags, stop),
        name="runner-cli-submit",
        daemon=True,
    )
    try:
        submitter.start()
        while submitter.is_alive():
            submitter.join(REFRESH)
            progress.refresh()
        while True:
            try:
                runner.wait(timeout=REFRESH)
            except TimeoutError:
                progress.refresh()
            else:
                break
    except KeyboardInterrupt:
        stop.set()
        batch.cancelled = True
        progress.note(f"{PROG}: interrupted, cancelling every job...")
        _shutdown(runner)
        submitter.join()
        progress.finish()
        return False
    progress.finish()
    return True


def _shutdown(runner: JobRunner) -> None:
    """Cancel everything; a second Ctrl-C must not leave processes behind, so retry."""
    while True:
        try:
            runner.shutdown(cancel=True)
        except KeyboardInterrupt:
            sys.stderr.write("runner: still cancelling, please wait...\n")
            continue
        return


# --- reporting ---------------------------------------------------------------------


def _display_path(path: Optional[Path]) -> str:
    if path is None:
        return "-"
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _write_table(batch: _Batch, stream: TextIO) -> None:
    header = ("job", "status", "exit", "seconds", "folder")
    rows = []
    for i, job in enumerate(batch.jobs):
        code = job.results.exit_code if i not in batch.submit_errors else None
        seconds = batch.seconds(i)
        rows.append(
            (
                batch.label(i),
                batch.status(i).name,
                "-" if code is None else str(code),
                "-" if seconds is None else f"{seconds:.2f}",
                _display_path(job.path),
            )
        )
    widths = [max(len(row[c]) for row in [header, *rows]) for c in range(len(header))]
    right = {2, 3}

    def line(cells: Sequence[str]) -> str:
        out = [
            cell.rjust(widths[c]) if c in right else cell.ljust(widths[c])
            for c, cell in enumerate(cells)
        ]
        return "  ".join(out).rstrip()

    stream.write(line(header) + "\n")
    for row in rows:
        stream.write(line(row) + "\n")
    failed = [i for i in range(len(batch.jobs)) if batch.status(i) is not JobStatus.SUCCESSFUL]
    for i in failed:
        message = batch.error(i)
        if message:
            first = message.strip().splitlines()[0] if message.strip() else message
            stream.write(f"{batch.label(i)}: {first}\n")
    succeeded = len(batch.jobs) - len(failed)
    stream.write(f"{succeeded} succeeded, {len(failed)} failed\n")


def _json_document(batch: _Batch) -> dict[str, Any]:
    jobs = []
    for i, job in enumerate(batch.jobs):
        jobs.append(
            {
                "name": batch.label(i),
                "status": batch.status(i).name,
                "exit_code": job.results.exit_code if i not in batch.submit_errors else None,
                "seconds": batch.seconds(i),
                "path": None if job.path is None else str(job.path),
                "error": batch.error(i),
            }
        )
    succeeded = sum(1 for i in range(len(batch.jobs)) if batch.status(i) is JobStatus.SUCCESSFUL)
    return {"jobs": jobs, "succeeded": succeeded, "failed": len(batch.jobs) - succeeded}


# --- the command -------------------------------------------------------------------


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
    flags = _parse_flags(args.flags)
    jobs = [_make_job(name, text) for name, text in _read_scripts(args.scripts)]
    runner = _make_runner(args)
    batch = _Batch(jobs)
    manager = JobManager(args.workdir)

    if args.grid is not None:
        # With "auto" the runner knows which scheduler it found; say so.
        how = f"on grid {getattr(runner, 'scheme_name', args.grid)}"
    else:
        how = "in parallel" if args.parallel else "one after another"
    limit = f", at most {args.maxjobs} at once" if args.maxjobs else ""
    plural = "" if len(jobs) == 1 else "s"
    where = Path(args.workdir).resolve()
    sys.stderr.write(f"runner: {len(jobs)} job{plural} {how}{limit}, folders under {where}\n")
    sys.stderr.flush()

    finished = _run_batch(batch, runner, manager, flags)

    if args.json:
        json.dump(_json_document(batch), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _write_table(batch, sys.stdout)
    sys.stdout.flush()
    if not finished:
        return EXIT_INTERRUPTED
    ok = all(batch.status(i) is JobStatus.SUCCESSFUL for i in range(len(jobs)))
    return EXIT_OK if ok else EXIT_FAILED


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the `runner` command line.

    Args:
        argv: the arguments after the program name; None reads `sys.argv[1:]`.

    Returns:
        The exit status: 0 when every job succeeded, 1 when any did not, 2 for a
        usage error (bad option, missing script, grid support not installed),
        130 when Ctrl-C cancelled the run.
    """
    parser = _build_parser()
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
    try:
        return _command_run(args)
    except UsageError as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:  # before any job started: nothing to cancel
        sys.stderr.write(f"{PROG}: interrupted\n")
        return EXIT_INTERRUPTED
    finally:
        root = logging.getLogger()
        root.removeHandler(handler)
        root.setLevel(previous_level)
