"""The summary on stdout once the batch has ended: a table, or a JSON document."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence, TextIO

from runner_core import JobStatus

if TYPE_CHECKING:
    from runner_core.cli._batch import Batch


def _display_path(path: Optional[Path]) -> str:
    if path is None:
        return "-"
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def write_table(batch: Batch, stream: TextIO) -> None:
    """Write the summary table, a line per job that did not succeed, and the counts.

    Args:
        batch: the batch, every job ended (or shown CANCELLED).
        stream: where to write (stdout).
    """
    header = ("job", "status", "exit", "seconds", "folder")
    rows = []
    for i, job in enumerate(batch.jobs):
        code = batch.exit_code(i)
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


def json_document(batch: Batch) -> dict[str, Any]:
    """Return the summary as the `--json` document: `jobs`, `succeeded`, `failed`.

    Args:
        batch: the batch, every job ended (or shown CANCELLED).

    Returns:
        A dict ready for `json.dump`; each job has `name`, `status`, `exit_code`,
        `seconds`, `path` and `error`.
    """
    jobs = []
    for i, job in enumerate(batch.jobs):
        jobs.append(
            {
                "name": batch.label(i),
                "status": batch.status(i).name,
                "exit_code": batch.exit_code(i),
                "seconds": batch.seconds(i),
                "path": None if job.path is None else str(job.path),
                "error": batch.error(i),
            }
        )
    succeeded = sum(1 for i in range(len(batch.jobs)) if batch.status(i) is JobStatus.SUCCESSFUL)
    return {"jobs": jobs, "succeeded": succeeded, "failed": len(batch.jobs) - succeeded}
