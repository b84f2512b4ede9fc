"""Tests for job arrays: `GridRunner.batch()`, the dispatcher, grouping, task ids.

`asub`, `astat`, `acancel`, `aacct` and `alimit` below are small Python programs standing in
for SLURM's sbatch, squeue, scancel, scontrol and ``scontrol show config``, with job arrays:
``--array=1-N%T`` starts a driver process that runs the tasks (at most T at once) with
``SLURM_ARRAY_TASK_ID`` set and ``%a`` put in for the index in the output paths, as SLURM does.
They produce on demand what the real daemon cannot: a refused array, a chosen MaxArraySize, a
listing of pending tasks as a range. The real SLURM and Grid Engine run arrays in
tests/integration/test_arrays.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner_core import JobManager, JobStatus, Retry, SingleJob
from runner_grid import GridRunner, SchemeError
from runner_grid._arrays import dispatcher_text, index_expression, partition, write_array_files
from runner_grid._ids import base_id, expand_indices, task_key
from runner_grid._poller import _Listed
from runner_grid.schemes import pbs, sge, slurm
from runner_settings import Settings

TIMEOUT = 60.0

FAKE = r"""
import fcntl, json, os, signal, subprocess, sys, time
state = os.environ["FAKE_SCHED_DIR"]
name = os.path.basename(sys.argv[0])
args = sys.argv[1:]

def path(*parts):
    return os.path.join(state, *parts)

def alive():
    for f in sorted(os.listdir(state)):
        if f.endswith(".pid") and not os.path.exists(path(f[:-4] + ".done")):
            yield f[:-4], "R"
        elif f.endswith(".pending"):
            yield f[:-8], "PD"
        elif f.endswith(".starting"):
            yield f[:-9], "R"

def start(jobid, script, cwd, out, err, env):
    proc = subprocess.Popen(
        ["sh", "-c", '"$0" "$1"; echo $? > "$2"', "sh", script, path(jobid + ".done")],
        cwd=cwd, stdout=open(out, "ab") if out else subprocess.DEVNULL,
        stderr=open(err, "ab"), stdin=subprocess.DEVNULL, start_new_session=True, env=env,
    )
    open(path(jobid + ".pid"), "w").write(str(proc.pid))
    return proc

if name == "asub":
    with open(path("submits.jsonl"), "a") as fh:
        fh.write(json.dumps(args) + "\n")
    if os.environ.get("FAKE_REFUSE_ARRAYS") and any(a.startswith("--array") for a in args):
        print("asub: error: Batch job submission failed: Invalid job array specification",
              file=sys.stderr)
        sys.exit(1)
    lock = open(path("lock"), "a")  # several submit workers run asub at once
    fcntl.flock(lock, fcntl.LOCK_EX)
    limit = os.environ.get("FAKE_SUBMIT_LIMIT")  # MaxSubmitJobsPerUser: every task counts
    if limit:
        spec = next((a.split("=", 1)[1] for a in args if a.startswith("--array=")), "1-1")
        first, _, last = spec.partition("%")[0].partition("-")
        wanted = int(last or first) - int(first) + 1
        if len(list(alive())) + wanted > int(limit):
            open(path("refusals.log"), "a").write(spec + "\n")
            print("asub: error: QOSMaxSubmitJobPerUserLimit", file=sys.stderr)
            sys.exit(1)
        open(path("accepted.log"), "a").write(f"{spec} {len(list(alive())) + wanted}\n")
    counter = path("counter")
    n = int(open(counter).read()) + 1 if os.path.exists(counter) else 100
    open(counter, "w").write(str(n))
    lock.close()
    opts, i = {}, 0
    while i < len(args) - 1:
        if args[i] in ("-D", "-o", "-e"):
            opts[args[i]] = args[i + 1]
            i += 2
        else:
            if args[i].startswith("--array="):
                opts["array"] = args[i].split("=", 1)[1]
            i += 1
    script = args[-1]
    if "array" not in opts:
        start(str(n), script, opts["-D"], opts.get("-o"), opts["-e"], dict(os.environ))
    else:
        spec, _, throttle = opts["array"].partition("%")
        first, _, last = spec.partition("-")
        for t in range(int(first), int(last) + 1):
            open(path(f"{n}_{t}.pending"), "w").close()
        subprocess.Popen(
            [sys.executable, sys.argv[0].replace("asub", "adriver"), str(n), first, last,
             throttle or "0", script, opts["-D"], opts.get("-o", ""), opts["-e"]],
            start_new_session=True, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    print("Submitted batch job", n)
elif name == "adriver":
    n, first, last, throttle, script, cwd, out, err = args
    running = {}
    most = 0
    for t in range(int(first), int(last) + 1):
        jobid = f"{n}_{t}"
        def busy():
            return len([p for p in running.values() if p.poll() is None])
        while throttle != "0" and busy() >= int(throttle):
            time.sleep(0.01)
        try:  # claim the task; a cancel of a pending task renames it first
            os.rename(path(jobid + ".pending"), path(jobid + ".starting"))
        except FileNotFoundError:
            continue
        env = dict(os.environ, SLURM_ARRAY_TASK_ID=str(t))
        running[t] = start(jobid, script, cwd, out.replace("%a", str(t)) if out else None,
                           err.replace("%a", str(t)), env)
        os.unlink(path(jobid + ".starting"))
        most = max(most, busy())
        open(path(f"{n}.most"), "w").write(str(most))
    for p in running.values():
        p.wait()
elif name == "astat":
    with open(path("checks.log"), "a") as fh:
        fh.write(" ".join(args) + "\n")
    pending = {}
    for jobid, st in alive():
        if st == "PD" and os.environ.get("FAKE_PENDING_AS_RANGE") and "_" in jobid:
            job, _, task = jobid.partition("_")
            pending.setdefault(job, []).append(task)
        else:
            print(jobid, st)
    for job, tasks in pending.items():
        print(f"{job}_[{','.join(tasks)}%2] PD")
elif name == "acancel":
    with open(path("cancels.log"), "a") as fh:
        fh.write(" ".join(args) + "\n")
    expanded = []
    for jobid in args:  # an array's id stands for all its tasks, as with scancel
        tasks = sorted({f.split(".")[0] for f in os.listdir(state) if f.startswith(jobid + "_")})
        expanded += tasks if "_" not in jobid and tasks else [jobid]
    for jobid in expanded:
        try:
            os.rename(path(jobid + ".pending"), path(jobid + ".cancelled"))
            continue
        except FileNotFoundError:
            pass
        deadline = time.monotonic() + 10
        while os.path.exists(path(jobid + ".starting")) and time.monotonic() < deadline:
            time.sleep(0.01)
        try:
            os.killpg(int(open(path(jobid + ".pid")).read()), signal.SIGKILL)
        except (OSError, ValueError):
            pass
        open(path(jobid + ".cancelled"), "w").close()
        open(path(jobid + ".done"), "w").write("killed")
elif name == "aacct":
    jobid = args[0]
    if os.path.exists(path(jobid + ".cancelled")):
        print(f"JobId={jobid} JobState=CANCELLED ExitCode=0:9")
elif name == "alimit":
    print("MaxArraySize            = " + os.environ.get("FAKE_MAX_ARRAY_SIZE", "1001"))
elif name == "alimits":  # scontrol show partition, then sacctmgr's QOS and associations
    open(path("limits.log"), "a").write("asked\n")
    print(os.environ.get("FAKE_LIMITS", "PartitionName=debug Default=YES"))
"""


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The fake scheduler's state folder; its commands are first on PATH."""
    state = tmp_path / "sched"
    state.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("asub", "adriver", "astat", "acancel", "aacct", "alimit", "alimits"):
        (bin_dir / name).write_text(f"#!{sys.executable}\n{FAKE}")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SCHED_DIR", str(state))
    yield state
    for pid_file in state.glob("*.pid"):
        if not pid_file.with_suffix(".done").exists():
            with contextlib.suppress(OSError, ValueError):
                os.killpg(int(pid_file.read_text()), signal.SIGKILL)


def array_scheme(**extra: Any) -> Settings:
    """The SLURM scheme with the fake's commands in place of SLURM's."""
    scheme = Settings(slurm.scheme())
    commands = scheme.commands
    commands.submit = "asub"
    commands.check = lambda ids: [["astat", *ids]]
    commands.cancel = lambda ids: [["acancel", *ids]]
    commands.exitcode = lambda jobid: [["aacct", jobid]]
    commands.array_limit = lambda: [["alimit"]]
    commands.limits = lambda: [["alimits"]]
    for key in ("find_tag", "parse_tag", "check_error", "probe", "detect"):
        del commands[key]
    scheme.tag_flag = None
    scheme.exitcode_wait = 0
    scheme.update(extra)
    return scheme


def submits(state: Path) -> list[list[str]]:
    log = state / "submits.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def array_flags(state: Path) -> list[str | None]:
    """Per submission, its --array flag (None for a plain job)."""
    return [next((a for a in argv if a.startswith("--array")), None) for argv in submits(state)]


def jobs(n: int, code: Callable[[int], int] = lambda i: 0, **settings: Any) -> list[SingleJob]:
    return [
        SingleJob(
            f"job{i}",
            f"echo out of {i}\necho err of {i} >&2\nexit {code(i)}\n",
            settings=settings or None,
        )
        for i in range(n)
    ]


def runner(**kwargs: Any) -> GridRunner:
    kwargs.setdefault("sleepstep", 0.05)
    return GridRunner(grid=array_scheme(**kwargs.pop("scheme", {})), **kwargs)


def run_batch(
    grid: GridRunner, manager: JobManager, batch: list[SingleJob], **flags: Any
) -> list[Any]:
    with grid.batch():
        results = [job.run(jobrunner=grid, jobmanager=manager, **flags) for job in batch]
    grid.wait(timeout=TIMEOUT)
    return results


# --- the batch, end to end against the fake ------------------------------------------------


def test_one_array_per_batch_each_job_its_own_files_code_and_task_id(
    fake: Path, tmp_path: Path
) -> None:
    grid = runner()
    manager = JobManager(tmp_path / "w")
    results = run_batch(grid, manager, jobs(5, code=lambda i: 3 if i == 2 else 0))
    assert array_flags(fake) == ["--array=1-5"]
    array_id = submits(fake)[0][-1]
    assert [r.status for r in results] == [JobStatus.SUCCESSFUL] * 2 + [JobStatus.CRASHED] + [
        JobStatus.SUCCESSFUL
    ] * 2
    assert [r.exit_code for r in results] == [0, 0, 3, 0, 0]
    # task i runs the i-th job collected (the submit workers collect in any order)
    assert sorted(r.jobid for r in results) == [f"100_{i}" for i in range(1, 6)]
    folder = Path(array_id).parent
    for r in results:
        index = r.jobid.split("_")[1]
        assert Path(os.readlink(folder / f"{index}.grid")).parent == r.job.path
    for i, r in enumerate(results):
        job = r.job
        assert (job.path / f"job{i}.out").read_text() == f"out of {i}\n"
        assert (job.path / f"job{i}.err").read_text() == f"err of {i}\n"
        assert (job.path / f"job{i}.exitcode").read_text().strip() == str(r.exit_code)
    assert array_id.endswith(".array")
    grid.shutdown()


def test_jobs_asking_the_same_resources_in_other_words_share_one_array(
    fake: Path, tmp_path: Path
) -> None:
    grid = runner()
    manager = JobManager(tmp_path / "w")
    spellings = [
        {"memory": "1G", "walltime": "1:00:00", "queue": "q"},
        {"memory": "1024M", "walltime": 3600, "partition": "q"},
        {"memory": 1024**3, "walltime": "0-01:00:00", "queue": "q", "partition": "q"},
    ]
    with grid.batch():
        results = [
            job.run(jobrunner=grid, jobmanager=manager, **flags)
            for job, flags in zip(jobs(3), spellings)
        ]
    grid.wait(timeout=TIMEOUT)
    assert all(r.ok for r in results), [r.error for r in results]
    (argv,) = submits(fake)
    assert "--array=1-3" in argv
    assert {"--mem=1024M", "--time=1:00:00", "-p"} <= set(argv)
    grid.shutdown()


def test_different_flags_or_directives_make_different_arrays_and_one_job_is_plain(
    fake: Path, tmp_path: Path
) -> None:
    grid = runner()
    manager = JobManager(tmp_path / "w")
    batch = (
        jobs(3)
        + jobs(2, memory="1G")
        + [SingleJob("alone", "exit 0", settings={"run": {"memory": "2G"}})]
    )
    directive = SingleJob(
        "directive",
        "exit 0",
        settings={"runscript": {"pre": "#SBATCH --hint=nomultithread\n"}},
    )
    directive2 = SingleJob(
        "directive2",
        "exit 0",
        settings={"runscript": {"pre": "#SBATCH --hint=nomultithread\n"}},
    )
    with grid.batch():
        results = [job.run(jobrunner=grid, jobmanager=manager) for job in batch[:3]]
        results += [job.run(jobrunner=grid, jobmanager=manager, memory="1G") for job in batch[3:5]]
        results.append(batch[5].run(jobrunner=grid, jobmanager=manager))
        results += [j.run(jobrunner=grid, jobmanager=manager) for j in (directive, directive2)]
    grid.wait(timeout=TIMEOUT)
    assert all(r.status is JobStatus.SUCCESSFUL for r in results), [r.error for r in results]
    flags = array_flags(fake)
    assert sorted(f or "plain" for f in flags) == [
        "--array=1-2",
        "--array=1-2",
        "--array=1-3",
        "plain",
    ]
    by_flag = {tuple(a for a in argv if a.startswith("--mem")): argv for argv in submits(fake)}
    assert set(by_flag) == {(), ("--mem=1024M",), ("--mem=2048M",)}
    dispatchers = [Path(argv[-1]) for argv in submits(fake) if argv[-1].endswith(".array")]
    with_directive = [d for d in dispatchers if "#SBATCH --hint=nomultithread" in d.read_text()]
    assert len(with_directive) == 1
    grid.shutdown()


def test_arrays_split_at_the_schemes_max_size_and_at_the_schedulers(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    grid = runner(
        scheme={
            "array": {
                "index": ["SLURM_ARRAY_TASK_ID"],
                "output_index": "%a",
                "throttle": True,
                "max_size": 2,
            }
        }
    )
    results = run_batch(grid, JobManager(tmp_path / "a"), jobs(5))
    assert array_flags(fake) == ["--array=1-2", "--array=1-2", None]
    assert all(r.status is JobStatus.SUCCESSFUL for r in results)
    grid.shutdown()
    (fake / "submits.jsonl").unlink()
    monkeypatch.setenv("FAKE_MAX_ARRAY_SIZE", "4")  # MaxArraySize 4: task ids 0-3, 3 tasks
    grid = runner()
    results = run_batch(grid, JobManager(tmp_path / "b"), jobs(7))
    assert array_flags(fake) == ["--array=1-3", "--array=1-3", None]
    assert all(r.status is JobStatus.SUCCESSFUL for r in results)
    grid.shutdown()


def test_maxjobs_is_the_arrays_throttle(fake: Path, tmp_path: Path) -> None:
    grid = runner(maxjobs=2)
    batch = [SingleJob(f"s{i}", "sleep 0.3") for i in range(6)]
    results = run_batch(grid, JobManager(tmp_path / "w"), batch)
    assert array_flags(fake) == ["--array=1-6%2"]
    assert all(r.status is JobStatus.SUCCESSFUL for r in results)
    assert int((fake / "100.most").read_text()) <= 2
    assert grid.maxjobs == 2
    # after the batch the limit holds for plain jobs again
    more = [
        SingleJob(f"p{i}", "exit 0").run(jobrunner=grid, jobmanager=JobManager(tmp_path / "w"))
        for i in range(2)
    ]
    grid.wait(timeout=TIMEOUT)
    assert all(r.status is JobStatus.SUCCESSFUL for r in more)
    assert array_flags(fake)[1:] == [None, None]
    grid.shutdown()


def test_a_scheme_without_throttle_holds_the_rest_back_as_plain_jobs(
    fake: Path, tmp_path: Path
) -> None:
    array = {"index": ["SLURM_ARRAY_TASK_ID"], "output_index": "%a", "throttle": False}
    grid = runner(maxjobs=2, scheme={"array": array})
    batch = [SingleJob(f"s{i}", "sleep 0.2") for i in range(5)]
    results = run_batch(grid, JobManager(tmp_path / "w"), batch)
    assert all(r.status is JobStatus.SUCCESSFUL for r in results), [r.error for r in results]
    flags = array_flags(fake)
    assert flags[0] == "--array=1-2"
    assert flags[1:] == [None, None, None]
    grid.shutdown()


def test_a_submit_limit_splits_an_array_to_what_fits_and_runs_every_job_once(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SUBMIT_LIMIT", "4")  # every task counts, as on SLURM
    grid = runner()
    batch = [SingleJob(f"s{i}", "sleep 0.3") for i in range(10)]
    results = run_batch(grid, JobManager(tmp_path / "w"), batch)
    assert all(r.status is JobStatus.SUCCESSFUL for r in results), [r.error for r in results]
    assert len({r.jobid for r in results}) == 10
    refused = (fake / "refusals.log").read_text().split()
    assert refused[0] == "1-10"  # the whole batch first, then halves of it
    accepted = [line.split() for line in (fake / "accepted.log").read_text().splitlines()]
    sizes = [int(b) - int(a) + 1 for a, _, b in (spec.partition("-") for spec, _ in accepted)]
    assert sum(sizes) == 10  # every job in exactly one accepted submission
    assert max(int(total) for _, total in accepted) <= 4
    assert max(sizes) <= 4
    grid.shutdown()


#: `sacctmgr show qos` and `show assoc` after the partition: QOS "normal", the user's default,
#: lets 4 jobs be queued, each task of an array counted (as SLURM counts them).
SUBMIT_LIMITS = "PartitionName=debug Default=YES\nnormal|||4\nme|acct||normal|||\n"


def test_a_submit_limit_read_in_advance_cuts_an_array_to_what_fits_and_is_never_refused(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SUBMIT_LIMIT", "4")
    monkeypatch.setenv("FAKE_LIMITS", SUBMIT_LIMITS)
    grid = runner()
    batch = [SingleJob(f"s{i}", "sleep 0.3") for i in range(10)]
    results = run_batch(grid, JobManager(tmp_path / "w"), batch)
    assert all(r.status is JobStatus.SUCCESSFUL for r in results), [r.error for r in results]
    assert len({r.jobid for r in results}) == 10
    assert not (fake / "refusals.log").exists()  # never over the limit
    accepted = [line.split() for line in (fake / "accepted.log").read_text().splitlines()]
    assert accepted[0][0] == "1-4"  # the array of 10 cut to the 4 places there are
    sizes = [int(b) - int(a) + 1 for a, _, b in (spec.partition("-") for spec, _ in accepted)]
    assert sum(sizes) == 10
    assert max(int(total) for _, total in accepted) <= 4
    assert (fake / "limits.log").read_text() == "asked\n"  # once per run
    grid.shutdown()


def test_where_an_array_counts_once_it_holds_one_place_until_its_last_task_leaves(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Grid Engine's max_u_jobs counts an array as one job: two arrays under a limit of 1
    monkeypatch.setenv("FAKE_SUBMIT_LIMIT", "100")  # only to log each acceptance
    monkeypatch.setenv("FAKE_LIMITS", SUBMIT_LIMITS.replace("|||4", "|||1"))
    grid = GridRunner(grid=array_scheme(), sleepstep=0.05)
    grid.settings.commands.parse_limits = lambda output: slurm.parse_limits(output)._replace(
        submit_counts_tasks=False
    )
    manager = JobManager(tmp_path / "w")
    with grid.batch():
        results = [
            SingleJob(f"s{i}", "sleep 0.2").run(
                jobrunner=grid, jobmanager=manager, **({"cpus": 2} if i % 2 else {})
            )
            for i in range(6)
        ]
    grid.wait(timeout=TIMEOUT)
    assert all(r.status is JobStatus.SUCCESSFUL for r in results), [r.error for r in results]
    accepted = [line.split() for line in (fake / "accepted.log").read_text().splitlines()]
    assert [spec for spec, _ in accepted] == ["1-3", "1-3"]  # two whole arrays, one at a time
    assert [int(total) for _, total in accepted] == [3, 3]  # nothing else queued at either
    grid.shutdown()


def test_cancelling_one_job_cancels_its_task_only(fake: Path, tmp_path: Path) -> None:
    grid = runner()
    gate = tmp_path / "gate"
    batch = [SingleJob(f"g{i}", f"while [ ! -e {gate} ]; do sleep 0.02; done") for i in range(4)]
    manager = JobManager(tmp_path / "w")
    with grid.batch():
        results = [job.run(jobrunner=grid, jobmanager=manager) for job in batch]
    assert results[1].jobid is not None
    assert results[1].jobid.startswith("100_")
    batch[1].cancel()
    deadline = time.monotonic() + TIMEOUT
    while not (fake / "cancels.log").exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert results[1].wait(timeout=TIMEOUT)
    gate.touch()
    grid.wait(timeout=TIMEOUT)
    assert (fake / "cancels.log").read_text().split() == [results[1].jobid]
    assert [r.status for r in results] == [
        JobStatus.SUCCESSFUL,
        JobStatus.CANCELLED,
        JobStatus.SUCCESSFUL,
        JobStatus.SUCCESSFUL,
    ]
    assert results[1].reason == "cancelled"
    grid.shutdown()


def test_pending_tasks_listed_as_a_range_are_told_apart(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PENDING_AS_RANGE", "1")
    grid = runner(maxjobs=1)
    results = run_batch(
        grid, JobManager(tmp_path / "w"), [SingleJob(f"s{i}", "sleep 0.1") for i in range(4)]
    )
    assert array_flags(fake) == ["--array=1-4%1"]
    assert all(r.status is JobStatus.SUCCESSFUL for r in results)
    grid.shutdown()


def test_a_refused_array_fails_its_own_jobs_only(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_REFUSE_ARRAYS", "1")
    grid = runner()
    manager = JobManager(tmp_path / "w")
    alone = SingleJob("alone", "exit 0")
    with grid.batch():
        results = [job.run(jobrunner=grid, jobmanager=manager) for job in jobs(3)]
        single = alone.run(jobrunner=grid, jobmanager=manager, memory="1G")
    grid.wait(timeout=TIMEOUT)
    assert [r.status for r in results] == [JobStatus.FAILED] * 3
    assert {r.reason for r in results} == {"submit_failed"}
    assert "Invalid job array specification" in (results[0].error or "")
    assert single.status is JobStatus.SUCCESSFUL
    grid.shutdown()


def test_jobs_cancelled_before_the_block_ends_are_never_submitted(
    fake: Path, tmp_path: Path
) -> None:
    grid = runner()
    manager = JobManager(tmp_path / "w")
    batch = jobs(3)
    with grid.batch():
        results = [job.run(jobrunner=grid, jobmanager=manager) for job in batch]
        deadline = time.monotonic() + TIMEOUT
        while grid.snapshot().detached < 3:  # collected
            assert time.monotonic() < deadline
            time.sleep(0.005)
        batch[0].cancel()
    grid.wait(timeout=TIMEOUT)
    assert results[0].status is JobStatus.CANCELLED
    assert [r.status for r in results[1:]] == [JobStatus.SUCCESSFUL] * 2
    assert array_flags(fake) == ["--array=1-2"]
    grid.shutdown()


def test_ctrl_c_in_the_block_submits_nothing_and_cancels_the_jobs(
    fake: Path, tmp_path: Path
) -> None:
    grid = runner()
    manager = JobManager(tmp_path / "w")
    batch = jobs(3)
    results = []

    def interrupted_batch() -> None:
        with grid.batch():
            results.extend(job.run(jobrunner=grid, jobmanager=manager) for job in batch)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted_batch()
    grid.wait(timeout=TIMEOUT)
    assert [r.status for r in results] == [JobStatus.CANCELLED] * 3
    assert submits(fake) == []
    grid.shutdown()


def test_shutdown_cancels_every_task_in_the_queue(fake: Path, tmp_path: Path) -> None:
    grid = runner()
    batch = [SingleJob(f"w{i}", "sleep 60") for i in range(3)]
    results = []
    with grid.batch():
        results = [job.run(jobrunner=grid, jobmanager=JobManager(tmp_path / "w")) for job in batch]
    grid.shutdown(cancel=True, timeout=TIMEOUT)
    assert [r.status for r in results] == [JobStatus.CANCELLED] * 3
    # one id for the whole array, not one per task
    assert (fake / "cancels.log").read_text().split() == ["100"]


def test_shutdown_cancels_the_rest_of_an_array_by_the_arrays_id(fake: Path, tmp_path: Path) -> None:
    grid = runner()
    gate = tmp_path / "gate"
    batch = [SingleJob(f"w{i}", f"while [ ! -e {gate} ]; do sleep 0.02; done") for i in range(3)]
    with grid.batch():
        results = [job.run(jobrunner=grid, jobmanager=JobManager(tmp_path / "w")) for job in batch]
    batch[0].cancel()
    assert results[0].wait(timeout=TIMEOUT)
    grid.shutdown(cancel=True, timeout=TIMEOUT)
    assert [r.status for r in results] == [JobStatus.CANCELLED] * 3
    lines = (fake / "cancels.log").read_text().splitlines()
    assert lines == [results[0].jobid, "100"]  # the array's other tasks, by the array's id


def test_without_arrays_serial_or_own_call_jobs_go_one_by_one(fake: Path, tmp_path: Path) -> None:
    scheme = array_scheme()
    del scheme.commands["array"]
    grid = GridRunner(grid=scheme, sleepstep=0.05)
    results = run_batch(grid, JobManager(tmp_path / "a"), jobs(2))
    assert all(r.status is JobStatus.SUCCESSFUL for r in results)
    grid.shutdown()
    serial = runner(parallel=False)
    results = run_batch(serial, JobManager(tmp_path / "b"), jobs(2))
    assert all(r.status is JobStatus.SUCCESSFUL for r in results)
    serial.shutdown()
    assert array_flags(fake) == [None] * 4


def test_stdout_redirect_gives_the_array_no_output_flag(fake: Path, tmp_path: Path) -> None:
    grid = runner()
    batch = jobs(2, runscript={"stdout_redirect": True})
    results = run_batch(grid, JobManager(tmp_path / "w"), batch)
    assert all(r.status is JobStatus.SUCCESSFUL for r in results)
    (argv,) = submits(fake)
    assert "-o" not in argv
    assert (results[1].job.path / "job1.out").read_text() == "out of 1\n"
    grid.shutdown()


def test_waiting_inside_the_block_is_refused_instead_of_hanging(fake: Path, tmp_path: Path) -> None:
    grid = runner()
    manager = JobManager(tmp_path / "w")
    with grid.batch():
        results = [job.run(jobrunner=grid, jobmanager=manager) for job in jobs(2)]
        with pytest.raises(RuntimeError, match="wait after the block"):
            grid.wait(timeout=TIMEOUT)
    grid.wait(timeout=TIMEOUT)
    assert all(r.status is JobStatus.SUCCESSFUL for r in results)
    grid.shutdown()


def test_nested_batches_submit_once_when_the_outermost_ends(fake: Path, tmp_path: Path) -> None:
    grid = runner()
    manager = JobManager(tmp_path / "w")
    batch = jobs(4)
    with grid.batch():
        results = [job.run(jobrunner=grid, jobmanager=manager) for job in batch[:2]]
        with grid.batch():
            results += [job.run(jobrunner=grid, jobmanager=manager) for job in batch[2:]]
        assert submits(fake) == []
    grid.wait(timeout=TIMEOUT)
    assert array_flags(fake) == ["--array=1-4"]
    assert all(r.status is JobStatus.SUCCESSFUL for r in results)
    grid.shutdown()


def test_collecting_a_batch_takes_no_pool_thread_and_no_wait(fake: Path, tmp_path: Path) -> None:
    grid = runner(maxjobs=1)
    manager = JobManager(tmp_path / "w")
    with grid.batch():
        results = [job.run(jobrunner=grid, jobmanager=manager) for job in jobs(5)]
        snap = grid.snapshot()
        # every job is collected by the time job.run() returns: no thread, no queue, no slot
        assert (snap.threads, snap.queued, snap.slots, snap.detached) == (0, 0, 0, 5)
        assert [r.status for r in results] == [JobStatus.QUEUED] * 5
    grid.wait(timeout=TIMEOUT)
    assert array_flags(fake) == ["--array=1-5%1"]
    assert all(r.status is JobStatus.SUCCESSFUL for r in results)
    grid.shutdown()


def test_a_job_run_just_before_the_block_is_never_pulled_into_it(
    fake: Path, tmp_path: Path
) -> None:
    # Found against a live OpenPBS (true of every scheduler): a job whose run() returned just
    # before `with runner.batch():` opened was pulled into the batch in 3 of 4 tries, waited
    # for the block's end, and a Ctrl-C in the block cancelled it unsubmitted.
    grid = runner()
    manager = JobManager(tmp_path / "w")
    for attempt in range(4):
        before = SingleJob(f"before{attempt}", "exit 0").run(jobrunner=grid, jobmanager=manager)
        inside = []

        def interrupted_batch(inside: list[Any] = inside) -> None:
            with grid.batch():
                inside.extend(job.run(jobrunner=grid, jobmanager=manager) for job in jobs(2))
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            interrupted_batch()
        before.wait(timeout=TIMEOUT)
        assert before.status is JobStatus.SUCCESSFUL, (attempt, before.error)
        assert [r.status for r in inside] == [JobStatus.CANCELLED] * 2
    assert array_flags(fake) == [None] * 4  # the four jobs run before, each alone
    grid.shutdown()


def test_a_job_run_from_another_thread_during_the_block_is_not_held_for_it(
    fake: Path, tmp_path: Path
) -> None:
    grid = runner()
    manager = JobManager(tmp_path / "w")
    with grid.batch():
        inside = [job.run(jobrunner=grid, jobmanager=manager) for job in jobs(2)]
        elsewhere: list[Any] = []
        thread = threading.Thread(
            target=lambda: elsewhere.append(
                SingleJob("other", "exit 0").run(jobrunner=grid, jobmanager=manager)
            )
        )
        thread.start()
        thread.join()
        elsewhere[0].wait(timeout=TIMEOUT)  # ends while the block is still open
        assert elsewhere[0].status is JobStatus.SUCCESSFUL
        assert array_flags(fake) == [None]
    grid.wait(timeout=TIMEOUT)
    assert array_flags(fake) == [None, "--array=1-2"]
    assert all(r.status is JobStatus.SUCCESSFUL for r in inside)
    grid.shutdown()


# --- the pieces -------------------------------------------------------------------------------


def _write_wrapper(folder: Path, name: str) -> str:
    wrapper = folder / f"{name}.grid"
    wrapper.write_text(f"#!/bin/sh\necho ran {name}\necho {name} err >&2\n")
    return str(wrapper)


@pytest.mark.parametrize("output_index", ["%a", None])
def test_the_dispatcher_runs_the_wrapper_its_index_names(
    tmp_path: Path, output_index: str | None
) -> None:
    tasks = []
    for i in range(3):
        job = tmp_path / f"job {i}"  # a space in the path
        job.mkdir()
        tasks.append((_write_wrapper(job, f"j{i}"), str(job / "o"), str(job / "e")))
    files = write_array_files(
        str(tmp_path / "arr"),
        "j0.array",
        index=index_expression(["MY_INDEX", "OTHER_INDEX"]),
        tasks=tasks,
        directives=["#SBATCH --hint=x"],
        output_index=output_index,
    )
    text = Path(files.script).read_text()
    assert text.splitlines()[1] == "#SBATCH --hint=x"
    for number, var in ((2, "MY_INDEX"), (3, "OTHER_INDEX")):
        env = {"PATH": os.environ["PATH"], var: str(number)}
        if output_index is None:
            proc = subprocess.run(
                ["sh", files.script], env=env, capture_output=True, text=True, check=False
            )
            assert proc.returncode == 0, proc.stderr
            assert Path(tasks[number - 1][1]).read_text() == f"ran j{number - 1}\n"
            assert Path(tasks[number - 1][2]).read_text() == f"j{number - 1} err\n"
        else:
            assert files.out == os.path.join(files.folder, "%a.out")
            out = Path(files.folder, f"{number}.out")
            with open(out, "w") as stdout, open(Path(files.folder, f"{number}.err"), "w") as stderr:
                proc = subprocess.run(
                    ["sh", files.script], env=env, stdout=stdout, stderr=stderr, check=False
                )
            assert proc.returncode == 0
            assert Path(tasks[number - 1][1]).read_text() == f"ran j{number - 1}\n"
    for bad in ("", "0", "4", "1;rm", "x"):
        proc = subprocess.run(
            ["sh", files.script],
            env={"PATH": os.environ["PATH"], "MY_INDEX": bad},
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 1
        assert "runner_grid:" in proc.stderr


@pytest.mark.parametrize("output_index", ["^array_index^", "%a", None])
def test_no_link_of_an_array_dangles_and_cp_writes_through_it(
    tmp_path: Path, output_index: str | None
) -> None:
    """PBS's mom copies a task's output with ``cp -rp``, which does not write through a link
    whose target does not exist: on OpenPBS 23.06 no task's .out/.err reached its job folder
    (tests/grid/data/pbs-arrays, qsub_J_o_dangling_symlink)."""
    tasks = []
    for i in range(2):
        job = tmp_path / f"job {i}"
        job.mkdir()
        tasks.append((_write_wrapper(job, f"j{i}"), str(job / "o"), str(job / "e")))
    Path(tasks[1][1]).write_text("output of an earlier try\n")
    files = write_array_files(
        str(tmp_path / "arr"),
        "j0.array",
        index=index_expression(["PBS_ARRAY_INDEX"]),
        tasks=tasks,
        directives=[],
        output_index=output_index,
    )
    for number, (_wrapper, out, err) in enumerate(tasks, start=1):
        for suffix, target in (("out", out), ("err", err)):
            link = Path(files.folder, f"{number}.{suffix}")
            assert link.is_symlink()
            assert link.exists(), f"{link} dangles"
            assert Path(target).read_text() == ""  # fresh: an earlier try's output is gone
            spool = tmp_path / f"spool{number}.{suffix}"
            spool.write_text(f"task {number} {suffix}\n")
            proc = subprocess.run(
                ["cp", "-rp", str(spool), str(link)], capture_output=True, text=True, check=False
            )
            assert proc.returncode == 0, proc.stderr
            assert Path(target).read_text() == f"task {number} {suffix}\n"
            assert link.is_symlink()


def test_index_expression_refuses_what_is_no_variable() -> None:
    assert index_expression(["A"]) == "${A:-}"
    assert (
        index_expression(["PBS_ARRAY_INDEX", "PBS_ARRAYID"])
        == "${PBS_ARRAY_INDEX:-${PBS_ARRAYID:-}}"
    )
    for bad in ([], ["1A"], ["A-B"], ["$(x)"]):
        with pytest.raises(ValueError, match="array"):
            index_expression(bad)


def test_dispatcher_text_does_not_grow_with_the_array() -> None:
    assert len(dispatcher_text("${I:-}", "/w/.arrays/x")) < 1000


@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers()), max_size=60),
    st.integers(1, 7),
)
def test_any_partition_puts_every_job_in_exactly_one_group_of_equal_keys(
    items: list[tuple[int, int]], max_size: int
) -> None:
    numbered = list(enumerate(items))  # (position, (key, payload))
    groups = partition(numbered, lambda item: item[1][0], max_size)
    flat = [item for group in groups for item in group]
    assert sorted(flat) == numbered
    for group in groups:
        assert 1 <= len(group) <= max_size
        assert len({item[1][0] for item in group}) == 1
        assert [item[0] for item in group] == sorted(item[0] for item in group)
    for key in {key for key, _payload in items}:
        mine = [g for g in groups if g[0][1][0] == key]
        assert all(len(g) == max_size for g in mine[:-1])


SCHEMES = [
    (slurm, "4711"),
    (sge, "4711"),
    (pbs, "4711[].server"),
]


@given(
    st.lists(st.integers(1, 40), min_size=1, max_size=5),
    st.integers(1, 9),
    st.data(),
)
def test_any_batch_split_into_arrays_gives_every_job_its_own_task_and_nothing_else(
    sizes: list[int], max_size: int, data: st.DataObject
) -> None:
    """Jobs -> arrays -> task ids -> queue listing: each job is queued by its own task only."""
    for scheme, array_id in SCHEMES:
        jobs_ = [(f"job{k}.{i}", k) for k, n in enumerate(sizes) for i in range(n)]
        groups = partition(jobs_, lambda job: job[1], max_size)
        ids: dict[str, str] = {}
        for number, group in enumerate(groups):
            base = array_id.replace("4711", str(4711 + number))
            for index, (name, _key) in enumerate(group, start=1):
                ids[name] = scheme.task_id(base, index)
        assert len(set(ids.values())) == len(jobs_)  # no two jobs share a task
        for jobid in ids.values():
            assert task_key(jobid) is not None
        still = set(data.draw(st.lists(st.sampled_from(sorted(ids.values())), unique=True)))
        listed = _Listed(still)
        for name, jobid in ids.items():
            assert (jobid in listed) == (jobid in still), (name, jobid, scheme.__name__)


def test_task_ids_of_every_scheme_and_their_keys() -> None:
    assert slurm.task_id("123", 4) == "123_4"
    assert sge.task_id("123", 4) == "123.4"
    assert pbs.task_id("9[].pbsvm", 4) == "9[4].pbsvm"
    assert pbs.task_id("9[]", 4) == "9[4]"
    assert pbs.task_id("9.srv", 4) == "9[4].srv"
    assert [task_key(i) for i in ("123_4", "123.4", "9[4].pbsvm", "9[4]")] == [
        "123_4",
        "123.4",
        "9[4]",
        "9[4]",
    ]
    for job in ("123", "12.pbsvm", "9[].pbsvm", "123_[1-5]", "123.1-5:1", "abc"):
        assert task_key(job) is None
    assert base_id("9[4].pbsvm") == "9"


def test_a_job_id_is_queued_while_any_task_of_it_is_listed() -> None:
    listed = _Listed(["123_4", "9[2]", "56.3", "77"])
    assert "123" in listed  # a plain id (an array submitted by hand) counts all its tasks
    assert "123_4" in listed
    assert "123_5" not in listed
    assert "9.pbsvm" in listed
    assert "9[2].pbsvm" in listed
    assert "9[3].pbsvm" not in listed
    assert "56.3" in listed
    assert "56.4" not in listed
    assert "56" in listed
    assert "77" in listed
    assert "77_1" not in listed


def test_expand_indices_reads_every_form_schedulers_print() -> None:
    assert expand_indices("1-5") == [1, 2, 3, 4, 5]
    assert expand_indices("1-9:2") == [1, 3, 5, 7, 9]
    assert expand_indices("3,5-6%2") == [3, 5, 6]
    assert expand_indices("7") == [7]
    for bad in ("", "a", "5-1", "1-9:0", "1--2"):
        with pytest.raises(ValueError, match="array index range"):
            expand_indices(bad)


def test_array_args_and_limits_of_every_scheme() -> None:
    assert slurm.array_args(5, 0) == ["--array=1-5"]
    assert slurm.array_args(5, 2) == ["--array=1-5%2"]
    assert sge.array_args(5, 0) == ["-t", "1-5"]
    assert sge.array_args(5, 2) == ["-t", "1-5", "-tc", "2"]
    assert pbs.array_args(5, 0) == ["-J", "1-5"]
    assert pbs.array_args(5, 2) == ["-J", "1-5%2"]
    assert pbs.torque_array_args(5, 0) == ["-t", "1-5"]
    assert pbs.torque_array_args(5, 2) == ["-t", "1-5%2"]
    assert slurm.parse_array_limit("MaxArraySize            = 1001\nMaxJobCount = 10000\n") == 1000
    assert slurm.parse_array_limit("nothing") is None
    assert (
        sge.parse_array_limit("execd_spool_dir /x\nmax_aj_tasks                 75000\n") == 75000
    )
    assert sge.parse_array_limit("max_aj_tasks 0\n") is None
    assert pbs.parse_array_limit("Server: srv\n    max_array_size = 10000\n") == 10000
    assert pbs.parse_array_limit("Server: srv\n") is None


def test_pending_slurm_ranges_and_sge_task_columns_expand_to_tasks() -> None:
    assert slurm.running("12_[3-5%2] PD\n12_1 R\n12_2 CD\n13 R\n") == [
        "12_3",
        "12_4",
        "12_5",
        "12_1",
        "13",
    ]
    # Lines as Grid Engine 8.1.9 prints them (tests/grid/data/sge/qstat_default.stdout).
    head = "job-ID  prior   name       user         state submit/start at     queue"
    at = "11/24/2026 14:32:4"
    qstat = "\n".join(
        [
            f"{head}                          slots ja-task-ID ",
            "-" * 113,
            f"     56 0.75000 arrayrun   root         r     {at}0 all.q@vm{' ' * 27}1 2",
            f"     58 0.25000 arraypend  root         qw    {at}1{' ' * 36}1 4-8:2",
            f"     59 0.25000 plainpend  root         qw    {at}1{' ' * 36}1{' ' * 8}",
            f"     60 0.25000 plainrun   root         r     {at}1 all.q@vm{' ' * 27}1",
            "",
        ]
    )
    assert sge.running(qstat) == ["56.2", "58.4", "58.6", "58.8", "59", "60"]
    pbs_t = (
        "Job id            Name             User              Time Use S Queue\n"
        "----------------  ---------------- ----------------  -------- - -----\n"
        "9[].pbsvm         j.array          alice                    0 B workq\n"
        "9[1].pbsvm        j.array          alice             00:00:00 X workq\n"
        "9[2].pbsvm        j.array          alice             00:00:01 R workq\n"
        "9[3].pbsvm        j.array          alice                    0 Q workq\n"
        "10.pbsvm          plain            alice                    0 Q workq\n"
    )
    assert pbs.running(pbs_t) == ["9", "9[2]", "9[3]", "10"]


def test_array_keys_of_a_scheme_are_checked() -> None:
    scheme = array_scheme()
    scheme.array.max_size = 0
    with pytest.raises(SchemeError, match=r"array\.max_size"):
        GridRunner(grid=scheme)
    scheme = array_scheme()
    scheme.array.throtle = True
    with pytest.raises(SchemeError, match=r"did you mean 'array\.throttle'"):
        GridRunner(grid=scheme)
    scheme = array_scheme()
    scheme.commands.array = "--array"
    with pytest.raises(SchemeError, match=r"commands\.array"):
        GridRunner(grid=scheme)


# --- maxjobs across arrays and batches, and the name of a batch ----------------------------


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def _tasks_at_once(folder: Path) -> int:
    """The most tasks of every array running at once, from the start/end stamps they wrote."""
    spans = [
        (float(start.read_text()), float(start.with_suffix(".end").read_text()))
        for start in folder.glob("*.start")
    ]
    return max(sum(1 for a, b in spans if a <= t < b) for t, _end in spans)


def _stamped(name: str, stamps: Path, seconds: float = 0.3) -> SingleJob:
    body = (
        f"date +%s.%N > {stamps}/{name}.start\nsleep {seconds}\ndate +%s.%N > {stamps}/{name}.end\n"
    )
    return SingleJob(name, body)


def test_maxjobs_caps_the_tasks_of_several_arrays_together(fake: Path, tmp_path: Path) -> None:
    grid = runner(maxjobs=4)
    manager = JobManager(tmp_path / "w")
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    with grid.batch():
        results = [
            _stamped(f"a{i}", stamps).run(jobrunner=grid, jobmanager=manager) for i in range(6)
        ]
        results += [
            _stamped(f"b{i}", stamps).run(jobrunner=grid, jobmanager=manager, nice="1")
            for i in range(6)
        ]
    grid.wait(timeout=TIMEOUT)
    assert all(r.ok for r in results), [r.error for r in results]
    # Each array's throttle is its share: the shares sum to maxjobs, never more.
    assert sorted(array_flags(fake)) == ["--array=1-6%2", "--array=1-6%2"]
    assert _tasks_at_once(stamps) <= 4
    grid.shutdown()


def test_an_array_that_finds_no_share_free_waits_for_one(fake: Path, tmp_path: Path) -> None:
    """Three arrays under maxjobs=2: the third is submitted only once another has left."""
    grid = runner(maxjobs=2)
    manager = JobManager(tmp_path / "w")
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    with grid.batch():
        results = [
            _stamped(f"{group}{i}", stamps).run(jobrunner=grid, jobmanager=manager, nice=str(n))
            for n, group in enumerate("abc")
            for i in range(3)
        ]
    wait_until(lambda: len(submits(fake)) >= 2)
    time.sleep(0.1)
    assert len(submits(fake)) == 2, "the third array went in with no share of maxjobs free"
    grid.wait(timeout=TIMEOUT)
    assert all(r.ok for r in results), [r.error for r in results]
    assert array_flags(fake) == ["--array=1-3%1"] * 3
    assert _tasks_at_once(stamps) <= 2
    grid.shutdown()


def test_a_later_batch_shares_maxjobs_with_the_arrays_still_queued(
    fake: Path, tmp_path: Path
) -> None:
    grid = runner(maxjobs=3)
    manager = JobManager(tmp_path / "w")
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    with grid.batch():
        first = [
            _stamped(f"a{i}", stamps, 1.0).run(jobrunner=grid, jobmanager=manager) for i in range(4)
        ]
    with grid.batch():
        second = [
            _stamped(f"b{i}", stamps).run(jobrunner=grid, jobmanager=manager) for i in range(4)
        ]
    grid.wait(timeout=TIMEOUT)
    assert all(r.ok for r in first + second)
    assert array_flags(fake)[0] == "--array=1-4%3"
    assert _tasks_at_once(stamps) <= 3
    grid.shutdown()


def test_shutdown_cancels_the_arrays_waiting_for_a_share(fake: Path, tmp_path: Path) -> None:
    grid = runner(maxjobs=1)
    manager = JobManager(tmp_path / "w")
    gate = tmp_path / "gate"
    with grid.batch():
        results = [
            SingleJob(f"{group}{i}", f"while [ ! -e {gate} ]; do sleep 0.05; done").run(
                jobrunner=grid, jobmanager=manager, nice=str(n)
            )
            for n, group in enumerate("ab")
            for i in range(2)
        ]
    wait_until(lambda: len(submits(fake)) == 1)
    grid.shutdown(cancel=True, timeout=TIMEOUT)
    gate.touch()
    assert len(submits(fake)) == 1  # the waiting array never went in
    assert all(r.status is JobStatus.CANCELLED for r in results)
    waited = [r for r in results if r.jobid is None]
    assert len(waited) == 2
    assert all(r.error == "cancelled before it started" for r in waited)


def test_an_array_is_named_after_its_batch(fake: Path, tmp_path: Path) -> None:
    grid = runner()
    manager = JobManager(tmp_path / "xtb campaign")
    run_batch(grid, manager, jobs(2))
    with grid.batch(name="round 2"):
        [job.run(jobrunner=grid, jobmanager=manager) for job in jobs(2)]
    grid.wait(timeout=TIMEOUT)
    scripts = [Path(argv[-1]).name for argv in submits(fake)]
    assert scripts == ["xtb_campaign.array", "round_2.array"]
    grid.shutdown()


# --- which jobs the scheduler shows started (the other half of "whichever is seen first") ---

_DATA = Path(__file__).parent / "data"


def test_slurm_started_reads_running_tasks_not_pending_ones() -> None:
    listing = (_DATA / "slurm" / "squeue_array_tasks_pinned_array_flag.stdout").read_text()
    assert slurm.started(listing) == ["21_1", "21_2", "21_3", "21_4", "21_5", "22_1", "22_2"]
    assert slurm.started("23_[1-5%2] PD\n24 CG\n25 PD\n") == ["24"]


def test_sge_started_reads_r_and_t_states_not_qw() -> None:
    listing = (_DATA / "sge" / "qstat_default.stdout").read_text()
    assert sge.started(listing) == ["55", "56.1", "56.2", "56.3", "56.4", "56.5"]
    assert sge.started('<?xml version="1.0"?>\n<job_info/>') == []


def test_pbs_started_reads_running_subjobs_not_the_array_or_queued_ones() -> None:
    recorded = (_DATA / "pbs-arrays" / "qstat_t_running_array.txt").read_text()
    stdout = recorded.split("--- stdout ---\n", 1)[1].split("--- stderr ---", 1)[0]
    assert pbs.started(stdout) == ["318[1]", "318[2]", "318[3]", "318[4]"]
    mixed = (_DATA / "pbs" / "qstat_default_mixed.txt").read_text()
    stdout = mixed.split("--- stdout ---\n", 1)[1].split("--- stderr ---", 1)[0]
    assert pbs.started(stdout) == ["5", "6"]


def test_a_task_run_again_by_its_retry_goes_as_a_plain_job_with_its_own_files(
    fake: Path, tmp_path: Path
) -> None:
    """Retry(on=["crashed"]): task 2 crashes once; its next attempt is a job of its own."""
    grid = runner(retry=Retry(on=["crashed"]))
    manager = JobManager(tmp_path / "w")
    batch = jobs(3)
    marker = tmp_path / "crashed-once"
    batch[
        1
    ].runscript = (
        f"if [ -e '{marker}' ]; then echo fine; else touch '{marker}'; echo first >&2; exit 3; fi\n"
    )
    results = run_batch(grid, manager, batch)
    assert [r.status for r in results] == [JobStatus.SUCCESSFUL] * 3
    assert array_flags(fake) == ["--array=1-3", None]
    (first,) = results[1].attempts
    assert (first.reason, first.exit_code, first.jobid) == ("crashed", 3, "100_2")
    assert results[1].jobid == "101"
    folder = results[1].job.path
    assert (folder / "job1.attempt1.err").read_text() == "first\n"
    assert (folder / "job1.out").read_text() == "fine\n"
    assert (folder / "job1.exitcode").read_text() == "0\n"
    grid.shutdown()
