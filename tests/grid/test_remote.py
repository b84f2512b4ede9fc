"""SshHost without a server: quoting, ssh argv, error texts, back-off, faults of a fake ssh."""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from runner_grid._remote import (
    SshAuthError,
    SshConnectError,
    SshError,
    SshHost,
    SshHostKeyError,
    SshMasterGoneError,
    SshUnknownHostError,
    backoff_delays,
    classify_failure,
    remote_command,
    rsync_shell_quote,
    select_paths,
)

if TYPE_CHECKING:
    from pathlib import Path

#: Any text an argv can carry: no NUL, no lone surrogates (not encodable).
ARGUMENT = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"))


# --- quoting -------------------------------------------------------------------------------------


@given(st.lists(ARGUMENT, min_size=1, max_size=8))
@example(["printf", "%s\n", "a b", "it's", '"', "$HOME", "`id`", "x\ny", "*", "", "-n"])
@example(["\r", "a\r\nb"])
def test_remote_command_splits_back_to_the_argv(argv: list[str]) -> None:
    """Law: a POSIX shell's word splitting of the command gives back the argv."""
    assert shlex.split(remote_command(argv)) == argv


@given(st.lists(ARGUMENT, min_size=1, max_size=5))
@example(["$(touch /tmp/never)", "; rm -rf /", "a'b", "\\"])
def test_a_real_shell_runs_exactly_the_argv(args: list[str]) -> None:
    """Law: /bin/sh -c COMMAND runs the program with exactly these arguments."""
    command = remote_command(["printf", "%s\\0", *args])
    out = subprocess.run(["sh", "-c", command], capture_output=True, check=True).stdout
    assert out.decode("utf-8", "surrogateescape").split("\0")[:-1] == args


def test_remote_command_refuses_what_no_command_line_carries() -> None:
    with pytest.raises(ValueError, match="empty"):
        remote_command([])
    with pytest.raises(ValueError, match="NUL"):
        remote_command(["echo", "a\0b"])
    with pytest.raises(TypeError, match="list of arguments"):
        remote_command("squeue --me")
    with pytest.raises(TypeError, match="not a string"):
        remote_command(["sleep", 3])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("arg", "quoted"),
    [
        ("ControlPath=/tmp/x/master", "ControlPath=/tmp/x/master"),
        ("ControlPath=/my dir/master", "'ControlPath=/my dir/master'"),
        ("it's here", '"it\'s here"'),
        ("", "''"),
        ("back\\slash", "'back\\slash'"),
    ],
)
def test_rsync_shell_quote(arg: str, quoted: str) -> None:
    assert rsync_shell_quote(arg) == quoted
    assert shlex.split(quoted) == [arg]


def test_rsync_shell_quote_refuses_both_quotes() -> None:
    with pytest.raises(ValueError, match="both"):
        rsync_shell_quote("""a'b"c""")


def test_select_paths_matches_the_end_of_each_path() -> None:
    names = ["a.out", "run 1/b.out", "results/x.h5", "deep/results/y.h5", "results/sub/z.h5", "c"]
    assert select_paths(names, ["*.out"]) == ["a.out", "run 1/b.out"]
    assert select_paths(names, ["results/*.h5"]) == ["results/x.h5", "deep/results/y.h5"]
    assert select_paths(names, ["c", "/a.out/"]) == ["a.out", "c"]
    assert select_paths(names, []) == []


def test_backoff_doubles_up_to_the_cap() -> None:
    delays = backoff_delays(1.0, 2.0, 10.0)
    assert [next(delays) for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    with pytest.raises(ValueError, match="first > 0"):
        next(backoff_delays(0.0))


# --- error texts (what OpenSSH 9.2 prints) -------------------------------------------------------


@pytest.mark.parametrize(
    ("stderr", "kind", "hint"),
    [
        (
            "@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @\nHost key verification failed.\n",
            SshHostKeyError,
            "known_hosts",
        ),
        (
            "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict "
            "checking.\nHost key verification failed.\n",
            SshHostKeyError,
            "never turns host key checking off",
        ),
        (
            "ssh: Could not resolve hostname mycluster: Name or service not known\n",
            SshUnknownHostError,
            "Host mycluster",
        ),
        ("me@mycluster: Permission denied (publickey).\n", SshAuthError, "ssh mycluster true"),
        (
            "ssh: connect to host 127.0.0.1 port 2222: Connection refused\n",
            SshConnectError,
            "network",
        ),
        ("unix_listener: path too long\nControlPath too long\n", SshError, "control_dir"),
    ],
)
def test_classify_failure_names_the_host_and_the_fix(
    stderr: str, kind: type[SshError], hint: str
) -> None:
    error = classify_failure("mycluster", stderr, "starting the master connection")
    assert type(error) is kind
    assert "'mycluster'" in str(error)
    assert hint in str(error)
    assert error.host == "mycluster"
    assert error.detail == stderr.strip()


# --- the object, without a connection -------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"host": ""}, "not something ssh"),
        ({"host": "-oProxyCommand=evil"}, "not something ssh"),
        ({"host": "h", "transfer": "scp"}, "transfer"),
        ({"host": "h", "max_sessions": 0}, "positive"),
    ],
)
def test_constructor_refuses_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SshHost(**kwargs)  # type: ignore[arg-type]


def test_commands_before_connect_say_what_to_do() -> None:
    host = SshHost("mycluster")
    with pytest.raises(SshMasterGoneError, match=r"connect\(\) first"):
        host.run(["true"])
    with pytest.raises(SshError, match="connect"):
        _ = host.control_path
    host.close()
    with pytest.raises(SshError, match="closed"):
        host.connect()


# --- a fake ssh -----------------------------------------------------------------------------------
# It stands in for faults a real sshd does not produce on demand: a session refused for
# MaxSessions (it needs ten sessions held open at once), a login that stalls mid-way (a server
# that hangs after accepting), and timing many commands in flight. It also lets the argv be
# checked without a server. Everything else is tested against the real sshd in
# tests/integration/test_remote.py.

FAKE_SSH = """\
import os, sys, time
args = sys.argv[1:]
mode = os.environ.get("FAKE_SSH_MODE", "")
log = os.environ["FAKE_SSH_LOG"]
path = next(a.split("=", 1)[1] for a in args if a.startswith("ControlPath="))
def note(text):
    with open(log, "a") as f:
        f.write(text + "\\n")
if "-O" in args:
    op = args[args.index("-O") + 1]
    if not os.path.exists(path):
        sys.stderr.write("Control socket connect(%s): No such file or directory\\n" % path)
        sys.exit(255)
    if op == "exit":
        os.unlink(path)
    sys.stderr.write("Master running (pid=%d)\\n" % os.getpid())
    sys.exit(0)
if "-N" in args:
    note("master " + " ".join(args))
    if mode == "hang":
        time.sleep(30)
    open(path, "w").close()
    sys.exit(0)
note("start %f %s" % (time.monotonic(), args[-1]))
if mode == "refuse":
    sys.stderr.write("mux_client_request_session: session request failed: Session open "
                     "refused by peer\\n")
    sys.exit(255)
time.sleep(0.2 if mode == "slow" else 0)
note("end %f" % time.monotonic())
"""


@pytest.fixture
def fake_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake ssh program; returns its log (one line per master start and per command)."""
    program = tmp_path / "ssh"
    program.write_text(f"#!{sys.executable}\n{FAKE_SSH}")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "ssh.log"
    log.write_text("")
    monkeypatch.setenv("FAKE_SSH_LOG", str(log))
    return log


def _fake_host(fake_ssh: Path, **kwargs: object) -> SshHost:
    program = str(fake_ssh.parent / "ssh")
    # Short: pytest's folders can pass the 100 bytes a control socket path may have.
    kwargs.setdefault("control_dir", "/tmp")
    return SshHost("my cluster", ssh=program, **kwargs)  # type: ignore[arg-type]


def test_the_argv_the_master_and_the_commands_get(fake_ssh: Path) -> None:
    options = ["-o", "User=me", "-o", "ControlMaster=auto"]
    with _fake_host(fake_ssh, config_file="/my dir/cfg", ssh_options=options, persist=90) as host:
        master = host.master_argv()
        command = host.command_argv(["echo", "a b"])
        control = host.control_path
        folder = os.path.dirname(control)
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
        assert len(control.encode()) < 100
        rsync_e = shlex.split(host.rsync_shell())
        assert rsync_e == host.client_options()
    # The master: the only login; ours first (first value wins), ending -N -f -- host.
    assert master[1:3] == ["-F", "/my dir/cfg"]
    assert master[-4:] == ["-N", "-f", "--", "my cluster"]
    for setting in ("ControlMaster=yes", f"ControlPath={control}", "ControlPersist=90"):
        assert setting in master
    assert "BatchMode=yes" not in master  # the first login may prompt
    assert master.index("ControlMaster=yes") < master.index("ControlMaster=auto")
    # A command: never logs in by itself, whatever ssh_options say.
    assert command[-3:] == ["--", "my cluster", "echo 'a b'"]
    for setting in ("ControlMaster=no", "BatchMode=yes", "ProxyCommand=false"):
        assert command.index(setting) < command.index("ControlMaster=auto")
    assert "-T" in command
    assert "StrictHostKeyChecking=no" not in master + command
    assert not os.path.exists(folder)


def test_a_non_interactive_login_never_prompts(fake_ssh: Path) -> None:
    with _fake_host(fake_ssh, interactive=False) as host:
        assert "BatchMode=yes" in host.master_argv()


def test_a_refused_session_is_an_error_not_an_exit_code(
    fake_ssh: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _fake_host(fake_ssh) as host:
        monkeypatch.setenv("FAKE_SSH_MODE", "refuse")
        with pytest.raises(SshConnectError, match="MaxSessions"):
            host.run(["squeue"])


def test_a_stalled_login_ends_after_login_timeout(
    fake_ssh: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SSH_MODE", "hang")
    host = _fake_host(fake_ssh, login_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(SshConnectError, match=r"no login to 'my cluster' within 0\.5 s"):
        host.connect()
    assert time.monotonic() - started < 5
    host.close()


def test_at_most_max_sessions_commands_in_flight(
    fake_ssh: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _fake_host(fake_ssh, max_sessions=2) as host:
        monkeypatch.setenv("FAKE_SSH_MODE", "slow")
        threads = [threading.Thread(target=host.run, args=(["true"],)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    events = []
    for line in fake_ssh.read_text().splitlines():
        kind, *rest = line.split()
        if kind in ("start", "end"):
            events.append((float(rest[0]), 1 if kind == "start" else -1))
    in_flight, peak = 0, 0
    for _, step in sorted(events):
        in_flight += step
        peak = max(peak, in_flight)
    assert len(events) == 12
    assert peak <= 2


def test_reconnect_is_not_needed_while_the_master_runs(fake_ssh: Path) -> None:
    with _fake_host(fake_ssh) as host:
        host.reconnect(timeout=0)
        host.reconnect(timeout=0)
    starts = [s for s in fake_ssh.read_text().splitlines() if s.startswith("master ")]
    assert len(starts) == 1


# --- the real ssh client against a closed port (no server needed) --------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(shutil.which("ssh") is None, reason="no ssh client on PATH")
def test_reconnect_gives_up_after_its_time_naming_the_host_and_the_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    host = SshHost(
        "127.0.0.1",
        config_file=os.devnull,
        ssh_options=["-o", f"Port={_closed_port()}"],
        interactive=False,
        control_dir="/tmp",
    )
    with pytest.raises(SshConnectError, match="Connection refused"):
        host.connect()
    caplog.set_level(logging.WARNING, logger="runner_grid._remote")
    started = time.monotonic()
    with pytest.raises(SshConnectError) as info:
        host.reconnect(timeout=1.5)
    elapsed = time.monotonic() - started
    host.close()
    assert 1.5 <= elapsed < 6, elapsed
    assert "gave up reconnecting to '127.0.0.1' after 1.5 s" in str(info.value)
    assert "Connection refused" in str(info.value)
    retries = [r for r in caplog.records if "next try in" in r.getMessage()]
    assert len(retries) >= 1
