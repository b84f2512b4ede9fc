"""SshHost against the real private sshd of tools/sshd.sh: one login, quoting, files, faults."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from typing import TYPE_CHECKING

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from runner_grid._remote import (
    SshConnectError,
    SshHost,
    SshHostKeyError,
    SshMasterGoneError,
    SshUnknownHostError,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from integration.conftest import TestSshd

pytestmark = pytest.mark.integration

#: Printable text and the characters a shell treats specially; no NUL (no argv can carry it) and
#: no lone surrogates (not UTF-8).
ARGUMENT = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"), max_size=40
)


def _log_size(sshd: TestSshd) -> int:
    return sshd.log.stat().st_size


def _log_since(sshd: TestSshd, offset: int) -> str:
    with open(sshd.log, encoding="utf-8", errors="replace") as f:
        f.seek(offset)
        return f.read()


def _logins(text: str) -> int:
    return text.count("Accepted publickey for")


def _established(sshd: TestSshd) -> list[str]:
    """The client ends of TCP connections to the test sshd."""
    proc = subprocess.run(
        ["ss", "-Htn", "state", "established", f"( dport = :{sshd.port} )"],
        capture_output=True,
        text=True,
        check=True,
    )
    return [s for s in proc.stdout.splitlines() if s.strip()]


def _wait_until(predicate: object, timeout: float = 10.0) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        return f.read().rsplit(")", 1)[-1].split()[0] == "Z"


def _host(sshd: TestSshd, **kwargs: object) -> SshHost:
    kwargs.setdefault("interactive", False)
    kwargs.setdefault("control_dir", "/tmp")
    return SshHost(sshd.alias, config_file=sshd.config, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def shared(test_sshd: TestSshd) -> Iterator[SshHost]:
    """One master for the module's tests that leave the connection alone."""
    with _host(test_sshd) as host:
        yield host


def test_many_commands_share_one_login_and_one_connection(test_sshd: TestSshd) -> None:
    offset = _log_size(test_sshd)
    with _host(test_sshd) as host:
        outputs = [host.run(["echo", str(i)]).stdout for i in range(50)]
        connections = _established(test_sshd)
        pid = host.master_pid
    assert outputs == [f"{i}\n" for i in range(50)]
    text = _log_since(test_sshd, offset)
    assert _logins(text) == 1, text
    assert text.count("Starting session:") == 50, text
    assert len(connections) == 1, connections
    assert pid is not None
    assert host.logins == 1


def test_commands_run_concurrently_over_one_master(test_sshd: TestSshd) -> None:
    offset = _log_size(test_sshd)
    results: list[str] = []
    with _host(test_sshd) as host:

        def work(i: int) -> None:
            results.append(host.run(["sh", "-c", 'sleep 0.2; echo "$1"', "sh", str(i)]).stdout)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(results) == sorted(f"{i}\n" for i in range(20))
    assert _logins(_log_since(test_sshd, offset)) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["a b", "it's", '"double"', "$HOME", "`id`", "$(id)", "x\ny", "*", "?", "", "-n", "é ü"],
        ["back\\slash", "tab\there", "semi;colon", "a|b", "a&&b", "~", "!x", "#hash", "{a,b}"],
    ],
)
def test_arguments_reach_the_remote_program_unchanged(shared: SshHost, args: list[str]) -> None:
    proc = shared.run(["printf", "%s\\n", *args])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "".join(a + "\n" for a in args)


@settings(max_examples=50)
@given(st.lists(ARGUMENT, min_size=1, max_size=6))
@example(["'", '"', "\\", "\n", " ", "$"])
@example(["\r", "a\r\nb"])  # text-mode pipes once turned "\r" into "\n"
def test_quoting_round_trip(shared: SshHost, args: list[str]) -> None:
    """Law: whatever argv goes in, the remote program sees exactly that argv."""
    proc = shared.run(["printf", "%s\\0", *args])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\0")[:-1] == args


def test_exit_code_stdin_and_stderr_are_the_remote_commands(shared: SshHost) -> None:
    proc = shared.run(["sh", "-c", "cat; echo oops >&2; exit 7"], input="in put\n")
    assert (proc.returncode, proc.stdout, proc.stderr) == (7, "in put\n", "oops\n")
    # 255 from the command itself, with the master alive, is the command's and not a fault.
    assert shared.run(["sh", "-c", "exit 255"]).returncode == 255


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("transfer", ["rsync", "tar"])
def test_put_and_get_a_folder_with_spaces(
    test_sshd: TestSshd, tmp_path: Path, transfer: str
) -> None:
    source = tmp_path / "job folder"
    (source / "sub dir").mkdir(parents=True)
    files = {
        "a file.out": "out\n",
        "it's.err": "err\n",
        "sub dir/x $y.txt": "x\n",
        "sub dir/data.h5": "h5\n",
    }
    files.update({f"many/{i:03d}.in": f"{i}\n" for i in range(100)})
    for name, text in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    remote = f"runner tests/{transfer} 'root'"
    offset = _log_size(test_sshd)
    with _host(test_sshd, transfer=transfer) as host:
        host.run(["rm", "-rf", "--", "runner tests"])
        host.put([source], remote)
        listed = host.list_files(f"{remote}/job folder")
        back = tmp_path / "back here"
        host.get(f"{remote}/job folder", back)
        some = tmp_path / "some"
        host.get(f"{remote}/job folder", some, ["*.out", "sub dir/*.h5"])
        none = tmp_path / "none"
        host.get(f"{remote}/job folder", none, [])
        host.run(["rm", "-rf", "--", "runner tests"])
    assert sorted(listed) == sorted(files)
    assert _tree(back) == files
    assert _tree(some) == {"a file.out": "out\n", "sub dir/data.h5": "h5\n"}
    assert not none.exists()
    text = _log_since(test_sshd, offset)
    assert _logins(text) == 1, text
    # 104 files went up and came back, yet only a handful of sessions ran: rm, mkdir, the put,
    # a listing, the get, a listing and the selective get, rm (and rsync's probe for rsync).
    assert text.count("Starting session:") <= 9, text


def test_the_master_killed_mid_command_then_reconnect(test_sshd: TestSshd) -> None:
    offset = _log_size(test_sshd)
    with _host(test_sshd) as host:
        assert host.run(["true"]).returncode == 0
        old = host.master_pid
        assert old is not None
        caught: list[BaseException] = []

        def long_command() -> None:
            try:
                host.run(["sleep", "5"])
            except BaseException as exc:
                caught.append(exc)

        t = threading.Thread(target=long_command)
        t.start()
        time.sleep(0.5)
        os.kill(old, signal.SIGKILL)
        t.join(10)
        assert len(caught) == 1
        assert isinstance(caught[0], SshMasterGoneError)
        assert "runner-test" in str(caught[0])
        assert "reconnect" in str(caught[0])
        assert not host.check()
        with pytest.raises(SshMasterGoneError):
            host.run(["true"])
        host.reconnect(timeout=10)
        assert host.check()
        assert host.master_pid not in (None, old)
        assert host.run(["echo", "back"]).stdout == "back\n"
        assert host.logins == 2
    assert _logins(_log_since(test_sshd, offset)) == 2


def test_sshd_down_gives_a_clear_error_after_the_bounded_time(test_sshd: TestSshd) -> None:
    host = _host(test_sshd, connect_timeout=2)
    try:
        host.connect()
        stopped = test_sshd.script("stop")
        assert stopped.returncode == 0, stopped.stderr
        with pytest.raises(SshMasterGoneError, match="runner-test"):
            host.run(["true"])
        started = time.monotonic()
        with pytest.raises(SshConnectError) as info:
            host.reconnect(timeout=3)
        elapsed = time.monotonic() - started
        assert 3 <= elapsed < 8, elapsed
        assert "runner-test" in str(info.value)
        assert "Connection refused" in str(info.value)
        assert "gave up" in str(info.value)
    finally:
        restarted = test_sshd.script("start")
        assert restarted.returncode == 0, restarted.stderr
    # The link is back: the same object logs in again.
    try:
        host.reconnect(timeout=10)
        assert host.run(["echo", "up"]).stdout == "up\n"
    finally:
        host.close()


def test_a_changed_host_key_is_refused(test_sshd: TestSshd, tmp_path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")],
        check=True,
        capture_output=True,
    )
    key = (tmp_path / "other.pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{test_sshd.port} {' '.join(key)}\n")
    host = _host(test_sshd, ssh_options=["-o", f"UserKnownHostsFile={known}"])
    with pytest.raises(SshHostKeyError) as info:
        host.connect()
    message = str(info.value)
    assert "runner-test" in message
    assert "known_hosts" in message
    assert "HAS CHANGED" in info.value.detail
    assert not host.check()
    host.close()


def test_an_unknown_host_key_is_refused_too(test_sshd: TestSshd, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    host = _host(test_sshd, ssh_options=["-o", f"UserKnownHostsFile={empty}"])
    with pytest.raises(SshHostKeyError, match="runner-test"):
        host.connect()
    host.close()


def test_a_missing_alias_names_the_host_and_the_fix(test_sshd: TestSshd) -> None:
    host = SshHost("runner-no-such-alias", config_file=test_sshd.config, interactive=False)
    with pytest.raises(SshUnknownHostError) as info:
        host.connect()
    assert "runner-no-such-alias" in str(info.value)
    assert "Host runner-no-such-alias" in str(info.value)
    host.close()


def test_close_leaves_no_process_no_socket_no_connection(test_sshd: TestSshd) -> None:
    host = _host(test_sshd)
    host.connect()
    host.run(["true"])
    pid = host.master_pid
    folder = os.path.dirname(host.control_path)
    assert pid is not None
    assert os.path.exists(host.control_path)
    assert oct(os.stat(folder).st_mode & 0o777) == oct(0o700)
    host.close()
    assert _gone(pid)
    assert not os.path.exists(folder)
    assert _wait_until(lambda: not _established(test_sshd), 5), _established(test_sshd)
    host.close()  # again: nothing to do
    with pytest.raises(Exception, match="closed"):
        host.run(["true"])
