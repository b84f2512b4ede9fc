"""Tests for the SLURM scheme's parsers, on outputs recorded from SLURM 22.05 on this machine."""

# ruff: noqa: E501  (recorded scheduler outputs keep their exact width)

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from runner_core import REASONS, Resources, parse_walltime
from runner_grid.schemes import slurm
from runner_grid.schemes.slurm import Slurm
from strategies import jobs_of, noise_lines, queue_entries, resources

# Recorded with `squeue --noheader --format='%i %T' --states=all` on the single-node SLURM of
# tools/slurm.sh (long state names; the pinned check uses %t): finished jobs stay listed for
# MinJobAge seconds.
SQUEUE_ALL_STATES = """\
22_2 COMPLETED
25 COMPLETED
7 FAILED
10 FAILED
24 PENDING
38 PENDING
35 RUNNING
36 RUNNING
37_1 RUNNING
37_2 RUNNING
37_3 RUNNING
5 TIMEOUT
41_[1-5] PENDING
"""

# squeue's default (unpinned) listing: what SQUEUE_FORMAT-free, header-on output looks like.
SQUEUE_DEFAULT = """\
             JOBID PARTITION     NAME     USER ST       TIME  NODES NODELIST(REASON)
                24     debug dependen     root PD       0:00      1 (DependencyNeverSatisfied)
                35     debug     s.sh     root  R       0:02      1 localhost
"""


@given(noise_lines, st.integers(1, 10**9), st.sampled_from(["plain", "parsable", "cluster"]))
@example(["sbatch: warning: 4 CPUs requested"], 7, "plain")
@example(["Submitted batch job 1"], 2, "parsable")
def test_getid_reads_the_last_id_line_whatever_comes_before(
    noise: list[str], number: int, form: str
) -> None:
    line = {
        "plain": f"Submitted batch job {number}",
        "parsable": f"{number}",
        "cluster": f"{number};cluster1",
    }[form]
    output = "\n".join([*noise, line, ""])
    assert slurm.getid(output) == str(number)


@pytest.mark.parametrize(
    "output", ["", "\n\n", "sbatch: error: Batch job submission failed\n", " "]
)
def test_getid_without_an_id_is_none(output: str) -> None:
    assert slurm.getid(output) is None


def test_getid_federation_form() -> None:
    assert slurm.getid("Submitted batch job 77 on cluster blue\n") == "77"


def test_running_keeps_only_jobs_still_in_the_queue() -> None:
    assert jobs_of(slurm.running(SQUEUE_ALL_STATES)) == ["24", "38", "35", "36", "37", "41"]


@pytest.mark.parametrize("state", sorted(slurm.FINISHED_STATES))
def test_every_finished_state_releases(state: str) -> None:
    assert jobs_of(slurm.running(f"9 {state}\n")) == []


@pytest.mark.parametrize(
    "state",
    ["PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD",
     "REQUEUE_FED", "RESIZING", "RESV_DEL_HOLD", "SIGNALING", "SPECIAL_EXIT", "STAGE_OUT",
     "STOPPED", "REVOKED", "SOME_FUTURE_STATE", "PD", "R", "CG", "CF", "S", "RQ", "RH", "RF",
     "RS", "RD", "SI", "SE", "SO", "ST", "RV"],
)  # fmt: skip
def test_every_other_state_keeps_the_job(state: str) -> None:
    assert jobs_of(slurm.running(f"9 {state}\n")) == ["9"]


def test_running_skips_blank_and_cluster_lines() -> None:
    assert jobs_of(slurm.running("\nCLUSTER: blue\n3 R\n\n4_[1-2] PD\n5+0 RUNNING\n")) == [
        "3",
        "4",
        "5",
    ]
    assert jobs_of(slurm.running("")) == []


@given(queue_entries(), st.booleans(), st.sampled_from(["", "CLUSTER: runner"]), st.booleans())
@example([(21, True, False), (22, False, True)], False, "", False)
def test_any_pinned_listing_gives_the_live_ids_in_order(
    jobs: list[tuple[int, bool, bool]], blank: bool, cluster: str, long_names: bool
) -> None:
    """Blank lines, CLUSTER lines, array tasks and long or short states never change the ids."""
    lines = [cluster] if cluster else []
    for number, array, finished in jobs:
        if finished:
            state = "COMPLETED" if long_names else "CD"
        else:
            state = "RUNNING" if long_names else "R"
        ids = [f"{number}_[3-5%2]", f"{number}_1", f"{number}_2"] if array else [str(number)]
        lines += [f"{jobid} {state}" for jobid in ids]
        if blank:
            lines.append("")
    assert jobs_of(slurm.running("\n".join(lines) + "\n")) == [
        str(n) for n, _array, finished in jobs if not finished
    ]


def test_running_refuses_an_unpinned_listing() -> None:
    with pytest.raises(ValueError, match="pinned format"):
        slurm.running(SQUEUE_DEFAULT)


def test_check_asks_for_own_ids_in_the_pinned_format() -> None:
    (argv,) = slurm.check_commands(["3", "4"])
    assert argv[0] == "squeue"
    assert "--noheader" in argv
    assert "--format=%i %t" in argv
    assert "--states=all" in argv
    assert argv[-1] == "--jobs=3,4"


def test_check_with_too_many_ids_lists_the_users_jobs_in_one_command() -> None:
    ids = [str(10**7 + i) for i in range(5000)]
    commands = slurm.check_commands(ids)
    assert len(commands) == 1
    assert commands[0][-1].startswith("--user=")
    assert len(" ".join(commands[0])) < 200


def test_invalid_job_id_for_one_id_is_an_answer() -> None:
    # Recorded: `squeue ... --jobs=999999` for a purged job exits 1 with this on stderr.
    stderr = "slurm_load_jobs error: Invalid job id specified\n"
    assert slurm.check_error(["999999"], 1, "", stderr) == []


@pytest.mark.parametrize(
    ("ids", "returncode", "stdout", "stderr"),
    [
        (["1", "2"], 1, "", "slurm_load_jobs error: Invalid job id specified\n"),
        (["1"], 1, "", "slurm_load_jobs error: Unable to contact slurm controller\n"),
        (["1"], 1, "", ""),
        (["1"], 1, "1 R\n", "slurm_load_jobs error: Invalid job id specified\n"),
        (["1"], 1, "", "Invalid job id specified\nsocket timed out\n"),
        (["1"], 0, "", "slurm_load_jobs error: Invalid job id specified\n"),
    ],
)
def test_other_failures_are_failures(
    ids: list[str], returncode: int, stdout: str, stderr: str
) -> None:
    assert slurm.check_error(ids, returncode, stdout, stderr) is None


# Recorded `scontrol show job N` lines (trimmed to the ones read).
SCONTROL = "JobId=5 JobName=t\n   JobState={state} Reason=None Dependency=(null)\n   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode={code}\n"


@pytest.mark.parametrize(
    ("state", "code", "expected"),
    [
        ("COMPLETED", "0:0", 0),
        ("FAILED", "3:0", 3),
        ("TIMEOUT", "0:15", 143),
        ("CANCELLED", "0:15", 143),
        ("CANCELLED", "0:0", 1),
        ("NODE_FAIL", "0:0", 1),
        ("OUT_OF_MEMORY", "0:125", 253),
        ("RUNNING", "0:0", None),
        ("PENDING", "0:0", None),
    ],
)
def test_parse_exitcode_from_scontrol(state: str, code: str, expected: int | None) -> None:
    assert slurm.parse_exitcode(SCONTROL.format(state=state, code=code)) == expected


@pytest.mark.parametrize(
    ("state", "code", "expected"),
    [
        ("COMPLETED", "0:0", (0, None)),
        ("FAILED", "3:0", (3, None)),
        ("FAILED", "0:9", (137, None)),
        ("TIMEOUT", "0:15", (143, "timeout")),
        ("DEADLINE", "0:1", (1, "timeout")),
        ("CANCELLED", "0:15", (143, "cancelled")),
        ("CANCELLED", "0:0", (1, "cancelled")),
        ("OUT_OF_MEMORY", "0:125", (253, "out_of_memory")),
        ("NODE_FAIL", "0:0", (1, "node_fail")),
        ("BOOT_FAIL", "0:1", (1, "node_fail")),
        ("PREEMPTED", "0:15", (143, "preempted")),
        ("PENDING", "0:0", None),
        ("RUNNING", "0:0", None),
        ("COMPLETING", "0:0", None),
        ("REQUEUED", "0:0", None),
        ("REQUEUE_HOLD", "0:0", None),
        ("REQUEUE_FED", "0:0", None),
        ("SPECIAL_EXIT", "0:0", None),
        ("REVOKED", "0:0", None),
        ("SUSPENDED", "0:0", None),
    ],
)
def test_parse_end_from_scontrol(
    state: str, code: str, expected: tuple[int, str | None] | None
) -> None:
    output = SCONTROL.format(state=state, code=code)
    assert slurm.parse_end(output) == expected
    assert slurm.parse_exitcode(output) == (None if expected is None else expected[0])


def test_end_reasons_are_runner_core_reasons_and_final_states() -> None:
    reasons = {r for r in slurm.END_REASONS.values() if r is not None}
    assert reasons <= set(REASONS)
    assert set(slurm.END_REASONS) <= slurm.FINISHED_STATES


def test_parse_end_of_an_array_ends_when_every_task_has() -> None:
    done = SCONTROL.format(state="COMPLETED", code="0:0")
    failed = SCONTROL.format(state="FAILED", code="2:0").replace("JobId=5 ", "JobId=6 ")
    running = SCONTROL.format(state="RUNNING", code="0:0").replace("JobId=5 ", "JobId=7 ")
    assert slurm.parse_end(done + "\n" + failed) == (2, None)
    assert slurm.parse_end(done + "\n" + done) == (0, None)
    assert slurm.parse_end(done + "\n" + running) is None
    assert slurm.parse_end("10_1|COMPLETED|0:0\n10_2|TIMEOUT|0:15\n") == (143, "timeout")
    assert slurm.parse_end("10_1|COMPLETED|0:0\n10_[2-3]|PENDING|0:0\n") is None


sacct_lines = st.lists(
    st.tuples(
        st.sampled_from([*sorted(slurm.END_REASONS), "PENDING", "RUNNING", "REQUEUED"]),
        st.sampled_from(["", " by 0", " by 1000"]),
        st.integers(0, 255),
        st.integers(0, 127),
    ),
    max_size=5,
)


@given(sacct_lines)
@example([("CANCELLED", " by 0", 0, 15)])
@example([("COMPLETED", "", 0, 0), ("PENDING", "", 0, 0)])
def test_parse_exitcode_is_the_code_of_parse_end(lines: list[tuple[str, str, int, int]]) -> None:
    """The PLAMS-era parse_exitcode and parse_end never disagree; every reason is a known word;
    an answer with a task not yet ended is not an end."""
    output = "".join(f"9_{i}|{state}{by}|{a}:{b}\n" for i, (state, by, a, b) in enumerate(lines))
    end = slurm.parse_end(output)
    assert slurm.parse_exitcode(output) == (None if end is None else end[0])
    if end is not None:
        assert end[1] is None or end[1] in REASONS
        assert all(state in slurm.END_REASONS for state, *_ in lines)
    elif lines:
        assert any(state not in slurm.END_REASONS for state, *_ in lines)


def test_parse_exitcode_from_sacct_and_nothing() -> None:
    assert slurm.parse_exitcode("12|FAILED|2:0\n") == 2
    assert slurm.parse_exitcode("12|CANCELLED by 0|0:15\n") == 143
    assert slurm.parse_exitcode("") is None
    assert slurm.parse_exitcode("slurm_load_jobs error: Invalid job id specified") is None


def test_exitcode_queries_try_scontrol_then_sacct() -> None:
    queries = slurm.exitcode_commands("12")
    assert queries[0] == ["scontrol", "show", "job", "12"]
    assert queries[1][0] == "sacct"
    assert "--jobs=12" in queries[1]


def test_detect() -> None:
    assert slurm.detect(0, "slurm-wlm 22.05.8\n")
    assert slurm.detect(0, "slurm 23.11.1\n")
    assert not slurm.detect(1, "slurm 23.11.1\n")
    assert not slurm.detect(0, "SGE 8.1.9\n")


def test_cancel_batches() -> None:
    assert slurm.cancel_commands(["1", "2"]) == [["scancel", "1", "2"]]
    many = slurm.cancel_commands([str(10**8 + i) for i in range(5000)])
    assert len(many) > 1
    assert sum(len(c) - 1 for c in many) == 5000


# --- outputs recorded by tests/grid/data/record_slurm.sh (real SLURM 22.05 here) ------------

DATA = Path(__file__).parent / "data" / "slurm"


def recorded(case: str) -> tuple[str, str, int]:
    """stdout, stderr and exit status of one recorded case."""
    read = (DATA / f"{case}.stdout").read_text, (DATA / f"{case}.stderr").read_text
    return read[0](), read[1](), int((DATA / f"{case}.rc").read_text().strip())


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("sbatch_plain", "6"),
        ("sbatch_parsable", "7"),
        ("sbatch_array_plain", "8"),
        ("sbatch_array_parsable", "9"),
        ("sbatch_bad_option", None),
        ("sbatch_missing_script", None),
    ],
)
def test_getid_on_recorded_sbatch(case: str, expected: str | None) -> None:
    stdout, _stderr, _rc = recorded(case)
    assert slurm.getid(stdout) == expected


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("squeue_pinned_finished_in_minjobage", []),
        ("squeue_pinned_finished_states_all", []),
        ("squeue_pinned_pending", ["20", "21", "22", "24", "25", "23", "19"]),
        ("squeue_pinned_long_state_pending", ["20", "21", "22", "24", "25", "23", "19"]),
        ("squeue_pinned_with_env_SQUEUE_FORMAT", ["20", "21", "22", "24", "25", "23", "19"]),
        ("squeue_pinned_running", ["22", "24", "23", "20", "21", "25"]),
        ("squeue_array_tasks_pinned", ["22", "21"]),
        ("squeue_array_tasks_pinned_array_flag", ["22", "21"]),
        ("squeue_pinned_purged_and_live", ["42"]),
        ("squeue_pinned_live_and_purged", ["42"]),
        ("squeue_never_existed_and_live", ["22"]),
    ],
)
def test_running_on_recorded_squeue(case: str, expected: list[str]) -> None:
    stdout, _stderr, rc = recorded(case)
    assert rc == 0
    assert jobs_of(slurm.running(stdout)) == expected


@pytest.mark.parametrize(
    "case", ["squeue_default_pending", "squeue_default_with_env_SQUEUE_FORMAT"]
)
def test_running_refuses_recorded_unpinned_listings(case: str) -> None:
    stdout, _stderr, _rc = recorded(case)
    with pytest.raises(ValueError, match="pinned format"):
        slurm.running(stdout)


@pytest.mark.parametrize("case", ["squeue_never_existed", "squeue_pinned_purged"])
def test_recorded_invalid_job_id_is_an_answer(case: str) -> None:
    stdout, stderr, rc = recorded(case)
    assert rc == 1
    assert slurm.check_error(["6"], rc, stdout, stderr) == []
    assert slurm.check_error(["6", "7"], rc, stdout, stderr) is None


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("scontrol_show_job_exit0", 0),
        ("scontrol_show_job_exit3", 3),
        ("scontrol_show_job_sigkill", 137),
        ("scontrol_show_job_cancelled_running", 143),
        ("scontrol_show_job_cancelled_pending", 1),
        ("scontrol_show_job_cancelled_big", 143),
        ("scontrol_show_job_timelimit", 143),
        ("scontrol_show_job_running", None),
        ("scontrol_show_job_pending", None),
        ("scontrol_show_job_held", None),
        ("scontrol_show_job_array_running", None),
        ("scontrol_show_job_never_existed", None),
        ("scontrol_show_job_purged", None),
    ],
)
def test_parse_exitcode_on_recorded_scontrol(case: str, expected: int | None) -> None:
    stdout, _stderr, _rc = recorded(case)
    assert slurm.parse_exitcode(stdout) == expected


# --- how jobs end: recorded here (data/slurm-reasons) and written from SLURM's documented
# formats where this single-node SLURM cannot produce the state (data/slurm-documented) ------

REASONS_DATA = Path(__file__).parent / "data" / "slurm-reasons"
DOCUMENTED = Path(__file__).parent / "data" / "slurm-documented"


def read_case(folder: Path, case: str) -> tuple[str, str, int]:
    """stdout, stderr and exit status of one case in `folder`."""
    stdout, stderr = (
        (folder / f"{case}.stdout").read_text(),
        (folder / f"{case}.stderr").read_text(),
    )
    return stdout, stderr, int((folder / f"{case}.rc").read_text().strip())


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("scontrol_show_job_exit0", (0, None)),
        ("scontrol_show_job_exit3", (3, None)),
        ("scontrol_show_job_sigkill", (137, None)),
        ("scontrol_show_job_cancelled_running", (143, "cancelled")),
        ("scontrol_show_job_cancelled_pending", (1, "cancelled")),
        ("scontrol_show_job_cancelled_big", (143, "cancelled")),
        ("scontrol_show_job_timelimit", (143, "timeout")),
        ("scontrol_show_job_running", None),
        ("scontrol_show_job_pending", None),
        ("scontrol_show_job_held", None),
        ("scontrol_show_job_array_pending", None),
        ("scontrol_show_job_array_running", None),
        ("scontrol_show_job_never_existed", None),
        ("scontrol_show_job_purged", None),
    ],
)
def test_parse_end_on_recorded_scontrol(case: str, expected: tuple[int, str | None] | None) -> None:
    stdout, _stderr, _rc = recorded(case)
    assert slurm.parse_end(stdout) == expected


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("scontrol_show_job_deadline", (1, "timeout")),
        ("scontrol_show_job_requeued", None),  # PENDING, Restarts=1, Reason=BeginTime
        ("scontrol_show_job_requeue_held", None),  # PENDING, Restarts=1, held
        ("scontrol_show_job_special_exit", None),  # SPECIAL_EXIT: requeued and held
        ("scontrol_show_job_cancelled_after_requeue", (1, "cancelled")),
        # A wrapped runscript that killed itself: the wrapper exits 137, the job just FAILED.
        ("scontrol_show_job_wrapper_selfkill", (137, None)),
        ("sacct_no_accounting", None),  # exit 1, "Slurm accounting storage is disabled"
    ],
)
def test_parse_end_on_recorded_reasons(case: str, expected: tuple[int, str | None] | None) -> None:
    stdout, _stderr, _rc = read_case(REASONS_DATA, case)
    assert slurm.parse_end(stdout) == expected


def test_sacct_without_accounting_fails_on_stderr() -> None:
    stdout, stderr, rc = read_case(REASONS_DATA, "sacct_no_accounting")
    assert (stdout, rc) == ("", 1)
    assert stderr.strip() == "Slurm accounting storage is disabled"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("squeue_pinned_deadline", []),  # DL: ended
        ("squeue_pinned_requeue_transition", ["1863"]),  # CG right after scontrol requeue
        ("squeue_pinned_requeued", ["1863"]),  # PD again
        ("squeue_pinned_requeue_held", ["1864"]),
        ("squeue_pinned_special_exit", ["1865"]),  # SE
    ],
)
def test_a_requeued_job_stays_in_the_queue(case: str, expected: list[str]) -> None:
    stdout, _stderr, rc = read_case(REASONS_DATA, case)
    assert rc == 0
    assert jobs_of(slurm.running(stdout)) == expected


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("scontrol_show_job_out_of_memory", (253, "out_of_memory")),
        ("scontrol_show_job_node_fail", (1, "node_fail")),
        ("scontrol_show_job_node_fail_requeued", None),
        ("scontrol_show_job_preempted", (143, "preempted")),
        ("scontrol_show_job_boot_fail", (1, "node_fail")),
        ("scontrol_show_job_requeue_hold", None),
        ("sacct_completed", (0, None)),
        ("sacct_failed", (3, None)),
        ("sacct_cancelled_running", (143, "cancelled")),
        ("sacct_cancelled_pending", (1, "cancelled")),
        ("sacct_timeout", (143, "timeout")),
        ("sacct_out_of_memory", (253, "out_of_memory")),
        ("sacct_node_fail", (1, "node_fail")),
        ("sacct_preempted", (143, "preempted")),
        ("sacct_deadline", (1, "timeout")),
        ("sacct_boot_fail", (1, "node_fail")),
        ("sacct_running", None),
        ("sacct_pending", None),
        ("sacct_requeued", None),
        ("sacct_array_done", (2, None)),
        ("sacct_array_running", None),
        ("sacct_unknown_id", None),
    ],
)
def test_parse_end_on_documented_formats(
    case: str, expected: tuple[int, str | None] | None
) -> None:
    stdout, _stderr, _rc = read_case(DOCUMENTED, case)
    assert slurm.parse_end(stdout) == expected
    assert slurm.parse_exitcode(stdout) == (None if expected is None else expected[0])


def test_every_case_file_is_listed() -> None:
    for folder in (REASONS_DATA, DOCUMENTED):
        listed = (folder / "CASES.md").read_text()
        for stdout in folder.glob("*.stdout"):
            assert f"| {stdout.stem} |" in listed, stdout


def test_scheme_has_parse_end() -> None:
    assert slurm.scheme()["commands"]["parse_end"] is slurm.parse_end


def test_detect_on_recorded_version() -> None:
    stdout, stderr, rc = recorded("sbatch_version")
    assert slurm.detect(rc, stdout + stderr)


# --- the Slurm class (its composed methods on recorded outputs: tests/grid/test_base.py) ----


def test_the_class_reads_the_recorded_outputs() -> None:
    cluster = Slurm()
    assert cluster.parse_id(recorded("sbatch_parsable")[0]) == "7"
    listing = cluster.parse_listing(recorded("squeue_pinned_pending")[0])
    assert listing.queued == slurm.running(recorded("squeue_pinned_pending")[0])
    assert listing.queued
    assert listing.started == slurm.started(recorded("squeue_pinned_pending")[0])
    assert cluster.parse_end(recorded("scontrol_show_job_timelimit")[0]) == (
        slurm.parse_end(recorded("scontrol_show_job_timelimit")[0])
    )
    assert cluster.parse_end(recorded("scontrol_show_job_timelimit")[0])[1] == "timeout"  # type: ignore[index]
    _out, stderr, rc = recorded("squeue_never_existed")
    assert cluster.check_error(["999999"], rc, "", stderr) == []
    assert cluster.check_error(["999999", "22"], rc, "", stderr) is None
    stdout, stderr, rc = recorded("sbatch_version")
    assert cluster.detect(rc, stdout + stderr)
    assert cluster.end_argvs("7") == slurm.exitcode_commands("7")
    assert cluster.unset_env == ("SQUEUE_*", "SACCT_*")
    assert cluster.long_flags


# --- resources ------------------------------------------------------------------------------


def test_resources_become_sbatch_flags() -> None:
    request = Resources.of(
        {"cores": 8, "nodes": 2, "memory": "16G", "walltime": "1-02:00:00", "gpus": 4,
         "partition": "gpu", "account": "proj42"}
    )  # fmt: skip
    assert slurm.resource_args(request) == [
        *["-p", "gpu", "-A", "proj42", "-N", "2", "--cpus-per-task=4", "--mem=8192M"],
        *["--time=1-02:00:00", "--gpus=4"],
    ]  # cores and memory per node: one task per node, --mem counts per node
    assert slurm.resource_args(Resources.of({"memory": "1.5G", "walltime": 90})) == [
        "--mem=1536M",
        "--time=0:01:30",
    ]
    assert slurm.resource_args(Resources.of({"memory": 1, "walltime": 30 * 3600})) == [
        "--mem=1M",  # rounded up, never down
        "--time=1-06:00:00",
    ]
    assert slurm.resource_args(Resources()) == []
    assert Slurm().resource_args(request) == slurm.resource_args(request)
    assert Slurm().maps_resources


@given(resources())
def test_sbatch_flags_ask_at_least_the_request_and_under_a_megabyte_a_node_more(
    request: Resources,
) -> None:
    args = slurm.resource_args(request)
    values = {flag: value for flag, value in zip(args, args[1:]) if flag in ("-p", "-A", "-N")}
    flags = dict(a.split("=", 1) for a in args if a.startswith("--") and a not in values.values())
    nodes = request.nodes or 1
    if request.memory is None:
        assert "--mem" not in flags
    else:
        given_bytes = int(flags["--mem"].rstrip("M")) * 1024**2 * nodes
        assert request.memory <= given_bytes < request.memory + nodes * 1024**2
    if request.walltime is not None:
        assert parse_walltime(flags["--time"]) == request.walltime
    if request.cores is not None:
        assert int(flags["--cpus-per-task"]) * nodes == request.cores
    assert values.get("-p") == request.queue
    assert values.get("-A") == request.account
    assert values.get("-N") == (None if request.nodes is None else str(request.nodes))


@pytest.mark.parametrize(
    ("line", "keys"),
    [
        ("#SBATCH --mem=4G", ["memory"]),
        ("#SBATCH --mem 4G", ["memory"]),
        ("#SBATCH --mem-per-cpu=1G", ["memory"]),
        ("#SBATCH -t 10", ["walltime"]),
        ("#SBATCH --time=1:00:00 -c4", ["walltime", "cores"]),
        ("#SBATCH -N 2 -p short -A proj42", ["nodes", "queue", "account"]),
        ("#SBATCH --partition=long --account=x", ["queue", "account"]),
        ("#SBATCH --gpus=2", ["gpus"]),
        ("#SBATCH --gres=gpu:2", ["gpus"]),
        ("#SBATCH --gres=tmp:10G", []),
        ("#SBATCH --hint=nomultithread", []),
        ("#SBATCH --job-name=x # --mem=4G is a comment", []),
        ("#SBATCHX --mem=1G", []),
        ("#$ -l h_vmem=1G", []),
        ("#PBS -l mem=1gb", []),
    ],
)
def test_directive_resources_reads_sbatch_lines(line: str, keys: list[str]) -> None:
    assert slurm.directive_resources(line) == keys
    assert Slurm().directive_resources(line) == keys


# --- limits -------------------------------------------------------------------------------


def test_parse_limits_reads_each_partition_s_maxtime_and_maxmempernode() -> None:
    stdout, _, rc = recorded("scontrol_show_partition")
    assert rc == 0
    limits = slurm.parse_limits(stdout)
    assert limits.default == "debug"
    assert dict(limits.queues) == {
        "debug": (None, None),
        "short": (300, 2000 * 1024**2),
        "long": (None, None),
        "high": (None, None),
    }
    assert Slurm().check_limits(Resources(walltime=48 * 3600, queue="short"), limits) == (
        "walltime 48:00:00 exceeds partition 'short' MaxTime 0:05:00 (use partition 'debug', "
        "or less walltime)"
    )


def test_parse_limits_reads_the_multi_line_form_and_days() -> None:
    # The form of `scontrol show partition` without --oneliner (SLURM's man page).
    output = (
        "PartitionName=gpu\n   AllowGroups=ALL Default=NO\n   MaxNodes=UNLIMITED "
        "MaxTime=2-00:00:00 MinNodes=0\n   MaxMemPerNode=UNLIMITED\n\n"
        "PartitionName=cpu\n   Default=YES\n   MaxTime=UNLIMITED\n   MaxMemPerCPU=4000\n"
    )
    limits = slurm.parse_limits(output)
    assert limits.default == "cpu"
    assert dict(limits.queues) == {"gpu": (2 * 86400, None), "cpu": (None, None)}


def test_parse_limits_reads_the_qos_limits_and_the_users_default_qos() -> None:
    # scontrol's partitions, then `sacctmgr show qos` (3 fields) and `show assoc` (5 fields)
    output = (
        "PartitionName=debug Default=YES MaxTime=UNLIMITED MaxMemPerNode=UNLIMITED\n"
        "normal|2-00:00:00|\n"
        "limited|00:10:00|cpu=4,mem=500M\n"
        "huge||mem=2T\n"
        "odd|later|mem=lots\n"
        "me|chem||limited,normal|\n"
        "me|phys||normal|\n"
    )
    limits = slurm.parse_limits(output)
    assert list(limits.queues) == ["debug"]
    assert dict(limits.qos) == {
        "normal": (2 * 86400, None),
        "limited": (600, 500 * 1024**2),
        "huge": (None, 2 * 1024**4),
        "odd": (None, None),  # not understood: not checked
    }
    assert limits.default_qos == "normal"  # none set: SLURM's "normal", which both allow
    scheduler = Slurm()
    assert scheduler.check_limits(Resources(walltime=3 * 86400), limits) == (
        "walltime 72:00:00 exceeds QOS 'normal' MaxWall 48:00:00 (use QOS 'huge' if your "
        "account may, or less walltime)"
    )
    assert scheduler.check_limits(Resources(memory=1024**3), limits, "limited") == (
        "memory 1G exceeds QOS 'limited' MaxTRES mem 500M (use QOS 'normal' if your account "
        "may, or less memory)"
    )
    assert scheduler.qos_of({"qos": "limited", "memory": "1G"}) == "limited"
    assert scheduler.qos_of({"memory": "1G"}) is None


def test_parse_limits_reads_the_submit_limits_of_each_qos_and_association() -> None:
    # `sacctmgr show qos` (4 fields, MaxSubmitPU last) and `show assoc` (7 fields: MaxSubmitJobs
    # and GrpSubmitJobs last), in the pinned formats
    assert slurm.QOS_FORMAT.endswith(",MaxSubmitPU")
    assert slurm.ASSOC_FORMAT.endswith(",MaxSubmitJobs,GrpSubmitJobs")
    output = (
        "PartitionName=debug Default=YES MaxTime=UNLIMITED\n"
        "normal|||\n"
        "limited|00:10:00||20\n"
        "zero|||0\n"
        "me|chem||limited,normal||100|\n"
        "me|phys||normal||100|50\n"
        "me|gpu||normal|gpu|5|\n"
    )
    limits = slurm.parse_limits(output)
    assert dict(limits.qos) == {
        "normal": (None, None),
        "limited": (600, None),
        "zero": (None, None),
    }
    assert limits.default_qos == "normal"
    assert dict(limits.submit) == {
        "qos:limited": 20,  # 0 and none set: no limit kept to (the scheduler decides)
        "account:chem": 100,
        "account:phys": 50,  # the lower of MaxSubmitJobs and GrpSubmitJobs
    }  # a partition's own association is not read; the default account's is not known
    assert limits.submit_counts_tasks  # SLURM counts each task of an array
    same = output.replace("me|phys||normal||100|50", "me|phys||normal||100|")
    assert slurm.parse_limits(same).submit["account:"] == 100  # every association's


def test_parse_limits_reads_answers_in_the_formats_before_submit_limits() -> None:
    output = "PartitionName=debug Default=YES\nnormal|2-00:00:00|\nme|chem||normal|\n"
    limits = slurm.parse_limits(output)
    assert dict(limits.qos) == {"normal": (2 * 86400, None)}
    assert limits.default_qos == "normal"
    assert dict(limits.submit) == {}


@pytest.mark.parametrize(
    ("assoc", "default"),
    [
        ("me|chem|long|long,normal|\nme|phys|long|long|\n", "long"),
        ("me|chem|long|long,normal|\nme|phys|normal|normal|\n", None),  # which one: unknown
        ("me|chem||limited|\n", None),  # none set and "normal" not allowed
        ("me|chem|fast|fast|gpu\nme|chem||normal|\n", "normal"),  # a partition's own: skipped
        ("", None),  # no accounting answer
    ],
)
def test_the_default_qos_is_only_what_every_association_shares(
    assoc: str, default: Optional[str]
) -> None:
    output = "PartitionName=debug Default=YES\nnormal||\nlong|7-00:00:00|\nfast||\n" + assoc
    assert slurm.parse_limits(output).default_qos == default


@pytest.mark.parametrize(
    "output",
    [
        "",
        "slurm_load_partitions: Unable to contact slurm controller\n",
        "PartitionName=a MaxTime=soon\n",
    ],
)
def test_parse_limits_refuses_what_it_does_not_understand(output: str) -> None:
    with pytest.raises(ValueError):
        slurm.parse_limits(output)


_OOM_NOTE = (
    "slurmstepd-localhost: error: Detected 1 oom-kill event(s) in StepId=19815.batch. Some of "
    "your processes may have been killed by the cgroup out-of-memory handler.\n"
)


def test_ended_in_part_finds_slurmstepds_oom_kill_note_only() -> None:
    assert slurm.ended_in_part("Killed\n" + _OOM_NOTE)
    assert Slurm().ended_in_part(_OOM_NOTE)
    assert not slurm.ended_in_part("Traceback...\nMemoryError\n")
    assert not slurm.ended_in_part("")


class _Told(Slurm):
    """SLURM whose end query answers from a dict (a stand-in for scontrol and sacct)."""

    def __init__(self, ends: dict[str, tuple[int, str | None] | None]) -> None:
        super().__init__()
        self.ends = ends
        self.asked: list[str] = []

    def how_ended(self, jobid: str) -> tuple[int, str | None] | None:  # type: ignore[override]
        self.asked.append(jobid)
        return self.ends.get(jobid)


def test_a_job_that_exited_0_after_an_oom_kill_ends_by_the_schedulers_word(
    tmp_path: Path,
) -> None:
    from runner_grid._ending import end_step  # noqa: PLC0415 - the step under test

    exit_file = tmp_path / "job.exitcode"
    exit_file.write_text("0\n")
    scheduler = _Told({"7": (253, "out_of_memory"), "8": None})
    (tmp_path / "job.err").write_text("Killed\n" + _OOM_NOTE)
    end = end_step(scheduler, "7", str(exit_file), cancelled=False, last=False)
    assert end is not None
    assert (end.code, end.reason) == (253, "out_of_memory")
    assert end_step(scheduler, "8", str(exit_file), cancelled=False, last=False) is None  # later
    end = end_step(scheduler, "8", str(exit_file), cancelled=False, last=True)
    assert end is not None
    assert (end.code, end.reason) == (0, None)
    (tmp_path / "job.err").write_text("all fine\n")
    end = end_step(scheduler, "9", str(exit_file), cancelled=False, last=False)
    assert end is not None
    assert (end.code, end.reason) == (0, None)
    assert scheduler.asked == ["7", "8", "8"]  # a clean stderr costs no query
