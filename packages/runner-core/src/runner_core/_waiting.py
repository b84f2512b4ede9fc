"""Ctrl-C and the main thread: waits it always gets through, and steps it cannot cut.

CPython runs Python signal handlers in the main thread only. The kernel may hand a
SIGINT to any thread of the process; when it picks a job thread, nothing wakes a
main thread that sleeps in an untimed lock or `waitpid`, and the KeyboardInterrupt
never comes (seen on CPython 3.13: a script blocked in `runner.wait()` ignored
Ctrl-C for good). So every wait in the main thread sleeps in slices of at most
`MAIN_WAIT_SLICE` seconds: between two slices the interpreter runs the pending
handler. Other threads wait without slices (they never get a KeyboardInterrupt), so
thousands of waiting job threads cost no wake-ups.

Some steps must not be cut in half by a KeyboardInterrupt: starting a process and
recording it (or a submit command and the job id it prints). Cut between the two,
the process runs on with nobody to kill it. `deferred_interrupts()` marks such a
step: a Ctrl-C that lands inside it is held back and raised as the step ends. This
works through the SIGINT handler that runner_core installs (see `_runner._on_sigint`);
a handler of the user's own is left alone and not deferred.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from collections.abc import Iterator
    from subprocess import Popen

MAIN_WAIT_SLICE = 0.2


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def wait_slice(remaining: Optional[float]) -> Optional[float]:
    """The timeout for one sleep of a wait with `remaining` seconds left (None: no limit)."""
    if not _in_main_thread():
        return remaining
    return MAIN_WAIT_SLICE if remaining is None else min(remaining, MAIN_WAIT_SLICE)


def wait_event(event: threading.Event, timeout: Optional[float] = None) -> bool:
    """`event.wait(timeout)`, in slices when called from the main thread."""
    if not _in_main_thread():
        return event.wait(timeout)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return event.is_set()
        if event.wait(wait_slice(remaining)):
            return True


def wait_process(proc: Popen[Any]) -> int:
    """`proc.wait()`, in slices when called from the main thread; return the exit code.

    The main thread sleeps in poll() on a pidfd (Linux 5.3 and later), which wakes the
    moment the process ends; elsewhere it falls back to `proc.wait(MAIN_WAIT_SLICE)`.
    """
    if not _in_main_thread():
        return proc.wait()
    fd = _pidfd(proc)
    if fd is None:
        import subprocess

        while True:
            try:
                return proc.wait(MAIN_WAIT_SLICE)
            except subprocess.TimeoutExpired:
                continue
    import select

    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not poller.poll(MAIN_WAIT_SLICE * 1000):
            pass
    finally:
        os.close(fd)
    return proc.wait()


def _pidfd(proc: Popen[Any]) -> Optional[int]:
    """A pidfd for `proc` while it has not been reaped; None without pidfd_open or once reaped."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None or proc.returncode is not None:
        return None
    try:
        fd: int = pidfd_open(proc.pid)
    except OSError:  # an old kernel, or the process is gone and reaped already
        return None
    if proc.poll() is not None:  # reaped meanwhile: the pid may name another process now
        os.close(fd)
        return None
    return fd


class _Deferral:
    """State of `deferred_interrupts` (used by the main thread only)."""

    depth = 0  # nested deferred steps running now
    pending = False  # a Ctrl-C came during one


def interrupt_deferred() -> bool:
    """Called by the SIGINT handler: hold the KeyboardInterrupt back if a step defers it.

    Both the handler and the steps run in the main thread only.
    """
    if _Deferral.depth:
        _Deferral.pending = True
        return True
    return False


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Run a step that a Ctrl-C must not cut; raise its KeyboardInterrupt when the step ends.

    Does nothing outside the main thread (no other thread gets a KeyboardInterrupt).
    """
    if not _in_main_thread():
        yield
        return
    _Deferral.depth += 1
    try:
        yield
    finally:
        _Deferral.depth -= 1
        if not _Deferral.depth and _Deferral.pending:
            _Deferral.pending = False
            raise KeyboardInterrupt
