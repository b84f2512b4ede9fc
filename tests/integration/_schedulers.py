"""Helpers for tests against the real SLURM and Grid Engine: usability, the real queue, samplers."""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: PATH as it was when the suite started: the tests' own view of the queue never goes through
#: the PATH shims some tests put in front of the scheduler's commands.
ORIGINAL_PATH = os.environ.get("PATH", os.defpath)
#: Seconds a usability probe or a queue listing may take.
PROBE_TIMEOUT = 10.0
#: Seconds a test waits for something a scheduler should do within a few seconds.
PATIENCE = 90.0
#: What runner_grid logs once a job is in the queue (the architecture: the id and the command).
SUBMITTED = re.compile(r"^submitted job (\S+):")
_QUEUE_INSTANCE = re.compile(r"^\S+@\S+\s+\S+\s+\d+/\d+/\d+\s+\S+\s+\S+\s*$")

SCHEDULERS = {
    "slurm": pytest.param("slurm", marks=pytest.mark.slurm, id="slurm"),
    "sge": pytest.param("sge", marks=pytest.mark.sge, id="sge"),
}


def tool(name: str) -> Optional[str]:
    """Return the absolute path of a scheduler command on the original PATH, or None."""
    return shutil.which(name, path=ORIGINAL_PATH)


def _clean_env() -> dict[str, str]:
    """The environment for the tests' own scheduler queries: no format variables of the user's."""
    return {
        k: v for k, v in os.environ.items() if not k.startswith(("SQUEUE_", "SBATCH_", "SGE_QSTAT"))
    } | {"PATH": ORIGINAL_PATH}


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT,
        env=_clean_env(),
        stdin=subprocess.DEVNULL,
        check=False,
    )


@functools.cache
def unusable_reason(name: str) -> Optional[str]:
    """Return why the scheduler ``name`` cannot run jobs here, or None when it can.

    Fast: one ``sinfo`` or ``qstat -f`` with a short time-out; the answer is cached for the
    session.
    """
    start = f"start it as root with: bash {ROOT / 'tools' / (name + '.sh')} start"
    if name == "slurm":
        submit, argv = tool("sbatch"), [tool("sinfo") or "sinfo", "--noheader", "--format=%T"]
    else:
        submit, argv = tool("qsub"), [tool("qstat") or "qstat", "-f"]
    if submit is None:
        return f"{name}: its submit command is not on PATH ({start})"
    try:
        proc = _run(argv)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{name}: {argv[0]} did not answer ({exc}); {start}"
    if proc.returncode != 0:
        return f"{name}: {' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}; {start}"
    lines = proc.stdout.splitlines()
    if name == "slurm":
        ready = [s for s in lines if s.startswith(("idle", "mix", "alloc", "completing"))]
    else:
        ready = [s for s in lines if _QUEUE_INSTANCE.match(s)]
    if not ready:
        return f"{name}: no node or queue can take jobs ({proc.stdout.strip()!r}); {start}"
    return None


def require(name: str) -> None:
    """Skip the calling test, with the reason, unless the scheduler ``name`` can run jobs."""
    reason = unusable_reason(name)
    if reason is not None:
        pytest.skip(reason)


def queue_ids(name: str) -> set[str]:
    """Return the ids of every job the scheduler lists as pending or running (all users).

    The tests' own view of the queue, independent of runner_grid's parsers: plain ``squeue``
    (pending, running, completing) or ``qstat -u '*'``; array task decorations are dropped.

    Raises:
        AssertionError: the listing failed.
    """
    if name == "slurm":
        argv = [tool("squeue") or "squeue", "--noheader", "--format=%i"]
    else:
        argv = [tool("qstat") or "qstat", "-u", "*"]
    proc = _run(argv)
    assert proc.returncode == 0, f"{argv} failed: {proc.stderr}"
    lines = proc.stdout.splitlines()
    if name == "sge":
        lines = [s for s in lines if s.strip() and not s.startswith(("job-ID", "---"))]
    return {re.split(r"[_.\s]", s.strip())[0] for s in lines if s.strip()}


def job_state(name: str, jobid: str) -> str:
    """Return the state the scheduler shows for one job (``RUNNING``, ``r``...), "" when none.

    The tests' own view, independent of runner_grid's parsers: ``squeue --format=%T`` or the
    state column of ``qstat -u '*'``.
    """
    if name == "slurm":
        argv = [tool("squeue") or "squeue", "--noheader", "--format=%T", f"--jobs={jobid}"]
        proc = _run(argv)
        return proc.stdout.split()[0] if proc.returncode == 0 and proc.stdout.split() else ""
    proc = _run([tool("qstat") or "qstat", "-u", "*"])
    for line in proc.stdout.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[0] == jobid:
            return fields[4]
    return ""


def cancel_ids(name: str, ids: list[str]) -> None:
    """Cancel the given jobs if they are still queued (clean-up; errors are ignored)."""
    if ids:
        _run([tool("scancel" if name == "slurm" else "qdel") or "true", *ids])


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = PATIENCE) -> Any:
    """Poll ``predicate`` until it returns something true; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


class SubmittedIds(logging.Handler):
    """Collects the ids runner_grid logs as submitted (in submission order)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.ids: list[str] = []
        self._lock_ids = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        match = SUBMITTED.match(record.getMessage())
        if match:
            with self._lock_ids:
                self.ids.append(match.group(1))

    def snapshot(self) -> list[str]:
        """Return the ids seen so far."""
        with self._lock_ids:
            return list(self.ids)


class QueueSampler:
    """Samples the real queue in a thread, keeping every listing it saw (for invariants)."""

    def __init__(
        self, name: str, interval: float = 0.1, extra: Optional[Callable[[], Any]] = None
    ) -> None:
        self.name = name
        self.interval = interval
        self.extra = extra
        self.samples: list[tuple[Any, set[str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="queue-sampler", daemon=True)
        self.error: Optional[BaseException] = None

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                before = self.extra() if self.extra else None
                self.samples.append((before, queue_ids(self.name)))
                self._stop.wait(self.interval)
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def __enter__(self) -> QueueSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(PATIENCE)
        if self.error is not None:
            raise AssertionError(f"sampling the queue failed: {self.error}") from self.error
