"""Resume: restored, rerun and re-attached jobs; a driver SIGKILLed at every step; grid hooks."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple, Optional, Union

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
    RecordedState,
    current_results,
    detach_job,
    journaled,
    report_failure,
    report_jobid,
    report_reason,
    report_tag,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from runner_settings import Settings


Resume = Union[bool, Literal["unfinished"]]  # what JobManager(resume=...) takes


def _jobs(codes: dict[str, int]) -> list[SingleJob]:
    return [SingleJob(name, counting_body(code)) for name, code in codes.items()]


def _run(folder: Path, jobs: list[SingleJob], resume: Resume) -> JobManager:
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
    # The journal lists jobs as their threads registered them: two at once, either first.
    assert sorted(r.folder for r in state.jobs) == ["bad", "ok"]
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


# --- resume="unfinished": keep what ended by itself, run what never finished ----------


class EndingRunner(JobRunner):
    """Ends each job as its runflags say: an exit code, an end reason, or a failure."""

    def __init__(self) -> None:
        super().__init__()
        self.ran: list[str] = []

    def call(
        self, runscript: str, workdir: str, out: Optional[str], err: str, runflags: Settings
    ) -> int:
        self.ran.append(os.path.basename(workdir))
        reason = runflags.get("reason")
        if runflags.get("fail"):
            report_failure("it could not run", reason=reason)
        elif reason is not None:
            report_reason(reason)
        return int(runflags.get("code", 1))


class Ending(NamedTuple):
    """Runflags for EndingRunner, the end they give, and whether "unfinished" keeps it."""

    flags: dict[str, Any]
    status: JobStatus
    reason: Optional[str]
    kept: bool


ENDINGS = {
    "crashed": Ending({"code": 3}, JobStatus.CRASHED, None, True),
    "timeout": Ending({"reason": "timeout"}, JobStatus.CRASHED, "timeout", True),
    "oom": Ending({"reason": "out_of_memory"}, JobStatus.CRASHED, "out_of_memory", True),
    "failed": Ending({"fail": True}, JobStatus.FAILED, None, True),
    "node_fail": Ending({"reason": "node_fail"}, JobStatus.CRASHED, "node_fail", False),
    "preempted": Ending({"reason": "preempted"}, JobStatus.CRASHED, "preempted", False),
    "submit_failed": Ending(
        {"fail": True, "reason": "submit_failed"}, JobStatus.FAILED, "submit_failed", False
    ),
    "cancelled": Ending({"reason": "cancelled"}, JobStatus.CANCELLED, "cancelled", False),
}


@pytest.mark.parametrize("resume", [True, "unfinished"])
@pytest.mark.parametrize("ending", ENDINGS.values(), ids=ENDINGS.keys())
def test_which_earlier_ends_a_resume_keeps(tmp_path: Path, resume: Resume, ending: Ending) -> None:
    flags, status, reason, kept = ending
    folder = tmp_path / "w"
    first = SingleJob("j", "exit 0")
    with JobManager(folder) as manager:
        first.run(jobrunner=EndingRunner(), jobmanager=manager, **flags)
    assert (first.results.status, first.results.reason) == (status, reason)
    (record,) = read_journal(folder).jobs
    again = SingleJob("j", "exit 0")
    seen: list[tuple[JobStatus, Optional[float], Optional[float]]] = []
    again.results.add_done_callback(lambda r: seen.append((r.status, r.started_at, r.finished_at)))
    runner = EndingRunner()
    with JobManager(folder, resume=resume) as manager:
        again.run(jobrunner=runner, jobmanager=manager, **flags)
    restored = kept and resume == "unfinished"
    results = again.results
    assert results.restored is restored
    assert runner.ran == ([] if restored else ["j"])
    assert (results.status, results.reason) == (status, reason)
    assert again.path == folder / "j"
    if restored:  # as the earlier try ended, times included, also for the callbacks
        assert results.exit_code == record.exit_code
        assert results.error == record.error
        assert results.error is not None or status is JobStatus.CRASHED
        assert results.jobid == record.jobid
        assert (results.started_at, results.finished_at) == (record.started_at, record.finished_at)
        assert seen == [(status, record.started_at, record.finished_at)]
        assert read_journal(folder).jobs[0].number == record.number  # nothing new on record
    else:
        assert read_journal(folder).jobs[0].number != record.number


def test_a_crash_kept_by_unfinished_runs_again_under_true(tmp_path: Path) -> None:
    folder = tmp_path / "w"
    _run(folder, _jobs({"ok": 0, "bad": 3}), resume=False)
    kept = _jobs({"ok": 0, "bad": 3})
    manager = _run(folder, kept, resume="unfinished")
    assert manager.resume == "unfinished"
    assert [(j.results.status, j.results.exit_code, j.results.restored) for j in kept] == [
        (JobStatus.SUCCESSFUL, 0, True),
        (JobStatus.CRASHED, 3, True),
    ]
    assert manager.jobs == kept
    assert starts(folder / "bad") == 1
    again = _jobs({"ok": 0, "bad": 3})
    _run(folder, again, resume="unfinished")  # kept again: the record still says CRASHED
    assert starts(folder / "bad") == 1
    rerun = _jobs({"ok": 0, "bad": 3})
    _run(folder, rerun, resume=True)
    assert [j.results.restored for j in rerun] == [True, False]
    assert starts(folder / "bad") == 2
    assert rerun[1].path == folder / "bad"


def test_unfinished_runs_a_crashed_job_whose_input_changed(tmp_path: Path) -> None:
    folder = tmp_path / "w"
    _run(folder, _jobs({"a": 3}), resume=False)
    fixed = SingleJob("a", counting_body(0))
    same = SingleJob("a", counting_body(3))
    _run(folder, [fixed, same], resume="unfinished")
    assert not fixed.results.restored
    assert fixed.results.ok
    assert fixed.path == folder / "a.002"
    assert same.results.restored  # the unchanged job is still kept as it crashed
    assert same.results.status is JobStatus.CRASHED


@pytest.mark.parametrize("resume", [True, "unfinished"])
def test_a_job_cancelled_while_running_runs_again(tmp_path: Path, resume: Resume) -> None:
    folder = tmp_path / "w"
    go = tmp_path / "go"
    body = f"echo start >> starts\n[ -e {go} ] || sleep 30\n"
    job = SingleJob("slow", body)
    runner = JobRunner(parallel=True)
    with JobManager(folder) as manager:
        job.run(jobrunner=runner, jobmanager=manager)
        wait_until(lambda: starts(folder / "slow") == 1, "the job started")
        job.cancel()
        job.results.wait(TIMEOUT)
    assert job.results.status is JobStatus.CANCELLED
    go.write_text("")
    again = SingleJob("slow", body)
    _run(folder, [again], resume=resume)
    assert not again.results.restored
    assert again.results.ok
    assert starts(folder / "slow") == 2


@pytest.mark.parametrize("value", [True, False, "unfinished"])
def test_the_resume_property_gives_back_what_was_given(tmp_path: Path, value: Resume) -> None:
    with JobManager(tmp_path / "w", resume=value) as manager:
        assert manager.resume == value
        assert type(manager.resume) is type(value)


def test_an_unknown_resume_policy_is_named_with_the_allowed_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="resume='all' is not a resume policy") as info:
        JobManager(tmp_path, resume="all")  # type: ignore[arg-type]
    assert "True" in str(info.value)
    assert "'unfinished'" in str(info.value)
    for wrong in (1, None, "True"):
        error = ValueError if isinstance(wrong, str) else TypeError
        with pytest.raises(error, match=repr(wrong)):
            JobManager(tmp_path, resume=wrong)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"resume='unfinished'\).*journal=False"):
        JobManager(tmp_path, resume="unfinished", journal=False)
    assert not (tmp_path / ".runner").exists()


# --- the driver SIGKILLed at every step -----------------------------------------------

CODES = {"a": 0, "b": 2, "c": 0, "d": 1}


def _spec(codes: dict[str, int], resume: Resume, sleep: float = 0.0) -> dict[str, Any]:
    return {
        "jobs": [[name, counting_body(code, sleep)] for name, code in codes.items()],
        "parallel": True,
        "maxjobs": 2,
        "resume": resume,
    }


def _records_before_kill(folder: Path) -> dict[str, JobRecord]:
    return {r.name: r for r in read_journal(folder).jobs}


def _kill_then_resume(
    tmp_path: Path, codes: dict[str, int], kill_at: int, resume: Resume = True
) -> None:
    folder = tmp_path / f"w{kill_at}"
    first = run_driver(tmp_path, _spec(codes, resume=False), folder, kill_at=kill_at)
    first.communicate()
    killed = first.returncode == -9
    before = _records_before_kill(folder) if folder.exists() else {}
    ended_before = {name for name, r in before.items() if r.done}
    second = run_driver(tmp_path, _spec(codes, resume=resume), folder)
    result = outcome(second)
    for name, code in codes.items():
        status, exit_code, restored = result[name]
        assert exit_code == code, (kill_at, name, result)
        assert status == ("SUCCESSFUL" if code == 0 else "CRASHED"), (kill_at, name)
        # A job that ended on record is restored, never run again, when the policy keeps
        # its end (success always, a crash with "unfinished"); every other job runs.
        kept = name in ended_before and (code == 0 or resume == "unfinished")
        assert restored == kept, (kill_at, name, resume)
        if kept:
            assert starts(folder / name) == 1, (kill_at, name)
        if not killed:
            assert restored == (code == 0 or resume == "unfinished"), (kill_at, name)
    state = read_journal(folder)
    assert state.dropped == []
    assert {r.name: r.exit_code for r in state.jobs} == codes
    assert state.driver is None
    assert not killed or first.returncode == -9


@pytest.mark.parametrize("resume", [True, "unfinished"])
def test_sigkill_of_the_driver_at_every_journal_record_then_resume(
    tmp_path: Path, resume: Resume
) -> None:
    # A whole run of CODES writes about 25 records (open, runner, and for each job: job,
    # running, pid, end; then close): kill after each one, and once never.
    for kill_at in range(1, 28):
        _kill_then_resume(tmp_path, CODES, kill_at, resume)


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    codes=st.dictionaries(
        st.sampled_from(["p", "q", "r", "s", "t"]), st.sampled_from([0, 0, 1, 7]), min_size=1
    ),
    kill_at=st.integers(min_value=1, max_value=24),
    resume=st.sampled_from([True, "unfinished"]),
)
def test_random_kill_points_and_outcomes(
    tmp_path: Path, codes: dict[str, int], kill_at: int, resume: Resume
) -> None:
    _kill_then_resume(Path(tempfile.mkdtemp(dir=tmp_path)), codes, kill_at, resume)


@pytest.mark.parametrize("resume", [True, "unfinished"])
def test_a_local_job_left_running_by_a_killed_driver_is_stopped_before_its_rerun(
    tmp_path: Path, resume: Resume
) -> None:
    folder = tmp_path / "w"
    go = tmp_path / "go"
    body = f"echo $$ > pid\nwhile [ ! -e {go} ]; do sleep 0.02; done\n" + counting_body(0)
    spec = {"jobs": [["long", body]], "parallel": True, "maxjobs": 1, "resume": False}
    driver = run_driver(tmp_path, spec, folder, wait=False)
    pid_file = folder / "long" / "pid"
    try:
        # the file exists before the shell has written the pid into it
        wait_until(
            lambda: pid_file.exists() and pid_file.read_text().strip() != "", "the job started"
        )
        wait_until(lambda: read_journal(folder).jobs[0].pid is not None, "its pid on record")
        old = int(pid_file.read_text())
        assert process_start(old) is not None
        driver.kill()
        driver.communicate()
        assert process_start(old) is not None  # the job runs on without its driver
        go.write_text("")  # the rerun must not wait
        pid_file.unlink()
        resumed = run_driver(tmp_path, {**spec, "resume": resume}, folder)
        assert outcome(resumed) == {"long": ["SUCCESSFUL", 0, False]}
        wait_until(lambda: process_start(old) is None, "the old job process stopped")
        assert int(pid_file.read_text()) != old
    finally:  # a failing test leaves neither its driver nor its job running
        go.write_text("")
        if driver.poll() is None:
            driver.kill()
            driver.communicate()


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
    scheduler_queue = True  # SUBMITTED once it has an id, as GridRunner's jobs are
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


@pytest.mark.parametrize("resume", [True, "unfinished"])
def test_a_resumed_grid_job_still_queued_is_reattached_not_resubmitted(
    tmp_path: Path, scheduler: FakeScheduler, resume: Resume
) -> None:
    folder = tmp_path / "w"
    first, old_jobs = _submit(folder, {"x": 0, "y": 5})
    ids = {j.name: j.results.jobid for j in old_jobs}
    _driver_dies(first)
    runner = FakeGridRunner(parallel=True)
    manager = JobManager(folder, resume=resume)
    jobs = [SingleJob(name, "exit 0") for name in ("x", "y")]
    for job, code in zip(jobs, (0, 5)):
        job.run(jobrunner=runner, jobmanager=manager, code=code)
    wait_until(lambda: len(scheduler.waiting) == 2, "both re-attached")
    assert scheduler.submits == 2  # nothing submitted again
    assert [j.results.status for j in jobs] == [JobStatus.SUBMITTED] * 2
    assert [j.path for j in jobs] == [folder / "x", folder / "y"]
    assert [j.results.jobid for j in jobs] == [ids["x"], ids["y"]]
    for jobid in list(ids.values()):
        scheduler.finish(jobid)
    runner.wait(TIMEOUT)
    assert [j.results.status for j in jobs] == [JobStatus.SUCCESSFUL, JobStatus.CRASHED]
    assert [j.results.exit_code for j in jobs] == [0, 5]
    state = read_journal(folder)
    # job threads record their jobs in the order they register, which is not run() order
    assert sorted((r.folder, r.status, r.jobid) for r in state.jobs) == [
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
    wait_until(lambda: "1002" in scheduler.waiting, "the job detached")  # call() ends after
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
    assert [j.results.status for j in jobs] == [JobStatus.SUBMITTED] * 2
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


class _ObservingGridRunner(FakeGridRunner):
    """FakeGridRunner whose jobs can be seen from outside, as GridRunner's folders show them.

    Stands in for a real grid runner's `observe_recorded` (the exit-code and times files
    its wrapper writes, and the scheduler): `seen` says where each job is now, by name.
    """

    seen: ClassVar[dict[str, RecordedState]] = {}
    asked: ClassVar[list[bool]] = []

    @classmethod
    def observe_recorded(
        cls, records: Sequence[JobRecord], ask_scheduler: bool = False
    ) -> dict[int, RecordedState]:
        cls.asked.append(ask_scheduler)
        return {r.number: cls.seen[r.name] for r in records if r.name in cls.seen}


def test_cancel_run_with_a_dead_driver_keeps_the_jobs_that_ended_by_themselves(
    tmp_path: Path, scheduler: FakeScheduler
) -> None:
    folder = tmp_path / "w"
    first, jobs = _submit(folder, {"done": 0, "crashed": 0, "running": 0, "pending": 0})
    ids = {j.name: j.results.jobid for j in jobs}
    _driver_dies(first)
    (folder / ".runner" / "lock").unlink()
    _ObservingGridRunner.asked = []
    _ObservingGridRunner.seen = {
        "done": RecordedState(JobStatus.SUCCESSFUL, 0, None, 100.0, 101.0),
        "crashed": RecordedState(JobStatus.CRASHED, 3, "timeout", 100.0, 160.0),
        "running": RecordedState(JobStatus.RUNNING, started_at=100.5),
    }

    outcome = cancel_run(folder, {"fake-grid": _ObservingGridRunner})

    assert sorted(r.folder for r in outcome.ended) == ["crashed", "done"]
    assert sorted(r.folder for r in outcome.cancelled) == ["pending", "running"]
    # Only the jobs still in the queue were cancelled in the scheduler.
    assert sorted(scheduler.cancelled) == sorted([ids["running"], ids["pending"]])
    assert _ObservingGridRunner.asked == [True, False]  # the scheduler first, files after
    state = {r.folder: r for r in read_journal(folder).jobs}
    done = state["done"]
    assert (done.status, done.exit_code, done.reason, done.error) == (
        JobStatus.SUCCESSFUL,
        0,
        None,
        None,
    )
    assert (done.started_at, done.finished_at) == (100.0, 101.0)
    crashed = state["crashed"]
    assert (crashed.status, crashed.exit_code, crashed.reason) == (
        JobStatus.CRASHED,
        3,
        "timeout",
    )
    running, pending = state["running"], state["pending"]
    assert (running.status, running.reason) == (JobStatus.CANCELLED, "cancelled")
    assert running.started_at == 100.5
    assert running.error is not None
    assert "while running" in running.error
    assert pending.started_at is None
    assert pending.error is not None
    assert "before it started" in pending.error

    # A resume reruns none of the jobs that ended well.
    manager = JobManager(folder, resume=True)
    again = SingleJob("done", "exit 0")
    again.run(jobrunner=FakeGridRunner(parallel=True), jobmanager=manager, code=0)
    assert again.results.restored
    manager.close()


def test_a_job_that_wrote_exit_code_0_as_its_cancel_went_out_keeps_its_success(
    tmp_path: Path, scheduler: FakeScheduler
) -> None:
    folder = tmp_path / "w"
    first, _jobs = _submit(folder, {"racer": 0})
    _driver_dies(first)
    (folder / ".runner" / "lock").unlink()

    class _Racing(_ObservingGridRunner):
        @classmethod
        def observe_recorded(
            cls, records: Sequence[JobRecord], ask_scheduler: bool = False
        ) -> dict[int, RecordedState]:
            if ask_scheduler:  # before the cancel: still running
                return {r.number: RecordedState(JobStatus.RUNNING, started_at=1.0) for r in records}
            return {
                r.number: RecordedState(JobStatus.SUCCESSFUL, 0, None, 1.0, 2.0) for r in records
            }

    outcome = cancel_run(folder, {"fake-grid": _Racing})

    assert [r.folder for r in outcome.ended] == ["racer"]
    assert outcome.cancelled == []
    (record,) = read_journal(folder).jobs
    assert (record.status, record.exit_code) == (JobStatus.SUCCESSFUL, 0)
