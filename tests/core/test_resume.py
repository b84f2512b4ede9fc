"""Resume: restored, rerun and re-attached jobs; a driver SIGKILLed at every step; grid hooks."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import runner_core._lifecycle as lifecycle
from core.journal_helpers import counting_body, outcome, run_driver, starts
from core.runner_helpers import TIMEOUT, wait_until
from runner_core import (
    JobManager,
    JobRecord,
    JobRunner,
    JobStatus,
    SingleJob,
    cancel_run,
    config,
    read_journal,
)
from runner_core._process import boot_id, kill_recorded_groups, process_start
from runner_core.ext import (
    Completion,
    current_results,
    detach_job,
    journaled,
    report_jobid,
    report_tag,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from runner_settings import Settings


def _jobs(codes: dict[str, int]) -> list[SingleJob]:
    return [SingleJob(name, counting_body(code)) for name, code in codes.items()]


def _run(folder: Path, jobs: list[SingleJob], resume: bool) -> JobManager:
    manager = JobManager(folder, resume=resume)
    runner = JobRunner(parallel=True, maxjobs=2)
    for job in jobs:
        job.run(jobrunner=runner, jobmanager=manager)
    runner.wait(TIMEOUT)
    manager.close()
    return manager


def test_successful_jobs_are_restored_the_others_run_again(tmp_path: Path) -> None:
    folder = tmp_path / "w"
    _run(folder, _jobs({"ok": 0, "bad": 3}), resume=False)
    again = _jobs({"ok": 0, "bad": 3})
    manager = _run(folder, again, resume=True)
    ok, bad = again
    assert ok.results.restored
    assert ok.results.status is JobStatus.SUCCESSFUL
    assert ok.results.exit_code == 0
    assert ok.path == folder / "ok"
    assert ok.results.started_at is not None
    assert ok.results.finished_at is not None
    assert starts(folder / "ok") == 1
    assert not bad.results.restored
    assert bad.results.status is JobStatus.CRASHED
    assert bad.path == folder / "bad"  # run again in its own folder
    assert starts(folder / "bad") == 2
    assert manager.jobs == [ok, bad]
    state = read_journal(folder)
    assert [r.folder for r in state.jobs] == ["ok", "bad"]
    assert len(state.sessions) == 2


def test_changed_input_is_a_new_job_in_a_new_folder(tmp_path: Path) -> None:
    folder = tmp_path / "w"
    _run(folder, _jobs({"a": 0}), resume=False)
    changed = SingleJob("a", counting_body(0) + "# changed\n")
    flagged = SingleJob("a", counting_body(0))
    manager = JobManager(folder, resume=True)
    runner = JobRunner()
    changed.run(jobrunner=runner, jobmanager=manager)
    flagged.run(jobrunner=runner, jobmanager=manager, mem="4G")  # other runflags: other hash
    assert not changed.results.restored
    assert changed.path == folder / "a.002"
    assert flagged.path == folder / "a.003"
    same = SingleJob("a", counting_body(0))
    same.run(jobrunner=runner, jobmanager=manager)
    assert same.results.restored  # the first try still matches, once
    twice = SingleJob("a", counting_body(0))
    twice.run(jobrunner=runner, jobmanager=manager)
    assert not twice.results.restored
    assert twice.path == folder / "a.004"
    manager.close()


def test_resume_without_a_journal_is_a_plain_run(tmp_path: Path) -> None:
    jobs = _jobs({"a": 0})
    _run(tmp_path / "new", jobs, resume=True)
    assert jobs[0].results.ok
    assert not jobs[0].results.restored


def test_a_restored_job_whose_folder_is_gone_runs_again(tmp_path: Path) -> None:
    folder = tmp_path / "w"
    _run(folder, _jobs({"a": 0}), resume=False)
    shutil.rmtree(folder / "a")
    jobs = _jobs({"a": 0})
    _run(folder, jobs, resume=True)
    assert not jobs[0].results.restored
    assert starts(folder / "a") == 1


# --- the driver SIGKILLed at every step -----------------------------------------------

CODES = {"a": 0, "b": 2, "c": 0, "d": 1}


def _spec(codes: dict[str, int], resume: bool, sleep: float = 0.0) -> dict[str, Any]:
    return {
        "jobs": [[name, counting_body(code, sleep)] for name, code in codes.items()],
        "parallel": True,
        "maxjobs": 2,
        "resume": resume,
    }


def _records_before_kill(folder: Path) -> dict[str, JobRecord]:
    return {r.name: r for r in read_journal(folder).jobs}


def _kill_then_resume(tmp_path: Path, codes: dict[str, int], kill_at: int) -> None:
    folder = tmp_path / f"w{kill_at}"
    first = run_driver(tmp_path, _spec(codes, resume=False), folder, kill_at=kill_at)
    first.communicate()
    killed = first.returncode == -9
    before = _records_before_kill(folder) if folder.exists() else {}
    ended_before = {name for name, r in before.items() if r.done}
    second = run_driver(tmp_path, _spec(codes, resume=True), folder)
    result = outcome(second)
    for name, code in codes.items():
        status, exit_code, restored = result[name]
        assert exit_code == code, (kill_at, name, result)
        assert status == ("SUCCESSFUL" if code == 0 else "CRASHED"), (kill_at, name)
        # a job that succeeded on record is restored, never run again
        if name in ended_before and code == 0:
            assert restored, (kill_at, name)
            assert starts(folder / name) == 1, (kill_at, name)
        if not killed:
            assert restored == (code == 0), (kill_at, name)
    state = read_journal(folder)
    assert state.dropped == []
    assert {r.name: r.exit_code for r in state.jobs} == codes
    assert state.driver is None
    assert not killed or first.returncode == -9


def test_sigkill_of_the_driver_at_every_journal_record_then_resume(tmp_path: Path) -> None:
    # A whole run of CODES writes about 25 records (open, runner, and for each job: job,
    # running, pid, end; then close): kill after each one, and once never.
    for kill_at in range(1, 28):
        _kill_then_resume(tmp_path, CODES, kill_at)


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    codes=st.dictionaries(
        st.sampled_from(["p", "q", "r", "s", "t"]), st.sampled_from([0, 0, 1, 7]), min_size=1
    ),
    kill_at=st.integers(min_value=1, max_value=24),
)
def test_random_kill_points_and_outcomes(
    tmp_path: Path, codes: dict[str, int], kill_at: int
) -> None:
    _kill_then_resume(Path(tempfile.mkdtemp(dir=tmp_path)), codes, kill_at)


def test_a_local_job_left_running_by_a_killed_driver_is_stopped_before_its_rerun(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "w"
    go = tmp_path / "go"
    body = f"echo $$ > pid\nwhile [ ! -e {go} ]; do sleep 0.02; done\n" + counting_body(0)
    spec = {"jobs": [["long", body]], "parallel": True, "maxjobs": 1, "resume": False}
    driver = run_driver(tmp_path, spec, folder, wait=False)
    wait_until((folder / "long" / "pid").exists, "the job started")
    wait_until(lambda: read_journal(folder).jobs[0].pid is not None, "its pid on record")
    old = int((folder / "long" / "pid").read_text())
    assert process_start(old) is not None
    driver.kill()
    driver.communicate()
    assert process_start(old) is not None  # the job runs on without its driver
    go.write_text("")  # the rerun must not wait
    (folder / "long" / "pid").unlink()
    resumed = run_driver(tmp_path, {**spec, "resume": True}, folder)
    assert outcome(resumed) == {"long": ["SUCCESSFUL", 0, False]}
    wait_until(lambda: process_start(old) is None, "the old job process stopped")
    assert int((folder / "long" / "pid").read_text()) != old


def test_a_recorded_group_is_never_signalled_through_a_reused_pid(tmp_path: Path) -> None:
    me = os.getpid()
    start = process_start(me)
    assert start is not None
    # our own pid with another start time: a reused pid, so "gone", and we live on
    assert kill_recorded_groups([(me, start - 1, boot_id())], grace=0.1) == ["gone"]
    assert kill_recorded_groups([(me, start, "another-boot")], grace=0.1) == ["gone"]
    assert kill_recorded_groups([(me, start, None)], grace=0.1) == ["unknown"]


# --- the hooks a grid runner implements, with a fake scheduler ------------------------


class FakeScheduler:
    """A scheduler's queue in memory: ids, tags, and jobs that end when told to."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queue: dict[str, tuple[str, int]] = {}  # id -> (tag, exit code it will end with)
        self.submits = 0
        self.cancelled: list[str] = []
        self.waiting: dict[str, Completion] = {}

    def finish(self, jobid: str) -> None:
        with self.lock:
            _tag, code = self.queue.pop(jobid)
            completion = self.waiting.pop(jobid)
        completion.complete(code)


class FakeGridRunner(JobRunner):
    """A grid runner in miniature: submits to FakeScheduler, holds no thread per queued job."""

    scheduler: ClassVar[FakeScheduler]
    fail_reattach = False

    def journal_info(self) -> dict[str, Any]:
        return {"kind": "fake-grid", "scheme": "fake"}

    def call(
        self, runscript: str, workdir: str, out: Optional[str], err: str, runflags: Settings
    ) -> int:
        results = current_results()
        assert results is not None
        tag = f"tag-{os.path.basename(workdir)}"
        report_tag(tag)  # on record before the submit
        sched = self.scheduler
        with sched.lock:
            sched.submits += 1
            jobid = str(1000 + sched.submits)
            sched.queue[jobid] = (tag, int(runflags.get("code", 0)))
        report_jobid(jobid)
        with sched.lock:
            sched.waiting[jobid] = detach_job()
        return 0

    def reattach(self, record: JobRecord) -> bool:
        sched = self.scheduler
        with sched.lock:
            found = record.jobid if record.jobid in sched.queue else None
            if found is None:  # the id never reached the record: look the tag up
                found = next((i for i, (t, _) in sched.queue.items() if t == record.tag), None)
            if found is None or self.fail_reattach:
                return False
            if record.jobid is None:
                report_jobid(found)
            sched.waiting[found] = detach_job()
        return True

    @classmethod
    def cancel_recorded(cls, records: Sequence[JobRecord]) -> list[JobRecord]:
        with cls.scheduler.lock:
            for record in records:
                if record.jobid is not None:
                    cls.scheduler.queue.pop(record.jobid, None)
                    cls.scheduler.cancelled.append(record.jobid)
        return list(records)

    def _cancel_jobs(self) -> None:
        super()._cancel_jobs()
        sched = self.scheduler
        with sched.lock:
            mine = {i: c for i, c in sched.waiting.items() if c._runner is self}
            for jobid in mine:
                del sched.waiting[jobid]
                sched.queue.pop(jobid, None)
        for completion in mine.values():
            completion.complete(1, reason="cancelled")

    def _leave_jobs_queued(self) -> int:
        sched = self.scheduler
        with sched.lock:
            left = [c for c in sched.waiting.values() if journaled(c.results)]
            sched.waiting.clear()
        for completion in left:
            completion.leave()
        return len(left)


@pytest.fixture
def scheduler() -> FakeScheduler:
    FakeGridRunner.scheduler = FakeScheduler()
    return FakeGridRunner.scheduler


def _driver_dies(manager: JobManager) -> None:
    """As if the driver were SIGKILLed: its journal stops, its runner forgets its jobs."""
    journal = manager._journal
    assert journal is not None
    journal._abandon()
    sched = FakeGridRunner.scheduler
    with sched.lock:
        orphans = list(sched.waiting.values())
        sched.waiting.clear()
    for completion in orphans:
        completion.leave()  # the jobs stay in the queue; nobody waits for them here


def _submit(folder: Path, codes: dict[str, int]) -> tuple[JobManager, list[SingleJob]]:
    manager = JobManager(folder)
    runner = FakeGridRunner(parallel=True)
    jobs = [SingleJob(name, "exit 0") for name in codes]
    for job in jobs:
        job.run(jobrunner=runner, jobmanager=manager, code=codes[job.name])
    wait_until(lambda: all(j.results.jobid for j in jobs), "every job submitted")
    return manager, jobs


def test_a_resumed_grid_job_still_queued_is_reattached_not_resubmitted(
    tmp_path: Path, scheduler: FakeScheduler
) -> None:
    folder = tmp_path / "w"
    first, old_jobs = _submit(folder, {"x": 0, "y": 5})
    ids = {j.name: j.results.jobid for j in old_jobs}
    _driver_dies(first)
    runner = FakeGridRunner(parallel=True)
    manager = JobManager(folder, resume=True)
    jobs = [SingleJob(name, "exit 0") for name in ("x", "y")]
    for job, code in zip(jobs, (0, 5)):
        job.run(jobrunner=runner, jobmanager=manager, code=code)
    wait_until(lambda: len(scheduler.waiting) == 2, "both re-attached")
    assert scheduler.submits == 2  # nothing submitted again
    assert [j.results.status for j in jobs] == [JobStatus.RUNNING] * 2
    assert [j.path for j in jobs] == [folder / "x", folder / "y"]
    assert [j.results.jobid for j in jobs] == [ids["x"], ids["y"]]
    for jobid in list(ids.values()):
        scheduler.finish(jobid)
    runner.wait(TIMEOUT)
    assert [j.results.status for j in jobs] == [JobStatus.SUCCESSFUL, JobStatus.CRASHED]
    assert [j.results.exit_code for j in jobs] == [0, 5]
    state = read_journal(folder)
    assert [(r.folder, r.status, r.jobid) for r in state.jobs] == [
        ("x", JobStatus.SUCCESSFUL, ids["x"]),
        ("y", JobStatus.CRASHED, ids["y"]),
    ]
    manager.close()


def test_a_job_whose_id_never_reached_the_record_is_found_by_its_tag(
    tmp_path: Path, scheduler: FakeScheduler
) -> None:
    folder = tmp_path / "w"
    first, _ = _submit(folder, {"x": 0})
    _driver_dies(first)
    log = folder / ".runner" / "journal.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(line for line in lines if '"k":"id"' not in line))
    assert read_journal(folder).jobs[0].jobid is None
    assert read_journal(folder).jobs[0].tag == "tag-x"
    manager = JobManager(folder, resume=True)
    job = SingleJob("x", "exit 0")
    job.run(jobrunner=FakeGridRunner(parallel=True), jobmanager=manager, code=0)
    wait_until(lambda: job.results.jobid is not None, "re-attached by tag")
    assert scheduler.submits == 1
    assert read_journal(folder).jobs[0].jobid == job.results.jobid
    manager.close()


def test_a_job_that_cannot_be_reattached_is_submitted_again_in_its_folder(
    tmp_path: Path, scheduler: FakeScheduler
) -> None:
    folder = tmp_path / "w"
    first, _ = _submit(folder, {"x": 0})
    _driver_dies(first)
    scheduler.queue.clear()  # it left the queue with nobody watching
    manager = JobManager(folder, resume=True)
    job = SingleJob("x", "exit 0")
    runner = FakeGridRunner(parallel=True)
    job.run(jobrunner=runner, jobmanager=manager, code=0)
    wait_until(lambda: scheduler.submits == 2, "submitted again")
    assert job.path == folder / "x"
    wait_until(lambda: job.results.jobid == "1002", "new id")
    scheduler.finish("1002")
    runner.wait(TIMEOUT)
    assert job.results.ok
    state = read_journal(folder)
    assert [(r.folder, r.status, r.jobid) for r in state.jobs] == [
        ("x", JobStatus.SUCCESSFUL, "1002")
    ]
    manager.close()


def test_keep_leaves_journaled_grid_jobs_queued_and_says_how_to_resume(
    tmp_path: Path,
    scheduler: FakeScheduler,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "w"
    manager, jobs = _submit(folder, {"x": 0, "y": 0})
    monkeypatch.setattr(lifecycle, "_left_done", False)
    config.grid_jobs_on_exit = "keep"
    lifecycle.cancel_all_runners()
    assert scheduler.cancelled == []
    assert len(scheduler.queue) == 2  # still queued
    assert [j.results.status for j in jobs] == [JobStatus.RUNNING] * 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "2 grid jobs left in the scheduler's queue" in err
    assert f"runner resume {folder}" in err
    assert all(r.left for r in read_journal(folder).jobs)
    manager.close()


def test_a_bad_grid_jobs_on_exit_is_named_and_jobs_are_cancelled(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(lifecycle, "_left_done", False)
    config.grid_jobs_on_exit = "kept"
    assert lifecycle.leave_grid_jobs() == 0
    assert "'kept'" in caplog.text
    assert '"keep"' in caplog.text


def test_cancel_run_with_a_dead_driver_uses_the_runner_kinds_cancel_recorded(
    tmp_path: Path, scheduler: FakeScheduler
) -> None:
    folder = tmp_path / "w"
    first, jobs = _submit(folder, {"x": 0})
    _driver_dies(first)
    # the lock of this (live) process would make it a live driver: drop it
    (folder / ".runner" / "lock").unlink()
    outcome = cancel_run(folder, {"local": JobRunner, "fake-grid": FakeGridRunner})
    assert not outcome.driver_alive
    assert [r.folder for r in outcome.cancelled] == ["x"]
    assert scheduler.cancelled == [jobs[0].results.jobid]
    state = read_journal(folder)
    assert state.jobs[0].status is JobStatus.CANCELLED
    assert state.jobs[0].reason == "cancelled"
    outcome = cancel_run(folder, {})
    assert outcome.cancelled == []
    assert outcome.not_stopped == []
