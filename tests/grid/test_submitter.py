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
from typing import TYPE_CHECKING, Any

import pytest

from runner_core import JobManager, JobStatus, SingleJob
from runner_grid import GridRunner, Scheme
from runner_grid._submitter import classify_refusal, new_tag
from runner_grid.schemes import SCHEMES, pbs, sge, slurm
from runner_settings import Settings

if TYPE_CHECKING:
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
    assert view.submit_faults["retry"]
    assert view.submit_faults["uncertain"]
    assert view.get("find_tag")("t-1")  # type: ignore[misc]
