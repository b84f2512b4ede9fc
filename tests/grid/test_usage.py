"""runner_grid._usage: what recorded jobs used, from sacct and qacct (outputs recorded on the
test cluster's SLURM 22.05.8 and Grid Engine), and `GridRunner.usage_recorded`."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING, Any, Optional

import pytest

from runner_core import JobRecord
from runner_grid._usage import (
    SACCT_BY_IDS,
    parse_qacct,
    parse_sacct,
    sacct_argvs,
    slurm_bytes,
    slurm_seconds,
    usage_of_records,
)
from runner_grid.schemes.sge import GridEngine
from runner_grid.schemes.slurm import Slurm

if TYPE_CHECKING:
    from collections.abc import Sequence

    from runner_grid.schemes._base import Scheduler

MB = 1024 * 1024

#: `sacct -j 19793_1,19793_2,19793_3 --noheader --parsable2 --format=...` on the test cluster:
#: an array of three tasks asking for --mem=100M: one held 60 MB for 3 s, one was killed
#: over its memory, one exited 4.
SACCT = """\
19793_1|COMPLETED||00:00.078|00:00:03|100M|1|UNLIMITED
19793_1.batch|COMPLETED|78076K|00:00.078|00:00:03||1|
19793_2|OUT_OF_MEMORY||00:00.095|00:00:00|100M|1|UNLIMITED
19793_2.batch|OUT_OF_MEMORY|1080K|00:00.095|00:00:00||1|
19793_3|FAILED||00:00.004|00:00:00|100M|1|UNLIMITED
19793_3.batch|FAILED|3256K|00:00.004|00:00:00||1|
"""

#: `qacct -j 1073` on the test cluster: `-l h_rt=60,h_vmem=200M -pe smp 2`, 50 MB for 3 s.
QACCT = """\
==============================================================
qname        all.q
hostname     vm
owner        root
jobname      python3
jobnumber    1073
taskid       undefined
granted_pe   smp
slots        2
failed       0
exit_status  0
ru_wallclock 3s
ru_maxrss    57.961KB
cpu          0.052s
maxvmem      59.805MB
category     -l h_rt=60,h_vmem=200M -pe smp 2
"""


def test_sacct_gives_peak_memory_of_the_steps_cpu_and_the_request() -> None:
    usage = parse_sacct(SACCT)
    assert set(usage) == {"19793_1", "19793_2", "19793_3"}
    measured = usage["19793_1"]
    assert measured.memory == 78076 * 1024
    assert measured.memory_requested == 100 * MB
    assert measured.cpu == pytest.approx(0.078)
    assert measured.elapsed == 3.0
    assert measured.cores == 1
    assert measured.walltime_requested is None  # UNLIMITED
    assert usage["19793_2"].state == "OUT_OF_MEMORY"


def test_sacct_requests_per_cpu_count_for_every_cpu() -> None:
    """SLURM before 21.08 writes ReqMem per CPU ("c") or per node ("n")."""
    usage = parse_sacct("7|COMPLETED||01:02:03|1-00:00:00|2000Mc|4|2-00:00:00\n")
    assert usage["7"].memory_requested == 4 * 2000 * MB
    assert usage["7"].cpu == 3723.0
    assert usage["7"].elapsed == 86400.0
    assert usage["7"].walltime_requested == 2 * 86400.0
    assert usage["7"].memory is None  # no step line


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("00:00.078", 0.078), ("00:00:03", 3.0), ("1-02:03:04", 93784.0), ("59", 59.0),
     ("UNLIMITED", None), ("Partition_Limit", None), ("", None)],
)  # fmt: skip
def test_slurm_times(text: str, seconds: Optional[float]) -> None:
    assert slurm_seconds(text) == (pytest.approx(seconds) if seconds is not None else None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4640K", (4640 * 1024, "")), ("500M", (500 * MB, "")), ("1.5G", (1.5 * 1024 * MB, "")),
     ("4000Mn", (4000 * MB, "n")), ("1110016", (1110016, "")), ("", (None, ""))],
)  # fmt: skip
def test_slurm_sizes(text: str, expected: tuple[Optional[float], str]) -> None:
    assert slurm_bytes(text) == expected


def test_sacct_asks_by_ids_in_batches_and_by_time_span_for_many_jobs() -> None:
    ids = [str(i) for i in range(1200)]
    argvs = sacct_argvs(ids, window=(1_800_000_000.0, 1_800_003_600.0))
    assert [len(a[2].split(",")) for a in argvs] == [500, 500, 200]
    many = [str(i) for i in range(SACCT_BY_IDS + 1)]
    (argv,) = sacct_argvs(many, window=(1_800_000_000.0, 1_800_003_600.0))
    assert argv[0] == "sacct"
    assert any(a.startswith("--starttime=") for a in argv)
    assert not any(a == "-j" for a in argv)


def test_qacct_gives_maxvmem_cpu_and_the_request_per_slot_times_slots() -> None:
    usage = parse_qacct(QACCT)
    job = usage["1073"]
    assert job.memory == pytest.approx(59.805 * MB)
    assert job.memory_requested == 2 * 200 * MB
    assert job.cores == 2
    assert job.cpu == pytest.approx(0.052)
    assert job.elapsed == 3.0
    assert job.walltime_requested == 60.0


def test_qacct_tasks_are_told_apart() -> None:
    text = QACCT.replace("taskid       undefined", "taskid       4")
    assert set(parse_qacct(text)) == {"1073.4"}


# --- through a scheduler's one command runner --------------------------------------------------


class _Answers:
    """A scheduler's `run`, answering from a table and recording every command."""

    def __init__(self, returncode: int, stdout: str, stderr: str = "") -> None:
        self.argvs: list[list[str]] = []
        self.answer = (returncode, stdout, stderr)

    def __call__(
        self, argv: Sequence[str], *, timeout: Optional[float] = None
    ) -> subprocess.CompletedProcess[str]:
        self.argvs.append(list(argv))
        code, out, err = self.answer
        return subprocess.CompletedProcess(list(argv), code, out, err)


def _records(scheme: str, *ids: str) -> list[JobRecord]:
    records = []
    for n, jobid in enumerate(ids, start=1):
        record = JobRecord(n, f"job{n}", f"job{n}", f"/tmp/job{n}")
        record.jobid = jobid
        record.runner = {"kind": "grid", "scheme": scheme}
        records.append(record)
    return records


def _scheduler(cls: type[Scheduler], answers: _Answers) -> Scheduler:
    scheduler = cls()
    scheduler.run = answers  # type: ignore[method-assign]
    return scheduler


def test_usage_of_a_slurm_run_counts_earlier_attempts_and_names_the_missing() -> None:
    answers = _Answers(0, SACCT)
    records = _records("slurm", "19793_2", "555")
    extra: list[dict[str, Any]] = [{"attempt": 1, "jobid": "19793_1"}]
    try:
        records[0].attempts = extra  # type: ignore[attr-defined,unused-ignore]
    except AttributeError:
        pytest.skip("JobRecord has no `attempts` yet")
    found = usage_of_records({"slurm": records}, lambda name: _scheduler(Slurm, answers))

    assert set(found.usage) == {"19793_1", "19793_2"}
    assert found.absent_because == "sacct has no record of 1 of 3 jobs"
    (argv,) = answers.argvs
    assert argv[:3] == ["sacct", "-j", "19793_1,19793_2,555"]


def test_a_slurm_without_accounting_says_why() -> None:
    answers = _Answers(1, "", "sacct: error: Slurm accounting storage is disabled\n")
    found = usage_of_records(
        {"slurm": _records("slurm", "1")}, lambda name: _scheduler(Slurm, answers)
    )
    assert found.usage == {}
    assert found.absent_because is not None
    assert "SLURM keeps no job accounting here" in found.absent_because
    assert "accounting storage is disabled" in found.absent_because


def test_grid_engine_is_asked_job_by_job() -> None:
    answers = _Answers(0, QACCT)
    found = usage_of_records(
        {"sge": _records("sge", "1073")}, lambda name: _scheduler(GridEngine, answers)
    )
    assert answers.argvs == [["qacct", "-j", "1073"]]
    assert found.absent_because is None
    assert found.usage["1073"].cores == 2


def test_pbs_and_unknown_schedulers_say_what_is_missing() -> None:
    found = usage_of_records({"pbs": _records("pbs", "1.server")}, lambda name: None)
    assert found.absent_because == "the scheduler of scheme 'pbs' cannot be asked (see the log)"
    from runner_grid import GridRunner  # noqa: PLC0415 - the facade, as `runner report` loads it

    found = GridRunner.usage_recorded(_records("pbs", "1.server"))
    assert found.usage == {}
    assert "PBS" in (found.absent_because or "")
    assert "not supported yet" in (found.absent_because or "")


def test_jobs_that_never_reached_the_scheduler_ask_nothing() -> None:
    record = _records("slurm", "x")[0]
    record.jobid = None
    found = usage_of_records({"slurm": [record]}, lambda name: pytest.fail("asked"))
    assert found.usage == {}
    assert found.absent_because == "no job of scheme 'slurm' reached the scheduler"
