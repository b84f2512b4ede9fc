"""The command line's options: the argument parser, `--flag KEY=VALUE` parsing, UsageError."""

from __future__ import annotations

import argparse
import re
from typing import Sequence

from runner_core.__about__ import __version__

PROG = "runner"
# runflags are passed as keyword arguments to `job.run`, whose own parameters they
# must not shadow.
RESERVED_FLAGS = frozenset({"jobrunner", "jobmanager"})
FLAG_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_\-]*\Z")


class UsageError(Exception):
    """A mistake on the command line or in its inputs: reported, exit status 2."""


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; give 0 (no limit) or more")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0.1:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"{text} is too short; give 0.1 seconds or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of `runner` and its `run` subcommand."""
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
            "         runner run --grid slurm --flag t=00:10:00 --flag mem=4G jobs/*.sh\n"
            "         runner run --grid slurm --flag memory=2G --retry out_of_memory jobs/*.sh"
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
            "(needs runner-core[grid]; jobs are always submitted in parallel, as job arrays "
            "where the scheduler has them)"
        ),
    )
    run.add_argument(
        "--no-array",
        action="store_true",
        help="with --grid: submit every job on its own instead of as tasks of job arrays",
    )
    remote = run.add_argument_group(
        "remote cluster",
        "with --grid: submit on another host through your own ssh (one login per run; "
        "each job's folder is copied there before it runs and back after it ends)",
    )
    remote.add_argument(
        "--host",
        metavar="HOST",
        help="the cluster's login node: an alias of ~/.ssh/config, user@host or a host name",
    )
    remote.add_argument(
        "--remote-root",
        metavar="DIR",
        help="with --host: the jobs' folder there (default: ~/NAME, NAME as --workdir's)",
    )
    remote.add_argument(
        "--ssh-config",
        metavar="FILE",
        help="with --host: an ssh configuration file instead of ~/.ssh/config (ssh -F)",
    )
    remote.add_argument(
        "--fetch",
        metavar="all|none|GLOB[,GLOB]",
        default="all",
        help=(
            "with --host: what comes back of an ended job's folder: all of it (default), "
            "none (only the exit code, times, output and error), or files matching globs"
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
            "a runflag for every job (repeatable), e.g. --flag mem=4G (on SLURM: --mem=4G; a "
            "one-letter key K gives -K VALUE, and Grid Engine and PBS give -KEY VALUE); KEY= "
            "gives an empty value, which grid schemes turn into the flag alone"
        ),
    )
    run.add_argument(
        "--retry",
        metavar="REASON[,REASON]",
        help=(
            "run a job again when it ends for one of these reasons: out_of_memory (with twice "
            "the memory), timeout (twice the walltime), node_fail, preempted, crashed (any "
            "non-zero exit), ...; default with --attempts: out_of_memory,timeout,node_fail,"
            "preempted"
        ),
    )
    run.add_argument(
        "--attempts",
        metavar="N",
        type=_positive_int,
        help="with --retry: at most N runs of a job in all (default: 3); a preemption uses none",
    )
    run.add_argument(
        "--json",
        action="store_true",
        help="print the summary as a JSON document on stdout instead of a table",
    )
    resume = run.add_mutually_exclusive_group()
    resume.add_argument(
        "--resume",
        action="store_const",
        const=True,
        default=False,
        help=(
            "resume the run recorded in --workdir: jobs that succeeded there with the same "
            "script and flags are not run again, grid jobs still queued are waited for"
        ),
    )
    resume.add_argument(
        "--resume-unfinished",
        action="store_const",
        const="unfinished",
        dest="resume",
        help=(
            "as --resume, but jobs that crashed or failed there (by themselves or at their "
            "time or memory limit) are not run again either: only the unfinished run"
        ),
    )
    _add_folder_commands(commands, verbosity)
    _add_report_command(commands, verbosity)
    return parser


def _add_report_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    verbosity: argparse.ArgumentParser,
) -> None:
    """`runner report DIR [-o FILE] [--json] [--no-accounting]`."""
    report = commands.add_parser(
        "report",
        parents=[verbosity],
        help="write a run's report (timeline, counts, waits, failures, use) as one HTML file",
        description=(
            "Write the report of the run recorded in DIR as one self-contained HTML file\n"
            "(it loads nothing from elsewhere: open it from disk): a timeline of every\n"
            "job's tries, the jobs queued, pending and running over time, wait and run\n"
            "times, failures by reason, and, where the scheduler keeps accounting, memory\n"
            "and CPU used against the request. Works while the run goes on and after.\n\n"
            "Exit status: 0, or 2 when DIR has no run journal or FILE cannot be written."
        ),
        epilog="Example: runner report work -o work-report.html",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument(
        "folder",
        metavar="DIR",
        help="the run's folder (the --workdir of `runner run`, or a JobManager's folder)",
    )
    report.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="where to write the page (default: report.html here; with --json: none)",
    )
    report.add_argument(
        "--json",
        action="store_true",
        help="print the report's numbers (every try, counts, times, failures, use) as JSON",
    )
    report.add_argument(
        "--no-accounting",
        action="store_true",
        help="do not ask the scheduler's accounting (sacct, qacct) what the jobs used",
    )


def _add_folder_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    verbosity: argparse.ArgumentParser,
) -> None:
    """`runner status`, `runner cancel` and `runner resume`: commands on a run's folder."""
    folder_help = "the run's folder (the --workdir of `runner run`, or a JobManager's folder)"
    status = commands.add_parser(
        "status",
        parents=[verbosity],
        help="show every job of a run (live or ended) from its journal",
        description=(
            "Show the jobs of the run recorded in DIR: state, scheduler id, exit code,\n"
            "reason and folder of each, and how many are in each state. Works from any\n"
            "shell, while the run goes on and after it ended or its driver died.\n\n"
            "Exit status: 0, or 2 when DIR has no run journal."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    status.add_argument("folder", metavar="DIR", help=folder_help)
    status.add_argument(
        "--json",
        action="store_true",
        help='print {"folder", "driver", "counts", "jobs": [...], "dropped"} as JSON',
    )
    status.add_argument(
        "--watch",
        action="store_true",
        help=(
            "a live view instead of the table, redrawn every --interval seconds (counts, "
            "jobs finished per minute, the oldest waiting job, recent failures, time left); "
            "it ends when the run has no live driver, or at Ctrl-C"
        ),
    )
    status.add_argument(
        "--interval",
        metavar="SECONDS",
        type=_interval,
        help="with --watch: seconds between two views (default: 2)",
    )
    cancel = commands.add_parser(
        "cancel",
        parents=[verbosity],
        help="cancel the queued and running jobs of a run, whether its driver lives or not",
        description=(
            "Cancel the jobs of the run recorded in DIR that have not ended. A live driver\n"
            "is asked to cancel them (they end CANCELLED, `runner run` then exits 1); with\n"
            "no live driver, local process groups are killed and grid jobs cancelled in\n"
            "the scheduler from here, and the jobs recorded CANCELLED.\n\n"
            "Exit status: 0 when every job is stopped, 1 when some could not be, 2 when\n"
            "DIR has no run journal."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cancel.add_argument("folder", metavar="DIR", help=folder_help)
    cancel.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        default=30.0,
        help="how long to wait for a live driver to end the jobs (default: 30)",
    )
    resume = commands.add_parser(
        "resume",
        parents=[verbosity],
        help="resume a run whose driver died: wait for its queued jobs, rerun the unfinished",
        description=(
            "Resume the run recorded in DIR from its journal alone: jobs that succeeded are\n"
            "kept, grid jobs still in the queue are waited for (not submitted again), and\n"
            "every prepared job that did not succeed runs again in its folder, on the\n"
            "runner it had (with --only-unfinished: every job that never finished). Prints\n"
            "the summary, like `runner run`.\n\n"
            "Exit status: as `runner run` (a job kept as it crashed or failed counts as\n"
            "failed); 2 when DIR has no run journal or a live driver."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    resume.add_argument("folder", metavar="DIR", help=folder_help)
    resume.add_argument(
        "--only-unfinished",
        action="store_const",
        const="unfinished",
        default=True,
        dest="resume",
        help=(
            "keep the jobs that crashed or failed (by themselves or at their time or memory "
            "limit) as they ended; run again only those cancelled, cut short or never run"
        ),
    )
    resume.add_argument(
        "--json",
        action="store_true",
        help="print the summary as a JSON document on stdout instead of a table",
    )


def parse_flags(pairs: Sequence[str]) -> dict[str, str]:
    """Turn `KEY=VALUE` strings into runflags, in the order given.

    Args:
        pairs: the values of every `--flag` option, in command-line order.

    Returns:
        {KEY: VALUE}, in the order given.

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
