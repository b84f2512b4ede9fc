"""Signals and the main thread: sliced waits, steps a signal cannot cut, and the handlers.

CPython runs Python signal handlers in the main thread only. The kernel may hand a
signal to any thread of the process; when it picks a job thread, nothing wakes a
main thread that sleeps in an untimed lock or `waitpid`, and the handler never runs
(seen on CPython 3.13: a script blocked in `runner.wait()` ignored Ctrl-C for good).
So every wait in the main thread sleeps in slices of at most `MAIN_WAIT_SLICE`
seconds: between two slices the interpreter runs the pending handler. Other threads
wait without slices (no handler ever runs in them), so thousands of waiting job
threads cost no wake-ups.

The handlers (installed by `install_handlers()` when the first runner is made, each
only where the signal still has Python's default disposition, so a handler of the
user's own, or SIGHUP ignored by `nohup`, is left alone):

- SIGINT raises KeyboardInterrupt, as Python's own handler does. One that lands
  while no code of `__main__` is on the stack (between the end of the script and
  the exit hooks, where Python would swallow it) is remembered in `state`.
- SIGTERM and SIGHUP raise `Terminated`, a SystemExit: the script unwinds (its
  `finally` blocks and the runners' exit hook run), every runner is cancelled, and
  `end_by_signal()` then ends the process by the same signal, so its parent sees
  what an unhandled signal would have shown (a shell prints 143 or 129). A second
  such signal while that happens is ignored rather than cutting the clean-up short.

Some steps must not be cut in half: starting a process and recording it (or a
submit command and the job id it prints). Cut between the two, the process runs on
with nobody to kill it. `deferred_interrupts()` marks such a step: a signal that
lands inside it is held back and raised as the step ends.
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
    from types import FrameType

__all__ = [
    "MAIN_WAIT_SLICE",
    "Terminated",
    "deferred_interrupts",
    "end_by_signal",
    "install_handlers",
    "state",
    "wait_event",
    "wait_process",
    "wait_slice",
]

MAIN_WAIT_SLICE = 0.2


class Terminated(SystemExit):
    """SIGTERM or SIGHUP reached a script that has runners; raised in its main thread.

    A SystemExit, so `except Exception` does not swallow it and no traceback is
    printed. Once the script has unwound and every runner is cancelled, the process
    ends by the signal itself.

    Attributes:
        signum: the signal's number.
    """

    def __init__(self, signum: int) -> None:
        """Record `signum`; the exit status would be 128 + signum."""
        super().__init__(128 + signum)
        self.signum = signum


def in_main_thread() -> bool:
    """True in the interpreter's main thread (the only one that runs signal handlers)."""
    return threading.current_thread() is threading.main_thread()


def wait_slice(remaining: Optional[float]) -> Optional[float]:
    """The timeout for one sleep of a wait with `remaining` seconds left (None: no limit)."""
    if not in_main_thread():
        return remaining
    return MAIN_WAIT_SLICE if remaining is None else min(remaining, MAIN_WAIT_SLICE)


def wait_event(event: threading.Event, timeout: Optional[float] = None) -> bool:
    """`event.wait(timeout)`, in slices when called from the main thread."""
    if not in_main_thread():
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
    if not in_main_thread():
        return proc.wait()
    fd = _pidfd(proc)
    if fd is None:
        import subprocess  # noqa: PLC0415 - lazy stdlib import keeps `import runner_core` fast

        while True:
            try:
                return proc.wait(MAIN_WAIT_SLICE)
            except subprocess.TimeoutExpired:
                continue
    import select  # noqa: PLC0415 - lazy stdlib import keeps `import runner_core` fast

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


class state:  # a namespace of module state, read like a module
    """What the handlers saw (written and read in the main thread only)."""

    depth = 0  # nested deferred steps running now
    pending: Optional[BaseException] = None  # a signal's exception held back by a step
    interrupted_at_exit = False  # a Ctrl-C came while no code of __main__ ran
    terminated_by: Optional[int] = None  # the SIGTERM/SIGHUP being handled, if any


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Run a step that a signal must not cut; raise its exception when the step ends.

    Does nothing outside the main thread (no other thread gets a signal's exception).
    """
    if not in_main_thread():
        yield
        return
    state.depth += 1
    try:
        yield
    finally:
        state.depth -= 1
        if not state.depth and state.pending is not None:
            exc, state.pending = state.pending, None
            raise exc


def _outside_main_script(frame: Optional[FrameType]) -> bool:
    while frame is not None:
        if frame.f_globals.get("__name__") == "__main__":
            return False
        frame = frame.f_back
    return True


def _on_signal(signum: int, frame: Optional[FrameType]) -> None:
    """The handler of SIGINT, SIGTERM and SIGHUP; see the module docstring."""
    import signal  # noqa: PLC0415 - lazy stdlib import; already loaded when this runs

    exc: BaseException
    if signum == signal.SIGINT:
        if state.terminated_by is not None:
            return  # already ending by SIGTERM/SIGHUP: a Ctrl-C must not cut the clean-up
        exc = KeyboardInterrupt()
        if _outside_main_script(frame):
            state.interrupted_at_exit = True
    else:
        if state.terminated_by is not None:
            return
        state.terminated_by = signum
        exc = Terminated(signum)
    if state.depth:
        if state.pending is None or isinstance(exc, Terminated):
            state.pending = exc
        return
    raise exc


def install_handlers() -> None:
    """Install `_on_signal` for SIGINT, SIGTERM and SIGHUP where Python's default stands.

    Call from the main thread (elsewhere it does nothing). A handler set by the user,
    or a signal ignored (SIGHUP under `nohup`), is left alone; so is a signal whose
    handler this module already installed.
    """
    if not in_main_thread():
        return
    import signal  # noqa: PLC0415 - lazy stdlib import keeps `import runner_core` fast

    defaults = {
        signal.SIGINT: signal.default_int_handler,
        signal.SIGTERM: signal.SIG_DFL,
        signal.SIGHUP: signal.SIG_DFL,
    }
    for signum, default in defaults.items():
        if signal.getsignal(signum) is default:
            signal.signal(signum, _on_signal)


def end_by_signal() -> None:
    """If a SIGTERM/SIGHUP is being handled, end the process by that signal now.

    Flushes stdout and stderr first (what the script printed is kept), restores the
    signal's default action and sends it to this process. Returns only when no such
    signal came.
    """
    signum = state.terminated_by
    if signum is None:
        return
    import signal  # noqa: PLC0415 - lazy stdlib import; already loaded when this runs
    import sys  # noqa: PLC0415 - lazy stdlib import; already loaded when this runs

    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: nothing to keep
            pass
    signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
    os.kill(os.getpid(), signum)
    # The default action ends the process before kill() returns; this is a safety net.
    time.sleep(1.0)
    os._exit(128 + signum)
