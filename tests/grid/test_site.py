"""A remote GridRunner's parts without a server: paths, what is fetched, the link's faults.

`FakeHost` stands in for `runner_grid.SshHost` where a real sshd cannot give the fault on
demand at the exact moment (a reconnection that fails for good, a copy cut once); the whole
remote run is tested against a real OpenSSH server in tests/integration/test_remote_runs.py.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from typing import Any, Optional

import pytest

from runner_grid import GridRunner, SshHost
from runner_grid._arrays import write_array_files
from runner_grid._commands import LinkError, SchedulerCommandError
from runner_grid._ending import JobsInQueue, Waiter
from runner_grid._journaled import recorded_arguments
from runner_grid._remote import SshConnectError, SshMasterGoneError, SshTransferError
from runner_grid._site import (
    _UNPACK_FAILED,
    FETCH_ALL,
    RemoteSite,
    fetch_policy,
    own_files,
    remote_site,
    submission_paths,
)
from runner_grid._submitter import submit_job
from runner_grid._wrapper import write_wrapper
from runner_grid.schemes._base import Listing, Scheduler
from runner_grid.schemes._common import current_user


class FakeHost:
    """Stands in for SshHost: records commands and copies, fails as told."""

    def __init__(self, home: str = "/home/me") -> None:
        self.host = "cluster"
        self.options = SshHost("cluster").options
        self.home = home
        self.commands: list[list[str]] = []
        self.puts: list[tuple[list[str], str, bool]] = []
        self.gets: list[tuple[str, str, list[str]]] = []
        self.fail_next: list[BaseException] = []
        self.reconnects = 0
        self.reconnect_fails = False
        self.alive = True
        self.inputs: list[Optional[str]] = []
        self.status = 0

    def connect(self) -> None:
        pass

    def close(self) -> None:
        pass

    def check(self) -> bool:
        return self.alive

    def reconnect(self) -> None:
        self.reconnects += 1
        if self.reconnect_fails:
            raise SshConnectError(self.host, "gave up reconnecting")
        self.alive = True

    def _maybe_fail(self) -> None:
        if self.fail_next:
            self.alive = False
            raise self.fail_next.pop(0)

    def run(
        self, argv: Any, timeout: Optional[float] = None, input: Optional[str] = None
    ) -> subprocess.CompletedProcess[str]:
        self.commands.append(list(argv))
        self.inputs.append(input)
        self._maybe_fail()
        out = f"{self.home}\nme\n" if argv[:2] == ["sh", "-c"] and "HOME" in argv[2] else ""
        return subprocess.CompletedProcess(list(argv), self.status, out, "")

    def put(self, paths: Any, remote_dir: str, make_dir: bool = True) -> None:
        self._maybe_fail()
        self.puts.append((list(paths), remote_dir, make_dir))

    def get(self, remote_dir: str, local_dir: str, names: Any = None) -> None:
        self._maybe_fail()
        self.gets.append((remote_dir, local_dir, list(names)))


def _site(root: Optional[str] = None, fetch: Any = FETCH_ALL) -> tuple[RemoteSite, FakeHost]:
    host = FakeHost()
    site = RemoteSite(host, root, fetch_policy(fetch))  # type: ignore[arg-type]
    site.connect()
    return site, host


# --- what is fetched ---------------------------------------------------------------


def test_fetch_policy_takes_all_globs_or_nothing_and_names_a_bad_value() -> None:
    assert fetch_policy("all") == FETCH_ALL
    assert fetch_policy(None) == ()
    assert fetch_policy([]) == ()
    assert fetch_policy(["*.log", "out/*.h5"]) == ("*.log", "out/*.h5")
    with pytest.raises(ValueError, match="'everything'"):
        fetch_policy("everything")
    with pytest.raises(TypeError, match="non-empty string"):
        fetch_policy(["*.log", ""])


def test_own_files_follow_the_exit_code_files_stem() -> None:
    assert own_files("/r/job/opt.exitcode") == [
        "opt.exitcode",
        "opt.times",
        "opt.out",
        "opt.err",
    ]


# --- paths -------------------------------------------------------------------------


def test_a_run_folder_goes_under_the_remote_home_by_its_name(tmp_path: Any) -> None:
    site, _host = _site()
    run = tmp_path / "my run"
    assert site.job_folder(str(run / "opt 1")) == "/home/me/my run/opt 1"
    assert site.remote_path(str(run / ".arrays" / "x" / "1.grid")) == (
        "/home/me/my run/.arrays/x/1.grid"
    )
    assert site.remote_path(str(run)) == "/home/me/my run"


@pytest.mark.parametrize(
    ("root", "there"), [("scratch/c 1", "/home/me/scratch/c 1"), ("/work/c", "/work/c")]
)
def test_remote_root_names_the_runs_folder_there(tmp_path: Any, root: str, there: str) -> None:
    site, _host = _site(root)
    assert site.job_folder(str(tmp_path / "run" / "j")) == f"{there}/j"


def test_a_path_outside_every_run_folder_has_no_remote_path(tmp_path: Any) -> None:
    site, _host = _site()
    site.job_folder(str(tmp_path / "run" / "j"))
    with pytest.raises(ValueError, match="in no run folder"):
        site.remote_path(str(tmp_path / "elsewhere" / "file"))


def test_submission_paths_are_the_remote_ones(tmp_path: Any) -> None:
    site, _host = _site()
    job = tmp_path / "run" / "j"
    local = (str(job / "j.grid"), str(job), str(job / "j.out"), str(job / "j.err"))
    assert submission_paths(None, *local) == local
    assert submission_paths(site, *local) == (
        "/home/me/run/j/j.grid",
        "/home/me/run/j",
        "/home/me/run/j/j.out",
        "/home/me/run/j/j.err",
    )
    assert submission_paths(site, local[0], local[1], None, local[3])[2] is None


def test_the_wrapper_of_a_remote_job_names_the_remote_paths(tmp_path: Any) -> None:
    job = tmp_path / "j"
    job.mkdir()
    (job / "j.run").write_text("#!/bin/sh\n#SBATCH -t 5\necho hi\n")
    wrapped = write_wrapper(str(job), "j.run", remote_dir="/home/me/run x/j")
    with open(wrapped.path, encoding="utf-8") as handle:
        text = handle.read()
    assert "cd '/home/me/run x/j' || exit 1" in text
    assert "'/home/me/run x/j/j.run'" in text
    assert "'/home/me/run x/j/j.exitcode'" in text
    assert str(tmp_path) not in text
    assert wrapped.exit_file == str(job / "j.exitcode")  # read here, once fetched
    assert wrapped.directives == ("#SBATCH -t 5",)


def test_an_array_of_remote_jobs_links_to_the_remote_files(tmp_path: Any) -> None:
    site, _host = _site()
    jobs = [tmp_path / "run" / f"j{i}" for i in (1, 2)]
    for job in jobs:
        job.mkdir(parents=True)
    site.job_folder(str(jobs[0]))
    files = write_array_files(
        str(tmp_path / "run" / ".arrays" / "a"),
        "a.array",
        index="$SLURM_ARRAY_TASK_ID",
        tasks=[(str(j / "w.grid"), str(j / "o.out"), str(j / "e.err")) for j in jobs],
        directives=(),
        output_index="%a",
        where=site.remote_path,
    )
    folder = tmp_path / "run" / ".arrays" / "a"
    assert os.readlink(folder / "2.grid") == "/home/me/run/j2/w.grid"
    assert os.readlink(folder / "1.err") == "/home/me/run/j1/e.err"
    assert (jobs[0] / "o.out").exists()  # made here, copied up with the job's folder
    assert files.script == "/home/me/run/.arrays/a/a.array"
    assert files.err == "/home/me/run/.arrays/a/%a.err"
    assert "runner_grid_dir=/home/me/run/.arrays/a\n" in (folder / "a.array").read_text()


def test_commands_that_name_the_local_user_name_the_login_user_there() -> None:
    site, host = _site()
    local = current_user()
    if local == "me":
        pytest.skip("the local user is called like the fake host's")
    site.run(["squeue", "--noheader", f"--user={local}"])
    site.run(["qstat", "-u", local])
    site.run(["sacctmgr", "show", "assoc", f"user={local}", "format=User"])
    site.run(["qsub", "-N", local, f"--comment={local}"])  # a name, not a user: kept
    assert host.commands[-4:] == [
        ["squeue", "--noheader", "--user=me"],
        ["qstat", "-u", "me"],
        ["sacctmgr", "show", "assoc", "user=me", "format=User"],
        ["qsub", "-N", local, f"--comment={local}"],
    ]


# --- copies ----------------------------------------------------------------------


def test_a_remote_folder_is_made_once_then_known(tmp_path: Any) -> None:
    site, host = _site()
    for name in ("a", "b"):
        site.job_folder(str(tmp_path / "run" / name))
        site.put([str(tmp_path / "run" / name)])
    assert [(remote, made) for _paths, remote, made in host.puts] == [
        ("/home/me/run", True),
        ("/home/me/run", False),
    ]


@pytest.mark.parametrize(
    ("fetch", "own_only", "names"),
    [
        (FETCH_ALL, False, ["a", "b"]),
        (
            FETCH_ALL,
            True,
            [f"{j}/{j}.{e}" for j in "ab" for e in ("exitcode", "times", "out", "err")],
        ),
        (None, False, [f"{j}/{j}.{e}" for j in "ab" for e in ("exitcode", "times", "out", "err")]),
    ],
)
def test_ended_jobs_come_back_in_one_copy(
    tmp_path: Any, fetch: Any, own_only: bool, names: list[str]
) -> None:
    site, host = _site(fetch=fetch)
    run = tmp_path / "run"
    site.job_folder(str(run / "a"))
    site.fetch_ended(
        [str(run / "a" / "a.exitcode"), str(run / "b" / "b.exitcode")], own_only=own_only
    )
    assert host.gets == [("/home/me/run", str(run), names)]


def test_a_staged_folder_goes_up_with_the_next_command_that_gets_through(tmp_path: Any) -> None:
    site, host = _site()
    job = tmp_path / "run" / "j 1"
    job.mkdir(parents=True)
    (job / "j 1.run").write_text("echo hi\n")
    site.job_folder(str(job))
    site.stage(str(job))
    host.status = _UNPACK_FAILED  # no room there: the command did not run, the folder stays
    assert site.run(["sbatch", "x"]).returncode == _UNPACK_FAILED
    host.status = 0
    proc = site.run(["sbatch", "x"])
    assert proc.args == ["sbatch", "x"]  # what the caller ran, for its messages
    assert host.commands[-1][:2] == ["sh", "-c"]
    assert host.commands[-1][3:] == ["sh", "/home/me/run", "sbatch", "x"]
    payload = host.inputs[-1]
    assert payload is not None
    with tarfile.open(fileobj=io.BytesIO(payload.encode("utf-8", "surrogateescape"))) as tar:
        assert sorted(tar.getnames()) == ["j 1", "j 1/j 1.run"]
    site.run(["squeue"])  # sent: the next command goes alone
    assert host.commands[-1] == ["squeue"]
    assert host.inputs[-1] is None
    site.stage(str(job))
    site.unstage()
    site.run(["squeue"])
    assert host.commands[-1] == ["squeue"]


def test_a_copy_cut_by_the_link_is_made_again_once_mended(tmp_path: Any) -> None:
    site, host = _site()
    site.job_folder(str(tmp_path / "run" / "a"))
    host.fail_next = [SshMasterGoneError("cluster", "gone")]
    site.put([str(tmp_path / "run" / "a")])
    assert host.reconnects == 1
    assert len(host.puts) == 1


def test_a_copy_that_fails_with_the_link_up_is_not_a_link_error(tmp_path: Any) -> None:
    site, host = _site()
    site.job_folder(str(tmp_path / "run" / "a"))
    host.fail_next = [SshTransferError("cluster", "no room")]
    host.alive = True

    def fail_keeping_the_link() -> None:
        raise SshTransferError("cluster", "no room left on device")

    host._maybe_fail = fail_keeping_the_link  # type: ignore[method-assign]
    with pytest.raises(SchedulerCommandError, match="no room") as caught:
        site.put([str(tmp_path / "run" / "a")])
    assert not isinstance(caught.value, LinkError)
    assert host.reconnects == 0


# --- commands and the link ---------------------------------------------------------


def test_a_command_the_link_cut_is_a_link_error_after_mending() -> None:
    site, host = _site()
    host.fail_next = [SshMasterGoneError("cluster", "gone")]
    with pytest.raises(LinkError, match="failed on the way"):
        site.run(["squeue"])
    assert host.reconnects == 1
    assert site.run(["squeue"]).returncode == 0
    assert not site.lost


def test_a_link_down_for_good_is_given_up_once_and_says_how_to_resume() -> None:
    site, host = _site()
    said: list[str] = []
    site.on_link_lost = said.append
    host.reconnect_fails = True
    for _ in range(3):
        host.fail_next = [SshMasterGoneError("cluster", "gone")]
        with pytest.raises(LinkError):
            site.run(["squeue"])
    assert site.lost
    assert len(said) == 1
    assert "runner resume" in said[0]
    assert "'cluster'" in said[0]
    ran = len(host.commands)
    with pytest.raises(LinkError, match="not run"):
        site.run(["squeue"])
    assert len(host.commands) == ran  # nothing more is tried


class _Once(Scheduler):
    """A scheduler whose first submission's reply the link loses, the job queued all the same."""

    name = "once"
    submit_command = "qsub"
    tag_flag = "-N "

    def __init__(self) -> None:
        self.submits = 0
        self.queued: dict[str, str] = {}

    def run(self, argv: Any, *, timeout: Optional[float] = None) -> Any:
        if argv[0] == "qsub":
            self.submits += 1
            tag = argv[argv.index("-N") + 1]
            self.queued[tag] = str(self.submits)
            if self.submits == 1:
                raise LinkError("qsub failed on the way: the master is gone")
            return subprocess.CompletedProcess(argv, 0, f"{self.submits}\n", "")
        return subprocess.CompletedProcess(argv, 0, "", "")

    def parse_id(self, stdout: str) -> Optional[str]:
        return stdout.strip() or None

    def find_tag_argvs(self, tag: str) -> list[list[str]]:
        return [["qfind", tag]]

    def parse_tag(self, tag: str, returncode: int, stdout: str, stderr: str) -> Optional[str]:
        return self.queued.get(tag)


def test_a_submission_whose_reply_the_link_lost_is_found_by_its_tag() -> None:
    scheduler = _Once()
    assert scheduler.can_find_tags
    outcome = submit_job(scheduler, ["qsub", "-N", "t-1", "job.grid"], "t-1", lambda s: False)
    assert outcome.jobid == "1"
    assert scheduler.submits == 1  # not sent again


# --- GridRunner's arguments and the journal ----------------------------------------


def test_remote_arguments_without_a_host_are_refused() -> None:
    with pytest.raises(ValueError, match="give host= too"):
        remote_site(None, "scratch", None, "all", print)
    with pytest.raises(ValueError, match="config_file= to your SshHost"):
        remote_site(SshHost("cluster"), None, "cfg", "all", print)
    with pytest.raises(TypeError, match="host must be"):
        remote_site(42, None, None, "all", print)  # type: ignore[arg-type]
    assert remote_site(None, None, None, "all", print) is None


def test_the_journal_rebuilds_a_remote_runner_with_its_host() -> None:
    info = {
        "kind": "grid",
        "scheme": "slurm",
        "parallel": True,
        "maxjobs": 0,
        "sleepstep": 2.0,
        "submit_workers": 4,
        "host": "me@cluster",
        "ssh_config": "/home/me/.ssh/cfg",
        "remote_root": "scratch/x",
        "fetch": ["*.log"],
    }
    assert recorded_arguments(GridRunner.config, info) == {
        "grid": "slurm",
        "sleepstep": 2.0,
        "parallel": True,
        "maxjobs": 0,
        "submit_workers": 4,
        "host": "me@cluster",
        "ssh_config": "/home/me/.ssh/cfg",
        "remote_root": "scratch/x",
        "fetch": ["*.log"],
    }
    local = {
        k: v for k, v in info.items() if k not in ("host", "ssh_config", "remote_root", "fetch")
    }
    assert "host" not in recorded_arguments(GridRunner.config, local)


# --- the jobs that left in one check come back in one copy -------------------------


class _Gone(Scheduler):
    """Lists nothing: every job has left the queue at the first check."""

    name = "gone"

    def check_argvs(self, ids: Any) -> list[list[str]]:
        return [["qstat"]]

    def run(self, argv: Any, *, timeout: Optional[float] = None) -> Any:
        return subprocess.CompletedProcess(argv, 0, "", "")

    def parse_listing(self, stdout: str) -> Listing:
        return Listing([], [])


def test_jobs_that_left_in_one_check_are_fetched_together_until_the_copy_works(
    tmp_path: Any,
) -> None:
    scheduler = _Gone()
    queue = JobsInQueue(lambda: scheduler, 0.05, "gone")
    fetched: list[list[str]] = []

    def fetch(files: Any) -> bool:
        fetched.append(sorted(files))
        if len(fetched) == 1:
            return False  # the link dropped: the copy is made again later
        for f in files:  # what the copy brings: each job's exit code
            with open(f, "w") as handle:
                handle.write("3\n")
        return True

    queue.fetch = fetch
    waiters = []
    for i in range(5):
        folder = tmp_path / f"j{i}"
        folder.mkdir()
        waiter = Waiter()
        waiters.append(waiter)
        queue.add(str(i), None, str(folder / f"j{i}.exitcode"), waiter)
    ends = [w.wait() for w in waiters]
    assert [e.code for e in ends] == [3] * 5  # none ended before its files were here
    assert len(fetched) == 2, fetched  # one copy for all five, made again once
    assert fetched[0] == fetched[1]
    assert len(fetched[0]) == 5
