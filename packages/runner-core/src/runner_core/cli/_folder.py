"""`runner status`, `runner cancel` and `runner resume`: commands on the folder of a run."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence, TextIO

from runner_core import JobRunner, JobStatus, cancel_run, read_journal
from runner_core.cli._args import PROG, UsageError
from runner_core.cli._batch import display_path, make_job
from runner_core.cli._runners import find_grid_runner

if TYPE_CHECKING:
    import argparse

    from runner_core import JobRecord, JournalState, SingleJob

EXIT_OK = 0
EXIT_FAILED = 1


def load(folder: str) -> JournalState:
    """Read the journal of `folder`; UsageError when it has none."""
    state = read_journal(folder)
    if not state.exists:
        raise UsageError(
            f"{folder}: no run journal here ({os.path.join(folder, '.runner', 'journal.jsonl')} "
            "is missing); give the --workdir of a `runner run` or a JobManager's folder"
        )
    return state


def driver_line(state: JournalState) -> str:
    """One line on who drives the run: `driver pid 4711 on host login1: running`."""
    driver = state.driver
    if driver is None:
        ended = state.sessions and all(r.done for r in state.jobs)
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
    pending = [r for r in state.jobs if not r.done and r.kind != "local"]
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
    """`runner status DIR [--json]`."""
    state = load(args.folder)
    observe(state)
    counts = state.counts()
    if args.json:
        document = {
            "folder": state.folder,
            "driver": None if state.driver is None else state.driver.as_dict(),
            "counts": counts,
            "jobs": [record.as_dict() for record in state.jobs],
            "dropped": state.dropped,
        }
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    write_status(state, sys.stdout)
    driver_alive = state.driver is not None and state.driver.live
    if state.dropped and not driver_alive:
        for note in state.dropped:
            sys.stderr.write(f"{PROG}: journal: dropped {note}\n")
    return EXIT_OK


def _seconds(start: Optional[float], end: Optional[float]) -> str:
    if start is None or end is None:
        return "-"
    return f"{max(0.0, end - start):.1f}"


def write_status(state: JournalState, stream: TextIO) -> None:
    """The status table of a run: a row per job, the counts, the driver.

    `wait` is the seconds a grid job waited in the scheduler's queue, `run` the seconds
    its runscript ran (so far, for a running job).
    """
    header = ["job", "status", "jobid", "exit", "reason", "wait", "run", "folder"]
    rows = []
    now = time.time()
    for record in state.jobs:
        status = record.status.name + (" (left queued)" if record.left else "")
        jobid = record.jobid or "-"
        if record.native_id is not None:
            jobid = f"{jobid} ({record.native_id})"
        started = record.started_at
        end = record.finished_at if record.status.done else now
        wait_end = started if started is not None else end
        rows.append(
            [
                record.folder,
                status,
                jobid,
                "-" if record.exit_code is None else str(record.exit_code),
                record.reason or "-",
                _seconds(record.submitted_at, wait_end),
                _seconds(started, end),
                display_path(Path(record.path)),
            ]
        )
    widths = [max(len(row[c]) for row in [header, *rows]) for c in range(len(header))]
    for row in [header, *rows]:
        stream.write("  ".join(cell.ljust(widths[c]) for c, cell in enumerate(row)).rstrip() + "\n")
    counts = state.counts()
    order = [s.name for s in JobStatus]
    summary = ", ".join(f"{counts[name]} {name}" for name in order if name in counts)
    stream.write(f"{len(state.jobs)} jobs: {summary or 'none yet'}\n")
    stream.write(driver_line(state) + "\n")


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
    """Build the runner a journal describes: JobRunner for "local", else the registered class."""
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
