"""The job layer: JobStatus, Results, SingleJob, JobError and report_failure."""

from __future__ import annotations

import enum
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Optional

from runner_core._waiting import wait_event
from runner_settings import Settings

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path
    from subprocess import Popen

    from runner_core._manager import JobManager
    from runner_core._runner import JobRunner


class JobError(Exception):
    """An error the job layer raises itself (for example: running a job twice)."""


class JobStatus(enum.Enum):
    """Where a job is in its life.

    A job is CREATED until its runner's `call` starts (waiting for a `maxjobs` slot
    or for a thread still counts as CREATED) and RUNNING while `call` runs. The last
    four are final: SUCCESSFUL (exit code 0), CRASHED (non-zero exit code), FAILED
    (could not be run, raised, or `report_failure` was called) and CANCELLED.
    """

    CREATED = "created"
    RUNNING = "running"
    SUCCESSFUL = "successful"
    CRASHED = "crashed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def done(self) -> bool:
        """True for the final states (SUCCESSFUL, CRASHED, FAILED, CANCELLED)."""
        return self is not JobStatus.CREATED and self is not JobStatus.RUNNING


# One lock for every status transition: they are a few assignments long, so sharing it
# costs nothing measurable and saves a lock per job.
_state_lock = threading.Lock()

# The job whose `call` runs in this thread (set by JobRunner._run_job); report_failure
# and the local `call` find their job through it.
_current = threading.local()


def _logger() -> Any:
    # logging costs ~10 ms to import; only failures and odd cases log, so it is
    # imported the first time something is logged.
    import logging

    return logging.getLogger(__name__)


def current_results() -> Optional[Results]:
    """Return the Results of the job whose `call` runs in this thread, or None."""
    return getattr(_current, "results", None)


def report_failure(message: str) -> None:
    """Say why the job running in this thread failed, although `call` returns an exit code.

    Call it from inside a runner's `call` (which runs in the job's own thread). The job
    then ends FAILED with `results.error == message` and `results.exit_code` set to
    what `call` returned. Outside a job's `call` the message is only logged.

    Args:
        message: what went wrong, for a person to read (name the file or command).
    """
    results = current_results()
    if results is None:
        _logger().warning("report_failure() outside a job's call: %s", message)
        return
    results._failure = str(message)
    _logger().debug("job %r failed: %s", results.job.name, message)


class Results:
    """The outcome of one job: status, exit code, error, timing; can be waited on.

    Attributes:
        job: the job these results belong to.
        status: a JobStatus.
        exit_code: what the runner's `call` returned, or None while unknown.
        error: the failure message or formatted traceback when the job FAILED
            (or a note when it was CANCELLED before running), else None.
        started_at: `time.time()` when `call` started, or None.
        finished_at: `time.time()` when the job ended, or None.
    """

    __slots__ = (
        "_cancel_requested",
        "_event",
        "_failure",
        "_proc",
        "_runner",
        "error",
        "exit_code",
        "finished_at",
        "job",
        "started_at",
        "status",
    )

    def __init__(self, job: SingleJob) -> None:
        """Create the results of `job`, in state CREATED."""
        self.job = job
        self.status = JobStatus.CREATED
        self.exit_code: Optional[int] = None
        self.error: Optional[str] = None
        self.started_at: Optional[float] = None
        self.finished_at: Optional[float] = None
        self._event = threading.Event()
        self._failure: Optional[str] = None
        self._cancel_requested = False
        self._proc: Optional[Popen[bytes]] = None
        self._runner: Optional[JobRunner] = None

    def __repr__(self) -> str:
        return f"<Results of {self.job.name!r}: {self.status.name}, exit code {self.exit_code}>"

    @property
    def ok(self) -> bool:
        """True when the job ended SUCCESSFUL."""
        return self.status is JobStatus.SUCCESSFUL

    @property
    def done(self) -> bool:
        """True once the job has ended (successful, crashed, failed or cancelled)."""
        return self.status.done

    @property
    def elapsed(self) -> Optional[float]:
        """Seconds `call` took (so far, while running); None before it started."""
        start = self.started_at
        if start is None:
            return None
        end = self.finished_at
        return (time.time() if end is None else end) - start

    def wait(self, timeout: Optional[float] = None) -> Results:
        """Block until the job has ended.

        Args:
            timeout: seconds to wait at most; None waits for as long as it takes.

        Returns:
            These results.

        Raises:
            TimeoutError: the timeout passed before the job ended.
        """
        if not wait_event(self._event, timeout):
            raise TimeoutError(
                f"job {self.job.name!r} has not ended within {timeout} s "
                f"(status {self.status.name}); wait longer or cancel it"
            )
        return self

    # --- transitions, used by the runner --------------------------------------

    def _mark_running(self) -> None:
        with _state_lock:
            if self.status is JobStatus.CREATED:
                self.started_at = time.time()
                self.status = JobStatus.RUNNING

    def _finish(
        self, status: JobStatus, exit_code: Optional[int] = None, error: Optional[str] = None
    ) -> bool:
        """Move to a final state once; later calls change nothing and return False."""
        with _state_lock:
            if self.status.done:
                return False
            self.status = status
            if exit_code is not None:
                self.exit_code = exit_code
            self.error = error
            self.finished_at = time.time()
            self._proc = None
        self._event.set()
        return True


_NAME_FORBIDDEN = ("/", "\0")


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"job name must be a str, not {type(name).__name__} ({name!r})")
    if not name or name in (".", "..") or any(c in name for c in _NAME_FORBIDDEN):
        raise ValueError(
            f"job name {name!r} cannot be used as a file name; "
            "give a non-empty name without '/' or NUL that is not '.' or '..'"
        )
    return name


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


class SingleJob:
    """A job that runs one runscript in its own folder.

    The runscript written to `<name>.run` is `settings.runscript.shebang`,
    `settings.runscript.pre`, the body from `get_runscript()` and
    `settings.runscript.post`. `settings.run` holds the runflags handed to the
    runner's `call`. Subclass and override `get_runscript()` to build the body.

    Args:
        name: the job's name; also the base of its folder and file names.
        runscript: the body of the runscript (shell commands by default).
        settings: settings merged over the defaults (`runscript.shebang` "#!/bin/sh",
            `runscript.pre` "", `runscript.post` "", `runscript.stdout_redirect`
            False, `run` {}).

    Raises:
        TypeError: name is not a str.
        ValueError: name cannot be a file name (empty, '.', '..', holds '/' or NUL).
    """

    def __init__(
        self,
        name: str,
        runscript: str = "",
        settings: Settings | Mapping[str, Any] | None = None,
    ) -> None:
        """Create a job; see the class docstring."""
        self.name = _check_name(name)
        self.runscript = runscript
        self.settings = Settings(
            {
                "runscript": {
                    "shebang": "#!/bin/sh",
                    "pre": "",
                    "post": "",
                    "stdout_redirect": False,
                },
                "run": {},
            }
        )
        if settings:
            self.settings.update(settings)
        self.path: Optional[Path] = None
        self.results = Results(self)
        self._started = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.results.status.name}>"

    @property
    def runscript_name(self) -> str:
        """File name of the runscript: `<name>.run`."""
        return self.name + ".run"

    @property
    def out_path(self) -> Optional[Path]:
        """`<name>.out` in the job's folder, or None before the job has a folder."""
        return None if self.path is None else self.path / (self.name + ".out")

    @property
    def err_path(self) -> Optional[Path]:
        """`<name>.err` in the job's folder, or None before the job has a folder."""
        return None if self.path is None else self.path / (self.name + ".err")

    def get_runscript(self) -> str:
        """Return the body of the runscript (override in a subclass to build it)."""
        return self.runscript

    def full_runscript(self) -> str:
        """Return the whole runscript: shebang, pre, body, post.

        With `settings.runscript.stdout_redirect` the script sends its own stdout to
        `<name>.out` through an `exec >` line (so the shebang must name a POSIX shell).
        That line goes after the leading comment lines, because schedulers read
        directives such as `#SBATCH`, `#$` and `#PBS` only up to the first command.
        """
        rs = self.settings["runscript"]
        parts = [str(rs.get("shebang", "#!/bin/sh")).rstrip("\n"), "\n"]
        for chunk in (rs.get("pre", ""), self.get_runscript(), rs.get("post", "")):
            if chunk:
                parts.append(chunk if chunk.endswith("\n") else chunk + "\n")
        if not rs.get("stdout_redirect"):
            return "".join(parts)
        lines = "".join(parts).splitlines(keepends=True)
        first_command = 1
        while first_command < len(lines) and (
            not lines[first_command].strip() or lines[first_command].lstrip().startswith("#")
        ):
            first_command += 1
        redirect = "exec >" + _shell_quote(self.name + ".out") + "\n"
        return "".join([*lines[:first_command], redirect, *lines[first_command:]])

    def run(
        self,
        jobrunner: Optional[JobRunner] = None,
        jobmanager: Optional[JobManager] = None,
        **runflags: Any,
    ) -> Results:
        """Run the job through `jobrunner` in a folder given by `jobmanager`.

        Returns at once when the runner is parallel; wait on the results.

        Args:
            jobrunner: the runner; None uses `config.default_jobrunner`.
            jobmanager: the manager; None uses `config.default_jobmanager`.
            **runflags: merged into `settings.run` (the runflags `call` receives).

        Returns:
            The job's Results.

        Raises:
            JobError: the job was run before, or the runner is shut down (the job then
                ends CANCELLED).
        """
        with _state_lock:
            if self._started:
                raise JobError(
                    f"job {self.name!r} has already been run; create a new job to run it again"
                )
            self._started = True
        if runflags:
            self.settings["run"].update(runflags)
        if jobrunner is None or jobmanager is None:
            from runner_core._config import default_jobmanager, default_jobrunner

            if jobrunner is None:
                jobrunner = default_jobrunner()
            if jobmanager is None:
                jobmanager = default_jobmanager()
        try:
            jobrunner._run_job(self, jobmanager)
        except BaseException as exc:
            if isinstance(exc, Exception) and not isinstance(exc, JobError):
                import traceback

                self.results._finish(JobStatus.FAILED, error=traceback.format_exc())
            else:
                # a Ctrl-C may land after a job thread took the job: make sure it stops
                self.cancel()
                self.results._finish(JobStatus.CANCELLED, error=f"not run: {exc!r}")
            raise
        return self.results

    def cancel(self) -> None:
        """Cancel the job: it ends CANCELLED.

        A job that has not reached `call` yet never runs; a local job in `call` has
        its process group killed (SIGTERM, then SIGKILL after `config.kill_grace`).
        Does nothing to a job that has ended. Returns at once.
        """
        results = self.results
        with _state_lock:
            if results.status.done:
                return
            results._cancel_requested = True
            proc = results._proc
            runner = results._runner
        if runner is not None:
            runner._wake_waiters()
        if proc is not None:
            from runner_core._process import kill_in_background

            kill_in_background([proc])

    # --- the steps the runner drives ---------------------------------------------

    def _prepare(self, jobmanager: JobManager) -> tuple[str, str, Optional[str], str, Settings]:
        """Register the folder and write the runscript; return `call`'s arguments."""
        workdir = str(jobmanager.register(self))
        name = self.name
        script = self.full_runscript().encode()
        fd = os.open(
            os.path.join(workdir, name + ".run"),
            os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
            0o777,  # the umask takes away what the user does not want; keeps +x for them
        )
        try:
            view = memoryview(script)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        redirect = self.settings["runscript"].get("stdout_redirect")
        out = None if redirect else os.path.join(workdir, name + ".out")
        return (
            name + ".run",
            workdir,
            out,
            os.path.join(workdir, name + ".err"),
            self.settings["run"],
        )

    def _finalize(self, exit_code: int, cancelled: bool) -> None:
        """Set the final status from `call`'s exit code."""
        results = self.results
        if results._failure is not None:
            results._finish(JobStatus.FAILED, exit_code, results._failure)
        elif cancelled or results._cancel_requested:
            results._finish(JobStatus.CANCELLED, exit_code, "cancelled while running")
        elif exit_code == 0:
            results._finish(JobStatus.SUCCESSFUL, exit_code)
        else:
            results._finish(JobStatus.CRASHED, exit_code)
