"""Live runners and the interpreter's end: the exit hook, the excepthook and the signal handlers.

At exit every live runner is waited for (`config.wait_at_exit`), unless the script
was interrupted: after an unhandled KeyboardInterrupt, a Ctrl-C during that wait,
or a SIGTERM/SIGHUP at any time, every live runner is shut down with cancel=True
instead (local process groups killed, queued grid jobs cancelled). After a
SIGTERM/SIGHUP the process then ends by that signal (see `_interrupts`).
"""

from __future__ import annotations

import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any, Callable, Optional

from runner_core._config import config
from runner_core._interrupts import end_by_signal, in_main_thread, install_handlers, state
from runner_core._journal import close_all, left_folders
from runner_core._log import logger

if TYPE_CHECKING:
    from typing import Protocol

    class _Runner(Protocol):
        def shutdown(self, cancel: bool = ..., timeout: Optional[float] = ...) -> None: ...
        def wait(self, timeout: Optional[float] = ...) -> None: ...
        def _leave_jobs_queued(self) -> int: ...


__all__ = ["cancel_all_runners", "live_runners", "register"]

_live: weakref.WeakSet[_Runner] = weakref.WeakSet()
_lock = threading.Lock()
_hooks_installed = False
_interrupted = False
_previous_excepthook: Optional[Callable[..., Any]] = None
_left_done = False


def live_runners() -> list[_Runner]:
    """Return the runners that exist now (weakly held: a dropped runner leaves)."""
    with _lock:
        return list(_live)


ON_EXIT = ("cancel", "keep")


def _keep_grid_jobs() -> bool:
    value = config.get("grid_jobs_on_exit", "cancel")
    if value not in ON_EXIT:
        logger().error(
            "config.grid_jobs_on_exit is %r, not one of %s; cancelling the grid jobs. "
            'Set it to "keep" to leave them queued for a resume',
            value,
            ", ".join(map(repr, ON_EXIT)),
        )
        return False
    return bool(value == "keep")


def leave_grid_jobs() -> int:
    """With `config.grid_jobs_on_exit = "keep"`: let every live runner leave its journaled jobs.

    Prints one line with the command that resumes the run when any job was left.

    Returns:
        How many jobs were left in the scheduler's queue.
    """
    global _left_done
    with _lock:
        done, _left_done = _left_done, True
    if done or not _keep_grid_jobs():
        return 0
    left = 0
    for runner in live_runners():
        try:
            left += runner._leave_jobs_queued()
        except Exception:
            logger().exception("%r could not leave its jobs queued; they are cancelled", runner)
    if left:
        folders = left_folders()
        command = "; ".join(f"runner resume {f}" for f in folders) or "runner resume DIR"
        plural = "" if left == 1 else "s"
        sys.stderr.write(
            f"runner_core: {left} grid job{plural} left in the scheduler's queue "
            f"(config.grid_jobs_on_exit = 'keep'); resume with: {command}\n"
        )
    return left


def cancel_all_runners() -> None:
    """Call `shutdown(cancel=True)` on every live runner (leaving grid jobs queued if so set).

    A Ctrl-C or a SystemExit that lands meanwhile does not cut the clean-up short: the
    runner it landed in is shut down again (which waits for what is left).
    """
    leave_grid_jobs()
    for runner in live_runners():
        for _attempt in range(3):
            try:
                runner.shutdown(cancel=True)
            except (KeyboardInterrupt, SystemExit):
                sys.stderr.write("runner_core: still cancelling the jobs, please wait...\n")
                continue
            except Exception:
                logger().exception("could not shut down %r", runner)
            break


def register(runner: _Runner) -> None:
    """Count `runner` as live; install the exit hook, excepthook and signal handlers once."""
    global _hooks_installed, _previous_excepthook
    with _lock:
        _live.add(runner)
        first = not _hooks_installed
        _hooks_installed = True
    if first:
        import atexit  # noqa: PLC0415 - lazy stdlib import keeps `import runner_core` fast

        _previous_excepthook = sys.excepthook
        sys.excepthook = _excepthook
        atexit.register(_at_exit)
    if in_main_thread():
        install_handlers()


def _excepthook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
    global _interrupted
    if issubclass(exc_type, KeyboardInterrupt):
        _interrupted = True
        cancel_all_runners()
    hook = _previous_excepthook or sys.__excepthook__
    hook(exc_type, exc, tb)


def _at_exit() -> None:
    try:
        if _interrupted or state.interrupted_at_exit or state.terminated_by is not None:
            cancel_all_runners()
        elif config.get("wait_at_exit", True):
            for runner in live_runners():
                runner.wait()
    except (KeyboardInterrupt, SystemExit):
        cancel_all_runners()
    finally:
        close_all()  # the journals: every job's end is on record by now
        end_by_signal()
