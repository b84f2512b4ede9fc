"""Type-checked only (mypy --strict): runner_core's decorated methods keep their signatures."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Optional, Union

from typing_extensions import assert_type

from runner_core import (
    JobManager,
    JobRunner,
    JobStatus,
    Results,
    SingleJob,
    report_failure,
)
from runner_core._runner import _in_limited_thread, _limit

if TYPE_CHECKING:
    from runner_settings import Settings


class MyRunner(JobRunner):
    """A subclass whose call the metaclass wraps at run time."""

    def call(
        self, runscript: str, workdir: str, out: Optional[str], err: str, runflags: Settings
    ) -> int:
        code = super().call(runscript, workdir, out, err, runflags)
        if code:
            report_failure("it failed")
        return code


class Decorated(JobRunner):
    """The decorators applied by hand keep the exact signature."""

    @_limit
    def tagged(self, tag: str, *, times: int = 1) -> list[str]:
        return [tag] * times

    @_in_limited_thread
    def background(self, job: SingleJob, note: str) -> None:
        pass


def check(runner: MyRunner, decorated: Decorated, job: SingleJob, flags: Settings) -> None:
    assert_type(runner.call("a.run", "/w", None, "/w/a.err", flags), int)
    assert_type(JobRunner().call("a.run", "/w", "/w/a.out", "/w/a.err", flags), int)
    runner.call("a.run", "/w", None, "/w/a.err")  # type: ignore[call-arg]
    runner.call(1, "/w", None, "/w/a.err", flags)  # type: ignore[arg-type]

    assert_type(decorated.tagged("x", times=2), list[str])
    decorated.tagged("x", times="2")  # type: ignore[arg-type]
    decorated.tagged(3)  # type: ignore[arg-type]
    assert_type(decorated.background(job, "n"), None)
    decorated.background(job)  # type: ignore[call-arg]

    results = job.run(jobrunner=runner, jobmanager=JobManager("w"), queue="short")
    assert_type(results, Results)
    assert_type(results.wait(timeout=1.0), Results)
    assert_type(results.status, JobStatus)
    assert_type(results.exit_code, Optional[int])
    assert_type(results.status.done, bool)
    job.run(jobrunner="local")  # type: ignore[arg-type]
    assert_type(JobManager("w", resume="unfinished").resume, Union[bool, Literal["unfinished"]])
    JobManager("w", resume="all")  # type: ignore[arg-type]
    runner.wait(timeout=2)
    runner.shutdown(cancel=True)
    with JobRunner(parallel=True) as same:
        assert_type(same, JobRunner)
