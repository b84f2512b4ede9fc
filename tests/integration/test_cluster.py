"""What the test cluster gives, as production clusters do: accounting, limits, failures on demand.

tools/slurm.sh starts SLURM with slurmdbd accounting, cgroup memory enforcement, partitions with
limits, partition-priority preemption and a QOS for limits; tools/sge.sh starts Grid Engine with
h_vmem a consumable per slot, a ``smp`` parallel environment and a settable ``max_u_jobs``. These
tests pin each of those, through the runner where the runner is involved, so a cluster that lost
one fails here and not in a test of the runner's retries. Each takes seconds; every change to
the cluster (a QOS limit, the node's state, max_u_jobs) is undone even when the test fails.
The time-limit case (SLURM TIMEOUT, Grid Engine h_rt) is in test_reasons.py.
"""

from __future__ import annotations

import getpass
import re
from typing import TYPE_CHECKING, Callable, Optional

import pytest

from integration._cluster import (
    TEST_QOS,
    admin,
    partition,
    run,
    sge_max_u_jobs,
    slurm_node_down,
    slurm_qos_limits,
    user_job_count,
)
from integration._schedulers import (
    PATIENCE,
    SCHEDULERS,
    SubmittedIds,
    cancel_ids,
    job_state,
    queue_ids,
    wait_for,
)
from runner_core import JobManager, JobStatus, SingleJob

if TYPE_CHECKING:
    from pathlib import Path

    from runner_grid import GridRunner

pytestmark = pytest.mark.integration

RunnerFactory = Callable[..., "GridRunner"]
ON_SLURM = pytest.mark.parametrize("scheduler", [SCHEDULERS["slurm"]], indirect=True)
ON_SGE = pytest.mark.parametrize("scheduler", [SCHEDULERS["sge"]], indirect=True)

#: A runscript that holds about 300 MB, three times the 100M it asks for. The allocation is its
#: last command, so the script's own exit status is the killed process's.
HOG = "python3 -c 'b = b\"x\" * (300 * 1024 * 1024)'\n"
MB = 1024 * 1024


def _sacct_end(jobid: str) -> Optional[tuple[int, Optional[str]]]:
    """How the job ended according to sacct alone, asked and read as runner_grid's SLURM does."""
    from runner_grid.schemes.slurm import Slurm  # noqa: PLC0415 - optional package

    scheduler = Slurm()
    (argv,) = [argv for argv in scheduler.end_argvs(jobid) if argv[0] == "sacct"]
    proc = scheduler.run(argv)
    assert proc.returncode == 0, proc.stderr
    return scheduler.parse_end(proc.stdout)


def _sbatch(*args: str) -> tuple[int, str, str]:
    """Submit a job with sbatch directly: (exit status, job id or "", standard error)."""
    proc = run("sbatch", "--parsable", "--output=/dev/null", "--error=/dev/null", *args)
    return proc.returncode, proc.stdout.strip().split(";")[0], proc.stderr


# --- SLURM ------------------------------------------------------------------------------------


@ON_SLURM
def test_a_job_over_its_memory_ends_out_of_memory_and_sacct_says_so(
    scheduler: str, make_runner: RunnerFactory, submitted: SubmittedIds, tmp_path: Path
) -> None:
    """memory="100M" is enforced (cgroup): a job holding 300 MB ends reason "out_of_memory"."""
    runner = make_runner()
    results = (
        SingleJob(name="hog", runscript=HOG)
        .run(jobrunner=runner, jobmanager=JobManager(tmp_path / "jobs"), memory="100M")
        .wait(timeout=PATIENCE)
    )

    assert results.reason == "out_of_memory", (results.status, results.exit_code, results.error)
    assert results.status is JobStatus.CRASHED
    assert results.exit_code not in (None, 0)
    # The accounting record says the same, read by the runner's own sacct query and parser
    # (what the runner falls back to once scontrol has forgotten the job, MinJobAge later).
    jobid = results.jobid
    assert jobid is not None
    end = wait_for(lambda: _sacct_end(jobid), f"sacct's end of job {jobid}")
    assert end[1] == "out_of_memory", end


@ON_SLURM
def test_sacct_has_a_finished_jobs_exit_code_and_memory_use(
    scheduler: str, make_runner: RunnerFactory, submitted: SubmittedIds, tmp_path: Path
) -> None:
    """Accounting: sacct gives a finished job's exit code (the runner's query) and its MaxRSS."""
    runner = make_runner()
    body = "python3 -c 'import time; b = b\"x\" * (80 * 1024 * 1024); time.sleep(2)'\nexit 3\n"
    results = (
        SingleJob(name="measured", runscript=body)
        .run(jobrunner=runner, jobmanager=JobManager(tmp_path / "jobs"))
        .wait(timeout=PATIENCE)
    )
    assert (results.status, results.exit_code) == (JobStatus.CRASHED, 3), results.error
    jobid = results.jobid
    assert jobid is not None

    assert wait_for(lambda: _sacct_end(jobid), f"sacct's end of job {jobid}") == (3, None)
    # jobacct_gather samples the batch step's memory: MaxRSS is on the ".batch" line.
    out = admin("sacct", "--noheader", "--parsable2", "--noconvert", f"--jobs={jobid}",
                "--format=JobID,MaxRSS,TotalCPU")  # fmt: skip
    rows = {line.split("|")[0]: line.split("|")[1:] for line in out.splitlines() if line}
    assert _bytes(rows[f"{jobid}.batch"][0]) >= 70 * MB, out


def _bytes(amount: str) -> int:
    """sacct's ``81234K`` (powers of 1024; no suffix: bytes) as bytes; 0 for an empty field."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", amount.strip())
    if match is None:
        return 0
    return int(float(match.group(1)) * 1024 ** " KMGT".index(match.group(2) or " "))


@ON_SLURM
def test_partition_limits_refuse_a_request_over_them(
    scheduler: str, make_runner: RunnerFactory, submitted: SubmittedIds, tmp_path: Path
) -> None:
    """Partition `short` has MaxTime and MaxMemPerNode, and a request over them is refused
    (EnforcePartLimits=ALL), not left pending forever; the default partition has no time limit."""
    short = partition("short")
    assert short["MaxTime"] != "UNLIMITED"
    assert short["MaxMemPerNode"].isdigit()
    assert short["Default"] == "NO"
    (default,) = [
        p for p in admin("scontrol", "show", "partition", "-o").splitlines() if "Default=YES" in p
    ]
    assert "MaxTime=UNLIMITED" in default

    # sbatch refuses it itself (the runner's own check, before sbatch, is the next test)
    status, jobid, said = _sbatch("-p", "short", "--time=10:00:00", "--wrap=true")
    assert status != 0, f"job {jobid} was queued"
    assert re.search(r"time limit", said), said

    memory = int(short["MaxMemPerNode"]) + 1
    status, jobid, said = _sbatch("-p", "short", f"--mem={memory}", "--wrap=true")
    assert status != 0, f"job {jobid} was queued"
    assert "Memory required by task is not available" in said


@ON_SLURM
def test_the_runner_refuses_a_walltime_over_maxtime_before_sbatch(
    scheduler: str, make_runner: RunnerFactory, submitted: SubmittedIds, tmp_path: Path
) -> None:
    """walltime 48:00:00 on `short` is refused at job.run(), naming MaxTime, and never submitted;
    the same job on `long` is submitted and runs."""
    runner = make_runner()
    manager = JobManager(tmp_path / "jobs")
    refused = SingleJob(name="toolong", runscript="exit 0\n")
    with pytest.raises(
        ValueError,
        match=r"^walltime 48:00:00 exceeds partition 'short' MaxTime 0:05:00 \(use partition "
        r"'\w+', or less walltime\)$",
    ):
        refused.run(jobrunner=runner, jobmanager=manager, walltime="48:00:00", queue="short")
    assert refused.results.status is JobStatus.FAILED
    assert refused.results.jobid is None
    assert not submitted.snapshot()

    fits = SingleJob(name="fits", runscript="exit 0\n")
    results = fits.run(jobrunner=runner, jobmanager=manager, walltime="48:00:00", queue="long")
    assert results.wait(timeout=PATIENCE).ok, (results.status, results.error)
    assert submitted.snapshot() == [results.jobid]


@ON_SLURM
def test_the_runner_refuses_a_request_over_its_qos_before_sbatch(
    scheduler: str, make_runner: RunnerFactory, submitted: SubmittedIds, tmp_path: Path
) -> None:
    """A QOS's MaxWall (read through sacctmgr) refuses walltime 0:20:00 with qos=TEST_QOS at
    job.run(): SLURM would keep such a job pending forever (QOSMaxWallDurationPerJobLimit). A
    job run again under a `Retry` grows only up to it."""
    with slurm_qos_limits(MaxWall="00:10:00"):
        runner = make_runner()  # reads the limits now, with the QOS limit on
        job = SingleJob(name="toolong", runscript="exit 0\n")
        with pytest.raises(
            ValueError, match=rf"^walltime 0:20:00 exceeds QOS '{TEST_QOS}' MaxWall 0:10:00 \("
        ):
            job.run(
                jobrunner=runner,
                jobmanager=JobManager(tmp_path / "jobs"),
                walltime="0:20:00",
                qos=TEST_QOS,
            )
        assert job.results.jobid is None
        assert not submitted.snapshot()
        grown = runner.grow_request({"walltime": "0:08:00", "qos": TEST_QOS}, {"walltime": 2})
        assert grown == ({"walltime": "0:10:00"}, None)


@ON_SLURM
def test_a_node_set_down_ends_its_running_job_node_fail(
    scheduler: str, make_runner: RunnerFactory, submitted: SubmittedIds, tmp_path: Path
) -> None:
    """`scontrol update nodename=localhost state=down` during a --no-requeue job: reason
    "node_fail"; the node is resumed afterwards and takes jobs again."""
    runner = make_runner()
    job = SingleJob(name="stranded", runscript="sleep 300\n")
    results = job.run(
        jobrunner=runner, jobmanager=JobManager(tmp_path / "jobs"), **{"no-requeue": True}
    )
    (jobid,) = wait_for(lambda: runner.queued, "the job in the runner's queue")
    wait_for(lambda: job_state(scheduler, jobid) == "RUNNING", f"job {jobid} running")

    with slurm_node_down():
        results.wait(timeout=PATIENCE)

    assert results.reason == "node_fail", (results.status, results.exit_code, results.error)
    assert results.status is JobStatus.CRASHED
    assert jobid not in queue_ids(scheduler)
    after = (
        SingleJob(name="after", runscript="exit 0\n")
        .run(jobrunner=runner, jobmanager=JobManager(tmp_path / "jobs"))
        .wait(timeout=PATIENCE)
    )
    assert after.ok, (after.status, after.error)


@ON_SLURM
def test_a_job_of_the_high_partition_preempts_one_of_long(
    scheduler: str, make_runner: RunnerFactory, submitted: SubmittedIds, tmp_path: Path
) -> None:
    """Preemption on demand: a job filling the node in `long` (PreemptMode=CANCEL) ends reason
    "preempted" when a job of `high` (a higher PriorityTier) needs a CPU."""
    cpus = re.search(r"\bCPUTot=(\d+)", admin("scontrol", "show", "node", "localhost"))
    assert cpus
    runner = make_runner()
    results = SingleJob(name="preemptee", runscript="sleep 300\n").run(
        jobrunner=runner,
        jobmanager=JobManager(tmp_path / "jobs"),
        partition="long",
        **{"cpus-per-task": int(cpus.group(1)), "mem": "1000M"},
    )
    (jobid,) = wait_for(lambda: runner.queued, "the job in the runner's queue")
    wait_for(lambda: job_state(scheduler, jobid) == "RUNNING", f"job {jobid} running")

    status, high, said = _sbatch("-p", "high", "--wrap=true")
    try:
        assert status == 0, said
        results.wait(timeout=PATIENCE)
    finally:
        cancel_ids(scheduler, [high])

    assert results.reason == "preempted", (results.status, results.exit_code, results.error)
    assert results.status is JobStatus.CRASHED


@ON_SLURM
def test_qos_limits_refuse_submissions_and_hold_jobs(scheduler: str) -> None:
    """QOS `limited`: MaxSubmitJobsPerUser makes sbatch refuse with QOSMaxSubmitJobPerUserLimit,
    MaxJobsPerUser keeps extra jobs pending with that reason; both reset after."""
    ids: list[str] = []
    try:
        with slurm_qos_limits(MaxSubmitJobsPerUser=1):
            status, jobid, said = _sbatch(f"--qos={TEST_QOS}", "--wrap=sleep 30")
            assert status == 0, said
            ids.append(jobid)
            status, jobid, said = _sbatch(f"--qos={TEST_QOS}", "--wrap=sleep 30")
            ids.append(jobid)
            assert status != 0, f"job {jobid} was queued over MaxSubmitJobsPerUser=1"
            assert "QOSMaxSubmitJobPerUserLimit" in said
            # the limit is the QOS's: the default QOS still takes jobs
            status, jobid, said = _sbatch("--hold", "--wrap=true")
            ids.append(jobid)
            assert status == 0, said
        with slurm_qos_limits(MaxJobsPerUser=1):
            status, jobid, said = _sbatch(f"--qos={TEST_QOS}", "--wrap=sleep 30")
            ids.append(jobid)
            assert status == 0, said

            def reason() -> str:
                return run("squeue", "--noheader", "--format=%r", f"--jobs={jobid}").stdout.strip()

            wait_for(lambda: reason() == "QOSMaxJobsPerUserLimit", f"job {jobid} held by the QOS")
    finally:
        cancel_ids(scheduler, [i for i in ids if i])
    limits = admin("sacctmgr", "--noheader", "--parsable2", "show", "qos", TEST_QOS,
                   "format=MaxSubmitJobsPerUser,MaxJobsPerUser")  # fmt: skip
    assert limits.strip() == "|", f"QOS {TEST_QOS} limits not reset: {limits!r}"


# --- Grid Engine ------------------------------------------------------------------------------


def _qsub(*args: str) -> tuple[int, str, str]:
    """Submit with qsub directly: (exit status, job number or "", what it said)."""
    proc = run("qsub", "-terse", "-o", "/dev/null", "-e", "/dev/null", *args)
    return proc.returncode, proc.stdout.strip(), proc.stdout + proc.stderr


@ON_SGE
def test_max_u_jobs_refuses_the_users_next_job(scheduler: str) -> None:
    """Global max_u_jobs: qsub refuses the job over it (exit 25, the limit named); reset after."""
    user = getpass.getuser()
    ids: list[str] = []
    try:
        with sge_max_u_jobs(user_job_count(user) + 1):
            status, jobid, said = _qsub("-b", "y", "sleep", "30")
            ids.append(jobid)
            assert status == 0, said
            status, jobid, said = _qsub("-b", "y", "sleep", "30")
            ids.append(jobid)
            assert status != 0, f"job {jobid} was queued over max_u_jobs"
            assert "jobs are allowed per user" in said, said
    finally:
        cancel_ids(scheduler, [i for i in ids if i])


@ON_SGE
def test_h_vmem_is_a_per_slot_limit_with_a_default_and_smp_gives_slots(
    scheduler: str, tmp_path: Path
) -> None:
    """h_vmem is a consumable with a non-zero default (2G per slot), enforced as the jobs'
    address-space limit, and counted per slot: `-pe smp 2 -l h_vmem=100M` gives 200 MB."""
    script = tmp_path / "limits.sh"
    script.write_text('#!/bin/sh\necho "$(ulimit -v) ${NSLOTS:-none}"\n')
    outputs = {}
    for name, args in {"plain": (), "smp": ("-pe", "smp", "2", "-l", "h_vmem=100M")}.items():
        out = tmp_path / f"{name}.out"
        proc = run("qsub", "-sync", "y", "-o", str(out), "-j", "y", *args, str(script))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        outputs[name] = out.read_text().split()
    assert outputs["plain"] == [str(2 * 1024 * 1024), "1"], outputs
    assert outputs["smp"] == [str(2 * 100 * 1024), "2"], outputs
