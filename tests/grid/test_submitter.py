"""Transient submit faults: retried with back-off, and looked up by tag so no job is queued twice.

`tsub`, `tstat` and `tlook` are PATH shims standing in for a scheduler's submit, queue
check and tag lookup. They fail on demand in the ways a real one does only now and then:
a refusal that queued nothing ("try again later"), a reply lost after the job was queued
(socket time-out), the same before it was queued, and a submit command that hangs after
queueing until the runner's time-out kills it. A queued job "runs" by writing its exit
code at once; the real schedulers are exercised by tests/integration/test_submit_faults.py.
"""

from __future__ import annotations

import os
import sys
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import pytest

from runner_core import JobManager, JobStatus, SingleJob
from runner_grid import GridRunner, Listing, Scheduler, Scheme
from runner_grid._submitter import (
    SubmitOutcome,
    classify_refusal,
    find_recorded,
    new_tag,
    submit_job,
)
from runner_grid.schemes import SCHEMES, pbs, sge, slurm
from runner_grid.schemes.slurm import Slurm
from runner_settings import Settings

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

TIMEOUT = 60.0

SHIM = r"""
import os, sys, time
state = os.environ["TFAKE_DIR"]
name = os.path.basename(sys.argv[0])
args = sys.argv[1:]

def take_fault():
    # the next fault from TFAKE_FAULTS (comma separated), consumed one per submit call
    path = os.path.join(state, "faults")
    faults = open(path).read().split(",") if os.path.exists(path) else []
    if not faults or not faults[0]:
        return ""
    open(path, "w").write(",".join(faults[1:]))
    return faults[0]

def queue(tag):
    counter = os.path.join(state, "counter")
    n = int(open(counter).read()) + 1 if os.path.exists(counter) else 500
    open(counter, "w").write(str(n))
    open(os.path.join(state, f"{n}.tag"), "w").write(tag)
    script = args[-1]
    exit_file = script[: -len(".grid")] + ".exitcode"
    open(exit_file, "w").write("0\n")
    return n

if name == "tsub":
    tag = next((a.split("=", 1)[1] for a in args if a.startswith("--comment=")), "")
    fault = take_fault()
    with open(os.path.join(state, "calls.log"), "a") as fh:
        fh.write((fault or "ok") + "\n")
    if fault == "retry":
        print("tsub: error: Slurm temporarily unable to accept job, try again", file=sys.stderr)
        sys.exit(1)
    if fault == "pbs-busy":  # what a real OpenPBS 23.06 site printed for 2 of 20 jobs
        print("qsub: Server temporarily unavailable, please try again later", file=sys.stderr)
        sys.exit(1)
    if fault == "lost-before":
        print("tsub: error: Socket timed out on send/recv operation", file=sys.stderr)
        sys.exit(1)
    n = queue(tag)
    if fault == "lost-after":
        print("tsub: error: Socket timed out on send/recv operation", file=sys.stderr)
        sys.exit(1)
    if fault == "hang-after":
        time.sleep(30)
    if fault == "bad":
        print("tsub: error: invalid partition specified: nope", file=sys.stderr)
        sys.exit(1)
    print("Submitted batch job", n)
elif name == "tstat":
    pass  # every job has left the queue at once
elif name == "tlook":
    if take_fault() == "lookup-fails":
        print("tlook: error: cannot connect", file=sys.stderr)
        sys.exit(1)
    for f in sorted(os.listdir(state)):
        if f.endswith(".tag") and open(os.path.join(state, f)).read() == args[0]:
            print(f[: -len(".tag")])
"""


@pytest.fixture
def tfake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shims' state folder; the shims are first on PATH."""
    state = tmp_path / "tsched"
    state.mkdir()
    bin_dir = tmp_path / "tbin"
    bin_dir.mkdir()
    for name in ("tsub", "tstat", "tlook"):
        (bin_dir / name).write_text(f"#!{sys.executable}\n{SHIM}")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("TFAKE_DIR", str(state))
    return state


def parse_tag(tag: str, returncode: int, stdout: str, stderr: str) -> str | None:
    """The id `tlook` printed; a failed lookup tells nothing."""
    if returncode != 0:
        raise ValueError(stderr.strip())
    return stdout.split(maxsplit=1)[0] if stdout.strip() else None


def scheme(**extra: Any) -> Settings:
    s = Settings(
        {
            "workdir": "-D",
            "output": "-o",
            "error": "-e",
            "special": {"name": "-J ", "comment": "--comment="},
            "commands": {
                "submit": "tsub",
                "getid": lambda out: out.split()[-1] if out.strip() else None,
                "check": "tstat",
                "running": lambda out: out.split(),
                "find_tag": lambda tag: [["tlook", tag]],
                "parse_tag": parse_tag,
            },
            "tag_flag": "--comment=",
            "submit_retries": 3,
            "submit_backoff": 0.01,
            "submit_faults": {"retry": ["temporarily unable"], "uncertain": ["Socket timed out"]},
        }
    )
    s.update(extra)
    return s


class TFake(Scheduler):
    """The shims' scheduler as a class of the typed contract; `scheme()` says it as a Settings."""

    name = "tfake"
    submit_command = "tsub"
    workdir_flag, output_flag, error_flag = "-D", "-o", "-e"
    tag_flag = "--comment="
    submit_backoff = 0.01
    submit_faults = MappingProxyType(
        {"retry": ("temporarily unable",), "uncertain": ("Socket timed out",)}
    )

    def parse_id(self, output: str) -> str | None:
        return output.rsplit(maxsplit=1)[-1] if output.strip() else None

    def check_argvs(self, ids: Sequence[str]) -> list[list[str]]:
        return [["tstat"]]

    def parse_listing(self, output: str) -> Listing:
        return Listing(output.split(), [])

    def find_tag_argvs(self, tag: str) -> list[list[str]]:
        return [["tlook", tag]]

    def parse_tag(self, tag: str, returncode: int, stdout: str, stderr: str) -> str | None:
        return parse_tag(tag, returncode, stdout, stderr)


#: The shims' scheduler both ways: a scheme Settings adapted, and the class.
SCHEDULERS: dict[str, Callable[..., Scheduler]] = {
    "settings": lambda **extra: Scheme.of(scheme(**extra)),
    "class": lambda **extra: TFake(),
}


def submit_directly(
    tmp_path: Path, scheduler: Scheduler, stop: bool = False
) -> tuple[SubmitOutcome, list[float]]:
    """`submit_job` of one job, as GridRunner calls it; the back-offs it waited."""
    script = tmp_path / "job.grid"
    script.write_text("")
    tag = scheduler.new_tag("job.run", {})
    argv = scheduler.submit_argv(str(script), str(tmp_path), None, str(tmp_path / "e"), {}, tag)
    waits: list[float] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return stop

    return submit_job(scheduler, argv, tag, wait), waits


@pytest.mark.parametrize("way", sorted(SCHEDULERS))
@pytest.mark.parametrize(
    ("faults", "tries_and_waits"),
    [
        ("", (["ok"], [])),
        ("retry,retry", (["retry", "retry", "ok"], [0.01, 0.02])),
        ("lost-before", (["lost-before", "ok"], [0.01])),
        ("lost-after", (["lost-after"], [])),
        ("retry,lost-after", (["retry", "lost-after"], [0.01])),
    ],
)
def test_submit_job_queues_every_job_exactly_once(
    tfake: Path,
    tmp_path: Path,
    way: str,
    faults: str,
    tries_and_waits: tuple[list[str], list[float]],
) -> None:
    tries, waits = tries_and_waits
    (tfake / "faults").write_text(faults)
    outcome, waited = submit_directly(tmp_path, SCHEDULERS[way]())
    assert outcome == SubmitOutcome("500", None)
    assert calls(tfake) == tries
    assert queued(tfake) == 1
    assert waited == waits


@pytest.mark.parametrize("way", sorted(SCHEDULERS))
def test_submit_job_fails_at_once_on_a_permanent_refusal(
    tfake: Path, tmp_path: Path, way: str
) -> None:
    (tfake / "faults").write_text("bad")
    outcome, waited = submit_directly(tmp_path, SCHEDULERS[way]())
    assert outcome.jobid is None
    assert (outcome.error or "").startswith(
        "the submit command failed with exit status 1: tsub: error: invalid partition specified"
    )
    assert "command: tsub -D " in (outcome.error or "")
    assert (calls(tfake), waited) == (["bad"], [])


@pytest.mark.parametrize("way", sorted(SCHEDULERS))
def test_submit_job_stops_retrying_when_the_runner_cancels(
    tfake: Path, tmp_path: Path, way: str
) -> None:
    (tfake / "faults").write_text("retry,retry")
    outcome, waited = submit_directly(tmp_path, SCHEDULERS[way](), stop=True)
    assert (outcome.error or "").startswith("not submitted again: the runner is cancelling.")
    assert (calls(tfake), waited, queued(tfake)) == (["retry"], [0.01], 0)


def test_submit_job_of_a_scheduler_that_cannot_find_tags_never_submits_twice(
    tfake: Path, tmp_path: Path
) -> None:
    class NoLookup(TFake):
        def find_tag_argvs(self, tag: str) -> list[list[str]]:
            raise AssertionError("cannot look tags up")

        @property
        def can_find_tags(self) -> bool:
            return False

    (tfake / "faults").write_text("lost-after")
    outcome, _waited = submit_directly(tmp_path, NoLookup())
    assert "cannot look it up by a tag" in (outcome.error or "")
    assert calls(tfake) == ["lost-after"]


def test_submit_job_fails_when_the_id_parser_raises(tfake: Path, tmp_path: Path) -> None:
    class BadParser(TFake):
        def parse_id(self, output: str) -> str | None:
            raise IndexError("no such line")

    outcome, _waited = submit_directly(tmp_path, BadParser())
    assert outcome.jobid is None
    assert "raised IndexError('no such line')" in (outcome.error or "")
    assert "the output of tsub -D" in (outcome.error or "")


def test_submit_job_without_an_id_in_the_output_fails(tfake: Path, tmp_path: Path) -> None:
    class NoId(TFake):
        def parse_id(self, output: str) -> str | None:
            return None

    outcome, _waited = submit_directly(tmp_path, NoId())
    assert (outcome.error or "").startswith("the submit command printed no job id: tsub -D")
    assert "stdout: Submitted batch job 500" in (outcome.error or "")


def test_find_recorded_finds_a_job_or_a_task_by_its_tag() -> None:
    class Found(Slurm):
        def find_tag_argvs(self, tag: str) -> list[list[str]]:
            return [[sys.executable, "-c", f"print('4711|{tag}')"]]

    assert find_recorded(Found(), "job-1a2b3c4d") == "4711"
    assert find_recorded(Found(), "job-1a2b3c4d/3") == "4711_3"
    assert find_recorded(Found(), None) is None
    assert find_recorded(Found(), "") is None


def test_find_recorded_refuses_when_the_lookup_cannot_tell() -> None:
    class Failing(Slurm):
        def find_tag_argvs(self, tag: str) -> list[list[str]]:
            return [[sys.executable, "-c", "import sys; sys.exit('squeue: error: down')"]]

    with pytest.raises(RuntimeError, match=r"squeue: error: down.*not submitted again"):
        find_recorded(Failing(), "job-1a2b3c4d")
    settings = Settings(slurm.scheme())
    settings.commands.find_tag = Failing().find_tag_argvs
    with pytest.raises(RuntimeError, match="not submitted again"):
        find_recorded(Scheme.of(settings), "job-1a2b3c4d/2")


def run_one(state: Path, tmp_path: Path, faults: str, **extra: Any) -> Any:
    (state / "faults").write_text(faults)
    runner = GridRunner(grid=scheme(**extra), sleepstep=0.02)
    results = SingleJob(name="faulty", runscript="exit 0\n").run(
        jobrunner=runner, jobmanager=JobManager(tmp_path / "w")
    )
    runner.wait(timeout=TIMEOUT)
    return results


def queued(state: Path) -> int:
    return len(list(state.glob("*.tag")))


def calls(state: Path) -> list[str]:
    return (state / "calls.log").read_text().split()


@pytest.mark.parametrize(
    ("faults", "tries", "how"),
    [
        ("retry,retry", ["retry", "retry", "ok"], "refused twice, then queued"),
        (
            "lost-before",
            ["lost-before", "ok"],
            "lost before queueing: not found, tried again",
        ),
        ("lost-after", ["lost-after"], "reply lost after queueing: found by its tag"),
        ("retry,lost-after", ["retry", "lost-after"], "refused, then reply lost: found"),
    ],
)
def test_every_transient_fault_ends_with_the_job_queued_exactly_once(
    tfake: Path, tmp_path: Path, faults: str, tries: list[str], how: str
) -> None:
    results = run_one(tfake, tmp_path, faults)
    assert results.status is JobStatus.SUCCESSFUL, (how, results.error)
    assert calls(tfake) == tries, how
    assert queued(tfake) == 1, how
    assert results.jobid == "500"


def test_a_submit_that_hangs_after_queueing_is_found_by_its_tag(
    tfake: Path, tmp_path: Path
) -> None:
    results = run_one(tfake, tmp_path, "hang-after", submit_timeout=1)
    assert results.ok, results.error
    assert calls(tfake) == ["hang-after"]
    assert queued(tfake) == 1


def test_pbs_temporarily_unavailable_is_tried_again(tfake: Path, tmp_path: Path) -> None:
    results = run_one(tfake, tmp_path, "pbs-busy,pbs-busy", submit_faults=pbs.SUBMIT_FAULTS)
    assert results.status is JobStatus.SUCCESSFUL, results.error
    assert calls(tfake) == ["pbs-busy", "pbs-busy", "ok"]
    assert queued(tfake) == 1


@pytest.mark.parametrize("name", ["slurm", "sge", "pbs"])
@pytest.mark.parametrize(
    "message",
    [
        "Server temporarily unavailable, please try again later",
        "error: Resource temporarily unavailable",
        "submission refused by the site filter: please TRY AGAIN LATER",
        "error: connect failed: Connection refused",
        "error: No route to host",
        "error: Network is unreachable",
    ],
)
def test_every_predefined_scheme_retries_the_generic_transient_refusals(
    name: str, message: str
) -> None:
    faults = Scheme.of(SCHEMES[name](), name).submit_faults
    assert classify_refusal(faults, message) == "retry"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("slurm", "sbatch: error: Batch job submission failed: Invalid partition name specified"),
        ("slurm", "sbatch: error: Invalid --distribution specification"),
        ("slurm", "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy"),
        ("sge", 'Unable to run job: Job was rejected because job requests unknown queue "x".'),
        ("sge", "qsub: Unknown option -bogus"),
        ("pbs", "qsub: Unknown queue"),
        ("pbs", "qsub: illegal -l value"),
        ("pbs", "qsub: Job exceeds queue resource limits"),
    ],
)
def test_a_permanent_refusal_of_any_scheme_fails_at_once(name: str, message: str) -> None:
    faults = Scheme.of(SCHEMES[name](), name).submit_faults
    assert classify_refusal(faults, message) == "fail"


@pytest.mark.parametrize(
    ("name", "message"),
    [  # as the real schedulers print them (SLURM 22.05 and Grid Engine 8.1.9 on this machine)
        (
            "slurm",
            "sbatch: error: QOSMaxSubmitJobPerUserLimit\nsbatch: error: Batch job submission "
            "failed: Job violates accounting/QOS policy (job submit limit, user's size and/or "
            "time limits)",
        ),
        ("slurm", "sbatch: error: AssocMaxSubmitJobLimit\nsbatch: error: Batch job submission"),
        ("slurm", "sbatch: error: AssocGrpSubmitJobsLimit"),
        (
            "sge",
            "Unable to run job: job rejected: only 5 jobs are allowed per user (current job "
            "count: 5)\nExiting.",
        ),
        ("pbs", "qsub: Maximum number of jobs already in queue"),
    ],
)
def test_a_limit_on_queued_jobs_of_any_scheme_is_back_pressure(name: str, message: str) -> None:
    faults = Scheme.of(SCHEMES[name](), name).submit_faults
    assert classify_refusal(faults, message) == "limit"


def test_a_limit_refusal_is_not_retried_and_says_so(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    tsub = tmp_path / "tsub"
    tsub.write_text(
        f"#!/bin/sh\necho x >> {calls}\n"
        "echo 'tsub: error: QOSMaxSubmitJobPerUserLimit' >&2\nexit 1\n"
    )
    tsub.chmod(0o755)
    scheme = Scheme.of(
        {
            "workdir": "-D", "output": "-o", "error": "-e",
            "commands": {"submit": str(tsub), "getid": str.strip, "check": "true",
                         "running": str.split},
            "submit_faults": {"retry": ["QOS"], "limit": ["QOSMaxSubmitJob"]},
        }
    )  # fmt: skip
    outcome = submit_job(scheme, [str(tsub), "x.run"], None, lambda seconds: False)
    assert outcome.limited  # "limit" wins over "retry"
    assert outcome.jobid is None
    assert "QOSMaxSubmitJobPerUserLimit" in (outcome.error or "")
    assert calls.read_text().count("x") == 1  # no retries: the runner waits for room instead


def test_an_uncertain_fault_wins_over_a_refusal() -> None:
    faults = {"retry": ["try again later"], "uncertain": ["timed out"]}
    assert classify_refusal(faults, "timed out; try again later") == "uncertain"
    assert classify_refusal({}, "try again later") == "fail"  # a scheme without faults


def test_a_permanent_failure_is_not_retried(tfake: Path, tmp_path: Path) -> None:
    results = run_one(tfake, tmp_path, "bad")
    assert (results.status, results.reason) == (JobStatus.FAILED, "submit_failed")
    assert "invalid partition" in (results.error or "")
    assert calls(tfake) == ["bad"]


def test_retries_run_out_with_the_last_error(tfake: Path, tmp_path: Path) -> None:
    results = run_one(tfake, tmp_path, "retry,retry,retry", submit_retries=2)
    assert (results.status, results.reason) == (JobStatus.FAILED, "submit_failed")
    assert "gave up after 3 tries" in (results.error or "")
    assert queued(tfake) == 0


def test_an_uncertain_fault_without_a_tag_lookup_is_not_tried_again(
    tfake: Path, tmp_path: Path
) -> None:
    bare = scheme()
    del bare["commands"]["find_tag"]
    del bare["commands"]["parse_tag"]
    (tfake / "faults").write_text("lost-after")
    runner = GridRunner(grid=bare, sleepstep=0.02)
    results = SingleJob(name="faulty", runscript="exit 0\n").run(
        jobrunner=runner, jobmanager=JobManager(tmp_path / "w")
    )
    runner.wait(timeout=TIMEOUT)
    assert results.status is JobStatus.FAILED
    assert "not submitted again" in (results.error or "")
    assert calls(tfake) == ["lost-after"]  # never twice: it was queued


def test_a_user_flag_on_the_tag_flag_turns_the_lookup_off(tfake: Path, tmp_path: Path) -> None:
    (tfake / "faults").write_text("lost-after")
    runner = GridRunner(grid=scheme(), sleepstep=0.02)
    results = SingleJob(name="faulty", runscript="exit 0\n").run(
        jobrunner=runner, jobmanager=JobManager(tmp_path / "w"), comment="mine"
    )
    runner.wait(timeout=TIMEOUT)
    assert results.status is JobStatus.FAILED  # no tag of ours: cannot tell, so not again
    assert calls(tfake) == ["lost-after"]


def test_a_failing_lookup_does_not_submit_again(tfake: Path, tmp_path: Path) -> None:
    results = run_one(tfake, tmp_path, "lost-after,lookup-fails,lookup-fails", submit_retries=1)
    assert results.status is JobStatus.FAILED
    assert "could not be searched" in (results.error or "")
    assert queued(tfake) == 1
    assert calls(tfake) == ["lost-after"]


def test_tags_are_unique_and_valid_job_names() -> None:
    tags = {new_tag("1st run with spaces/and:colons") for _ in range(200)}
    assert len(tags) == 200
    for tag in tags:
        assert len(tag) <= 15
        assert tag[0].isalpha()
        assert all(c.isalnum() or c in "_-" for c in tag)


# --- the schemes' tag lookups, on outputs as the real commands print them ----------------

SQUEUE_TAGS = "1889|(null)\n1896|tagtest-1234\n1897_3|other-0000\n"
QSTAT_J = (
    "==============================================================\n"
    "job_number:                 90\nexec_file:                  job_scripts/90\n"
)
QACCT_J = "==============================================================\nqname        all.q\n"
QACCT_J += "hostname     vm\ngroup        root\nowner        root\njobname      lost_r-0d93109d\n"
QACCT_J += "jobnumber    97\n"


@pytest.mark.parametrize(
    ("parse", "answer", "found"),
    [
        (slurm.parse_tag, (0, SQUEUE_TAGS, ""), "1896"),
        (slurm.parse_tag, (0, "1889|(null)\n", ""), None),
        (sge.parse_tag, (0, QSTAT_J, ""), "90"),
        (sge.parse_tag, (1, "Following jobs do not exist: \ntagtest-1234\n", ""), None),
        (sge.parse_tag, (0, QACCT_J, ""), "97"),
        (sge.parse_tag, (1, "", "error: job name tagtest-1234 not found\n"), None),
        (pbs.parse_tag, (0, "12.pbsvm\n", ""), "12.pbsvm"),
        (pbs.parse_tag, (0, "", ""), None),
    ],
)
def test_scheme_tag_parsers(parse: Any, answer: tuple[int, str, str], found: str | None) -> None:
    assert parse("tagtest-1234", *answer) == found


@pytest.mark.parametrize("parse", [slurm.parse_tag, sge.parse_tag, pbs.parse_tag])
def test_a_failed_lookup_tells_nothing(parse: Any) -> None:
    with pytest.raises(ValueError, match="cannot connect"):
        parse("tagtest-1234", 1, "", "error: cannot connect to server\n")


@pytest.mark.parametrize("name", ["slurm", "sge", "pbs"])
def test_every_predefined_scheme_looks_its_tags_up(name: str) -> None:
    view = Scheme.of(SCHEMES[name](), name)
    assert view.tag_flag
    assert view.can_find_tags
    assert view.submit_faults["retry"]
    assert view.submit_faults["uncertain"]
    assert view.find_tag_argvs("t-1")
