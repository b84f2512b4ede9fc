"""The batch: one job per script, and how the command shows each job's outcome."""

from __future__ import annotations

import stat
import time
from pathlib import Path
from typing import Optional, Sequence

from runner_core import JobStatus, SingleJob
from runner_core.cli._args import UsageError
from runner_core.ext import tail_of


def display_path(path: Optional[Path]) -> str:
    """Return `path` for people: relative to the current directory when inside it, `-` for None."""
    if path is None:
        return "-"
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def read_scripts(paths: Sequence[str]) -> list[tuple[str, str]]:
    """Read every script before anything runs.

    Args:
        paths: the SCRIPT arguments, in command-line order.

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


def make_job(name: str, text: str) -> SingleJob:
    """Return a job whose runscript is `text`; a leading `#!` line becomes its shebang.

    Args:
        name: the job's name (the script's file name without its suffix).
        text: the script's text.

    Returns:
        The job, not run yet.

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


class Batch:
    """The jobs of one run, and what the command shows of each (by index, in script order).

    Attributes:
        jobs: the jobs, in command-line order.
        cancelled: set once the run was interrupted; a job that then never reached
            the runner is shown CANCELLED.
        started: `time.monotonic()` when the batch was made.
        arrays: hand the jobs over inside the runner's ``batch()`` block (a grid runner then
            submits them as job arrays).
    """

    def __init__(self, jobs: list[SingleJob], arrays: bool = False) -> None:
        """Make the batch of `jobs`."""
        self.jobs = jobs
        self.cancelled = False
        self.started = time.monotonic()
        self.arrays = arrays

    def status(self, index: int) -> JobStatus:
        """Return the status to show: a job the interrupted run never handed over is CANCELLED."""
        results = self.jobs[index].results
        status = results.status
        if not status.done and self.cancelled and results.started_at is None:
            return JobStatus.CANCELLED
        return status

    def exit_code(self, index: int) -> Optional[int]:
        """Return the job's exit code, or None when it has none."""
        return self.jobs[index].results.exit_code

    def label(self, index: int) -> str:
        """Return the job's folder name (unique in the run), or its name before it has one."""
        job = self.jobs[index]
        return job.path.name if job.path is not None else job.name

    def jobid(self, index: int) -> Optional[str]:
        """Return the scheduler's id of the job, or None (a local job, or not submitted).

        An array task whose scheduler gives it an id of its own (SLURM) shows both,
        ``4031_1 (4052)``, so the scheduler's messages can be matched to the job.
        """
        results = self.jobs[index].results
        if results.jobid is None or results.native_id is None:
            return results.jobid
        return f"{results.jobid} ({results.native_id})"

    def reason(self, index: int) -> Optional[str]:
        """Return why the job was ended (a word of `runner_core.REASONS`), or None."""
        results = self.jobs[index].results
        if results.reason is None and self.status(index) is JobStatus.CANCELLED:
            return "cancelled"
        return results.reason

    def label_with_jobid(self, index: int) -> str:
        """Return the label followed by ` (job ID)` when the job has a scheduler id."""
        jobid = self.jobid(index)
        label = self.label(index)
        return label if jobid is None else f"{label} (job {jobid})"

    def error_file_hint(self, index: int) -> Optional[str]:
        """Return `[see PATH]`, PATH the job's error file as `display_path` shows it.

        None when the job has no folder, or the file is missing or empty (a job
        cancelled before it ran, a submission that failed, an interpreter that does
        not exist): a pointer to an empty file sends people looking for nothing.
        """
        err_path = self.jobs[index].err_path
        if err_path is None:
            return None
        try:
            info = err_path.stat()
        except OSError:
            return None
        if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
            return None
        return f"[see {display_path(err_path)}]"

    def failure_line(self, index: int) -> Optional[str]:
        """Return the summary's line for a job that did not succeed; None when it did.

        The line is `<label>[ (job ID)]: <first line of why>[ [see <error file>]]`:
        one line per job, even when the error spans several.
        """
        message = self.error(index)
        if message is None:
            return None
        lines = message.strip().splitlines()
        first = lines[0] if lines else message.strip()
        line = f"{self.label_with_jobid(index)}: {first}"
        hint = self.error_file_hint(index)
        return line if hint is None else f"{line} {hint}"

    def error(self, index: int) -> Optional[str]:
        """Return why the job did not succeed, in full; None when it succeeded or still runs.

        Its first line is what the summary shows: for a CRASHED job the end reason (a
        timeout with the time it ran), the exit code and the last line it printed on
        stderr; for a FAILED one the library's message (a refused submission: the
        scheduler's own words).
        """
        status = self.status(index)
        if status is JobStatus.SUCCESSFUL or not status.done:
            return None
        results = self.jobs[index].results
        if status is JobStatus.CANCELLED:
            return results.error or "cancelled"
        if status is JobStatus.FAILED:
            return results.error or "failed"
        why = describe_reason(results.reason, results.run_time)
        detail = f"exit code {results.exit_code}"
        if why is not None:
            detail = f"{why}, {detail}"
        tail = results.error
        if tail is None and not results.restored:
            tail = self._stderr_tail(index)
        if not tail:
            return detail
        return f"{detail}: {tail.strip().splitlines()[-1].strip()}"

    def _stderr_tail(self, index: int) -> Optional[str]:
        err_path = self.jobs[index].err_path
        return None if err_path is None else tail_of(str(err_path))

    def seconds(self, index: int) -> Optional[float]:
        """Return the seconds the runscript ran, or None when it never started."""
        elapsed = self.jobs[index].results.elapsed
        return None if elapsed is None else round(elapsed, 3)

    def wait(self, index: int) -> Optional[float]:
        """Return the seconds a grid job waited in the scheduler's queue, or None (local jobs)."""
        waited = self.jobs[index].results.wait_time
        return None if waited is None else round(waited, 3)


#: How a summary names each end reason.
_REASON_TEXT = {
    "cancelled": "cancelled",
    "out_of_memory": "out of memory (killed at its memory limit)",
    "node_fail": "its node failed",
    "preempted": "preempted by the scheduler",
    "submit_failed": "the submission failed",
}


def describe_reason(reason: Optional[str], run_time: Optional[float]) -> Optional[str]:
    """Return the end reason for people: ``timeout after 0:01:00 of walltime``; None for none."""
    if reason is None:
        return None
    if reason == "timeout":
        if run_time is None:
            return "timeout (killed at its time limit)"
        return f"timeout after {clock(run_time)} of walltime"
    return _REASON_TEXT.get(reason, reason)


def clock(seconds: float) -> str:
    """Return `seconds` as ``H:MM:SS`` (``0:01:00``), rounded to the second."""
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{rest:02d}"
