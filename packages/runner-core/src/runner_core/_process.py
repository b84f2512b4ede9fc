"""Local process groups: start a runscript in its own, wait for it, kill groups; no runner here.

Also the groups of a driver that is gone (a killed script whose jobs run on): a group
is named by its leader's pid, start time and the boot id, never by a pid alone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from runner_core._config import config
from runner_core._interrupts import deferred_interrupts, wait_process

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from subprocess import Popen

__all__ = [
    "SpawnError",
    "boot_id",
    "find_session_leaders",
    "kill_groups",
    "kill_in_background",
    "kill_recorded_groups",
    "process_start",
    "run_process",
    "spawned_start",
]

_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
_ETXTBSY_RETRIES = 40


def _first_line(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.readline(200).rstrip(b"\n").decode(errors="replace")
    except OSError:
        return ""


def _explain_spawn_error(exc: OSError, path: str, workdir: str) -> tuple[str, int]:
    """Turn the OSError of a failed start into (message for a person, shell-like exit code)."""
    if exc.filename == workdir or not os.path.isdir(workdir):
        return f"working folder {workdir!r} does not exist or cannot be entered: {exc}", 127
    if exc.errno == errno.ENOENT:
        if not os.path.lexists(path):
            return f"runscript {path!r} does not exist", 127
        return (
            f"runscript {path!r} has a bad interpreter line {_first_line(path)!r}: "
            "the program it names does not exist; fix the shebang",
            126,
        )
    if exc.errno == errno.EACCES:
        if not os.access(path, os.X_OK) or os.path.isdir(path):
            return f"runscript {path!r} is not executable (chmod +x it)", 126
        return (
            f"runscript {path!r} has a bad interpreter line {_first_line(path)!r}: "
            "the program it names cannot be executed (permission denied)",
            126,
        )
    if exc.errno == errno.ENOEXEC:
        return (
            f"runscript {path!r} has no valid interpreter line (first line "
            f"{_first_line(path)!r}); start it with one such as #!/bin/sh",
            126,
        )
    return f"cannot start runscript {path!r}: {exc}", 126


class SpawnError(Exception):
    """The runscript could not be started; says why, with the exit code a shell would give.

    Attributes:
        exit_code: 127 (not found) or 126 (found but not executable), like a shell.
    """

    def __init__(self, message: str, exit_code: int) -> None:
        """Hold the message for a person and the shell-like exit code."""
        super().__init__(message)
        self.exit_code = exit_code


def run_process(
    path: str,
    workdir: str,
    out: Optional[str],
    err: str,
    *,
    on_start: Callable[[Popen[Any]], None],
    on_end: Callable[[Popen[Any]], None],
) -> int:
    """Run `path` in `workdir` in a new session (its own process group); return its exit code.

    stdout goes to `out` (inherited when None), stderr to `err`. `on_start(proc)` is
    called right after the start, inside the same step a Ctrl-C or SIGTERM cannot cut
    (so whoever must kill the process has it on record before any signal is raised),
    and `on_end(proc)` once it has been waited for. A signal's exception while
    waiting (a serial run: the main thread waits here) kills the process group first.
    A negative exit code -N means the process was killed by signal N.

    Raises:
        SpawnError: the runscript could not be started (missing, not executable, bad
            interpreter line, no such folder).
    """
    proc: Optional[Popen[Any]] = None
    try:
        with deferred_interrupts():
            started = _start(path, workdir, out, err)
            if isinstance(started, tuple):
                raise SpawnError(*started)
            proc = started
            on_start(proc)
        return wait_process(proc)
    except BaseException:
        # Ctrl-C or SIGTERM in a serial run lands here, in the thread that waits: take
        # the job's process tree down with us.
        if proc is not None:
            kill_groups([proc])
        raise
    finally:
        if proc is not None:
            on_end(proc)


def _start(path: str, workdir: str, out: Optional[str], err: str) -> Popen[Any] | tuple[str, int]:
    """Start `path` in `workdir` in a new session; if it cannot start, return (why, exit code)."""
    import subprocess  # noqa: PLC0415 - lazy stdlib import keeps `import runner_core` fast

    err_fd = os.open(err, _OPEN_FLAGS, 0o666)
    out_fd: Optional[int] = None
    try:
        if out is not None:
            out_fd = os.open(out, _OPEN_FLAGS, 0o666)
        attempt = 0
        while True:
            try:
                before = _boot_tick()
                proc = subprocess.Popen(
                    [path], cwd=workdir, stdout=out_fd, stderr=err_fd, start_new_session=True
                )
            except OSError as exc:
                if exc.errno == errno.ETXTBSY and attempt < _ETXTBSY_RETRIES:
                    # Another thread forked while some runscript was open for writing;
                    # that child holds the write end until its exec. It lasts microseconds.
                    attempt += 1
                    time.sleep(0.0005 * attempt)
                    continue
                return _explain_spawn_error(exc, path, workdir)
            if before is not None and before == _boot_tick():
                setattr(proc, _START_ATTR, before)  # Popen has no field for it
            return proc
    finally:
        os.close(err_fd)
        if out_fd is not None:
            os.close(out_fd)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_groups(procs: Iterable[Popen[Any]], grace: Optional[float] = None) -> None:
    """Kill the process group of every process: SIGTERM, then SIGKILL after `grace` s.

    Each process was started with `start_new_session=True`, so its pid is its process
    group id. Waits at most `grace` seconds (default `config.kill_grace`) for the
    groups to go before sending SIGKILL to what is left.
    """
    import signal  # noqa: PLC0415 - lazy stdlib import keeps `import runner_core` fast

    if grace is None:
        grace = float(config.get("kill_grace", 2.0))
    procs = list(procs)
    groups = []
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            continue
        groups.append(proc)
    deadline = time.monotonic() + grace
    delay = 0.001
    while groups:
        for proc in groups:
            proc.poll()  # reap a finished leader so it does not keep its group alive
        groups = [p for p in groups if _group_alive(p.pid)]
        remaining = deadline - time.monotonic()
        if not groups or remaining <= 0:
            break
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.05)
    for proc in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def kill_in_background(procs: Iterable[Popen[Any]]) -> None:
    """Run `kill_groups(procs)` in a daemon thread, so the caller does not wait."""
    threading.Thread(
        target=kill_groups, args=(list(procs),), name="runner:kill", daemon=True
    ).start()


# --- processes of a driver that is gone: identified by pid, start time and boot -------


def boot_id() -> Optional[str]:
    """This boot of this machine (Linux's random boot id), or None where it cannot be read.

    A pid names one process only within one boot: with the boot id and the process's
    start time (`process_start`) it names one process for good.
    """
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip() or None
    except OSError:
        return None


def _stat_fields(pid: int) -> Optional[list[str]]:
    """Fields 3 on of /proc/<pid>/stat (state, ppid, pgrp, session, ...), or None if gone."""
    # os.open/os.read: three system calls; open() costs three times as many (it asks
    # for the file's size and whether it is a tty), and this runs once per local job.
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        text = os.read(fd, 4096).decode(errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)
    # the command name (field 2) is in parentheses and may hold spaces and parentheses
    return text.rsplit(")", 1)[-1].split()


def process_start(pid: int, zombies: bool = True) -> Optional[int]:
    """The start time of process `pid` (clock ticks since boot), or None if it is gone or unknown.

    A zombie (ended, not yet waited for) still has its start time, as its pid is not
    free yet; with `zombies=False` it counts as gone.
    """
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 20 or fields[0] == "X" or (not zombies and fields[0] == "Z"):
        return None
    return int(fields[19])


# A process's start time in /proc/<pid>/stat is the boot clock (CLOCK_BOOTTIME, in the
# reader's time namespace) at its fork, in clock ticks. A child forked between two
# readings of that clock in the same tick started in that tick, so its start time is
# known without reading /proc, which costs a path lookup of the new pid and three
# system calls (about 20 us of the driver's CPU per local job, the journal's largest
# part). A spawn that spans a tick boundary (a few in a hundred) falls back to /proc;
# so does every spawn until the clock agreed with /proc for the first `_CLOCK_CHECKS`
# children, and for good once it disagreed (a kernel that counts start times some
# other way).
_START_ATTR = "_runner_start"
_CLOCK_CHECKS = 3
_clock_checks = _CLOCK_CHECKS  # > 0: still to confirm; 0: trusted; -1: not trusted
_TICK_NS = 0
_boot_clock: Optional[int] = getattr(time, "CLOCK_BOOTTIME", None)
try:
    _hz = os.sysconf("SC_CLK_TCK")
    if _boot_clock is not None and _hz > 0 and 10**9 % _hz == 0:
        _TICK_NS = 10**9 // _hz
except (AttributeError, ValueError, OSError):
    pass


def _boot_tick() -> Optional[int]:
    """The boot clock now, in the clock ticks of /proc's start times; None where unknown."""
    if not _TICK_NS or _clock_checks < 0:
        return None
    return time.clock_gettime_ns(_boot_clock) // _TICK_NS  # type: ignore[arg-type]


def spawned_start(proc: Popen[Any]) -> Optional[int]:
    """The start time of a process `run_process` started, as `process_start` gives it.

    Known from the clock at the spawn where it can be (see above); else read from /proc.
    """
    global _clock_checks
    tick: Optional[int] = getattr(proc, _START_ATTR, None)
    if tick is None:
        return process_start(proc.pid)
    if _clock_checks == 0:
        return tick
    real = process_start(proc.pid)
    if real is not None and _clock_checks > 0:
        _clock_checks = _clock_checks - 1 if real == tick else -1
    return real


def _members(groups: set[int]) -> dict[int, list[tuple[int, int]]]:
    """For each process group of `groups`: its live (pid, start time) with session == group."""
    found: dict[int, list[tuple[int, int]]] = {}
    for pid, fields in _live_processes():
        pgrp, session = int(fields[2]), int(fields[3])
        if pgrp in groups and session == pgrp:
            found.setdefault(pgrp, []).append((pid, int(fields[19])))
    return found


def _live_processes() -> Iterator[tuple[int, list[str]]]:
    """Every live process (zombies left out): its pid and its /proc stat fields."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return
    for name in names:
        if name.isdigit():
            fields = _stat_fields(int(name))
            if fields is not None and len(fields) >= 20 and fields[0] not in ("Z", "X"):
                yield int(name), fields


def kill_recorded_groups(
    groups: Iterable[tuple[int, int, Optional[str]]], grace: Optional[float] = None
) -> list[str]:
    """Kill the process groups a driver that is gone started; say what became of each.

    Each group is given as (pid of its leader, the leader's start time, boot id), as
    recorded when the leader was started in its own session. A group is killed only
    when it is provably that one: the same boot, and either its leader alive with the
    recorded start time, or (the leader gone) members of its session started no
    earlier. Linux does not hand out a pid while it is still some process's group or
    session id, so a live member keeps the number from being reused. A pid now used
    by another process is never signalled.

    Args:
        groups: (pid, start time, boot id) of each group.
        grace: seconds between SIGTERM and SIGKILL (default `config.kill_grace`).

    Returns:
        For each group, in order: "killed", "gone" (nothing of it runs any more) or
        "unknown" (no /proc or no boot id here: it could not be identified, so it was
        left alone).
    """
    import signal  # noqa: PLC0415 - lazy stdlib import keeps `import runner_core` fast

    if grace is None:
        grace = float(config.get("kill_grace", 2.0))
    wanted = list(groups)
    here = boot_id()
    outcome: list[str] = []
    targets: dict[int, list[int]] = {}  # index -> pids to signal (leader or members)
    orphans: dict[int, int] = {}  # group whose leader is gone -> index
    for index, (pid, start, boot) in enumerate(wanted):
        if here is None or boot is None:
            outcome.append("unknown")
            continue
        if boot != here:
            outcome.append("gone")  # the machine was rebooted since: none of it runs
            continue
        now = process_start(pid)
        if now == start:
            targets[index] = [-pid]  # the leader is alive: signal the whole group
            outcome.append("killed")
        elif now is not None:
            outcome.append("gone")  # the pid names another process now: ours is long gone
        else:
            orphans[pid] = index
            outcome.append("gone")
    if orphans:
        for group, members in _members(set(orphans)).items():
            index = orphans[group]
            start = wanted[index][1]
            pids = [pid for pid, began in members if began >= start]
            if pids:
                targets[index] = pids
                outcome[index] = "killed"

    def send(sig: int, pids: Iterable[int]) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if pid < 0:
                    os.killpg(-pid, sig)
                else:
                    os.kill(pid, sig)

    every = [pid for pids in targets.values() for pid in pids]
    send(signal.SIGTERM, every)
    deadline = time.monotonic() + grace
    while every and time.monotonic() < deadline:
        every = [p for p in every if (_group_alive(-p) if p < 0 else process_start(p) is not None)]
        if every:
            time.sleep(0.02)
    send(signal.SIGKILL, every)
    return outcome


#: How far into a command line the runscript's path may be: the kernel runs a script
#: with a `#!` line as ``interpreter [one option] script`` (``/bin/sh /w/x.run``).
_SCRIPT_ARGS = 3


def find_session_leaders(scripts: set[str]) -> dict[str, list[tuple[int, int]]]:
    """Session leaders of this user running one of `scripts`: {script: [(pid, start)]}.

    For a job whose driver died after starting its process but before it recorded the
    pid: the runscript was started by its full path, in a session of its own. The
    kernel runs a script with a ``#!`` line as ``interpreter [option] script``, so the
    path is looked for among the first three arguments, not only as argv[0].
    """
    found: dict[str, list[tuple[int, int]]] = {}
    if not scripts:
        return found
    for pid, fields in _live_processes():
        if int(fields[3]) != pid:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0", _SCRIPT_ARGS)[:_SCRIPT_ARGS]
        except OSError:
            continue
        for arg in args:
            script = arg.decode(errors="replace")
            if script in scripts:
                found.setdefault(script, []).append((pid, int(fields[19])))
                break
    return found
