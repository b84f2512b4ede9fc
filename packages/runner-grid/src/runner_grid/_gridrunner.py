"""GridRunner: a JobRunner that submits runscripts to SLURM, PBS or Grid Engine."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Optional, Union

from runner_core import JobRunner
from runner_core.ext import current_results, deferred_interrupts, report_failure, wait_event
from runner_grid._command import batch_commands, build_submit_argv, format_command, split_command
from runner_grid._detect import detect_scheme
from runner_grid._poller import (
    CheckFailed,
    QueuePoller,
    SchemeCheck,
    query_env,
    query_timeout,
    run_query,
)
from runner_grid._wrapper import DIRECTIVE_PREFIXES, read_exitcode, write_wrapper
from runner_grid.schemes import SCHEMES
from runner_settings import Settings

if TYPE_CHECKING:
    from collections.abc import Sequence

    from runner_core import Results

__all__ = ["GridRunner"]

logger = logging.getLogger(__name__)

#: Keys a scheme must have (the seed's); the rest are optional.
REQUIRED_KEYS = (
    "workdir",
    "output",
    "error",
    "commands.submit",
    "commands.check",
    "commands.getid",
    "commands.running",
)
#: Seconds the submit command may run.
SUBMIT_TIMEOUT = 120.0
#: Seconds the cancel thread waits for more work before it ends.
CANCEL_THREAD_IDLE = 5.0


def missing_keys(scheme: Mapping[str, Any]) -> list[str]:
    """Return the required keys a scheme lacks (or holds a non-callable parser under).

    Args:
        scheme: the scheme to check.

    Returns:
        Dotted key names, empty when the scheme is complete.
    """
    missing = []
    for dotted in REQUIRED_KEYS:
        node: Any = scheme
        for part in dotted.split("."):
            node = node.get(part, _MISSING) if isinstance(node, Mapping) else _MISSING
        if node is _MISSING or (
            dotted in ("commands.getid", "commands.running") and not callable(node)
        ):
            missing.append(dotted)
    return missing


_MISSING = object()


def _job_cancelled(results: Optional[Results]) -> bool:
    """True when `results` belongs to a job cancelled on its own (``job.cancel()``)."""
    return results is not None and results.cancel_requested


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")
    return float(value)


class GridRunner(JobRunner):
    """Submits each job's runscript to a batch scheduler and waits for it to leave the queue.

    Behaves like a parallel JobRunner: every job waits in its own thread, ``maxjobs`` caps how
    many of the runner's jobs are in the queue at once. One poller thread checks the queue for
    all of the runner's jobs every ``sleepstep`` seconds. `call` returns the job's real exit code
    (see the docs page "Exit codes, failures, cancelling").

    Attributes:
        config: the predefined schemes, as Settings branches ``slurm``, ``pbs`` (PBS Pro and
            Torque) and ``sge`` (Grid Engine); schemes added here are tried by ``grid="auto"``.
        settings: this runner's own copy of its scheme (change it freely; it is read anew for
            every submission and check).
        scheme_name: the scheme's name in `config`, or ``"custom"`` for a Settings passed in.

    Args:
        grid: a scheme name from `config`, ``"auto"`` to detect the scheduler installed here, or
            a Settings (or mapping) holding a scheme of your own.
        sleepstep: seconds between two queue checks.
        parallel: run every job in its own thread (the default, unlike JobRunner).
        maxjobs: the most jobs of this runner in the queue at once; 0 for no limit.
        maxthreads: the most job threads alive at once.

    Raises:
        ValueError: an unknown scheme name, a scheme missing required keys, or a bad sleepstep.
        TypeError: ``grid`` is neither a string nor a mapping.
        runner_grid.DetectionError: ``grid="auto"`` found no scheduler.
    """

    config: ClassVar[Settings] = Settings({name: factory() for name, factory in SCHEMES.items()})

    def __init__(
        self,
        grid: Union[str, Mapping[str, Any]] = "auto",
        sleepstep: float = 5,
        parallel: bool = True,
        maxjobs: int = 0,
        maxthreads: int = 256,
    ) -> None:
        """Create a runner; see the class docstring."""
        self.scheme_name, scheme = self._resolve(grid)
        step = _seconds("sleepstep", sleepstep)
        self.settings: Settings = scheme
        self._grid_lock = threading.Lock()
        self._queued: dict[str, Optional[Results]] = {}  # job id -> Results, None outside a job
        self._cancel_sent: set[str] = set()
        self._to_cancel: list[str] = []  # ids job.cancel() asked for, for the cancel thread
        self._cancel_wanted = threading.Event()
        self._canceller_running = False
        self._cancelling = False
        self._stop = threading.Event()
        self._check = SchemeCheck(lambda: self.settings)
        self._poller = QueuePoller(self._check, step, name=f"runner-grid-poller:{self.scheme_name}")
        super().__init__(parallel=parallel, maxjobs=maxjobs, maxthreads=maxthreads)

    @classmethod
    def _resolve(cls, grid: Union[str, Mapping[str, Any]]) -> tuple[str, Settings]:
        if isinstance(grid, str):
            if grid == "auto":
                name = detect_scheme(cls.config)
            elif grid in cls.config:
                name = grid
            else:
                known = ", ".join(sorted(cls.config))
                raise ValueError(
                    f"grid {grid!r} is not a known scheme (known: {known}); "
                    "pass a Settings for your own"
                )
            scheme = Settings(cls.config[name]).copy()
        elif isinstance(grid, Mapping):
            name = "custom"
            scheme = Settings(grid).copy() if not isinstance(grid, Settings) else grid.copy()
        else:
            raise TypeError(
                "grid must be a scheme name, 'auto' or a Settings, "
                f"not {type(grid).__name__} {grid!r}"
            )
        missing = missing_keys(scheme)
        if missing:
            raise ValueError(
                f"grid scheme {name!r} lacks {', '.join(missing)}; add them (commands.getid and "
                "commands.running must be callables), see the docs page 'Writing your own scheme'"
            )
        return name, scheme

    def __repr__(self) -> str:
        return (
            f"GridRunner(grid={self.scheme_name!r}, sleepstep={self.sleepstep:g}, "
            f"parallel={self.parallel}, maxjobs={self.maxjobs}, maxthreads={self.maxthreads})"
        )

    @property
    def sleepstep(self) -> float:
        """Seconds between two queue checks (settable)."""
        return self._poller.sleepstep

    @sleepstep.setter
    def sleepstep(self, value: float) -> None:
        self._poller.sleepstep = _seconds("sleepstep", value)

    @property
    def check_count(self) -> int:
        """Number of queue-check commands this runner has run so far."""
        return self._check.count

    @property
    def queued(self) -> list[str]:
        """Ids of this runner's jobs that are in the queue (submitted and not yet released)."""
        with self._grid_lock:
            return list(self._queued)

    # --- one job -----------------------------------------------------------------------

    def call(
        self, runscript: str, workdir: str, out: Optional[str], err: str, runflags: Settings
    ) -> int:
        """Submit ``workdir/runscript`` and wait until the job has left the queue.

        The runscript is submitted through a small wrapper (``<runscript>.grid``) that keeps its
        ``#SBATCH``/``#$``/``#PBS`` lines and records its exit code in ``<name>.exitcode``.

        Args:
            runscript: the runscript's file name, relative to workdir.
            workdir: the job's folder.
            out: file for the job's stdout, or None (the runscript redirects it itself, so the
                scheduler gets no output flag).
            err: file for the job's stderr.
            runflags: the job's ``settings.run``: extra submit flags (see `build_submit_argv`).

        Returns:
            The job's exit code; 1 when the submission failed (the job then ends FAILED with the
            submit command's stderr as its error).
        """
        scheme = self.settings
        workdir = os.path.abspath(workdir)
        try:
            prefixes = scheme.get("directives") or DIRECTIVE_PREFIXES
            wrapper, exit_file = write_wrapper(workdir, runscript, tuple(prefixes))
            argv = build_submit_argv(scheme, wrapper, workdir, out, err, runflags=runflags)
        except (OSError, ValueError, TypeError) as exc:
            report_failure(
                f"could not prepare the submission of {runscript!r}: {exc}", reason="submit_failed"
            )
            return 1
        command = format_command(argv)
        if self.cancelled:
            logger.info("not submitting %s: the runner is cancelling", command)
            return 1
        results = current_results()
        # A Ctrl-C between the submission and the record of its id would leave the job in
        # the queue with nobody to cancel it: it is raised once the id is recorded.
        with deferred_interrupts():
            jobid = self._submit(argv, command)
            if jobid is None:
                return 1
            with self._grid_lock:
                self._queued[jobid] = results
                cancelling = self._cancelling or _job_cancelled(results)
        if cancelling:
            self._cancel_ids([jobid])
        try:
            wait_event(self._poller.register(jobid))
        finally:
            with self._grid_lock:
                self._queued.pop(jobid, None)
                self._cancel_sent.discard(jobid)
        return self._exit_code(jobid, exit_file)

    def _submit(self, argv: list[str], command: str) -> Optional[str]:
        logger.info("submitting: %s", command)
        # run_query gives the submit command a session of its own too: the terminal's
        # Ctrl-C must not kill it after the job is queued but before it printed the id.
        # It runs in the user's own environment (SBATCH_* and the like apply).
        timeout = float(self.settings.get("submit_timeout") or SUBMIT_TIMEOUT)
        try:
            proc = run_query(argv, os.environ, timeout)
        except CheckFailed as exc:
            report_failure(f"the submit command did not complete: {exc}", reason="submit_failed")
            return None
        stderr = proc.stderr.strip()
        if proc.returncode != 0:
            report_failure(
                f"the submit command failed with exit status {proc.returncode}: {command}\n"
                f"{stderr or '(nothing on stderr)'}",
                reason="submit_failed",
            )
            return None
        try:
            found = self.settings["commands"]["getid"](proc.stdout)
        except Exception as exc:  # a user's parser: its failure is the job's failure
            report_failure(
                f"commands.getid raised {exc!r} on the output of {command}", reason="submit_failed"
            )
            return None
        if not found:
            report_failure(
                f"the submit command printed no job id: {command}\n"
                f"stdout: {proc.stdout.strip() or '(empty)'}\nstderr: {stderr or '(empty)'}",
                reason="submit_failed",
            )
            return None
        jobid = str(found)
        logger.info("submitted job %s: %s", jobid, command)
        return jobid

    def _exit_code(self, jobid: str, exit_file: str) -> int:
        """The job's exit code: its exit-code file, else the scheduler's records, else 1."""
        commands = self.settings["commands"]
        queries = commands.get("exitcode")
        parse = commands.get("parse_exitcode")
        results = current_results()
        cancelled = self.cancelled or _job_cancelled(results)
        wait = 0.0 if cancelled else float(self.settings.get("exitcode_wait") or 0)
        deadline = time.monotonic() + wait
        delay = 0.25
        while True:
            code = read_exitcode(exit_file)
            if code is not None:
                return code
            if callable(queries) and callable(parse):
                code = self._query_exitcode(jobid, queries(jobid), parse)
                if code is not None:
                    logger.info("job %s wrote no exit code; the scheduler reports %d", jobid, code)
                    return code
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stop.wait(min(delay, remaining)):
                break
            delay = min(delay * 2, 5.0)
        if cancelled:
            logger.info("job %s was cancelled before it wrote an exit code; reporting 1", jobid)
        else:
            logger.warning(
                "exit code of job %s is unknown: it wrote no %s (killed, cancelled or its node "
                "failed) and the scheduler no longer reports it; reporting 1",
                jobid,
                exit_file,
            )
        return 1

    def _query_exitcode(self, jobid: str, queries: Sequence[Any], parse: Any) -> Optional[int]:
        env = query_env(self.settings)
        timeout = query_timeout(self.settings)
        for query in queries:
            argv = split_command(query, "commands.exitcode")
            try:
                proc = run_query(argv, env, timeout)
            except CheckFailed as exc:
                logger.debug("exit-code query for job %s failed: %s", jobid, exc)
                continue
            code = parse(proc.stdout) if proc.returncode == 0 else None
            if isinstance(code, int) and not isinstance(code, bool):
                return code
        return None

    # --- cancelling ----------------------------------------------------------------------

    def _cancel_jobs(self) -> None:
        """Cancel every job of this runner still in the queue (scancel/qdel), then stop waiting.

        Extends JobRunner's hook: local processes first, then the scheme's cancel command for
        the queued ids (batched), logging what was cancelled.
        """
        super()._cancel_jobs()
        with self._grid_lock:
            self._cancelling = True
            ids = list(self._queued)
        self._stop.set()
        if ids:
            self._cancel_ids(ids)
        self._poller.wake()

    def cancel_job(self, results: Results) -> None:
        """Cancel one job (``job.cancel()``), in the queue too, by a cancel command run elsewhere.

        Returns at once: the job's id goes to the runner's cancel thread, which runs the cancel
        command (it may take up to the scheme's ``check_timeout``) and then wakes the poller, so
        the job is released at the next check. A job not submitted yet is cancelled as soon as
        its id is known (see `call`).
        """
        super().cancel_job(results)
        with self._grid_lock:
            ids = [
                jobid
                for jobid, owner in self._queued.items()
                if owner is results and jobid not in self._cancel_sent
            ]
            if not ids:
                return
            self._cancel_sent.update(ids)
            self._to_cancel.extend(ids)
            start = not self._canceller_running
            self._canceller_running = True
        self._cancel_wanted.set()
        if start:
            # One thread for every cancel of this runner: starting a thread per job.cancel()
            # costs the caller the fork of the cancel command too (it holds the GIL meanwhile).
            threading.Thread(
                target=self._cancel_loop, name="runner-grid-cancel", daemon=True
            ).start()

    def _cancel_loop(self) -> None:
        """Run the cancel commands `cancel_job` queued; end after a quiet interval."""
        while True:
            self._cancel_wanted.wait(CANCEL_THREAD_IDLE)
            with self._grid_lock:
                self._cancel_wanted.clear()
                ids, self._to_cancel = self._to_cancel, []
                if not ids:
                    self._canceller_running = False
                    return
            try:
                self._cancel_ids(ids)
            except Exception:
                logger.exception("could not cancel jobs %s", " ".join(ids))
            finally:
                self._poller.wake()

    def _cancel_ids(self, ids: list[str]) -> None:
        with self._grid_lock:
            self._cancel_sent.update(ids)
        cancel = self.settings["commands"].get("cancel")
        if cancel is None:
            logger.warning(
                "scheme %r has no commands.cancel: jobs %s stay in the queue",
                self.scheme_name,
                " ".join(ids),
            )
            return
        if callable(cancel):
            argvs = [split_command(a, "commands.cancel") for a in cancel(ids)]
        else:
            argvs = batch_commands(split_command(cancel, "commands.cancel"), ids)
        env = query_env(self.settings)
        timeout = query_timeout(self.settings)
        for argv in argvs:
            command = format_command(argv)
            try:
                proc = run_query(argv, env, timeout)
            except CheckFailed as exc:
                logger.error("could not cancel jobs: %s", exc)
                continue
            if proc.returncode == 0:
                logger.warning("cancelled grid jobs: %s", command)
            else:
                logger.warning(
                    "%s exited with status %d (jobs that had just ended cannot be cancelled): %s",
                    command,
                    proc.returncode,
                    proc.stderr.strip(),
                )
