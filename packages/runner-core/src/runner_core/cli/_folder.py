"""`runner status`, `runner cancel` and `runner resume`: commands on the folder of a run."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
import time
from collections import Counter
from itertools import repeat
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, TextIO

from runner_core import JobRunner, JobStatus, Retry, cancel_run, read_journal
from runner_core.cli._args import PROG, UsageError
from runner_core.cli._batch import display_path, make_job
from runner_core.cli._progress import Screen, watch_lines
from runner_core.cli._runners import find_grid_runner

if TYPE_CHECKING:
    import argparse

    from runner_core import JobRecord, JournalState, SingleJob

EXIT_OK = 0
EXIT_FAILED = 1
WATCH_INTERVAL = 2.0  # seconds between two views of `runner status --watch`


def load(folder: str) -> JournalState:
    """Read the journal of `folder`; UsageError when it has none."""
    state = read_journal(folder)
    if not state.exists:
        raise UsageError(
            f"{folder}: no run journal here ({os.path.join(folder, '.runner', 'journal.jsonl')} "
            "is missing); give the --workdir of a `runner run` or a JobManager's folder"
        )
    return state


def driver_line(state: JournalState, counts: Optional[dict[str, int]] = None) -> str:
    """One line on who drives the run: `driver pid 4711 on host login1: running`.

    `counts` is `state.counts()` where the caller has it already.
    """
    driver = state.driver
    if driver is None:
        ended = state.sessions and (counts or state.counts()).keys() <= _FINAL_NAMES
        return "driver: none (the run has ended)" if ended else "driver: none (it was stopped)"
    if driver.alive is False:
        return (
            f"driver: pid {driver.pid} on host {driver.host}: gone (killed?); resume it with "
            + (f"`{PROG} resume {state.folder}`")
        )
    seen = ""
    if driver.heartbeat is not None:
        seen = f", last seen {max(0.0, time.time() - driver.heartbeat):.0f} s ago"
    return f"driver: pid {driver.pid} on host {driver.host}: running{seen}"


def observe(state: JournalState) -> None:
    """With no live driver, bring the records of unfinished jobs up to date from their folders.

    A grid job may have started, or ended, since its driver died: its runner reads what
    the job's wrapper wrote (`observe_recorded`, no scheduler query, so status stays
    fast). What it finds is shown, not written to the journal (a resume records it).
    """
    driver = state.driver
    if driver is not None and driver.live:
        return
    final = _FINAL_NAMES
    pending = [r for r in state.jobs if r.status._name_ not in final and r.kind != "local"]
    if not pending:
        return
    classes = grid_runner_class(sorted({r.kind for r in pending}), quiet=True)
    for kind in {r.kind for r in pending}:
        cls = classes.get(kind)
        if cls is None:
            continue
        records = [r for r in pending if r.kind == kind]
        try:
            seen = cls.observe_recorded(records, False)
        except Exception as exc:  # a status must show what it has
            sys.stderr.write(f"{PROG}: could not look at the {kind} jobs' folders: {exc}\n")
            continue
        for record in records:
            now = seen.get(record.number)
            if now is None or not record.status.may_become(now.status):
                continue
            record.status = now.status
            record.started_at = now.started_at or record.started_at
            if now.status.done:
                record.exit_code = now.exit_code
                record.reason = now.reason
                record.finished_at = now.finished_at


def command_status(args: argparse.Namespace) -> int:
    """`runner status DIR [--json] [--watch [--interval SECONDS]]`."""
    interval = getattr(args, "interval", None)
    if getattr(args, "watch", False):
        if args.json:
            raise UsageError("--watch shows a live view and --json prints the jobs once; pick one")
        return watch(args.folder, WATCH_INTERVAL if interval is None else interval, sys.stdout)
    if interval is not None:
        raise UsageError(f"--interval {interval:g} is for the live view: add --watch")
    # The records of a big run live until the end: the cyclic collector would walk them
    # again at every few thousand new objects (a table row, a JSON dict) and free nothing.
    collect = gc.isenabled()
    gc.disable()
    try:
        state = load(args.folder)
        observe(state)
        if args.json:
            write_json(state, sys.stdout)
            return EXIT_OK
        write_status(state, sys.stdout)
    finally:
        if collect:
            gc.enable()
    driver_alive = state.driver is not None and state.driver.live
    if state.dropped and not driver_alive:
        for note in state.dropped:
            sys.stderr.write(f"{PROG}: journal: dropped {note}\n")
    return EXIT_OK


def write_json(state: JournalState, stream: TextIO) -> None:
    """The `--json` document: {"folder", "driver", "counts", "jobs", "dropped"}, a job per line.

    Each job's dict is one line (made by the json module's C encoder, which an indented
    dump of the whole document would not use), so a 100,000-job run prints in a moment
    and a person can still read and grep it.
    """
    dumps = json.dumps
    driver = None if state.driver is None else state.driver.as_dict()
    stream.write(
        f'{{\n  "folder": {dumps(state.folder)},\n  "driver": {dumps(driver)},\n'
        f'  "counts": {dumps(state.counts())},\n  "jobs": ['
    )
    jobs = ",\n    ".join([dumps(record.as_dict()) for record in state.jobs])
    stream.write(f"\n    {jobs}\n  ]" if jobs else "]")
    stream.write(f',\n  "dropped": {dumps(state.dropped)}\n}}\n')


def _folder_display(root: str) -> Callable[[list[str]], list[str]]:
    """How jobs' folders (absolute paths) are shown: relative to here when inside it.

    Worked out once for the run's folder, which holds every job's folder, not per job;
    the function returned maps a list of paths to what is shown.
    """
    cwd = os.getcwd()
    inside = root.rstrip(os.sep) + os.sep
    if cwd.startswith(inside):  # the current directory is in the run's folder: rare
        return lambda paths: [display_path(Path(path)) for path in paths]
    if root == cwd or root.startswith(cwd.rstrip(os.sep) + os.sep):
        prefix = os.path.relpath(root, cwd)
        prefix = "" if prefix == "." else prefix + os.sep
    else:
        prefix = inside
    cut = len(inside)
    return lambda paths: [
        prefix + path[cut:] if path.startswith(inside) else display_path(Path(path))
        for path in paths
    ]


# Status names, and those of the final states: compared as strings in the loops below
# (an Enum member's `name` and hash are Python calls, a lot of them for 100,000 jobs).
_FINAL_NAMES = frozenset(s.name for s in JobStatus if s.done)


def write_status(state: JournalState, stream: TextIO) -> None:
    """The status table of a run: a row per job, the counts, the driver.

    `wait` is the seconds a grid job waited in the scheduler's queue, `run` the seconds
    its runscript ran (so far, for a running job). A job a `Retry` ran again shows its
    last attempt, numbered (``SUCCESSFUL (attempt 2)``).
    """
    # Made a column at a time, each a list comprehension or a map over the records: for
    # 100,000 jobs that is half the time of building, measuring and formatting row by row.
    records = state.jobs
    now = time.time()
    final = _FINAL_NAMES
    names = [record.status._name_ for record in records]
    status = [
        _status_cell(name, record) if record.left or record.attempts else name
        for name, record in zip(names, records)
    ]
    jobid = [
        (record.jobid or "-")
        if record.native_id is None
        else f"{record.jobid or '-'} ({record.native_id})"
        for record in records
    ]
    code = ["-" if value is None else str(value) for value in map(_EXIT_CODE, records)]
    reason = [value or "-" for value in map(_REASON, records)]
    ends = [record.finished_at if name in final else now for name, record in zip(names, records)]
    starts = list(map(_STARTED, records))
    run = [
        "-" if start is None or end is None else "%.1f" % (end - start if end > start else 0.0)
        for start, end in zip(starts, ends)
    ]
    waited = [start if start is not None else end for start, end in zip(starts, ends)]
    wait = [
        "-" if start is None or end is None else "%.1f" % (end - start if end > start else 0.0)
        for start, end in zip(map(_SUBMITTED, records), waited)
    ]
    columns = [
        ["job", *map(_FOLDER, records)],
        ["status", *status],
        ["jobid", *jobid],
        ["exit", *code],
        ["reason", *reason],
        ["wait", *wait],
        ["run", *run],
    ]
    cells = [list(map(str.ljust, column, repeat(max(map(len, column))))) for column in columns]
    cells.append(["folder", *_folder_display(state.folder)(list(map(_PATH, records)))])
    lines = map(str.rstrip, map("  ".join, zip(*cells)))
    stream.write("\n".join(lines) + "\n")
    counts = state.counts()
    order = [s.name for s in JobStatus]
    summary = ", ".join(f"{counts[name]} {name}" for name in order if name in counts)
    stream.write(f"{len(records)} jobs: {summary or 'none yet'}\n")
    stream.write(driver_line(state, counts) + "\n")


_EXIT_CODE = attrgetter("exit_code")
_REASON = attrgetter("reason")
_FOLDER = attrgetter("folder")
_PATH = attrgetter("path")
_STARTED = attrgetter("started_at")
_SUBMITTED = attrgetter("submitted_at")


def _status_cell(name: str, record: JobRecord) -> str:
    """`SUBMITTED (left queued)`, `SUCCESSFUL (attempt 2)`: a status with what else is so."""
    if record.left:
        name += " (left queued)"
    if record.attempts:  # run again by a Retry: this row is its last attempt
        name += f" (attempt {len(record.attempts) + 1})"
    return name


def watch(folder: str, interval: float, stream: TextIO) -> int:
    """`runner status DIR --watch`: the run's live view every `interval` s, until the run ends.

    Each round reads only what the journal gained since the last (`read_journal(since=)`)
    and the lock file. The view ends by itself once the run has no live driver (it ended,
    or its driver died: the last view says which), and at Ctrl-C; both exit 0.
    """
    state = load(folder)
    screen = Screen(stream)
    try:
        while True:
            live = state.driver is not None and state.driver.live
            if not live:
                observe(state)
            screen.show(watch_lines(state, driver_line(state), time.time()))
            if not live:
                screen.close("the run has no live driver: the view ends")
                return EXIT_OK
            time.sleep(interval)
            state = read_journal(state.folder, since=state)
    except KeyboardInterrupt:
        screen.close()
        return EXIT_OK
    except BrokenPipeError:  # `| head`: the reader has gone; nothing left to flush at exit
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
        return EXIT_OK


def grid_runner_class(kinds: Sequence[str], quiet: bool = False) -> dict[str, Any]:
    """The runner class for each kind of record: JobRunner for "local", GridRunner for "grid"."""
    classes: dict[str, Any] = {"local": JobRunner}
    if "grid" in kinds:
        try:
            classes["grid"] = find_grid_runner("(from the journal)")
        except UsageError as exc:
            if not quiet:
                sys.stderr.write(f"{PROG}: the grid jobs cannot be cancelled from here: {exc}\n")
    return classes


def command_cancel(args: argparse.Namespace) -> int:
    """`runner cancel DIR`."""
    state = load(args.folder)
    pending = [r for r in state.jobs if not r.done]
    if not pending:
        sys.stderr.write(f"{PROG}: nothing to cancel: every job of {state.folder} has ended\n")
        return EXIT_OK
    classes = grid_runner_class(sorted({r.kind for r in pending}))
    live = state.driver is not None and state.driver.live
    if live:
        assert state.driver is not None
        sys.stderr.write(
            f"{PROG}: asking driver pid {state.driver.pid} on {state.driver.host} to cancel "
            f"{len(pending)} job(s)...\n"
        )
    outcome = cancel_run(state.folder, classes, timeout=args.timeout)
    for record, why in outcome.not_stopped:
        sys.stderr.write(f"{PROG}: {record.folder}: not stopped: {why}\n")
    how = "by its driver" if outcome.driver_alive else "from here (its driver was gone)"
    sys.stderr.write(f"{PROG}: {len(outcome.cancelled)} job(s) cancelled {how}\n")
    if outcome.ended:
        counts = Counter(record.status.name for record in outcome.ended)
        summary = ", ".join(f"{n} {name}" for name, n in sorted(counts.items()))
        sys.stderr.write(
            f"{PROG}: {len(outcome.ended)} job(s) had ended by themselves and keep their "
            f"end ({summary}); a resume does not run the successful ones again\n"
        )
    return EXIT_FAILED if outcome.not_stopped else EXIT_OK


def resume_plan(folder: str) -> tuple[list[SingleJob], JobRunner, list[str]]:
    """The jobs and runner of `runner resume DIR`, from the journal and the job folders.

    Every job whose runscript is in its folder is made again (same name, runscript and
    runflags, so the same hash: a job that succeeded is restored, not run). A job that
    never got its runscript written cannot be made again; it is named in the notes.

    Returns:
        (jobs, runner, notes for the user).

    Raises:
        UsageError: no journal, a live driver, or no job to resume.
    """
    state = load(folder)
    driver = state.driver
    if driver is not None and driver.live:
        raise UsageError(
            f"{folder}: its driver (pid {driver.pid} on host {driver.host}) is still running; "
            f"watch it with `{PROG} status {folder}` or stop it with `{PROG} cancel {folder}`"
        )
    jobs: list[SingleJob] = []
    notes: list[str] = []
    runners: Counter[str] = Counter()
    infos: dict[str, dict[str, Any]] = {}
    for record in state.jobs:
        job = _remake(record, notes)
        if job is None:
            continue
        jobs.append(job)
        key = json.dumps(record.runner, sort_keys=True)
        runners[key] += 1
        infos[key] = record.runner
    if not jobs:
        raise UsageError(
            f"{folder}: no job to resume ({'; '.join(notes) or 'the journal is empty'})"
        )
    key, _count = runners.most_common(1)[0]
    if len(runners) > 1:
        notes.append(
            f"the jobs had {len(runners)} different runners; all run on the most common one"
        )
    return jobs, runner_from_info(infos[key]), notes


def _remake(record: JobRecord, notes: list[str]) -> Optional[SingleJob]:
    script = Path(record.path) / (record.name + ".run")
    try:
        text = script.read_text(encoding="utf-8")
    except OSError:
        if record.status is not JobStatus.SUCCESSFUL:
            notes.append(f"{record.folder}: never prepared (no {script.name}); not run")
        return None
    job = make_job(record.name, text)
    if record.flags:
        job.settings.run.update(record.flags)
    return job


def runner_from_info(info: dict[str, Any]) -> JobRunner:
    """Build the runner a journal describes: JobRunner for "local", else the registered class.

    With the run's `Retry` policy, when it had one.
    """
    runner = _runner_of_kind(info)
    if info.get("retry"):
        try:
            runner.retry = Retry.from_dict(info["retry"])
        except (TypeError, ValueError) as exc:
            raise UsageError(f"the run's retry policy {info['retry']!r} is not one: {exc}") from exc
    return runner


def _runner_of_kind(info: dict[str, Any]) -> JobRunner:
    """`runner_from_info` without the retry policy."""
    kind = str(info.get("kind", "local"))
    if kind == "local":
        return JobRunner.from_journal_info(info)
    if kind != "grid":
        raise UsageError(
            f"the jobs ran on a runner of kind {kind!r}, which `{PROG} resume` cannot build; "
            "run the script that made them again with JobManager(..., resume=True)"
        )
    cls = find_grid_runner(str(info.get("scheme", "auto")))
    try:
        runner: JobRunner = cls.from_journal_info(info)  # type: ignore[attr-defined]
    except Exception as exc:
        raise UsageError(f"cannot build the grid runner again from {info!r}: {exc}") from exc
    return runner
