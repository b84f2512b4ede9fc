"""Running the batch: hand the jobs to the runner, report each end as pushed, cancel on a signal."""

from __future__ import annotations

import contextlib
import logging
import queue
import signal
import threading
from typing import TYPE_CHECKING, Callable, Optional, TextIO

from runner_core import Terminated
from runner_core.cli._args import PROG
from runner_core.cli._progress import REFRESH, Progress

if TYPE_CHECKING:
    from runner_core import JobManager, JobRunner, Results
    from runner_core.cli._batch import Batch

logger = logging.getLogger(__name__)

# What cuts a run short: Ctrl-C, and SIGTERM/SIGHUP, which the core turns into
# Terminated (a SystemExit) in the main thread.
INTERRUPTS = (KeyboardInterrupt, Terminated)


def run_batch(
    batch: Batch, runner: JobRunner, manager: JobManager, flags: dict[str, str], stream: TextIO
) -> Optional[BaseException]:
    """Run every job of `batch` to its end, with progress on `stream`.

    The jobs are handed to the runner from a thread of their own (a serial runner
    runs each there), while this thread reports each job as its end is pushed.

    Args:
        batch: the jobs.
        runner: the runner to run them.
        manager: gives each job its folder.
        flags: runflags for every job.
        stream: where the progress goes (stderr).

    Returns:
        None when every job ended by itself; else the KeyboardInterrupt or
        `runner_core.Terminated` that cut the run short, after every job was
        cancelled and reported.
    """
    progress = Progress(batch, stream)
    ended: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index, job in enumerate(batch.jobs):
        job.results.add_done_callback(_put_index(ended, index))
    stop = threading.Event()
    submitter = threading.Thread(
        target=_submit_all,
        args=(batch, runner, manager, flags, stop),
        name="runner-cli-submit",
        daemon=True,
    )
    try:
        submitter.start()
        while progress.unreported:
            try:
                # The time-out is not a poll: no job is looked at. It redraws the
                # elapsed time, and lets a Ctrl-C that the kernel handed to another
                # thread reach this one (a wait with no time-out would sleep through it).
                index = ended.get(timeout=REFRESH)
            except queue.Empty:
                progress.show_status()
                continue
            progress.ended(index)
            progress.show_status(now=ended.empty())
        _join(submitter)
        runner.wait()
    except INTERRUPTS as exc:
        stop.set()
        batch.cancelled = True
        progress.note(f"{PROG}: {_what_interrupted(exc)}, cancelling every job...")
        _cancel_all(runner, submitter, progress)
        progress.finish()
        return exc
    progress.finish()
    return None


def _submit_all(
    batch: Batch,
    runner: JobRunner,
    manager: JobManager,
    flags: dict[str, str],
    stop: threading.Event,
) -> None:
    """Hand every job to the runner, in order, until `stop` is set.

    With `batch.arrays`, inside the runner's ``batch()`` block: a grid runner submits
    the jobs as job arrays when the block ends.
    """
    arrays = getattr(runner, "batch", None) if batch.arrays else None
    with arrays() if arrays is not None else contextlib.nullcontext():
        for job in batch.jobs:
            if stop.is_set():
                return
            try:
                job.settings.run.update(flags)  # any key, "retry" too, is a run flag here
                job.run(jobrunner=runner, jobmanager=manager)
            except Exception:
                # A job that run() refuses ends FAILED or CANCELLED with results.error
                # saying why, so its end is reported like any other; nothing to keep here.
                if stop.is_set():
                    logger.debug("job %s not run: the run was interrupted", job.name, exc_info=True)
                    return
                logger.debug("job %s could not be started", job.name, exc_info=True)


def _put_index(ended: queue.SimpleQueue[int], index: int) -> Callable[[Results], None]:
    """Return a done-callback that puts `index` into `ended`: quick, and safe in any thread."""

    def done(_results: Results) -> None:
        ended.put(index)

    return done


def _join(thread: threading.Thread) -> None:
    # In slices, so that a Ctrl-C the kernel handed to another thread gets through.
    while thread.is_alive():
        thread.join(REFRESH)


def _cancel_all(runner: JobRunner, submitter: threading.Thread, progress: Progress) -> None:
    """Cancel every job and wait for them; a second Ctrl-C or signal must not cut this short."""
    while True:
        try:
            runner.shutdown(cancel=True)
            _join(submitter)
        except INTERRUPTS:
            progress.note(f"{PROG}: still cancelling, please wait...")
            continue
        return


def _what_interrupted(exc: BaseException) -> str:
    if not isinstance(exc, Terminated):
        return "interrupted"
    try:
        name = signal.Signals(exc.signum).name
    except ValueError:
        name = f"signal {exc.signum}"
    return f"{name} received"
