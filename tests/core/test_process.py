"""The local call: exit codes, files, odd names, start errors, killing whole process trees."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from core.runner_helpers import TIMEOUT, wait_until
from runner_core import JobManager, JobRunner, JobStatus, SingleJob, config
from runner_core._process import find_session_leaders, kill_groups

if TYPE_CHECKING:
    from runner_settings import Settings

ODD_NAME = 'we\'ird "name" $HOME é ü 漢'

# a runscript that leaves a background grandchild and records both pids
TREE = "sleep 300 &\necho $! > gc.pid\necho $$ > sh.pid\nwait\n"


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def pids_in(folder: Path) -> list[int]:
    return [int(p.read_text()) for p in sorted(folder.rglob("*.pid")) if p.read_text().strip()]


def assert_all_gone(pids: list[int]) -> None:
    assert pids
    wait_until(lambda: not any(alive(p) for p in pids), f"processes {pids} have ended")


def test_exit_code_out_err_and_cwd(manager: JobManager) -> None:
    job = SingleJob("basic", "pwd > here\necho to-out\necho to-err >&2\nexit 5")
    results = job.run(JobRunner(), manager)
    assert results.status is JobStatus.CRASHED
    assert results.exit_code == 5
    assert job.path is not None
    assert (job.path / "here").read_text().strip() == str(job.path)
    assert job.out_path is not None
    assert job.err_path is not None
    assert job.out_path.read_text() == "to-out\n"
    assert job.err_path.read_text() == "to-err\n"


def test_call_works_outside_a_job(tmp_path: Path) -> None:
    script = tmp_path / "s.run"
    script.write_text("#!/bin/sh\necho hi\nexit 2\n")
    script.chmod(0o755)
    code = JobRunner().call("s.run", str(tmp_path), str(tmp_path / "o"), str(tmp_path / "e"), {})  # type: ignore[arg-type]
    assert code == 2
    assert (tmp_path / "o").read_text() == "hi\n"


def test_stdout_redirect_gives_call_no_out_file(manager: JobManager) -> None:
    seen: list[str | None] = []

    class Spy(JobRunner):
        def call(
            self, runscript: str, workdir: str, out: str | None, err: str, runflags: Settings
        ) -> int:
            seen.append(out)
            return super().call(runscript, workdir, out, err, runflags)

    job = SingleJob("redir", "echo live", settings={"runscript": {"stdout_redirect": True}})
    assert job.run(Spy(), manager).ok
    assert seen == [None]
    assert job.out_path is not None
    assert job.out_path.read_text() == "live\n"


@pytest.mark.parametrize("parallel", [False, True])
def test_odd_names_and_folders_work(tmp_path: Path, parallel: bool) -> None:
    manager = JobManager(tmp_path / "my work 'dir' \"é\"")
    runner = JobRunner(parallel=parallel)
    jobs = [SingleJob(ODD_NAME, 'echo "$0"; pwd') for _ in range(2)]
    for job in jobs:
        job.run(runner, manager)
    runner.wait(TIMEOUT)
    assert [j.results.status for j in jobs] == [JobStatus.SUCCESSFUL] * 2
    assert jobs[1].path is not None
    assert jobs[1].path.name == ODD_NAME + ".002"
    assert jobs[1].out_path is not None
    lines = jobs[1].out_path.read_text().splitlines()
    assert lines == [str(jobs[1].path / (ODD_NAME + ".run")), str(jobs[1].path)]


def test_jobs_of_one_name_are_numbered_in_the_order_they_were_run(tmp_path: Path) -> None:
    # Job threads register in whatever order the OS runs them; the numbers must not.
    manager = JobManager(tmp_path / "w")
    runner = JobRunner(parallel=True, maxjobs=8)
    jobs = [SingleJob("same", "true") for _ in range(30)]
    for job in jobs:
        job.run(runner, manager)
    runner.wait(TIMEOUT)
    names = [job.path.name if job.path else None for job in jobs]
    assert names == ["same"] + [f"same.{i:03d}" for i in range(2, 31)]


class Sabotage(JobRunner):
    """Breaks the written runscript (or its folder) in one way before running it."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how

    def call(
        self, runscript: str, workdir: str, out: str | None, err: str, runflags: Settings
    ) -> int:
        path = Path(workdir, runscript)
        if self.how == "missing":
            path.unlink()
        elif self.how == "not executable":
            path.chmod(0o644)
        elif self.how == "bad interpreter":
            path.write_text("#!/no/such/shell\nexit 0\n")
        elif self.how == "no interpreter line":
            path.write_bytes(b"\x7fELF garbage\n")
        elif self.how == "missing folder":
            return super().call(runscript, workdir + "-gone", None, err, runflags)
        return super().call(runscript, workdir, out, err, runflags)


@pytest.mark.parametrize(
    ("how", "code", "words"),
    [
        ("missing", 127, "does not exist"),
        ("not executable", 126, "is not executable"),
        ("bad interpreter", 126, "bad interpreter line '#!/no/such/shell'"),
        ("no interpreter line", 126, "no valid interpreter line"),
        ("missing folder", 127, "working folder"),
    ],
)
def test_a_runscript_that_cannot_start_fails_the_job_with_a_plain_message(
    manager: JobManager, how: str, code: int, words: str
) -> None:
    job = SingleJob("broken", "exit 0")
    results = job.run(Sabotage(how), manager)
    assert results.status is JobStatus.FAILED
    assert results.exit_code == code
    assert results.error is not None
    assert words in results.error
    assert str(job.path) in results.error
    assert "Traceback" not in results.error


def test_cancelling_a_running_job_kills_its_grandchildren(manager: JobManager) -> None:
    runner = JobRunner(parallel=True)
    job = SingleJob("tree", TREE)
    job.run(runner, manager)
    wait_until(
        lambda: job.path is not None and len(pids_in(job.path)) == 2, "the job wrote its pids"
    )
    assert job.path is not None
    pids = pids_in(job.path)
    assert all(alive(p) for p in pids)
    job.cancel()
    job.results.wait(TIMEOUT)
    assert job.results.status is JobStatus.CANCELLED
    assert job.results.exit_code == -signal.SIGTERM
    assert_all_gone(pids)


def test_shutdown_kills_every_job_tree_even_one_that_ignores_sigterm(
    manager: JobManager,
) -> None:
    config.kill_grace = 0.2
    runner = JobRunner(parallel=True)
    jobs = [SingleJob(f"tree{i}", TREE) for i in range(3)]
    jobs.append(SingleJob("stubborn", "trap '' TERM\n" + TREE))
    for job in jobs:
        job.run(runner, manager)
    wait_until(lambda: len(pids_in(manager.path)) == 8, "every job wrote its pids")
    pids = pids_in(manager.path)
    runner.shutdown(cancel=True, timeout=TIMEOUT)
    assert [j.results.status for j in jobs] == [JobStatus.CANCELLED] * 4
    assert jobs[-1].results.exit_code == -signal.SIGKILL
    assert_all_gone(pids)


def test_kill_groups_of_finished_processes_is_harmless() -> None:
    proc = subprocess.Popen(["true"], start_new_session=True)
    proc.wait()
    kill_groups([proc], grace=0.1)
    assert proc.returncode == 0


CTRL_C_SCRIPT = """
import sys
from runner_core import JobManager, JobRunner, SingleJob, config
config.kill_grace = 0.5
mode = sys.argv[2]
runner = JobRunner(parallel=mode != "serial")
manager = JobManager(sys.argv[1])
body = {tree!r}
for i in range(1 if mode == "serial" else 3):
    SingleJob(f"job {{i}}", body).run(runner, manager)
if mode == "wait":
    runner.wait()
# "atexit": the script ends here; the exit hook waits for the jobs
"""


@pytest.mark.parametrize("mode", ["wait", "atexit", "serial"])
def test_ctrl_c_leaves_no_process_of_any_job(tmp_path: Path, mode: str) -> None:
    script = tmp_path / "user_script.py"
    script.write_text(textwrap.dedent(CTRL_C_SCRIPT.format(tree=TREE)))
    work = tmp_path / "work"
    expected = 2 if mode == "serial" else 6
    proc = subprocess.Popen([sys.executable, str(script), str(work), mode])
    try:
        wait_until(
            lambda: work.is_dir() and len(pids_in(work)) == expected,
            "the jobs wrote their pids",
        )
        pids = pids_in(work)
        assert all(alive(p) for p in pids)
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if mode != "atexit":  # an interrupted exit hook cannot change the exit status any more
        assert proc.returncode != 0
    assert_all_gone(pids)


def test_interpreter_exit_waits_for_parallel_jobs(tmp_path: Path) -> None:
    script = tmp_path / "ends_early.py"
    script.write_text(
        "import sys\n"
        "from runner_core import JobManager, JobRunner, SingleJob\n"
        "runner = JobRunner(parallel=True)\n"
        "job = SingleJob('late', 'sleep 0.3; echo finished > marker')\n"
        "job.run(runner, JobManager(sys.argv[1]))\n"
    )
    subprocess.run([sys.executable, str(script), str(tmp_path / "w")], check=True, timeout=TIMEOUT)
    assert (tmp_path / "w" / "late" / "marker").read_text() == "finished\n"


@pytest.mark.parametrize("shebang", ["#!/bin/sh", "#!/bin/sh -e", f"#!{sys.executable}"])
def test_a_runscript_is_found_by_its_path_whatever_runs_it(tmp_path: Path, shebang: str) -> None:
    """A job killed with its driver before its pid was on record is found by its script.

    The kernel runs a script with a `#!` line as `interpreter [option] script`, so the
    script's path is not argv[0]: it used to be missed, and the job left running.
    """
    script = tmp_path / "job.run"
    body = "import time; time.sleep(30)" if "python" in shebang else "sleep 30"
    script.write_text(f"{shebang}\n{body}\n")
    script.chmod(0o755)
    proc = subprocess.Popen([str(script)], start_new_session=True)
    try:
        wait_until(lambda: find_session_leaders({str(script)}) != {}, "the script found")
        found = find_session_leaders({str(script), str(tmp_path / "other.run")})
        assert list(found) == [str(script)]
        assert [pid for pid, _start in found[str(script)]] == [proc.pid]
    finally:
        proc.kill()
        proc.wait(timeout=TIMEOUT)
