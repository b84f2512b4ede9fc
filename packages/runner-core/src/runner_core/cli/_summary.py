"""The summary on stdout once the batch has ended: a table, or a JSON document."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence, TextIO

from runner_core import JobStatus
from runner_core.cli._batch import display_path

if TYPE_CHECKING:
    from runner_core.cli._batch import Batch

# Columns of numbers line up on the right.
RIGHT_ALIGNED = frozenset({"exit", "wait", "seconds"})


def write_table(batch: Batch, stream: TextIO) -> None:
    """Write the summary table, a line per job that did not succeed, and the counts.

    The table has a `jobid` column only when some job of the batch has a scheduler
    id, a `reason` column only when some job has an end reason, and a `wait` column
    (seconds in the scheduler's queue) only when some job waited in one, so the table
    of a local run that went well has none of them. `seconds` is how long the
    runscript ran.

    Args:
        batch: the batch, every job ended (or shown CANCELLED).
        stream: where to write (stdout).
    """
    count = len(batch.jobs)
    with_jobid = any(batch.jobid(i) is not None for i in range(count))
    with_reason = any(batch.reason(i) is not None for i in range(count))
    with_wait = any(batch.wait(i) is not None for i in range(count))
    header = ["job"]
    header += ["jobid"] if with_jobid else []
    header += ["status"]
    header += ["reason"] if with_reason else []
    header += ["exit"]
    header += ["wait"] if with_wait else []
    header += ["seconds", "folder"]
    rows = []
    for i, job in enumerate(batch.jobs):
        code = batch.exit_code(i)
        seconds = batch.seconds(i)
        waited = batch.wait(i)
        row = [batch.label(i)]
        row += [batch.jobid(i) or "-"] if with_jobid else []
        row += [batch.status(i).name]
        row += [batch.reason(i) or "-"] if with_reason else []
        row += ["-" if code is None else str(code)]
        row += (["-" if waited is None else f"{waited:.2f}"]) if with_wait else []
        row += ["-" if seconds is None else f"{seconds:.2f}", display_path(job.path)]
        rows.append(row)
    widths = [max(len(row[c]) for row in [header, *rows]) for c in range(len(header))]
    right = {c for c, name in enumerate(header) if name in RIGHT_ALIGNED}

    def line(cells: Sequence[str]) -> str:
        out = [
            cell.rjust(widths[c]) if c in right else cell.ljust(widths[c])
            for c, cell in enumerate(cells)
        ]
        return "  ".join(out).rstrip()

    stream.write(line(header) + "\n")
    for row in rows:
        stream.write(line(row) + "\n")
    failed = [i for i in range(count) if batch.status(i) is not JobStatus.SUCCESSFUL]
    for i in failed:
        failure = batch.failure_line(i)
        if failure:
            stream.write(failure + "\n")
    succeeded = count - len(failed)
    stream.write(f"{succeeded} succeeded, {len(failed)} failed\n")


def json_document(batch: Batch) -> dict[str, Any]:
    """Return the summary as the `--json` document: `jobs`, `succeeded`, `failed`.

    Args:
        batch: the batch, every job ended (or shown CANCELLED).

    Returns:
        A dict ready for `json.dump`; each job has `name`, `jobid` (and `native_id`, the
        scheduler's own id of an array task where it differs), `status`, `reason`,
        `exit_code`, `seconds` (how long the runscript ran), `wait_seconds` (in the
        scheduler's queue), `submitted_at`, `started_at`, `finished_at` (epoch
        seconds), `path`, `err_path`, `error` and `restored` (True for a job a resume
        took from an earlier run instead of running it).
    """
    jobs = []
    for i, job in enumerate(batch.jobs):
        results = job.results
        jobs.append(
            {
                "name": batch.label(i),
                "jobid": results.jobid,
                "native_id": results.native_id,
                "status": batch.status(i).name,
                "reason": batch.reason(i),
                "exit_code": batch.exit_code(i),
                "seconds": batch.seconds(i),
                "wait_seconds": batch.wait(i),
                "submitted_at": results.submitted_at,
                "started_at": results.started_at,
                "finished_at": results.finished_at,
                "path": None if job.path is None else str(job.path),
                "err_path": None if job.err_path is None else str(job.err_path),
                "error": batch.error(i),
                "restored": job.results.restored,
            }
        )
    succeeded = sum(1 for i in range(len(batch.jobs)) if batch.status(i) is JobStatus.SUCCESSFUL)
    return {"jobs": jobs, "succeeded": succeeded, "failed": len(batch.jobs) - succeeded}
