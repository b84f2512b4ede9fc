"""The progress display on stderr: a line per job as it ends, and a status line on a terminal."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, TextIO

from runner_core import JobStatus

if TYPE_CHECKING:
    from runner_core import Results
    from runner_core.cli._batch import Batch

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
