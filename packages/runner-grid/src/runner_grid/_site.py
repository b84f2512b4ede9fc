"""Where a GridRunner's jobs run when the scheduler is on another host, reached over ssh.

A `RemoteSite` owns the run's one `SshHost` (one login), maps each local job folder to its
folder on the host, copies a job's folder up before its submission and the folders of ended
jobs back in one transfer per queue check, and runs every scheduler command over the
master. When the link drops, the thread that finds it down reconnects (with back-off, others
waiting for it) and the command's caller decides what the failure means: a check is tried
again at the next round, a submission is looked up by its tag before it is sent again. A link
down for longer than the host's ``reconnect_timeout`` calls `RemoteSite.on_link_lost`.

Paths: the jobs of a run folder ``.../NAME`` live under one remote root, by default
``$HOME/NAME`` on the host (``remote_root=`` names another; relative: under the remote home),
each job in a folder of the same name as its local one. So local and remote runs of one
script have the same layout, and a remote path follows from a local one.

Lock order: `RemoteSite._lock` is a leaf (no command runs and no other lock is taken while it
is held); `SshHost`'s own locks are taken with it released.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import posixpath
import shlex
import subprocess
import tarfile
import threading
import time
import weakref
from typing import TYPE_CHECKING, Callable, Optional, Union

from runner_core.ext import report_failure
from runner_grid._commands import LinkError, SchedulerCommandError, format_command
from runner_grid._remote import (
    SshConnectError,
    SshError,
    SshHost,
    SshMasterGoneError,
    SshTimeoutError,
    select_paths,
)
from runner_grid.schemes._common import current_user

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = [
    "FETCH_ALL",
    "RemoteSite",
    "fetch_policy",
    "own_files",
    "remote_site",
    "stage_folder",
    "submission_paths",
]

logger = logging.getLogger(__name__)

#: `fetch=` value: every file of an ended job's remote folder comes back.
FETCH_ALL = "all"

#: The largest job folder (bytes) that goes up with its submission, as a tar stream in
#: memory; a bigger one is copied first with rsync or tar (`RemoteSite.stage`).
STAGE_MOST = 8 << 20

#: Exit status of the staged copy's shell when the unpacking failed (the command not run).
_UNPACK_FAILED = 97

#: Unpack the job folder's tar stream (stdin) into $1, then run the rest of the arguments.
_UNPACK_THEN_RUN = (
    '{ [ -d "$1" ] || mkdir -p -- "$1"; } && tar -x -f - -C "$1" || { echo "runner_grid: could '
    'not unpack the job folder into $1" >&2; exit 97; }; shift; exec "$@"'
)

#: Tries of a copy the link cut (each after the link is mended).
_TRANSFER_TRIES = 3

#: Folders whose files one remote listing covers (for glob fetches), to keep commands short.
_LIST_CHUNK = 400


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def fetch_policy(fetch: Union[str, Iterable[str], None]) -> Union[str, tuple[str, ...]]:
    """Check `fetch=`: ``"all"``, globs (``["*.out", "results/*.h5"]``), or None/[] (nothing more
    than the runner's own files: exit code, times, output and error).

    Raises:
        TypeError, ValueError: anything else, naming the value.
    """
    if fetch is None:
        return ()
    if isinstance(fetch, str):
        if fetch == FETCH_ALL:
            return FETCH_ALL
        raise ValueError(
            f"fetch={fetch!r}: give 'all', a list of globs such as ['*.out', 'results/*.h5'], "
            "or None for the runner's own files only"
        )
    globs = tuple(fetch)
    for glob in globs:
        if not isinstance(glob, str) or not glob or "\0" in glob:
            raise TypeError(f"fetch={fetch!r}: each glob must be a non-empty string, not {glob!r}")
    return globs


def own_files(exit_file: str) -> list[str]:
    """The names of the runner's files in a job's folder, from its exit-code file's path:
    ``<stem>.exitcode``, ``.times``, ``.out``, ``.err`` (missing ones are skipped by a fetch)."""
    name = os.path.basename(exit_file)
    stem = name[: -len(".exitcode")] if name.endswith(".exitcode") else name
    return [stem + ext for ext in (".exitcode", ".times", ".out", ".err")]


class RemoteSite:
    """A run's remote host: one ssh master, the job folders there, and the link's health.

    Args:
        host: the connection (connected by `connect`).
        root: the remote folder of the run's jobs as given (``remote_root=``), or None for
            ``$HOME/<local run folder's name>``.
        fetch: what comes back of an ended job's folder (`fetch_policy`).

    Attributes:
        on_link_lost: called once, with a message, when the link has been down longer than
            the host's ``reconnect_timeout``; the runner then leaves its jobs queued.
    """

    def __init__(
        self, host: SshHost, root: Optional[str], fetch: Union[str, tuple[str, ...]]
    ) -> None:
        if root is not None and (not isinstance(root, str) or not root or "\0" in root):
            raise ValueError(
                f"remote_root={root!r} must be a folder on the host, e.g. 'runs/campaign1'"
            )
        self.host = host
        self.root = root
        self.fetch = fetch
        self.on_link_lost: Callable[[str], object] = lambda message: None
        self._lock = threading.Lock()
        self._home: Optional[str] = None
        self._users = ("", "")  # the user here, and the login user on the host (`connect`)
        self._runs: dict[str, str] = {}  # local run folder -> its remote root
        self._made: set[str] = set()  # remote folders copies went into: they exist
        self._lost = False
        self._told = False  # raise_if_lost raised
        self._staged = threading.local()  # payload: (remote parent, tar bytes) or None
        #: Transfers made so far: up (job folders before submission), down (per check round).
        self.transfers = 0

    def __repr__(self) -> str:
        return f"<RemoteSite {self.host.host!r} root={self.root!r}>"

    @property
    def lost(self) -> bool:
        """Whether the link was given up on (`on_link_lost` was called)."""
        return self._lost

    # --- the connection ------------------------------------------------------------------

    def connect(self) -> None:
        """Log in (the run's one login: it may prompt) and learn the remote home.

        Raises:
            runner_grid.SshError: the login failed; the message says why and what to do.
        """
        self.host.connect()
        if self._home is None:
            found = self.host.run(["sh", "-c", 'echo "$HOME"; id -un'], timeout=60)
            home, _nl, user = found.stdout.strip().partition("\n")
            if found.returncode != 0 or not home.startswith("/") or not user.strip():
                raise SshError(
                    self.host.host,
                    f"cannot tell the home folder and user name on {self.host.host!r} "
                    f"(`echo $HOME; id -un` gave {found.stdout!r}, {found.stderr.strip()!r})",
                )
            self._home = home
            self._users = (current_user(), user.strip())

    def close(self) -> None:
        """End the master connection."""
        self.host.close()

    def run(
        self, argv: Sequence[str], *, timeout: Optional[float] = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a scheduler command on the host (`runner_grid.Scheduler.run` comes here).

        Raises:
            LinkError: ssh failed (the link, not the command), the link mended before this
                returns when it could be, within ``reconnect_timeout``; or the command ran
                past `timeout` (it may go on running on the host).
        """
        if self._lost:
            raise LinkError(f"{format_command(argv)} not run: {self._lost_message()}")
        argv = self._as_remote_user(argv)
        staged = getattr(self._staged, "payload", None)
        try:
            if staged is None:
                return self.host.run(argv, timeout=timeout)
            parent, payload = staged
            # The folder first (its copy may be there already from a try cut short).
            proc = self.host.run(
                ["sh", "-c", _UNPACK_THEN_RUN, "sh", parent, *argv],
                input=payload.decode("utf-8", "surrogateescape"),
                timeout=timeout,
            )
            if proc.returncode != _UNPACK_FAILED:
                self._staged.payload = None
                with self._lock:
                    self.transfers += 1
            return subprocess.CompletedProcess(
                list(argv), proc.returncode, proc.stdout, proc.stderr
            )
        except SshTimeoutError as exc:  # it may run on there: a submission is looked up
            raise LinkError(str(exc)) from exc
        except SshError as exc:
            self.mend(exc)
            raise LinkError(f"{format_command(argv)} failed on the way: {exc}") from exc

    def mend(self, failure: Exception) -> None:
        """After a failed command: reconnect (back-off, at most ``reconnect_timeout``); past that,
        give the link up once (`on_link_lost`). Threads that find the link down meanwhile wait
        for the same reconnection."""
        if self._lost:
            return
        logger.warning("the link to %s failed (%s); reconnecting", self.host.host, failure)
        try:
            self.host.reconnect()
        except SshError as exc:
            with self._lock:
                first, self._lost = not self._lost, True
            if first:
                message = self._lost_message(exc)
                logger.error("%s", message)
                self.on_link_lost(message)
        else:
            logger.warning("the link to %s is back", self.host.host)

    def _lost_message(self, cause: Optional[Exception] = None) -> str:
        waited = self.host.options.reconnect_timeout
        why = f" ({_first_line(cause)})" if cause is not None else ""
        with self._lock:
            folders = sorted(self._runs)
        resume = " and ".join(f"runner resume {shlex.quote(f)}" for f in folders) or (
            "runner resume on the run folder"
        )
        return (
            f"the link to {self.host.host!r} was down for more than {waited:g} s{why}; the jobs "
            f"in its queue are left there: when `ssh {self.host.host} true` works again, "
            f"collect them with: {resume}"
        )

    def _as_remote_user(self, argv: Sequence[str]) -> list[str]:
        """`argv` with the local user's name, where a scheduler command names the user whose
        jobs it lists (``--user=NAME``, ``-u NAME``, ``user=NAME``), changed to the login
        user's on the host: the schemes name the user this process runs as."""
        local, there = self._users
        if local == there:
            return list(argv)
        out: list[str] = []
        for i, arg in enumerate(argv):
            if arg in (f"--user={local}", f"user={local}"):
                out.append(arg[: -len(local)] + there)
            elif arg == local and i > 0 and argv[i - 1] in ("-u", "--user"):
                out.append(there)
            else:
                out.append(arg)
        return out

    def raise_if_lost(self) -> None:
        """Raise `SshConnectError` (with the resume command) when the link was given up: the
        first time only, so a `shutdown()` after the `wait()` that raised is quiet."""
        with self._lock:
            tell, self._told = self._lost and not self._told, self._told or self._lost
        if tell:
            raise SshConnectError(self.host.host, self._lost_message())

    # --- paths ---------------------------------------------------------------------------

    def _absolute(self, path: str) -> str:
        if path.startswith("/"):
            return posixpath.normpath(path)
        if self._home is None:
            raise SshError(self.host.host, f"not connected to {self.host.host!r}: no remote home")
        return posixpath.normpath(posixpath.join(self._home, path))

    def root_of(self, run_folder: str) -> str:
        """The remote folder of the jobs of a local run folder (learnt from then on)."""
        run_folder = os.path.abspath(run_folder)
        with self._lock:
            known = self._runs.get(run_folder)
        if known is not None:
            return known
        root = self._absolute(self.root if self.root is not None else os.path.basename(run_folder))
        with self._lock:
            return self._runs.setdefault(run_folder, root)

    def job_folder(self, workdir: str) -> str:
        """The remote folder of a job's local folder (``<run>/<name>`` -> ``<root>/<name>``)."""
        workdir = os.path.abspath(workdir)
        return posixpath.join(self.root_of(os.path.dirname(workdir)), os.path.basename(workdir))

    def remote_path(self, path: str) -> str:
        """The remote path of a local path inside a run folder whose jobs go to this host.

        Raises:
            ValueError: the path is under no run folder seen so far (no job folder there).
        """
        path = os.path.abspath(path)
        with self._lock:
            runs = list(self._runs.items())
        for local, remote in sorted(runs, key=lambda item: -len(item[0])):
            if path == local or path.startswith(local + os.sep):
                rel = os.path.relpath(path, local)
                return remote if rel == "." else posixpath.join(remote, *rel.split(os.sep))
        raise ValueError(f"{path!r} is in no run folder of this runner: no remote path for it")

    # --- files ---------------------------------------------------------------------------

    def stage(self, workdir: str) -> None:
        """Let a job's folder go up with the next command this thread runs (its submission).

        A folder of at most `STAGE_MOST` bytes goes as a tar stream on that command's
        standard input, unpacked on the host before the command runs: one ssh session for
        the copy and the submission together. A bigger one is copied now (`put`).
        `unstage` drops what was not sent.

        Raises:
            LinkError, SchedulerCommandError: a bigger folder's copy failed.
            OSError: the folder cannot be read.
        """
        workdir = os.path.abspath(workdir)
        size = 0
        for here, _dirs, files in os.walk(workdir):
            size += sum(os.lstat(os.path.join(here, name)).st_size for name in files)
        if size > STAGE_MOST:
            self.put([workdir])
            return
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.add(workdir, arcname=os.path.basename(workdir))
        parent = self.remote_path(os.path.dirname(workdir))
        self._staged.payload = (parent, buffer.getvalue())

    def unstage(self) -> None:
        """Forget this thread's staged folder (`stage`) if no command took it."""
        self._staged.payload = None

    def put(self, paths: Sequence[str]) -> None:
        """Copy local folders (a job's, an array's) to their remote places, one transfer per
        remote parent; what is there already of the same names is replaced.

        Raises:
            LinkError: the link failed (mended when it could be, see `run`).
            SchedulerCommandError: the copy failed otherwise (no room, no permission).
        """
        groups: dict[str, list[str]] = {}
        for path in paths:
            parent = self.remote_path(os.path.dirname(os.path.abspath(path)))
            groups.setdefault(parent, []).append(os.path.abspath(path))
        for parent, group in groups.items():
            with self._lock:
                known = parent in self._made
            self._transfer(
                functools.partial(self.host.put, group, parent, make_dir=not known),
                f"copying {group[0]!r} up",
            )
            with self._lock:
                self._made.add(parent)

    def fetch_ended(self, exit_files: Sequence[str], *, own_only: bool = False) -> bool:
        """Copy back the folders of ended jobs (given by their exit-code files), as `fetch` says,
        or only the runner's own files of each (`own_files`): one transfer per run folder.

        Returns:
            Whether all came back; a failure is logged (the caller may try again later).
        """
        groups: dict[str, list[str]] = {}
        for exit_file in exit_files:
            groups.setdefault(os.path.dirname(os.path.dirname(exit_file)), []).append(exit_file)
        complete = True
        for run_folder, files in groups.items():
            try:
                names = self._names_to_fetch(run_folder, files, own_only)
                root = self.root_of(run_folder)
                self._transfer(
                    functools.partial(self.host.get, root, run_folder, names=names),
                    f"copying {len(files)} ended job folder(s) back",
                )
            except (SchedulerCommandError, OSError) as exc:
                complete = False
                logger.error(
                    "could not copy the folders of %d ended jobs back from %s: %s",
                    len(files), self.host.host, exc,
                )  # fmt: skip
        return complete

    def _names_to_fetch(
        self, run_folder: str, exit_files: Sequence[str], own_only: bool
    ) -> list[str]:
        folders = [os.path.basename(os.path.dirname(f)) for f in exit_files]
        if self.fetch == FETCH_ALL and not own_only:
            return folders
        names = [
            posixpath.join(folder, name)
            for folder, exit_file in zip(folders, exit_files)
            for name in own_files(exit_file)
        ]
        if self.fetch and not own_only:
            names += self._matching(self.root_of(run_folder), folders)
        return names

    def _matching(self, root: str, folders: Sequence[str]) -> list[str]:
        """The files of the job folders (relative to `root`) that a glob of `fetch` names."""
        script = 'cd -- "$1" && shift && exec find "$@" \\( -type f -o -type l \\) -print0'
        found: list[str] = []
        for start in range(0, len(folders), _LIST_CHUNK):
            chunk = folders[start : start + _LIST_CHUNK]
            listed = self.run(["sh", "-c", script, "sh", root, *chunk], timeout=120)
            found += [n for n in listed.stdout.split("\0") if n]
        by_folder: dict[str, list[str]] = {}
        for name in found:
            folder, _sep, rest = name.partition("/")
            by_folder.setdefault(folder, []).append(rest)
        globs = tuple(self.fetch)
        return [
            posixpath.join(folder, rest)
            for folder, names in by_folder.items()
            for rest in select_paths(names, globs)
        ]

    def _transfer(self, send: Callable[[], object], doing: str) -> None:
        """Run a copy (`SshHost.put` or `get`); a copy cut by the link is made again once the
        link is mended (copying again does no harm), at most `_TRANSFER_TRIES` times."""
        for attempt in range(1, _TRANSFER_TRIES + 1):
            if self._lost:
                raise LinkError(f"{doing}: {self._lost_message()}")
            started = time.monotonic()
            try:
                send()
            except SshTimeoutError as exc:
                raise SchedulerCommandError(str(exc)) from exc
            except SshMasterGoneError as exc:
                self.mend(exc)
                if attempt == _TRANSFER_TRIES:
                    raise LinkError(f"{doing} failed on the way: {exc}") from exc
                continue
            except SshError as exc:
                if self.host.check():  # the link is up: the copy itself failed
                    raise SchedulerCommandError(f"{doing}: {exc}") from exc
                self.mend(exc)
                if attempt == _TRANSFER_TRIES:
                    raise LinkError(f"{doing} failed on the way: {exc}") from exc
                continue
            with self._lock:
                self.transfers += 1
            logger.debug("%s took %.2f s", doing, time.monotonic() - started)
            return


def remote_site(
    host: Union[str, SshHost, None],
    root: Optional[str],
    ssh_config: Optional[str],
    fetch: Union[str, Iterable[str], None],
    on_link_lost: Callable[[str], object],
) -> Optional[RemoteSite]:
    """The remote site of a GridRunner's ``host=`` (None: jobs run here), connected: the login.

    The master connection ends when the site is collected or the interpreter exits.

    Raises:
        TypeError, ValueError: a bad `host`, `root` or `fetch`, naming it.
        runner_grid.SshError: the login failed (host key, refused login, no route).
    """
    if host is None:
        if root is not None or ssh_config is not None:
            raise ValueError(
                f"remote_root={root!r} / ssh_config={ssh_config!r} are for a remote run: "
                "give host= too (an alias of ~/.ssh/config or user@host)"
            )
        return None
    if isinstance(host, SshHost):
        if ssh_config is not None:
            raise ValueError(
                "ssh_config= is for a host given by name; give config_file= to your SshHost"
            )
        connection = host
    elif isinstance(host, str):
        connection = SshHost(host, config_file=ssh_config)
    else:
        raise TypeError(
            f"host must be a host name, an alias of ~/.ssh/config or an SshHost, not {host!r}"
        )
    site = RemoteSite(connection, root, fetch_policy(fetch))
    site.on_link_lost = on_link_lost
    site.connect()
    weakref.finalize(site, connection.close)
    return site


def submission_paths(
    site: Optional[RemoteSite], wrapper: str, workdir: str, out: Optional[str], err: str
) -> tuple[str, str, Optional[str], str]:
    """The paths a submit command names (wrapper, folder, output, error): as they are here, or
    where they are on the remote `site`."""
    if site is None:
        return wrapper, workdir, out, err
    there = site.job_folder(workdir)  # learns the run folder: remote_path knows it from here
    remote = site.remote_path
    return remote(wrapper), there, None if out is None else remote(out), remote(err)


def stage_folder(site: RemoteSite, workdir: str) -> bool:
    """Get a job's folder ready to go to the host with its submission (`RemoteSite.stage`);
    False (the job failed, with the reason "submit_failed" and what went wrong) when it
    could not be."""
    try:
        site.stage(workdir)
    except (SchedulerCommandError, OSError, ValueError) as exc:
        report_failure(
            f"could not copy the job's folder {workdir!r} to {site.host.host!r}: {exc}",
            reason="submit_failed",
        )
        return False
    return True
