"""One OpenSSH master connection to a remote host: commands and file transfers over it.

The runner drives the user's own ``ssh`` so that everything in ``~/.ssh/config`` (ProxyJump,
keys, agents, Kerberos, two-factor prompts) works unchanged, and a person logs in once per run.

How the ssh options were chosen (each seen working against OpenSSH 9.2 on loopback):

- The master: ``ssh -o ControlMaster=yes -o ControlPath=<dir>/master -o ControlPersist=<s> -N -f
  HOST``. ``-f`` returns once the login is done and leaves the master in the background (in a
  session of its own, so a Ctrl-C meant for the runner does not reach it); ``ControlPersist``
  makes an orphaned master end by itself after that many idle seconds. Only this call may prompt
  (``BatchMode`` is left as the user's configuration says unless ``interactive=False``).
- The control socket has a fixed name in a folder of its own (mode 0700) made for this object,
  not ``%C``: ``%C`` hashes options (ProxyJump among them) that the later commands override, and
  a fixed name cannot drift. The path stays short: sockets of 108 bytes or more are refused.
- Every later command: ``-o ControlMaster=no -o ControlPath=<same> -o BatchMode=yes
  -o ProxyCommand=false``. When the master is gone, plain ssh would quietly open a new
  connection: one more login, or a hang on a two-factor prompt. ssh tries the control socket
  before it connects, and connecting goes through ProxyCommand (given first on the command line,
  so it beats any ProxyJump/ProxyCommand in the user's files), so ``false`` turns "no master"
  into a quick failure, which :meth:`SshHost.run` reports as :class:`SshMasterGoneError`.
- A stale socket (master killed) must be removed before a new master starts: with one in place,
  ``ControlMaster=yes`` says "already exists, disabling multiplexing" and leaves a plain
  connection running in the background instead of a master.
- sshd refuses a channel beyond its ``MaxSessions`` (10 by default) per connection, so at most
  ``max_sessions`` (8) commands and transfers run at once over one master.

Lock order: ``SshHost._lock`` (connection state) is never taken while holding a session slot.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import PurePosixPath
from typing import IO, TYPE_CHECKING, Optional, Union

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

__all__ = [
    "SshAuthError",
    "SshConnectError",
    "SshError",
    "SshHost",
    "SshHostKeyError",
    "SshMasterGoneError",
    "SshOptions",
    "SshTimeoutError",
    "SshTransferError",
    "SshUnknownHostError",
    "backoff_delays",
    "remote_command",
    "rsync_shell_quote",
    "select_paths",
]

logger = logging.getLogger(__name__)

PathArg = Union[str, "os.PathLike[str]"]

#: Longest control socket path ssh accepts is 107 bytes; keep well below for the hash-free name.
_MAX_CONTROL_PATH = 100
_MASTER_PID = re.compile(r"Master running \(pid=(\d+)\)")
_TRANSFERS = ("auto", "rsync", "tar")
#: What ssh says when the control socket it was to use is dead (then ProxyCommand=false).
_NO_MASTER = ("Control socket connect(", "mux_client_", "kex_exchange_identification")


class SshError(Exception):
    """Something between the runner and a remote host failed.

    Attributes:
        host: the host as given to :class:`SshHost`.
        detail: what ssh (or rsync/tar) printed, stripped; "" when nothing.
    """

    def __init__(self, host: str, message: str, detail: str = "") -> None:
        self.host = host
        self.detail = detail.strip()
        text = message
        if self.detail:
            text += f" [ssh said: {_last_lines(self.detail)}]"
        super().__init__(text)


class SshConnectError(SshError):
    """No connection to the host (refused, timed out, network down): may work when retried."""


class SshUnknownHostError(SshError):
    """ssh cannot resolve the host name: a missing alias, a typo, or no network."""


class SshHostKeyError(SshError):
    """ssh refused the host's key (changed or unknown) under strict host key checking."""


class SshAuthError(SshError):
    """The host refused the login (keys, agent, password or one-time code)."""


class SshMasterGoneError(SshError):
    """The master connection is not running (killed, timed out, link lost): reconnect."""


class SshTimeoutError(SshError):
    """A command or transfer over the master ran past its time-out."""


class SshTransferError(SshError):
    """A file transfer failed while the master stayed up (missing files, permissions, disk)."""


def _last_lines(text: str, count: int = 3) -> str:
    lines = [s.strip() for s in text.strip().splitlines() if s.strip()]
    return " / ".join(lines[-count:])


def _no_nul(text: str, what: str) -> str:
    if "\0" in text:
        raise ValueError(f"{what} {text!r} holds a NUL byte, which no command line can carry")
    return text


def remote_command(argv: Sequence[str]) -> str:
    """Return the command line that makes a POSIX remote shell run exactly ``argv``.

    ssh hands the remote side one string, which the login shell parses again; each argument
    is quoted with :func:`shlex.quote`, so spaces, quotes, ``$``, globs and newlines reach the
    program unchanged. The remote login shell must be a POSIX one (sh, bash, dash, ksh, zsh):
    csh and tcsh refuse a newline inside quotes.

    Args:
        argv: the program and its arguments.

    Returns:
        The quoted command line.

    Raises:
        ValueError: ``argv`` is empty or an argument holds a NUL byte.
        TypeError: ``argv`` is a string or holds something other than strings.
    """
    if isinstance(argv, str):
        raise TypeError(
            f"remote command {argv!r} must be a list of arguments, not a string; "
            "e.g. ['squeue', '--me'], each quoted for the remote shell"
        )
    if not argv:
        raise ValueError("remote command is empty; give the program and its arguments")
    for arg in argv:
        if not isinstance(arg, str):
            raise TypeError(f"remote command argument {arg!r} is not a string (in {argv!r})")
        _no_nul(arg, "remote command argument")
    return " ".join(shlex.quote(arg) for arg in argv)


def rsync_shell_quote(arg: str) -> str:
    """Quote one argument of rsync's ``-e`` command.

    rsync splits that command itself, at spaces, and honours single and double quotes but no
    backslashes; so an argument is left bare, or wrapped in one kind of quote it does not hold.

    Raises:
        ValueError: the argument holds both kinds of quote (rsync cannot carry it).
    """
    _no_nul(arg, "ssh argument")
    if arg and not re.search(r"[\s'\"\\]", arg):
        return arg
    if "'" not in arg:
        return f"'{arg}'"
    if '"' not in arg:
        return f'"{arg}"'
    raise ValueError(
        f"ssh argument {arg!r} holds both ' and \", which rsync's -e cannot carry; "
        "use a path without quotes"
    )


def select_paths(names: Iterable[str], patterns: Iterable[str]) -> list[str]:
    """Return the names (relative POSIX paths) that match any of the glob patterns.

    A pattern matches the end of a path, one component per component, as
    :meth:`pathlib.PurePath.match` does: ``*.out`` matches ``a.out`` and ``run 1/a.out``;
    ``results/*.h5`` matches ``results/x.h5`` at any depth; ``*`` never crosses a ``/``.
    """
    pats = [p.strip("/") for p in patterns if p.strip("/")]
    return [n for n in names if any(PurePosixPath(n).match(p) for p in pats)]


def backoff_delays(first: float = 1.0, factor: float = 2.0, cap: float = 30.0) -> Iterator[float]:
    """Yield the waits between reconnection attempts: ``first``, times ``factor``, at most ``cap``.

    Raises:
        ValueError: ``first`` is not positive, ``factor`` is below 1 or ``cap`` below ``first``.
    """
    if first <= 0 or factor < 1 or cap < first:
        raise ValueError(
            f"back-off first={first}, factor={factor}, cap={cap}: need first > 0, "
            "factor >= 1 and cap >= first"
        )
    delay = first
    while True:
        yield delay
        delay = min(cap, delay * factor)


def classify_failure(host: str, stderr: str, doing: str) -> SshError:
    """Turn what ssh printed on a failed login into the matching :class:`SshError`.

    Args:
        host: the host, for the message.
        stderr: ssh's standard error.
        doing: what was tried, e.g. "starting the master connection".
    """
    text = stderr
    if "Host key verification failed" in text or "IDENTIFICATION HAS CHANGED" in text:
        return SshHostKeyError(
            host,
            f"ssh refused the host key of {host!r} while {doing}: the key the server sent is not "
            "the one in your known_hosts (or none is known there). Check the key's fingerprint "
            f"with the host's administrators, then fix known_hosts (ssh-keygen -R, or log in once "
            f"with `ssh {host}` and compare the fingerprint); the runner never turns host key "
            "checking off",
            stderr,
        )
    if "Could not resolve hostname" in text:
        return SshUnknownHostError(
            host,
            f"ssh cannot resolve the host {host!r} while {doing}: add a 'Host {host}' entry with "
            "its HostName to ~/.ssh/config (or to the config file given), or check the name and "
            "the network",
            stderr,
        )
    if "Permission denied" in text or "Too many authentication failures" in text:
        return SshAuthError(
            host,
            f"{host!r} refused the login while {doing}: check that `ssh {host} true` works in a "
            "terminal (key, agent, password or one-time code)",
            stderr,
        )
    if "Can't open user config file" in text or "Bad configuration option" in text:
        return SshError(
            host, f"ssh refused its configuration while {doing} for {host!r}: fix it", stderr
        )
    if "ControlPath too long" in text:
        return SshError(
            host,
            f"the control socket path is too long for ssh while {doing} for {host!r}: pass a "
            "shorter control_dir (e.g. /tmp)",
            stderr,
        )
    return SshConnectError(
        host,
        f"cannot connect to {host!r} while {doing}: check the network, and that `ssh {host} "
        "true` works in a terminal",
        stderr,
    )


def _options(*settings: str) -> list[str]:
    return [arg for setting in settings for arg in ("-o", setting)]


def _control_parent(control_dir: Optional[PathArg]) -> str:
    if control_dir is not None:
        return os.fspath(control_dir)
    for candidate in (os.environ.get("XDG_RUNTIME_DIR"), tempfile.gettempdir(), "/tmp"):
        if (
            candidate
            and os.path.isdir(candidate)
            and os.access(candidate, os.W_OK | os.X_OK)
            and len(candidate) < _MAX_CONTROL_PATH - 40
        ):
            return candidate
    return "/tmp"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


@dataclasses.dataclass(frozen=True)
class SshOptions:
    """How `SshHost` calls ssh: its constructor's keyword arguments, checked (see there)."""

    config_file: Optional[str]
    ssh_options: tuple[str, ...]
    persist: int
    connect_timeout: Optional[float]
    login_timeout: float
    reconnect_timeout: float
    keepalive: Optional[int]
    interactive: bool
    transfer: str
    ssh: str


class SshHost:
    """Owns one OpenSSH master connection to ``host`` for a run, and everything sent over it.

    Use it as a context manager (``with SshHost("cluster") as ssh: ssh.run([...])``), or call
    :meth:`connect` and :meth:`close`. Only :meth:`connect` and :meth:`reconnect` log in (and may
    prompt on the terminal); :meth:`run`, :meth:`put` and :meth:`get` only use the master and
    raise :class:`SshMasterGoneError` when it is not running. Safe to share between threads.

    Args:
        host: anything ``ssh`` accepts: an alias of ``~/.ssh/config`` (or of ``config_file``),
            ``user@host``, a host name.
        config_file: an ssh configuration file used instead of ``~/.ssh/config`` (``ssh -F``).
        ssh_options: more ssh arguments for every call (e.g. ``["-o", "User=me"]``). They come
            after the runner's ControlMaster, ControlPath, BatchMode and ProxyCommand options
            (for ``-o`` the first value wins), so they cannot turn those off, and before its
            defaults (ConnectTimeout, ServerAlive*), so they may change those.
        control_dir: the folder in which the private control folder is made (default
            ``$XDG_RUNTIME_DIR`` or the temporary folder); keep it short.
        persist: seconds an idle master stays up once nobody uses it (``ControlPersist``), so
            a master left behind by a crash goes away by itself; keep it above the longest
            pause between two commands, or the next one finds the master gone.
        connect_timeout: seconds for the TCP connection (``ConnectTimeout``); None leaves the
            user's configuration.
        login_timeout: seconds a login may take in all, a person typing a code included.
        reconnect_timeout: seconds :meth:`reconnect` keeps trying before it gives up.
        keepalive: seconds between the master's keep-alive probes (``ServerAliveInterval``, 3
            missed probes end it, so a dead link is noticed); None leaves the configuration.
        interactive: whether a login may prompt on the terminal (a password, a one-time code).
            ssh prompts on ``/dev/tty`` whatever stdin is, so a process with a terminal would
            wait there: False adds ``BatchMode=yes`` to the login, which then fails instead.
            To answer from code, set ``SSH_ASKPASS`` and ``SSH_ASKPASS_REQUIRE=force``.
        max_sessions: commands and transfers at most in flight at once over the master.
        transfer: "rsync", "tar" (a tar stream through ssh), or "auto": rsync when both ends
            have it, else tar.
        ssh: the ssh program.

    Raises:
        ValueError: an argument is out of range.
    """

    def __init__(
        self,
        host: str,
        *,
        config_file: Optional[PathArg] = None,
        ssh_options: Sequence[str] = (),
        control_dir: Optional[PathArg] = None,
        persist: int = 600,
        connect_timeout: Optional[float] = 15.0,
        login_timeout: float = 180.0,
        reconnect_timeout: float = 300.0,
        keepalive: Optional[int] = 15,
        interactive: bool = True,
        max_sessions: int = 8,
        transfer: str = "auto",
        ssh: str = "ssh",
    ) -> None:
        if not isinstance(host, str) or not host.strip() or host.startswith("-"):
            raise ValueError(
                f"host {host!r} is not something ssh can connect to; give an alias of "
                "~/.ssh/config, user@host or a host name"
            )
        _no_nul(host, "host")
        if isinstance(ssh_options, str):
            raise TypeError(
                f"ssh_options {ssh_options!r} must be a list of arguments, e.g. ['-o', 'User=me']"
            )
        if transfer not in _TRANSFERS:
            raise ValueError(f"transfer {transfer!r} is not one of {', '.join(_TRANSFERS)}")
        if persist < 1 or max_sessions < 1 or login_timeout <= 0 or reconnect_timeout < 0:
            raise ValueError(
                f"persist={persist}, max_sessions={max_sessions}, login_timeout={login_timeout} "
                f"and reconnect_timeout={reconnect_timeout} must be positive"
            )
        self.host = host
        #: How ssh is called: the arguments above, checked.
        self.options = SshOptions(
            config_file=os.fspath(config_file) if config_file is not None else None,
            ssh_options=tuple(_no_nul(str(o), "ssh option") for o in ssh_options),
            persist=int(persist),
            connect_timeout=connect_timeout,
            login_timeout=login_timeout,
            reconnect_timeout=reconnect_timeout,
            keepalive=keepalive,
            interactive=interactive,
            transfer=transfer,
            ssh=ssh,
        )
        self._control_parent = _control_parent(control_dir)
        self._control_dir: Optional[str] = None
        self._master_pid: Optional[int] = None
        self._remote_rsync: Optional[bool] = None
        self._closed = False
        self._lock = threading.Lock()
        self._sessions = threading.BoundedSemaphore(max_sessions)
        #: Logins made so far (the first connection and each reconnection).
        self.logins = 0

    # --- argv ----------------------------------------------------------------------------

    @property
    def control_path(self) -> str:
        """The master's control socket (exists only between :meth:`connect` and :meth:`close`).

        Raises:
            SshError: not connected yet.
        """
        if self._control_dir is None:
            raise SshError(self.host, f"no master connection to {self.host!r}: call connect()")
        return os.path.join(self._control_dir, "master")

    @property
    def master_pid(self) -> Optional[int]:
        """The process id of the local master ssh, as ``ssh -O check`` last reported it."""
        return self._master_pid

    def _config_args(self) -> list[str]:
        return [self.options.ssh] + (
            ["-F", self.options.config_file] if self.options.config_file else []
        )

    def master_argv(self) -> list[str]:
        """Return the argv that starts the master connection (the only one that logs in)."""
        argv = self._config_args() + _options(
            "ControlMaster=yes",
            f"ControlPath={self.control_path}",
            f"ControlPersist={self.options.persist}",
            "ClearAllForwardings=yes",
        )
        if not self.options.interactive:
            argv += _options("BatchMode=yes")
        # The user's options come before the runner's defaults, so they may change those.
        argv += list(self.options.ssh_options)
        if self.options.connect_timeout is not None:
            argv += _options(f"ConnectTimeout={max(1, round(self.options.connect_timeout))}")
        if self.options.keepalive is not None:
            argv += _options(
                f"ServerAliveInterval={self.options.keepalive}", "ServerAliveCountMax=3"
            )
        return [*argv, "-N", "-f", "--", self.host]

    def client_options(self) -> list[str]:
        """Return ssh and its options for a command over the master (without the host).

        The runner's options come first: for ``-o`` the first value given wins, so neither
        ``ssh_options`` nor the user's files can make these commands log in by themselves.
        """
        return [
            *self._config_args(),
            *_options(
                "ControlMaster=no",
                f"ControlPath={self.control_path}",
                "BatchMode=yes",
                "ProxyCommand=false",
                "ClearAllForwardings=yes",
                "LogLevel=ERROR",
            ),
            *self.options.ssh_options,
            "-T",
        ]

    def command_argv(self, argv: Sequence[str]) -> list[str]:
        """Return the local argv that runs ``argv`` on the host over the master."""
        return [*self.client_options(), "--", self.host, remote_command(argv)]

    def control_argv(self, operation: str) -> list[str]:
        """Return the argv of ``ssh -O operation`` (check, exit) for the master."""
        return [
            *self._config_args(),
            *_options(f"ControlPath={self.control_path}"),
            *("-O", operation, "--", self.host),
        ]

    def rsync_shell(self) -> str:
        """Return rsync's ``-e`` command: ssh over the master, never logging in itself."""
        return " ".join(rsync_shell_quote(a) for a in self.client_options())

    # --- the master ------------------------------------------------------------------------

    def _new_control_dir(self) -> None:
        if self._control_dir is not None and os.path.isdir(self._control_dir):
            return
        path = tempfile.mkdtemp(prefix="runner-ssh-", dir=self._control_parent)  # mode 0700
        if len(os.path.join(path, "master").encode()) >= _MAX_CONTROL_PATH:
            os.rmdir(path)
            raise ValueError(
                f"control folder {path!r} is too long for an ssh control socket "
                f"({_MAX_CONTROL_PATH} bytes at most); pass a shorter control_dir, e.g. /tmp"
            )
        self._control_dir = path

    def connect(self) -> None:
        """Start the master connection: the run's one login (it may prompt on the terminal).

        Does nothing when the master already runs.

        Raises:
            SshHostKeyError, SshUnknownHostError, SshAuthError, SshConnectError: the login
                failed; the message names the host and what to do.
            SshError: this object was closed.
        """
        with self._lock:
            if self._closed:
                raise SshError(self.host, f"the connection to {self.host!r} was closed")
            self._new_control_dir()
            if self._check_locked():
                return
            try:
                self._start_master_locked("starting the master connection")
            except BaseException:  # no login: leave no private folder behind
                if self._control_dir is not None:
                    shutil.rmtree(self._control_dir, ignore_errors=True)
                    self._control_dir = None
                raise

    def _start_master_locked(self, doing: str) -> None:
        # A socket left by a killed master would turn the new master into a plain connection.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.control_path)
        argv = self.master_argv()
        started = time.monotonic()
        # A file, not a pipe: a background master holding a pipe open would block the read.
        with tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    timeout=self.options.login_timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise SshConnectError(
                    self.host,
                    f"no login to {self.host!r} within {self.options.login_timeout:g} s "
                    f"while {doing}",
                ) from exc
            except FileNotFoundError as exc:
                raise SshError(
                    self.host,
                    f"the ssh program {self.options.ssh!r} is not installed or not on PATH",
                ) from exc
            err.seek(0)
            stderr = err.read().decode("utf-8", "replace")
        if proc.returncode != 0:
            raise classify_failure(self.host, stderr, doing)
        if not self._check_locked():
            raise SshConnectError(
                self.host,
                f"ssh logged in to {self.host!r} but no master answers on {self.control_path} "
                f"while {doing}",
                stderr,
            )
        self.logins += 1
        logger.info(
            "ssh master to %s up (pid %s) in %.2f s",
            self.host,
            self._master_pid,
            time.monotonic() - started,
        )

    def _check_locked(self) -> bool:
        if self._control_dir is None or not os.path.exists(self.control_path):
            return False
        try:
            proc = subprocess.run(
                self.control_argv("check"),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return False
        if proc.returncode != 0:
            return False
        match = _MASTER_PID.search(proc.stderr)
        if match:
            self._master_pid = int(match.group(1))
        return True

    def check(self) -> bool:
        """Return whether the master connection runs (``ssh -O check``), without logging in."""
        with self._lock:
            return self._check_locked()

    def reconnect(self, timeout: Optional[float] = None) -> None:
        """Start a new master when the old one is gone, retrying with back-off.

        Returns at once when the master runs. Waits 1, 2, 4... s (at most 30 s) between tries;
        a login that needs a person prompts again (logged as a warning first). Other threads'
        commands wait for the outcome meanwhile. Refused connections, time-outs and failed name
        look-ups (an unplugged network) are retried; a refused host key or login is not.

        Args:
            timeout: seconds to keep trying (default ``reconnect_timeout``).

        Raises:
            SshConnectError: no connection within the time; names the host and ssh's last error.
            SshHostKeyError, SshAuthError: the host refused the key or the login (not retried).
        """
        limit = self.options.reconnect_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        delays = backoff_delays()
        attempts = 0
        with self._lock:
            if self._closed:
                raise SshError(self.host, f"the connection to {self.host!r} was closed")
            self._new_control_dir()
            if self._check_locked():
                return
            if self.options.interactive:
                logger.warning(
                    "ssh master to %s is gone: logging in again (ssh may ask for your password "
                    "or one-time code)",
                    self.host,
                )
            while True:
                attempts += 1
                try:
                    self._start_master_locked(f"reconnecting (attempt {attempts})")
                except (SshConnectError, SshUnknownHostError) as exc:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise SshConnectError(
                            self.host,
                            f"gave up reconnecting to {self.host!r} after {limit:g} s "
                            f"({attempts} attempts); the link or the host is down: check that "
                            f"`ssh {self.host} true` works, then resume the run",
                            exc.detail,
                        ) from exc
                    wait = min(next(delays), left)
                    logger.warning(
                        "reconnecting to %s failed (%s); next try in %.1f s",
                        self.host,
                        _last_lines(exc.detail, 1) or exc,
                        wait,
                    )
                    time.sleep(wait)
                else:
                    return

    def close(self) -> None:
        """End the master (``ssh -O exit``) and remove the control folder. Safe to repeat."""
        with self._lock:
            self._closed = True
            if self._control_dir is None:
                return
            if os.path.exists(self.control_path):
                with contextlib.suppress(subprocess.TimeoutExpired):
                    subprocess.run(
                        self.control_argv("exit"),
                        stdin=subprocess.DEVNULL,
                        capture_output=True,
                        timeout=10,
                        check=False,
                    )
            pid = self._master_pid
            if pid is not None:
                deadline = time.monotonic() + 5
                while _pid_alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.02)
                if _pid_alive(pid):
                    # The master this object started did not obey "exit".
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGTERM)
            shutil.rmtree(self._control_dir, ignore_errors=True)
            self._control_dir = None
            self._master_pid = None

    def __enter__(self) -> SshHost:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- commands ------------------------------------------------------------------------

    def _ready_control_path(self) -> str:
        with self._lock:
            if self._closed:
                raise SshError(self.host, f"the connection to {self.host!r} was closed")
            if self._control_dir is None:
                raise SshMasterGoneError(
                    self.host, f"no master connection to {self.host!r}: call connect() first"
                )
            return self.control_path

    def _transport_failed(self, stderr: str, doing: str, used: Optional[int] = None) -> None:
        """After exit status 255: raise when ssh, not the remote command, failed.

        `used` is the master's pid when the command started: a master running now under
        another pid (another thread reconnected meanwhile) means the one used went away.
        """
        if "Session open refused" in stderr or "session request failed" in stderr:
            raise SshConnectError(
                self.host,
                f"the server of {self.host!r} refused one more session over the master while "
                f"{doing} (sshd MaxSessions); lower max_sessions",
                stderr,
            )
        # ssh's own words when the master it was to use went away: the command never ran
        # (a new master may be up by now, started by another thread's reconnect).
        if (
            any(sign in stderr for sign in _NO_MASTER)
            or not self.check()
            or (used is not None and self._master_pid != used)
        ):
            raise SshMasterGoneError(
                self.host,
                f"the master connection to {self.host!r} is gone (killed, timed out or the link "
                f"dropped) while {doing}: call reconnect()",
                stderr,
            )

    def run(
        self,
        argv: Sequence[str],
        *,
        input: Optional[str] = None,
        timeout: Optional[float] = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` on the host over the master and return what it did.

        Args:
            argv: the remote program and its arguments, each quoted for the remote shell (see
                :func:`remote_command`); relative paths are from the remote home.
            input: text for the command's standard input (none: /dev/null).
            timeout: seconds before the local ssh is killed; the remote command may go on
                running (no terminal, so no hang-up reaches it).

        Returns:
            A CompletedProcess whose ``args`` is ``argv`` and whose returncode, stdout and stderr
            are the remote command's (text decoded from UTF-8 as it came: no newline
            translation; bytes that are not UTF-8 come as lone surrogates).

        Raises:
            SshMasterGoneError: the master is not running (before or during the command).
            SshTimeoutError: the command ran past ``timeout``.
            SshError: not connected, closed, or the server refused the session.
            ValueError, TypeError: ``argv`` cannot be sent (see :func:`remote_command`).
        """
        command = remote_command(argv)
        self._ready_control_path()
        used = self._master_pid
        full = [*self.client_options(), "--", self.host, command]
        doing = f"running {command[:200]!r}"
        with self._sessions:
            try:
                # Bytes, decoded below: text mode would turn a "\r" into "\n".
                proc = subprocess.run(
                    full,
                    input=None if input is None else input.encode("utf-8", "surrogateescape"),
                    stdin=subprocess.DEVNULL if input is None else None,
                    capture_output=True,
                    timeout=timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise SshTimeoutError(
                    self.host, f"{doing} on {self.host!r} took more than {timeout:g} s"
                ) from exc
        stdout = proc.stdout.decode("utf-8", "surrogateescape")
        stderr = proc.stderr.decode("utf-8", "surrogateescape")
        if proc.returncode == 255:
            self._transport_failed(stderr, doing, used)
        return subprocess.CompletedProcess(list(argv), proc.returncode, stdout, stderr)

    # --- files ---------------------------------------------------------------------------

    def _use_rsync(self) -> bool:
        if self.options.transfer != "auto":
            return self.options.transfer == "rsync"
        if shutil.which("rsync") is None:
            return False
        if self._remote_rsync is None:
            found = self.run(["sh", "-c", "command -v rsync"], timeout=30)
            self._remote_rsync = found.returncode == 0 and bool(found.stdout.strip())
            logger.info(
                "file transfers to %s use %s",
                self.host,
                "rsync" if self._remote_rsync else "a tar stream (no rsync there)",
            )
        return self._remote_rsync

    def _rsync(
        self, args: list[str], doing: str, input: Optional[bytes], timeout: Optional[float]
    ) -> None:
        argv = ["rsync", "-rlpt", "--protect-args", "-e", self.rsync_shell(), *args]
        used = self._master_pid
        with self._sessions:
            try:
                proc = subprocess.run(
                    argv,
                    input=input,
                    stdin=subprocess.DEVNULL if input is None else None,
                    capture_output=True,
                    timeout=timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise SshTimeoutError(
                    self.host, f"{doing} with {self.host!r} took more than {timeout:g} s"
                ) from exc
        if proc.returncode == 0:
            return
        stderr = proc.stderr.decode("utf-8", "replace")
        if proc.returncode == 24:  # files vanished meanwhile (a job rewrote its own): not lost
            logger.debug("%s with %s: some files vanished meanwhile: %s", doing, self.host, stderr)
            return
        # rsync reports its ssh failing as 255, or 12 (protocol stream broken), or 10.
        if proc.returncode in (10, 12, 255):
            self._transport_failed(stderr, doing, used)
        raise SshTransferError(
            self.host, f"{doing} with {self.host!r} failed (rsync exit {proc.returncode})", stderr
        )

    def _tar_pipe(
        self,
        first: list[str],
        second: list[str],
        doing: str,
        input: Optional[bytes],
        timeout: Optional[float],
    ) -> None:
        """Run ``first | second`` (one of them ssh) and raise when either fails."""
        used = self._master_pid
        with self._sessions, tempfile.TemporaryFile() as err1, tempfile.TemporaryFile() as err2:
            producer = subprocess.Popen(
                first,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err1,
            )
            try:
                consumer = subprocess.Popen(
                    second, stdin=producer.stdout, stdout=subprocess.DEVNULL, stderr=err2
                )
            except BaseException:
                producer.kill()
                producer.wait()
                raise
            assert producer.stdout is not None  # for the type checker
            producer.stdout.close()  # the consumer holds its own copy
            try:
                if input is not None:
                    self._feed(producer.stdin, input)
                left = None if timeout is None else timeout
                started = time.monotonic()
                producer.wait(left)
                if left is not None:
                    left = max(0.1, left - (time.monotonic() - started))
                consumer.wait(left)
            except subprocess.TimeoutExpired as exc:
                for proc in (producer, consumer):
                    proc.kill()
                    proc.wait()
                raise SshTimeoutError(
                    self.host, f"{doing} with {self.host!r} took more than {timeout:g} s"
                ) from exc
            stderr = ""
            for err in (err1, err2):
                err.seek(0)
                stderr += err.read().decode("utf-8", "replace")
            codes = (producer.returncode, consumer.returncode)
        if codes == (0, 0):
            return
        if 255 in codes:
            self._transport_failed(stderr, doing, used)
        raise SshTransferError(
            self.host, f"{doing} with {self.host!r} failed (tar exit codes {codes})", stderr
        )

    @staticmethod
    def _feed(pipe: Optional[IO[bytes]], data: bytes) -> None:
        if pipe is None:
            return
        with contextlib.suppress(BrokenPipeError):
            pipe.write(data)
        with contextlib.suppress(BrokenPipeError):
            pipe.close()

    def put(
        self,
        local_paths: Iterable[PathArg],
        remote_dir: str,
        *,
        timeout: Optional[float] = None,
        make_dir: bool = True,
    ) -> None:
        """Copy local files and folders into ``remote_dir`` on the host, in one transfer.

        Like ``cp -r PATHS... REMOTE_DIR/``: a folder arrives as a folder of the same name.
        ``remote_dir`` is made when missing (one more command; ``make_dir=False`` when the
        caller knows it is there); a relative one is under the remote home.

        Raises:
            FileNotFoundError: a local path does not exist.
            SshMasterGoneError, SshTimeoutError, SshTransferError: the transfer failed.
        """
        _no_nul(remote_dir, "remote folder")
        if not remote_dir:
            raise ValueError("remote folder is empty; give a path on the host")
        paths = [os.path.abspath(os.fspath(p)) for p in local_paths]
        if not paths:
            return
        for path in paths:
            if not os.path.lexists(path):
                raise FileNotFoundError(f"cannot copy {path!r} to {self.host!r}: no such file")
        self._ready_control_path()
        doing = f"copying {len(paths)} path(s) to {remote_dir!r}"
        made = (
            self.run(["mkdir", "-p", "--", remote_dir], timeout=timeout or 60.0)
            if make_dir
            else None
        )
        if made is not None and made.returncode != 0:
            raise SshTransferError(
                self.host, f"cannot make the folder {remote_dir!r} on {self.host!r}", made.stderr
            )
        if self._use_rsync():
            self._rsync(["--", *paths, f"{self.host}:{remote_dir}/"], doing, None, timeout)
            return
        local = ["tar", "-c", "-f", "-"]
        for path in paths:
            local += ["-C", os.path.dirname(path) or "/", os.path.basename(path)]
        remote = self.command_argv(["tar", "-x", "-f", "-", "-C", remote_dir])
        self._tar_pipe(local, remote, doing, None, timeout)

    def list_files(self, remote_dir: str, *, timeout: Optional[float] = 60.0) -> list[str]:
        """Return the files and symlinks under ``remote_dir`` as relative POSIX paths, sorted.

        One remote ``find``; names with spaces or newlines come through (NUL-separated).

        Raises:
            SshTransferError: the folder cannot be listed (missing, no permission).
        """
        script = 'cd -- "$1" && exec find . \\( -type f -o -type l \\) -print0'
        found = self.run(["sh", "-c", script, "sh", remote_dir], timeout=timeout)
        if found.returncode != 0:
            raise SshTransferError(
                self.host, f"cannot list the folder {remote_dir!r} on {self.host!r}", found.stderr
            )
        names = [n[2:] if n.startswith("./") else n for n in found.stdout.split("\0") if n]
        return sorted(names)

    def get(
        self,
        remote_dir: str,
        local_dir: PathArg,
        patterns: Optional[Iterable[str]] = None,
        *,
        names: Optional[Iterable[str]] = None,
        timeout: Optional[float] = None,
    ) -> None:
        """Copy what ``remote_dir`` holds into ``local_dir`` (made when missing), in one transfer.

        Args:
            remote_dir: the folder on the host (relative: under the remote home).
            local_dir: the local folder; existing files of the same names are replaced.
            patterns: None for everything; otherwise globs for the files to fetch (see
                :func:`select_paths`: ``*.out``, ``results/*.h5``), found with one remote listing
                first; an empty list fetches nothing and sends nothing.
            names: instead of `patterns`, the paths to fetch relative to ``remote_dir``, with no
                listing first: a folder comes whole, a missing name is skipped.
            timeout: seconds the transfer may take.

        Raises:
            SshMasterGoneError, SshTimeoutError, SshTransferError: the transfer failed.
        """
        _no_nul(remote_dir, "remote folder")
        if not remote_dir:
            raise ValueError("remote folder is empty; give a path on the host")
        chosen: Optional[list[str]] = None
        if names is not None:
            chosen = [_no_nul(name, "remote file name") for name in names]
            if not chosen:
                return
        elif patterns is not None:
            pats = [patterns] if isinstance(patterns, str) else list(patterns)
            if not pats:
                return
            chosen = select_paths(self.list_files(remote_dir), pats)
            if not chosen:
                return
            for name in chosen:
                _no_nul(name, "remote file name")
        self._ready_control_path()
        target = os.path.abspath(os.fspath(local_dir))
        os.makedirs(target, exist_ok=True)
        doing = (
            f"copying {remote_dir!r} back"
            if chosen is None
            else (f"copying {len(chosen)} file(s) of {remote_dir!r} back")
        )
        listing = None if chosen is None else "\0".join(chosen).encode("utf-8", "surrogateescape")
        if self._use_rsync():
            extra = (
                [] if listing is None else ["--from0", "--files-from=-", "--ignore-missing-args"]
            )
            self._rsync(
                [*extra, "--", f"{self.host}:{remote_dir}/", f"{target}/"], doing, listing, timeout
            )
            return
        remote = ["tar", "-c", "-f", "-", "-C", remote_dir]
        remote += ["."] if listing is None else ["--ignore-failed-read", "--null", "-T", "-"]
        local = ["tar", "-x", "-f", "-", "-C", target]
        self._tar_pipe(self.command_argv(remote), local, doing, listing, timeout)
