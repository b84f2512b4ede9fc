"""Progress displays: `runner run`'s on stderr (a line per job, a status line), `status --watch`."""

from __future__ import annotations

import heapq
import shutil
import time
from typing import TYPE_CHECKING, Optional, TextIO

from runner_core import JobStatus
from runner_core.cli._args import PROG

if TYPE_CHECKING:
    from runner_core import JobRecord, JournalState, Results
    from runner_core.cli._batch import Batch

PROG_WATCH = f"{PROG} status --watch"

# How often the status line is redrawn at most (seconds): a few times a second is
# smooth enough for people, and ends that come in a flood are drawn once per interval.
REFRESH = 0.2


class Progress:
    """Progress on `stream`: one line per job as it ends; on a terminal, an updating status line.

    Every method is called from one thread (the command's main thread), so the
    lines never interleave.
    """

    def __init__(self, batch: Batch, stream: TextIO) -> None:
        """Show the progress of `batch` on `stream` (a status line only if it is a terminal)."""
        self.batch = batch
        self.stream = stream
        self.tty = _isatty(stream)
        self.reported = 0
        self.failed = 0
        # The jobs not reported yet; what the status line counts as running or waiting.
        self.unreported: dict[int, Results] = {i: job.results for i, job in enumerate(batch.jobs)}
        self.line_shown = False
        self.drawn_at = float("-inf")

    def ended(self, index: int) -> None:
        """Report that the job at `index` has ended (a second report of it does nothing)."""
        if self.unreported.pop(index, None) is None:
            return
        self.reported += 1
        self.failed += self.batch.status(index) is not JobStatus.SUCCESSFUL
        if self.line_shown:
            self._clear_line()
        self.stream.write(self._ended_line(index) + "\n")
        self.stream.flush()

    def show_status(self, *, now: bool = True) -> None:
        """Redraw the status line on a terminal; with `now=False` only if the last is old.

        Args:
            now: draw whatever the time since the last drawing (False: at most once
                per REFRESH, for ends that come in a flood).
        """
        if not self.tty:
            return
        clock = time.monotonic()
        if not now and clock - self.drawn_at < REFRESH:
            return
        self.drawn_at = clock
        self.stream.write("\r" + self._status_line() + "\x1b[K")
        self.stream.flush()
        self.line_shown = True

    def finish(self) -> None:
        """Report every job not reported yet, in the order they ended; end the status line.

        After an interrupted run this reports the jobs the runner cancelled (their
        ends may not have come through yet) and those it never received.
        """
        batch = self.batch
        rest = sorted(self.unreported, key=lambda i: (batch.jobs[i].results.finished_at or 0.0, i))
        for index in rest:
            self.ended(index)
        self.show_status()
        if self.line_shown:
            self.stream.write("\n")
            self.line_shown = False
        self.stream.flush()

    def note(self, message: str) -> None:
        """Write `message` on a line of its own, above the status line if one is shown."""
        if self.line_shown:
            self._clear_line()
        self.stream.write(message + "\n")
        self.stream.flush()

    def _clear_line(self) -> None:
        self.stream.write("\r\x1b[K")
        self.line_shown = False

    def _ended_line(self, index: int) -> str:
        """`[3/10] opt.002 (job 4711) CRASHED exit 3 1.2s [see work/opt.002/opt.err]`.

        The job id is shown when the job has one; the error file only for a job that
        did not succeed, and only when the file is there and not empty.
        """
        batch = self.batch
        code = batch.exit_code(index)
        seconds = batch.seconds(index)
        status = batch.status(index)
        parts = [
            f"[{self.reported}/{len(batch.jobs)}]",
            batch.label_with_jobid(index),
            status.name,
        ]
        reason = batch.reason(index)
        if reason is not None and status is not JobStatus.CANCELLED:
            parts.append(f"({reason})")
        if code is not None:
            parts.append(f"exit {code}")
        if seconds is not None:
            parts.append(f"{seconds:.1f}s")
        if batch.jobs[index].results.restored:
            parts.append(restored_note(status))
        if status is not JobStatus.SUCCESSFUL:
            hint = batch.error_file_hint(index)
            if hint is not None:
                parts.append(hint)
        return " ".join(parts)

    def _status_line(self) -> str:
        # The core pushes a job's end but not its start, so the running jobs are
        # counted among the unreported ones: at most once per REFRESH, on a terminal.
        running = sum(r.status is JobStatus.RUNNING for r in self.unreported.values())
        pending = sum(r.status is JobStatus.SUBMITTED for r in self.unreported.values())
        total = len(self.batch.jobs)
        waiting = total - self.reported - running - pending
        elapsed = time.monotonic() - self.batch.started
        queued = f"{pending} pending in the scheduler, " if pending else ""
        return (
            f"{self.reported}/{total} done ({self.failed} failed), {running} running, "
            f"{queued}{waiting} waiting, {format_duration(elapsed)}"
        )


def restored_note(status: JobStatus) -> str:
    """`(restored: succeeded in an earlier run)`, or how else the restored job ended there."""
    if status is JobStatus.SUCCESSFUL:
        return "(restored: succeeded in an earlier run)"
    return f"(restored: {status.name.lower()} in an earlier run, not run again)"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def format_duration(seconds: float) -> str:
    """Return `seconds` for people: `12.4s`, `3m05s`, `2h03m05s`."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{rest:02d}s" if hours else f"{minutes}m{rest:02d}s"


# --- `runner status --watch`: a run's live view, from its journal -------------------------

#: How far back "finished per minute" looks (seconds): recent enough to follow a change of
#: pace, long enough not to jump at every job.
RATE_WINDOW = 300.0
#: How many recent failures the live view lists at most.
FAILURES_SHOWN = 5
_WAITING = frozenset({JobStatus.CREATED, JobStatus.QUEUED, JobStatus.SUBMITTED})


def watch_lines(state: JournalState, driver: str, now: float) -> list[str]:
    """The live view of a run as lines (no escape codes): what `runner status --watch` shows.

    Args:
        state: the run's journal, read now.
        driver: the line on who drives the run (`driver pid 4711 on host login1: running`).
        now: `time.time()` of the view.

    Returns:
        The counts per state, jobs done and the pace (jobs finished per minute over the
        last RATE_WINDOW seconds), an estimate of the time left at that pace, the job
        that has waited longest, and the latest failures with the first line of their error.
    """
    records = state.jobs
    total = len(records)
    counts = state.counts()
    order = [s.name for s in JobStatus]
    summary = ", ".join(f"{counts[name]} {name}" for name in order if name in counts)
    lines = [
        f"{PROG_WATCH}: {state.folder}  {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(now))}",
        driver,
        f"{total} jobs: {summary or 'none yet'}",
    ]
    done = finished_recently = 0
    first: Optional[float] = None
    oldest: Optional[JobRecord] = None
    oldest_since = now
    failures: list[JobRecord] = []
    since = now - RATE_WINDOW
    for record in records:
        status = record.status
        seen = record.registered_at
        if seen is not None and (first is None or seen < first):
            first = seen
        if status.done:
            done += 1
            end = record.finished_at
            if end is not None and end >= since:
                finished_recently += 1
            if status is not JobStatus.SUCCESSFUL:
                failures.append(record)
        elif status in _WAITING:
            waiting_since = record.submitted_at or record.registered_at
            if waiting_since is not None and waiting_since < oldest_since:
                oldest, oldest_since = record, waiting_since
    span = min(RATE_WINDOW, now - first) if first is not None else 0.0
    left = total - done
    share = f" ({100 * done // total}%)" if total else ""
    pace = "0.0" if span > 0 else "-"
    eta = "nothing left" if left == 0 else "unknown (no job finished lately)"
    if span > 0 and finished_recently:
        per_second = finished_recently / span
        pace = f"{per_second * 60:.1f}"
        if left:
            eta = f"about {format_duration(left / per_second)}"
    lines.append(
        f"done: {done}/{total}{share}, finished per minute: {pace} (last "
        f"{format_duration(min(span, RATE_WINDOW)) if span > 0 else '-'}), time left: {eta}"
    )
    if oldest is not None:
        jobid = f", job {oldest.jobid}" if oldest.jobid else ""
        lines.append(
            f"oldest waiting: {oldest.folder} ({oldest.status.name}{jobid}, for "
            f"{format_duration(max(0.0, now - oldest_since))})"
        )
    else:
        lines.append("oldest waiting: none")
    if failures:
        recent = heapq.nlargest(FAILURES_SHOWN, failures, key=lambda r: r.finished_at or 0.0)
        lines.append(f"recent failures ({len(recent)} of {len(failures)}):")
        lines.extend(f"  {_failure_line(record)}" for record in recent)
    else:
        lines.append("failures: none")
    return lines


def _failure_line(record: JobRecord) -> str:
    """`18:44:51  opt12.004  CRASHED exit 3 (timeout)  Error: SCF did not converge`."""
    when = "--:--:--"
    if record.finished_at is not None:
        when = time.strftime("%H:%M:%S", time.localtime(record.finished_at))
    parts = [when, "", record.folder, "", record.status.name]
    if record.exit_code is not None:
        parts.append(f"exit {record.exit_code}")
    if record.reason is not None and record.status is not JobStatus.CANCELLED:
        parts.append(f"({record.reason})")
    if record.error:
        first = next((line.strip() for line in record.error.splitlines() if line.strip()), "")
        parts += ["", first]
    return " ".join(parts)


class Screen:
    """Where the live view goes: redrawn in place on a terminal, successive snapshots elsewhere.

    On a terminal each view replaces the last one (cursor home, each line cleared to its
    end, the rest of the screen cleared), cut to the terminal's size, with the cursor
    hidden until `close`. Anywhere else (a pipe, a file) each view is written as plain
    lines followed by a blank line: no escape code ever.
    """

    def __init__(self, stream: TextIO) -> None:
        """Draw on `stream` (escape codes only if it is a terminal)."""
        self.stream = stream
        self.tty = _isatty(stream)
        self.drawn = False

    def show(self, lines: list[str]) -> None:
        """Draw one view."""
        stream = self.stream
        if not self.tty:
            stream.write("\n".join(lines) + "\n\n")
            stream.flush()
            return
        size = shutil.get_terminal_size()
        width = max(10, size.columns - 1)
        kept = [line[:width] for line in lines[: max(1, size.lines - 1)]]
        start = "\x1b[?25l\x1b[H\x1b[2J" if not self.drawn else "\x1b[H"
        self.drawn = True  # first: a Ctrl-C during the write still shows the cursor again
        stream.write(start + "\x1b[K\n".join(kept) + "\x1b[K\n\x1b[J")
        stream.flush()

    def close(self, message: str = "") -> None:
        """Leave the last view on the screen, show the cursor again, then `message` if any."""
        if self.tty and self.drawn:
            self.stream.write("\x1b[?25h")
        if message:
            self.stream.write(message + "\n")
        self.stream.flush()
