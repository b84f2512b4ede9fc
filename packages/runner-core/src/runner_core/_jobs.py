"""SingleJob: a job that runs one runscript in its own folder."""

from __future__ import annotations

import contextlib
import os
import threading
from typing import TYPE_CHECKING, Any, Optional

from runner_core._defaults import default_jobmanager, default_jobrunner
from runner_core._errors import JobError
from runner_core._results import Results
from runner_core._retry import Retry
from runner_core._status import JobStatus
from runner_settings import Settings

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from runner_core._journal import JobRecord
    from runner_core._manager import JobManager
    from runner_core._runner import JobRunner

__all__ = ["SingleJob"]

# Guards `SingleJob._started`: a job is run once, whichever thread tries first.
_run_lock = threading.Lock()


_NAME_FORBIDDEN = ("/", "\0")

#: Lines of a CRASHED job's stderr kept as its `results.error`.
STDERR_TAIL_LINES = 5
_TAIL_BYTES = 8192


def tail_of(path: str, lines: int = STDERR_TAIL_LINES) -> Optional[str]:
    """The last `lines` non-blank lines of the text file at `path`, or None when it has none.

    Reads at most the file's last 8 KiB, so a job that wrote gigabytes costs nothing.
    """
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - _TAIL_BYTES))
            data = handle.read(_TAIL_BYTES)
    except OSError:
        return None
    text = data.decode("utf-8", errors="replace")
    kept = [line.rstrip() for line in text.splitlines() if line.strip()]
    if size > _TAIL_BYTES and kept:
        kept = kept[1:]  # the first line read may be cut
    return "\n".join(kept[-lines:]) or None


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"job name must be a str, not {type(name).__name__} ({name!r})")
    if not name or name in (".", "..") or any(c in name for c in _NAME_FORBIDDEN):
        raise ValueError(
            f"job name {name!r} cannot be used as a file name; "
            "give a non-empty name without '/' or NUL that is not '.' or '..'"
        )
    return name


def _check_runscript(cls: type[SingleJob], name: str, runscript: object) -> str:
    """Return the runscript text to keep, refusing what cannot become a runscript.

    None is the "no text" of a subclass that builds its runscript itself (it overrides
    `get_runscript()` or `full_runscript()`); a plain SingleJob would run an empty script.
    """
    if isinstance(runscript, str):
        return runscript
    if runscript is None:
        if (
            cls.get_runscript is SingleJob.get_runscript
            and cls.full_runscript is SingleJob.full_runscript
        ):
            raise TypeError(
                f"job {name!r}: runscript is None, so {cls.__name__} has nothing to run; "
                f"pass the script's text, e.g. {cls.__name__}({name!r}, runscript='./simulate "
                "input.dat\\n'), or subclass SingleJob and override get_runscript()"
            )
        return ""
    if isinstance(runscript, (bytes, bytearray)):
        fix = "decode it first: runscript=data.decode()"
    elif isinstance(runscript, os.PathLike):
        fix = "to run the script in a file, pass its text: runscript=Path(...).read_text()"
    else:
        fix = "pass the script's text, e.g. runscript='./simulate input.dat\\n'"
    raise TypeError(
        f"job {name!r}: runscript must be a str (the text of the script), not "
        f"{type(runscript).__name__} ({_shorten(repr(runscript))}); {fix}"
    )


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
        runscript: the body of the runscript (shell commands by default), a str. A
            subclass that overrides `get_runscript()` needs none (None is accepted).
        settings: settings merged over the defaults (`runscript.shebang` "#!/bin/sh",
            `runscript.pre` "", `runscript.post` "", `runscript.stdout_redirect`
            False, `run` {}).

    Raises:
        TypeError: name is not a str; runscript is neither a str nor None (bytes:
            decode them), or is None on a job class that does not build its own.
        ValueError: name cannot be a file name (empty, '.', '..', holds '/' or NUL).
    """

    def __init__(
        self,
        name: str,
        runscript: Optional[str] = "",
        settings: Settings | Mapping[str, Any] | None = None,
    ) -> None:
        """Create a job; see the class docstring."""
        self.name = _check_name(name)
        self.runscript = _check_runscript(type(self), name, runscript)
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
        # Made here although the class has them: an instance's attribute dict sized at
        # creation costs 30 bytes more, one that grows when the JobManager sets them ~400.
        self._input_hash = self._folder_number = self._journal_runner = self._previous = None

    # Set by the JobManager when the job is run (JobManager._claim, register): the hash of its
    # input, its runner's number in the journal, and its earlier try on a resume.
    _input_hash: Optional[str] = None
    _folder_number: Optional[int] = None  # taken by job.run(), in the order jobs are run
    _journal_runner: Optional[int] = None
    _previous: Optional[JobRecord] = None
    _retry: Optional[Retry] = None  # job.run(retry=...): wins over the runner's

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.results.status.name}>"

    def input_hash(self) -> str:
        """Return a hash of what the job runs: its whole runscript and its runflags.

        The runscript is hashed whole, as written to `<name>.run` (so `stdout_redirect`,
        `pre` and `post` count through the lines they add), which lets `runner resume`
        rebuild the same hash from the file alone.

        A resumed JobManager does not run again a job whose name and hash match a job
        that ended SUCCESSFUL. Override it (mixing in `super().input_hash()`) when the
        job reads input that the runscript does not hold, such as files it copies in.

        Returns:
            32 hexadecimal digits (128 bits of SHA-256).
        """
        import hashlib  # noqa: PLC0415 - lazy stdlib import keeps `import runner_core` fast
        import json  # noqa: PLC0415 - lazy stdlib import keeps `import runner_core` fast

        digest = hashlib.sha256(self.full_runscript().encode())
        digest.update(b"\0")
        digest.update(
            json.dumps(self.settings["run"], sort_keys=True, default=repr).encode(errors="replace")
        )
        return digest.hexdigest()[:32]

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
        *,
        retry: Optional[Retry] = None,
        **runflags: Any,
    ) -> Results:
        """Run the job through `jobrunner` in a folder given by `jobmanager`.

        Returns at once when the runner is parallel; wait on the results. With a
        resumed JobManager a job that succeeded in the earlier run is not run: its
        results come back final at once (`results.restored`).

        Args:
            jobrunner: the runner; None uses `config.default_jobrunner`.
            jobmanager: the manager; None uses `config.default_jobmanager`.
            retry: when to run the job again (`runner_core.Retry`); None takes the
                runner's (``JobRunner(retry=...)``), which is None unless given.
            **runflags: merged into `settings.run` (the runflags `call` receives).

        Returns:
            The job's Results.

        Raises:
            JobError: the job was run before, or the runner is shut down (the job then
                ends CANCELLED).
            JournalLocked: another live driver writes the journal of `jobmanager`'s
                folder (a JobError: the job ends CANCELLED, not run).
            ValueError, TypeError: the runner refuses a run flag (`JobRunner.check_runflags`:
                a GridRunner's ``memory="4X"``); the job ends FAILED at once, not run.
        """
        with _run_lock:
            if self._started:
                raise JobError(
                    f"job {self.name!r} has already been run; create a new job to run it again"
                )
            self._started = True
        if retry is not None:
            self._retry = self._check_retry(retry)
        if runflags:
            self.settings["run"].update(runflags)
        if jobrunner is None:
            jobrunner = default_jobrunner()
        if jobmanager is None:
            jobmanager = default_jobmanager()
        try:
            jobrunner.check_runflags(self.settings["run"])
            if jobmanager._claim(self, jobrunner):
                return self.results  # restored from an earlier run: nothing to run
            jobrunner._run_job(self, jobmanager)
        except BaseException as exc:
            if isinstance(exc, Exception) and not isinstance(exc, JobError):
                import traceback  # noqa: PLC0415 - lazy stdlib import keeps `import runner_core` fast

                self.results._move(JobStatus.FAILED, error=traceback.format_exc(), once=True)
            else:
                # a Ctrl-C may land after a job thread took the job: make sure it stops
                self.cancel()
                self.results._move(
                    JobStatus.CANCELLED, error=f"not run: {exc!r}", reason="cancelled", once=True
                )
            raise
        return self.results

    def cancel(self) -> None:
        """Cancel the job: it ends CANCELLED, with `results.reason == "cancelled"`.

        A job that has not reached `call` yet never runs; a local job in `call` has
        its process group killed (SIGTERM, then SIGKILL after `config.kill_grace`);
        a grid job is cancelled in the scheduler's queue. Does nothing to a job that
        has ended. Returns at once: slow work (a cancel command, the kill grace) is
        done in another thread by the runner's `cancel_job` hook.
        """
        self.results._request_cancel()

    # --- the steps the runner drives ---------------------------------------------

    def _prepare(
        self, jobmanager: Optional[JobManager]
    ) -> tuple[str, str, Optional[str], str, Settings]:
        """Register the folder and write the runscript; return `call`'s arguments.

        A job run again (`results.attempts`) keeps its folder: `jobmanager` is not asked.
        """
        if self.results.attempts and self.path is not None:
            workdir = str(self.path)
        elif jobmanager is None:
            raise RuntimeError(f"job {self.name!r} has no folder and no JobManager to give one")
        else:
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

    def _check_retry(self, retry: object) -> Retry:
        """`job.run(retry=...)`: a Retry, else the job ends FAILED and this raises TypeError."""
        if isinstance(retry, Retry):
            return retry
        self.results._move(JobStatus.FAILED, error=f"retry={retry!r}", once=True)
        raise TypeError(
            f"job {self.name!r}: retry must be a runner_core.Retry, not "
            f"{type(retry).__name__} ({retry!r}); e.g. retry=Retry(attempts=3)"
        )

    def _keep_attempt_output(self, number: int) -> None:
        """Keep attempt `number`'s stdout and stderr as ``<name>.attemptN.out``/``.err``.

        Called before the job runs again in its folder, so the next attempt's files do not
        overwrite them.
        """
        if self.path is None:
            return
        folder = str(self.path)
        for suffix in (".out", ".err"):
            kept = os.path.join(folder, f"{self.name}.attempt{number}{suffix}")
            with contextlib.suppress(FileNotFoundError):
                os.replace(os.path.join(folder, self.name + suffix), kept)

    def _finalize(self, exit_code: int, cancelled: bool) -> None:
        """Set the final status from `call`'s exit code.

        A job whose runner says the exit code is its own (it ran to its end before a
        cancel reached it) ends by that code even when a cancel was requested: its
        work is kept, and a resume does not run it again.
        """
        results = self.results
        reason = results._end_reason
        started_at, finished_at = results._stamps or (None, None)
        if results._failure is not None:
            status, error = JobStatus.FAILED, results._failure
        elif results._own_end and reason != "cancelled":
            status, error = (JobStatus.SUCCESSFUL if exit_code == 0 else JobStatus.CRASHED), None
        elif cancelled or results._cancel_requested:
            status, error, reason = JobStatus.CANCELLED, self._cancel_note(), "cancelled"
        elif reason == "cancelled":  # cancelled from outside (scancel by someone else)
            status, error = JobStatus.CANCELLED, "cancelled from outside the runner"
        else:
            status, error = (JobStatus.SUCCESSFUL if exit_code == 0 else JobStatus.CRASHED), None
        if status is JobStatus.CRASHED:
            error = self._stderr_tail()
        note = results._retry_note
        if note is not None and status is not JobStatus.SUCCESSFUL:
            error = f"{error}\n({note})" if error else f"({note})"
        results._move(
            status,
            exit_code=exit_code,
            error=error,
            reason=reason,
            once=True,
            at=finished_at,
            started_at=started_at,
        )

    def _cancel_note(self) -> str:
        """The error of a job cancelled by the runner: whether it had started."""
        results = self.results
        if results.started_at is None and results.status is not JobStatus.RUNNING:
            return "cancelled before it started"
        return "cancelled while running"

    def _stderr_tail(self, lines: int = STDERR_TAIL_LINES) -> Optional[str]:
        """The last `lines` lines of the job's stderr file (what it printed last), or None."""
        if self.path is None:
            return None
        return tail_of(os.path.join(str(self.path), self.name + ".err"), lines)
