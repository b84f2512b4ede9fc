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
from runner_core._log import logger

if TYPE_CHECKING:
    from typing import Protocol

    class _Runner(Protocol):
        def shutdown(self, cancel: bool = ..., timeout: Optional[float] = ...) -> None: ...
        def wait(self, timeout: Optional[float] = ...) -> None: ...


__all__ = ["cancel_all_runners", "live_runners", "register"]

_live: weakref.WeakSet[_Runner] = weakref.WeakSet()
_lock = threading.Lock()
_hooks_installed = False
_interrupted = False
_previous_excepthook: Optional[Callable[..., Any]] = None


def live_runners() -> list[_Runner]:
    """Return the runners that exist now (weakly held: a dropped runner leaves)."""
    with _lock:
        return list(_live)


def cancel_all_runners() -> None:
    """Call `shutdown(cancel=True)` on every live runner.

    A Ctrl-C or a SystemExit that lands meanwhile does not cut the clean-up short: the
    runner it landed in is shut down again (which waits for what is left).
    """
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
        end_by_signal()
