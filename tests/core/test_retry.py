"""Tests for Retry: the policy, the decision, and jobs run again by local and detaching runners."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

import pytest

from runner_core import (
    Attempt,
    JobManager,
    JobRunner,
    JobStatus,
    Retry,
    SingleJob,
    parse_memory,
    read_journal,
)
from runner_core._retry import DEFAULT_ON, decide
from runner_core.ext import current_results, detach_job, report_reason

from .runner_helpers import TIMEOUT, wait_until

# --- the policy -------------------------------------------------------------------------


def test_the_default_policy_grows_memory_and_walltime_and_reruns_node_failures() -> None:
    retry = Retry()
    assert retry.attempts == 3
    assert dict(retry.on) == {
        "out_of_memory": {"memory": 2},
        "timeout": {"walltime": 2},
        "node_fail": {},
        "preempted": {},
    }
    assert Retry.from_dict(retry.as_dict()) == retry


def test_reasons_alone_take_their_default_growth() -> None:
    assert dict(Retry(on=["timeout", "crashed"]).on) == {"timeout": {"walltime": 2}, "crashed": {}}
    assert dict(Retry(on="out_of_memory, node_fail").on) == {
        "out_of_memory": {"memory": 2},
        "node_fail": {},
    }
    assert dict(Retry(on={"out_of_memory": {"memory": 1.5}}).on) == {
        "out_of_memory": {"memory": 1.5}
    }


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"attempts": 0}, ValueError, "attempts=0"),
        ({"attempts": True}, TypeError, "must be an int"),
        ({"on": ["out_of_disk"]}, ValueError, "'out_of_disk' is not an end reason to retry on"),
        ({"on": []}, ValueError, "names no reason"),
        ({"on": {"timeout": {"cores": 2}}}, ValueError, "only memory, walltime grow"),
        ({"on": {"timeout": {"walltime": 0.5}}}, ValueError, "not a number >= 1"),
        ({"on": {"timeout": 2}}, TypeError, "must be a mapping"),
        ({"preemptions": -1}, ValueError, "preemptions=-1"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_value(
    kwargs: dict[str, Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        Retry(**kwargs)


def _attempt(number: int, reason: str) -> Attempt:
    return Attempt(number, None, 1, reason, None, {}, None, None, None)


def _grow(runflags: Any, factors: Any) -> tuple[dict[str, Any], Optional[str]]:
    return JobRunner().grow_request(runflags, factors)


def test_decide_grows_the_request_by_the_reason() -> None:
    decision = decide(Retry(), "out_of_memory", [], {"memory": "100M"}, _grow)
    assert decision.again
    assert dict(decision.request) == {"memory": "200M"}
    decision = decide(Retry(), "timeout", [], {"walltime": "0:10:00"}, _grow)
    assert dict(decision.request) == {"walltime": "0:20:00"}
    assert decide(Retry(), "node_fail", [], {}, _grow).again


def test_decide_never_retries_a_success_a_cancel_or_a_plain_crash_unless_named() -> None:
    for reason in (None, "cancelled", "crashed", "submit_failed"):
        assert not decide(Retry(), reason, [], {}, _grow).again
    assert decide(Retry(on=["crashed"]), "crashed", [], {}, _grow).again


def test_decide_stops_after_the_last_attempt_and_says_so() -> None:
    earlier = [_attempt(1, "node_fail"), _attempt(2, "node_fail")]
    decision = decide(Retry(attempts=3), "node_fail", earlier, {}, _grow)
    assert not decision.again
    assert decision.note == "not run again: node_fail on attempt 3 of 3"


def test_a_preemption_uses_no_attempt_up_to_its_own_cap() -> None:
    earlier = [_attempt(1, "preempted"), _attempt(2, "preempted"), _attempt(3, "node_fail")]
    assert decide(Retry(attempts=3), "node_fail", earlier, {}, _grow).again  # 2 of 3 used
    decision = decide(Retry(attempts=2), "preempted", earlier, {}, _grow)
    assert decision.again  # though both attempts of the policy are used: preemptions count apart
    capped = decide(Retry(preemptions=2), "preempted", earlier, {}, _grow)
    assert not capped.again
    assert capped.note == "not run again: preempted 3 times"


def test_a_request_that_cannot_grow_is_not_run_again_with_the_reason() -> None:
    decision = decide(Retry(), "out_of_memory", [], {"cores": 2}, _grow)
    assert not decision.again
    assert decision.note is not None
    assert "asked for no memory" in decision.note
    assert "memory='2G'" in decision.note


# --- runners that run jobs again -------------------------------------------------------


class MemoryHungry(JobRunner):
    """Ends a job out_of_memory while it asks for less than `needs` bytes (a scheduler's OOM)."""

    def __init__(self, needs: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.needs = needs
        self.requests: list[Any] = []

    def call(  # type: ignore[override]
        self, runscript: str, workdir: str, out: Optional[str], err: str, runflags: Any
    ) -> int:
        self.requests.append(runflags.get("memory"))
        with open(os.path.join(workdir, "job.out" if out is None else out), "w") as fh:
            fh.write(f"attempt with {runflags.get('memory')}\n")
        Path(err).write_text(f"killed at {runflags.get('memory')}\n")
        if parse_memory(runflags.get("memory")) < self.needs:
            report_reason("out_of_memory")
            return 137
        return 0


@pytest.mark.parametrize("parallel", [False, True])
def test_a_job_out_of_memory_runs_again_with_twice_the_memory(
    tmp_path: Path, parallel: bool
) -> None:
    runner = MemoryHungry(needs=parse_memory("300M"), parallel=parallel, retry=Retry())
    job = SingleJob("hungry", "true\n")
    results = job.run(jobrunner=runner, jobmanager=JobManager(tmp_path / "w"), memory="100M")
    assert results.wait(TIMEOUT).status is JobStatus.SUCCESSFUL
    assert runner.requests == ["100M", "200M", "400M"]
    assert results.attempt == 3
    assert [(a.number, a.reason, a.exit_code, dict(a.request)) for a in results.attempts] == [
        (1, "out_of_memory", 137, {"memory": "100M"}),
        (2, "out_of_memory", 137, {"memory": "200M"}),
    ]
    assert results.attempts[0].error == "killed at 100M"
    assert results.reason is None
    assert job.settings["run"]["memory"] == "400M"
    folder = Path(str(job.path))
    assert (folder / "hungry.attempt1.out").read_text() == "attempt with 100M\n"
    assert (folder / "hungry.attempt2.err").read_text() == "killed at 200M\n"
    assert (folder / "hungry.out").read_text() == "attempt with 400M\n"
    record = read_journal(tmp_path / "w").jobs[0]
    assert record.status is JobStatus.SUCCESSFUL
    assert [a["attempt"] for a in record.attempts] == [1, 2]
    assert record.attempts[0]["request"] == {"memory": "100M"}
    assert record.attempts[0]["next"] == {"memory": "200M"}
    assert record.as_dict()["attempts"][1]["reason"] == "out_of_memory"


def test_job_run_retry_wins_over_the_runners(tmp_path: Path) -> None:
    runner = MemoryHungry(needs=parse_memory("300M"), retry=Retry())
    results = SingleJob("once", "true\n").run(
        jobrunner=runner,
        jobmanager=JobManager(tmp_path / "w"),
        memory="100M",
        retry=Retry(attempts=2),
    )
    assert results.status is JobStatus.CRASHED
    assert results.reason == "out_of_memory"
    assert runner.requests == ["100M", "200M"]
    assert results.error == "killed at 200M\n(not run again: out_of_memory on attempt 2 of 2)"


def test_no_retry_runs_a_job_once(tmp_path: Path) -> None:
    runner = MemoryHungry(needs=parse_memory("300M"))
    results = SingleJob("once", "true\n").run(
        jobrunner=runner, jobmanager=JobManager(tmp_path / "w"), memory="100M"
    )
    assert results.status is JobStatus.CRASHED
    assert results.attempts == ()
    assert results.error == "killed at 100M"


def test_a_retry_that_is_not_a_retry_is_refused_at_run(tmp_path: Path) -> None:
    job = SingleJob("bad", "true\n")
    with pytest.raises(TypeError, match=r"retry must be a runner_core\.Retry"):
        job.run(jobrunner=JobRunner(), jobmanager=JobManager(tmp_path / "w"), retry=3)  # type: ignore[arg-type]
    assert job.results.status is JobStatus.FAILED
    with pytest.raises(TypeError, match=r"retry must be a runner_core\.Retry or None"):
        JobRunner(retry={"attempts": 3})  # type: ignore[arg-type]


def test_a_local_job_that_crashes_is_run_again_when_crashed_is_named(tmp_path: Path) -> None:
    marker = tmp_path / "tried"
    script = (
        f"if [ -e '{marker}' ]; then echo second; else touch '{marker}'; echo first; exit 3; fi\n"
    )
    runner = JobRunner(parallel=True, maxjobs=1, retry=Retry(on=["crashed"]))
    job = SingleJob("flaky", script)
    results = job.run(jobrunner=runner, jobmanager=JobManager(tmp_path / "w"))
    assert results.wait(TIMEOUT).ok
    assert [(a.reason, a.exit_code) for a in results.attempts] == [("crashed", 3)]
    assert (Path(str(job.path)) / "flaky.attempt1.out").read_text() == "first\n"
    assert (Path(str(job.path)) / "flaky.out").read_text() == "second\n"
    assert results.attempts[0].started_at is not None
    assert results.attempts[0].finished_at is not None


class DetachedTimeouts(JobRunner):
    """Detaches every job and ends it from another thread: `timeout` while walltime < 1 h.

    Stands in for a scheduler's poller, which ends detached jobs in its own thread.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(parallel=True, **kwargs)
        self.walltimes: list[Any] = []

    def call(  # type: ignore[override]
        self, runscript: str, workdir: str, out: Optional[str], err: str, runflags: Any
    ) -> int:
        self.walltimes.append(runflags.get("walltime"))
        completion = detach_job()
        enough = runflags.get("walltime") in ("1:00:00", "2:00:00")

        def end() -> None:
            time.sleep(0.01)
            if enough:
                completion.complete(0)
            else:
                completion.complete(1, reason="timeout")

        threading.Thread(target=end).start()
        return 0


def test_a_detached_job_out_of_time_runs_again_from_the_thread_that_ended_it(
    tmp_path: Path,
) -> None:
    runner = DetachedTimeouts(retry=Retry(attempts=4))
    jobs = [SingleJob(f"slow{i}", "true\n") for i in range(5)]
    results = [
        job.run(jobrunner=runner, jobmanager=JobManager(tmp_path / "w"), walltime="0:15:00")
        for job in jobs
    ]
    runner.shutdown(cancel=False, timeout=TIMEOUT)  # closed: the next attempts still run
    for r in results:
        assert r.status is JobStatus.SUCCESSFUL
        assert [a.request["walltime"] for a in r.attempts] == ["0:15:00", "0:30:00"]
    assert runner.walltimes.count("1:00:00") == 5


def test_a_job_cancelled_between_attempts_is_not_run_again(tmp_path: Path) -> None:
    gate = threading.Event()

    class Blocking(MemoryHungry):
        def call(self, *args: Any) -> int:  # type: ignore[override]
            code = super().call(*args)
            results = current_results()
            assert results is not None
            if len(self.requests) == 1:
                results.job.cancel()  # the job is cancelled as its first attempt ends
            gate.set()
            return code

    runner = Blocking(needs=parse_memory("1G"), parallel=True, retry=Retry())
    results = SingleJob("stop", "true\n").run(
        jobrunner=runner, jobmanager=JobManager(tmp_path / "w"), memory="100M"
    )
    assert results.wait(TIMEOUT).status is JobStatus.CANCELLED
    assert runner.requests == ["100M"]
    assert results.attempts == ()


_DRIVER = r"""
import sys
from runner_core import JobManager, JobRunner, Retry, SingleJob
job = SingleJob("resumed", sys.argv[2])
runner = JobRunner(parallel=True, retry=Retry(on=["crashed"], attempts=int(sys.argv[3])))
job.run(jobrunner=runner, jobmanager=JobManager(sys.argv[1], resume=True), memory="1G")
runner.wait()
"""


def test_a_resume_carries_the_attempts_on(tmp_path: Path) -> None:
    # The first driver is killed during the second attempt; the resume goes on with
    # attempt 2, so with attempts=2 a second crash ends the job.
    marker = tmp_path / "first-done"
    script = f"if [ -e '{marker}' ]; then sleep 60; else touch '{marker}'; exit 5; fi\n"
    folder = tmp_path / "w"
    driver = subprocess.Popen(
        [sys.executable, "-c", _DRIVER, str(folder), script, "2"],
        start_new_session=True,
    )
    try:
        wait_until(
            lambda: bool(read_journal(folder).jobs and read_journal(folder).jobs[0].attempts),
            "the first attempt on record",
        )
        wait_until(lambda: read_journal(folder).jobs[0].pid is not None, "attempt 2 running")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    record = read_journal(folder).jobs[0]
    assert record.status is JobStatus.RUNNING
    assert record.attempts[0]["reason"] == "crashed"
    marker.unlink()  # the resumed attempt crashes again

    job = SingleJob("resumed", script)
    runner = JobRunner(retry=Retry(on=["crashed"], attempts=2))
    results = job.run(jobrunner=runner, jobmanager=JobManager(folder, resume=True), memory="1G")
    assert results.status is JobStatus.CRASHED
    assert results.attempt == 2
    assert results.attempts[0].exit_code == 5
    assert results.error is not None
    assert "not run again: crashed on attempt 2 of 2" in results.error


def test_default_on_is_read_only_for_users() -> None:
    assert DEFAULT_ON["out_of_memory"] == {"memory": 2}
    retry = Retry()
    assert retry.on is not DEFAULT_ON
