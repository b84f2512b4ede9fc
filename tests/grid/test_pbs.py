"""Tests for the PBS scheme's parsers, on outputs of a real OpenPBS 23.06.06 and documented ones.

No PBS server runs on these machines. tests/grid/data/pbs holds outputs recorded from a real
OpenPBS 23.06.06 server (see its README.md), tests/grid/data/pbs-arrays those about job
arrays; the refusal messages are the ones OpenPBS's sources print, and the inline Torque and
PBS Pro samples follow the layouts of their documentation.
"""

# ruff: noqa: E501  (scheduler outputs keep their exact width)

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Optional

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from runner_core import REASONS, Resources, parse_walltime
from runner_grid import Listing, Scheme
from runner_grid._submitter import classify_refusal
from runner_grid.schemes import pbs
from runner_grid.schemes.pbs import Pbs
from strategies import jobs_of, queue_entries, resources, server_suffixes

if TYPE_CHECKING:
    from collections.abc import Sequence

PBSPRO_QSTAT = """\
Job id            Name             User              Time Use S Queue
----------------  ---------------- ----------------  -------- - -----
101.pbsserver     job1             alice             00:00:01 R workq
102[].pbsserver   arrayjob         alice                    0 B workq
103.pbsserver     job3             alice                    0 Q workq
104.pbsserver     job4             alice             00:00:00 H workq
105.pbsserver     job5             alice             00:00:10 E workq
106.pbsserver     job6             alice             00:01:00 F workq
1234567.pbsserv*  long             alice                    0 W workq
"""

TORQUE_QSTAT = """\
Job ID                    Name             User            Time Use S Queue
------------------------- ---------------- --------------- -------- - -----
201.torque.example.org     STDIN            bob                    0 R batch
202.torque.example.org     STDIN            bob             00:00:00 C batch
203[].torque.example.org   STDIN            bob                    0 Q batch
203[1].torque.example.org  STDIN            bob                    0 R batch
204.torque.example.org     STDIN            bob                    0 T batch
"""

TORQUE_QSTAT_A = """\

torque.example.org:
                                                                                  Req'd       Req'd       Elap
Job ID                  Username    Queue    Jobname          SessID  NDS   TSK   Memory      Time    S   Time
----------------------- ----------- -------- ---------------- ------ ----- ------ --------- --------- - ---------
301.torque.example.org  bob         batch    STDIN             12345     1      1       --   01:00:00 R  00:00:05
302.torque.example.org  bob         batch    STDIN               --      1      1       --   01:00:00 C       --
"""

noise_lines = st.lists(
    st.sampled_from(["Welcome to the cluster", "", "qsub: warning", "  "]), max_size=4
)


@given(
    noise_lines,
    st.integers(1, 10**9),
    st.sampled_from(["", ".server", ".pbs.example.org", "[].srv", "[].pbsvm"]),
)
@example(["Job submitted"], 5, ".server")
@example([], 9, "[].pbsvm")  # what OpenPBS prints for `qsub -J 1-3` (its qstat lists 9[].pbsvm)
def test_getid_reads_the_last_id_line_whatever_comes_before(
    noise: list[str], number: int, suffix: str
) -> None:
    assert pbs.getid("\n".join([*noise, f"{number}{suffix}", ""])) == f"{number}{suffix}"


@pytest.mark.parametrize("output", ["", "\n", "qsub: Bad UID for job execution\n", "1.2.3 x\n"])
def test_getid_without_an_id_is_none(output: str) -> None:
    assert pbs.getid(output) is None


def test_running_pbspro() -> None:
    assert jobs_of(pbs.running(PBSPRO_QSTAT)) == ["101", "102", "103", "104", "105", "1234567"]


def test_running_torque_default_and_alternative_format() -> None:
    assert jobs_of(pbs.running(TORQUE_QSTAT)) == ["201", "203", "204"]
    assert jobs_of(pbs.running(TORQUE_QSTAT_A)) == ["301"]
    assert jobs_of(pbs.running("")) == []


def test_running_refuses_garbage() -> None:
    with pytest.raises(ValueError, match="neither a header nor a job line"):
        pbs.running("Connection refused\n")


def _listing(
    jobs: list[tuple[int, bool, bool]], suffix: str, header: bool, blank: bool, alternative: bool
) -> str:
    """A qstat listing of `jobs` in the default (or ``-a``) layout OpenPBS prints."""
    lines = []
    if alternative:
        lines += ["", "pbsvm: ", " " * 60 + "Req'd  Req'd   Elap",
                  "Job ID          Username Queue    Jobname    SessID NDS TSK Memory Time  S Time",
                  "--------------- -------- -------- ---------- ------ --- --- ------ ----- - -----"]  # fmt: skip
    elif header:
        lines += ["Job id            Name             User              Time Use S Queue",
                  "----------------  ---------------- ----------------  -------- - -----"]  # fmt: skip
    for number, array, finished in jobs:
        jobid = f"{number}[]{suffix}" if array else f"{number}{suffix}"
        state = "F" if finished else "R"
        if alternative:
            lines.append(
                f"{jobid:<15} root     workq    sleep.sh     9395   1   1    --    --  {state} 00:00"
            )
        else:
            lines.append(
                f"{jobid:<17} sleep.sh         root              00:00:00 {state} workq           "
            )
        if blank:
            lines.append("")
    return "\n".join(lines) + "\n"


@given(
    queue_entries(),
    server_suffixes,
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
@example([(9, True, False), (10, False, True)], ".pbsvm", True, False, False)
def test_any_listing_gives_the_live_ids_in_order(
    jobs: list[tuple[int, bool, bool]], suffix: str, header: bool, blank: bool, alternative: bool
) -> None:
    """Headers, blank lines, array brackets and server suffixes never change the ids."""
    output = _listing(jobs, suffix, header, blank, alternative)
    assert jobs_of(pbs.running(output)) == [str(n) for n, _array, finished in jobs if not finished]


def test_check_lists_the_whole_queue() -> None:
    assert pbs.check_commands(["1.s"]) == [["qstat", "-t"]]


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("Job Id: 5.server\n    job_state = F\n    Exit_status = 3\n", 3),
        ("Job Id: 5.server\n    Exit_status = 0\n", 0),
        ("Job Id: 5.server\n    Exit_status = 271\n", 143),
        ("Job Id: 5.server\n    Exit_status = -1\n", 1),
        ("<Data><Job><Job_Id>5.t</Job_Id><exit_status>2</exit_status></Job></Data>", 2),
        ("Job Id: 5.server\n    job_state = R\n", None),
        ("qstat: Unknown Job Id 5.server\n", None),
    ],
)
def test_parse_exitcode(output: str, expected: int | None) -> None:
    assert pbs.parse_exitcode(output) == expected


TEXT = "Job Id: 5.server\n    job_state = {state}\n    substate = {substate}\n{status}"


@pytest.mark.parametrize(
    ("state", "substate", "status", "expected"),
    [
        ("F", 92, 0, (0, None)),
        ("F", 93, 3, (3, None)),
        ("F", 93, 271, (143, None)),  # 256 + SIGTERM, as PBS Pro reports a signal it sent
        ("F", 91, 0, (1, "cancelled")),
        ("F", 91, 271, (143, "cancelled")),  # a real status of a deleted job is kept
        ("F", 91, None, (1, "cancelled")),
        ("F", 93, -29, (1, "timeout")),
        ("F", 93, -28, (1, "timeout")),
        ("F", 93, -27, (1, "out_of_memory")),
        ("F", 93, -26, (1, "out_of_memory")),
        ("F", 93, -25, (1, None)),  # ncpus (sum) exceeded: no reason word for that
        ("F", 93, -1, (1, None)),
        ("F", 93, None, (1, "node_fail")),  # mom went down while it ran (T_MOM_DOWN)
        ("F", 93, 0, (1, "node_fail")),  # the same, with the status of an earlier attempt
        ("F", 91, -29, (1, "cancelled")),  # a deleted job's code is never negative
        ("X", 92, 0, (0, None)),  # finished array subjob
        ("X", 91, None, (1, "cancelled")),
        ("E", 50, 0, None),  # exiting: not yet final
        ("M", 94, None, None),  # moved to another server: runs there
        ("Q", 10, -11, None),  # requeued (JOB_EXEC_RERUN) and queued again
        ("R", 42, None, None),
        ("H", 20, None, None),
    ],
)
def test_parse_end_text(
    state: str, substate: int, status: int | None, expected: tuple[int, str | None] | None
) -> None:
    line = "" if status is None else f"    Exit_status = {status}\n"
    output = TEXT.format(state=state, substate=substate, status=line)
    assert pbs.parse_end(output) == expected
    assert pbs.parse_exitcode(output) == (None if expected is None else expected[0])


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["F", "X", "E", "M", "Q", "R", "H"]),
            st.sampled_from([10, 42, 50, 91, 92, 93, 94]),
            st.none() | st.integers(-30, 300),
        ),
        max_size=4,
    )
)
@example([("F", 91, 0)])
@example([("X", 92, 0), ("R", 42, None)])
def test_parse_exitcode_is_the_code_of_parse_end(
    records: list[tuple[str, int, int | None]],
) -> None:
    """The PLAMS-era parse_exitcode and parse_end never disagree, every reason is a known word,
    a deleted job is never a success, and a record of a job not yet finished is no end."""
    output = "\n".join(
        TEXT.format(
            state=state,
            substate=substate,
            status="" if status is None else f"    Exit_status = {status}\n",
        )
        for state, substate, status in records
    )
    end = pbs.parse_end(output)
    assert pbs.parse_exitcode(output) == (None if end is None else end[0])
    if end is None:
        return
    assert end[1] is None or end[1] in REASONS
    assert all(state in ("F", "X") for state, _substate, _status in records)
    if end[1] == "cancelled":
        assert end[0] != 0


def test_parse_end_array_parent_without_status_is_not_a_node_failure() -> None:
    output = TEXT.format(state="F", substate=93, status="    array = True\n")
    assert pbs.parse_end(output) == (1, None)


TORQUE = "<Data><Job><Job_Id>5.t</Job_Id><job_state>{state}</job_state>{status}<substate>59</substate></Job></Data>"


@pytest.mark.parametrize(
    ("state", "status", "expected"),
    [
        ("C", "<exit_status>0</exit_status>", (0, None)),
        ("C", "<exit_status>2</exit_status>", (2, None)),
        ("C", "<exit_status>271</exit_status>", (143, None)),
        ("C", "<exit_status>-11</exit_status>", (1, "timeout")),
        ("C", "<exit_status>-12</exit_status>", (1, "timeout")),
        ("C", "<exit_status>-10</exit_status>", (1, "out_of_memory")),
        ("C", "<exit_status>-29</exit_status>", (1, None)),  # PBS Pro's code, not Torque's
        ("R", "", None),
        ("E", "<exit_status>0</exit_status>", None),
    ],
)
def test_parse_end_torque_xml(
    state: str, status: str, expected: tuple[int, str | None] | None
) -> None:
    assert pbs.parse_end(TORQUE.format(state=state, status=status)) == expected


def test_parse_end_several_records_ends_when_all_have() -> None:
    done = TEXT.format(state="X", substate=92, status="    Exit_status = 0\n")
    failed = TEXT.format(state="X", substate=93, status="    Exit_status = 4\n")
    running = TEXT.format(state="R", substate=42, status="")
    assert pbs.parse_end(done + "\n" + failed) == (4, None)
    assert pbs.parse_end(done + "\n" + done) == (0, None)
    assert pbs.parse_end(done + "\n" + running) is None


def test_detect_tells_pbs_from_grid_engine() -> None:
    assert pbs.detect(0, "pbs_version = 2022.1.1\n")
    assert pbs.detect(0, "Version: 6.1.3\nCommit: abc\n")
    # Grid Engine's qsub, recorded here: `qsub --version` exits 2.
    assert not pbs.detect(2, 'qsub: invalid option argument "--version"\n')
    assert not pbs.detect(0, "SGE 8.1.9\nusage: qsub [options]\n")


def test_pbs_scheme_has_no_workdir_flag() -> None:
    assert pbs.scheme()["workdir"] is None


def test_scheme_has_the_end_parsers() -> None:
    commands = pbs.scheme()["commands"]
    assert commands["parse_end"] is pbs.parse_end
    assert commands["check_error"] is pbs.check_error
    assert commands["exitcode"]("12.pbsvm") == [["qstat", "-x", "-f", "12.pbsvm"]]


def test_detect_rejects_the_recorded_grid_engine_qsub() -> None:
    # `qsub --version` of this machine's Grid Engine, recorded in tests/grid/data/sge.
    data = Path(__file__).parent / "data" / "sge"
    stdout = (data / "qsub_version.stdout").read_text()
    stderr = (data / "qsub_version.stderr").read_text()
    rc = int((data / "qsub_version.rc").read_text())
    assert not pbs.detect(rc, stdout + stderr)
    help_out = (data / "qsub_help.stdout").read_text() + (data / "qsub_help.stderr").read_text()
    assert not pbs.detect(0, help_out)


# --- outputs recorded from a real OpenPBS 23.06.06 (tests/grid/data/pbs) ---------------------

DATA = Path(__file__).parent / "data" / "pbs"


class Recorded(NamedTuple):
    """One recorded case: its command line, standard output and error, exit status."""

    command: str
    stdout: str
    stderr: str
    rc: int


def recorded(case: str, data: Path = DATA) -> Recorded:
    """Read ``CASE.txt``: the command line, then ``--- stdout ---``, ``--- stderr ---`` and
    ``--- exit status: N`` sections."""
    text = (data / f"{case}.txt").read_text()
    command, rest = text.split("\n--- stdout ---\n", 1)
    stdout, rest = rest.split("--- stderr ---\n", 1)
    stderr, status = rest.split("--- exit status: ", 1)
    return Recorded(command, stdout, stderr, int(status.strip()))


def _cases() -> list[str]:
    return sorted(
        p.stem for p in DATA.glob("*.txt") if p.stem != "qsub_o_e_path_with_space_delivered"
    )


def test_every_recorded_case_reads_and_is_listed() -> None:
    listed = (DATA / "CASES.md").read_text()
    for case in _cases():
        out = recorded(case)
        assert f"| {case} |" in listed
        assert out.rc == int(listed.split(f"| {case} |", 1)[1].split("|")[1].strip())


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("qsub_plain", "3.pbsvm"),
        ("qsub_o_e_path_with_space", "13.pbsvm"),
        ("qsub_version", None),
        ("qsub_bad_option", None),
        ("qsub_missing_script", None),
        ("qsub_name_with_space", None),
    ],
)
def test_getid_on_recorded_qsub(case: str, expected: str | None) -> None:
    assert pbs.getid(recorded(case).stdout) == expected


def test_job_names_may_not_hold_spaces() -> None:
    out = recorded("qsub_name_with_space")
    assert out.rc == 2
    assert out.stderr.startswith("qsub: illegal -N value")


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("qstat_default_mixed", ["5", "6", "7", "8", "9"]),
        ("qstat_a", ["5", "6", "7", "8", "9"]),
        ("qstat_right_after_qdel_running", ["6", "7", "8", "9"]),
        ("qstat_job_exiting", ["29"]),  # state E: still in the queue
        ("qstat_after_qdels", []),
        ("qstat_empty_queue", []),
        ("qstat_x_after_qdels", []),  # every job F
        ("qstat_x_finished", []),
        ("qstat_unknown_and_live", ["10"]),  # its stdout; the unknown id is on stderr
    ],
)
def test_running_on_recorded_qstat(case: str, expected: list[str]) -> None:
    assert jobs_of(pbs.running(recorded(case).stdout)) == expected


@pytest.mark.parametrize(
    ("case", "ids", "expected"),
    [
        ("qstat_unknown", ["99999.pbsvm"], []),
        ("qstat_unknown_bare", ["99999"], []),  # the server names it 99999.pbsvm
        ("qstat_x_f_unknown", ["99999.pbsvm"], []),
        ("qstat_finished_plain", ["4.pbsvm"], []),
        ("qstat_f_finished_no_x", ["4.pbsvm"], []),
        ("qstat_unknown_and_live", ["99999.pbsvm", "10.pbsvm"], ["10"]),
        # Not safe: an id asked for is neither listed nor named, or one named was not asked.
        ("qstat_unknown", ["99999.pbsvm", "11.pbsvm"], None),
        ("qstat_unknown", ["5.pbsvm"], None),
        ("qstat_unknown_and_live", ["99999.pbsvm"], None),
        # Server down: the check failed, nothing is released.
        ("qstat_server_down", [], None),
        ("qstat_server_down", ["5.pbsvm"], None),
    ],
)
def test_check_error_on_recorded_qstat(
    case: str, ids: list[str], expected: list[str] | None
) -> None:
    out = recorded(case)
    assert out.rc != 0
    assert pbs.check_error(ids, out.rc, out.stdout, out.stderr) == expected


@pytest.mark.parametrize(
    ("rc", "stdout", "stderr"),
    [
        (153, "", "qstat: Unknown Job Id 7.pbsvm\nqstat: cannot connect to server pbsvm\n"),
        (153, "Connection refused\n", "qstat: Unknown Job Id 7.pbsvm\n"),
        (153, "", ""),
        (1, "", "qstat: Unknown Job Id 7.pbsvm\n"),
        (255, "", "qstat: Unknown Job Id 7.pbsvm\n"),
    ],
)
def test_check_error_refuses_what_is_not_an_answer(rc: int, stdout: str, stderr: str) -> None:
    assert pbs.check_error(["7.pbsvm"], rc, stdout, stderr) is None


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("qstat_x_f_exit0", (0, None)),  # substate 92
        ("qstat_x_f_exit3", (3, None)),  # substate 93
        ("qstat_x_f_sigkill", (137, None)),  # killed by a signal PBS did not send
        ("qstat_x_f_walltime", (1, "timeout")),  # Exit_status = -29
        # qdel while running (substate 91, Exit_status = 0): the bug of issue 8.
        ("qstat_x_f_qdel_running", (1, "cancelled")),
        ("qstat_x_f_qdel_running_b", (1, "cancelled")),
        ("qstat_x_f_qdel_running_c", (1, "cancelled")),
        ("qstat_x_f_qdel_running_6s", (1, "cancelled")),
        ("qstat_x_f_qdel_queued", (1, "cancelled")),
        ("qstat_x_f_qdel_held_never_ran", (1, "cancelled")),  # no Exit_status at all
        ("qstat_x_f_array", (1, "cancelled")),  # the deleted array 9[]
        ("qstat_x_f_running", None),
        ("qstat_x_f_exit3_history_off", None),  # exit 0, empty stdout
        ("qstat_x_f_unknown", None),
        ("qstat_x_finished", None),  # not the -f layout: no record to read
    ],
)
def test_parse_end_on_recorded_qstat_x_f(
    case: str, expected: tuple[int, str | None] | None
) -> None:
    out = recorded(case)
    assert pbs.parse_end(out.stdout) == expected
    assert pbs.parse_exitcode(out.stdout) == (None if expected is None else expected[0])


def test_a_deleted_job_is_never_a_success() -> None:
    """Issue 8: qdel by someone else gave SUCCESSFUL with 0 (Exit_status = 0, substate 91)."""
    for case in _cases():
        out = recorded(case)
        if "substate = 91" in out.stdout:
            assert "Exit_status = 0" in out.stdout or "Exit_status" not in out.stdout
            end = pbs.parse_end(out.stdout)
            assert end is not None, case
            assert end[0] != 0, case
            assert end[1] == "cancelled", case


def test_history_off_is_told_on_stderr_only() -> None:
    out = recorded("qstat_x_f_exit3_history_off")
    assert (out.rc, out.stdout) == (0, "")
    assert "PBS is not configured to maintain job history" in out.stderr


def test_every_reason_is_a_runner_core_reason() -> None:
    for case in _cases():
        end = pbs.parse_end(recorded(case).stdout)
        assert end is None or end[1] is None or end[1] in REASONS
    assert set(pbs.PBSPRO_REASONS.values()) | set(pbs.TORQUE_REASONS.values()) <= set(REASONS)


@pytest.mark.parametrize(
    ("case", "ids"),
    [
        ("qdel_running", ["5.pbsvm"]),
        ("qdel_queued", ["7.pbsvm"]),
        ("qdel_two", ["6.pbsvm", "8.pbsvm"]),
        ("qdel_array", ["9[].pbsvm"]),
    ],
)
def test_cancel_builds_the_recorded_qdel(case: str, ids: list[str]) -> None:
    out = recorded(case)
    assert out.rc == 0
    (argv,) = pbs.cancel_commands(ids)
    assert " ".join(argv) == out.command.replace("'", "")


def test_detect_on_recorded_version() -> None:
    out = recorded("qsub_version")
    assert pbs.detect(out.rc, out.stdout + out.stderr)
    for case in ("qsub_bad_option", "qsub_missing_script"):
        bad = recorded(case)
        assert not pbs.detect(bad.rc, bad.stdout + bad.stderr)


# --- job arrays on the same OpenPBS 23.06.06 (tests/grid/data/pbs-arrays) -------------------

ARRAYS = Path(__file__).parent / "data" / "pbs-arrays"


def array_case(case: str) -> Recorded:
    return recorded(case, ARRAYS)


def test_every_recorded_array_case_reads_and_is_listed() -> None:
    listed = (ARRAYS / "CASES.md").read_text()
    cases = sorted(p.stem for p in ARRAYS.glob("*.txt") if not p.stem.startswith("server_log"))
    assert len(cases) == 33
    for case in cases:
        out = array_case(case)
        assert f"| {case} |" in listed
        assert out.rc == int(listed.split(f"| {case} |", 1)[1].split("|")[1].strip())


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        # Deleted while queued: it never ran, and PBS shows its array's record under its id
        # (substate 93 and Exit_status 1 are the array's). It was reported CRASHED, exit 1.
        ("qstat_x_f_qdel_queued_subjob", (1, "cancelled")),
        ("qstat_x_f_qdel_running_subjob", (1, "cancelled")),  # substate 91, Exit_status 0
        ("qstat_x_f_walltime_subjob", (1, "timeout")),  # substate 93, Exit_status -29
        ("qstat_x_f_finished_subjob_exit3", (3, None)),
        # Ran and failed with exit 1 (its output could not be delivered): no reason.
        ("qstat_x_f_dangling_symlink_subjob", (1, None)),
        ("qstat_x_f_running_subjob", None),
    ],
)
def test_parse_end_on_recorded_subjobs(case: str, expected: tuple[int, str | None] | None) -> None:
    out = array_case(case)
    assert pbs.parse_end(out.stdout) == expected
    assert pbs.parse_exitcode(out.stdout) == (None if expected is None else expected[0])


def _without(record: str, name: str) -> str:
    return "".join(line for line in record.splitlines(True) if not line.startswith(f"    {name} ="))


def test_only_a_subjob_that_never_ran_is_told_cancelled_by_its_stand_in_record() -> None:
    stand_in = array_case("qstat_x_f_qdel_queued_subjob").stdout
    # While its array still runs, the stand-in carries the array's substate and no
    # Exit_status (stat_job.c fakes only job_state and comment): cancelled all the same.
    running_array = _without(stand_in, "Exit_status").replace("substate = 93", "substate = 70")
    assert pbs.parse_end(running_array.replace("job_state = F", "job_state = X")) == (
        1,
        "cancelled",
    )
    # A subjob that ran has an exec_host, whatever its comment: its own status counts.
    ran = stand_in.replace("    substate = 93", "    exec_host = pbsvm/0\n    substate = 93")
    assert pbs.parse_end(ran) == (1, None)
    # Not a subjob (no [index] in its id): the plain-job rules apply.
    plain = stand_in.replace("Job Id: 318[5].pbsvm", "Job Id: 318.pbsvm")
    assert pbs.parse_end(plain) == (1, None)
    # Still queued: not final.
    assert pbs.parse_end(stand_in.replace("job_state = F", "job_state = Q")) is None


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("qstat_t_running_array", ["318", "318[1]", "318[2]", "318[3]", "318[4]", "318[5]"]),
        ("qstat_t_after_qdel_subjobs", ["318", "318[1]", "318[3]", "318[4]"]),  # X: gone
        ("qstat_t_throttled_array", ["320", "320[5]", "320[6]"]),
        ("qstat_t_x_finished_array", []),
    ],
)
def test_running_on_recorded_array_listings(case: str, expected: list[str]) -> None:
    assert pbs.running(array_case(case).stdout) == expected


def test_array_ids_and_limit_on_recorded_outputs() -> None:
    assert pbs.getid(array_case("qsub_J_1_5").stdout) == "318[].pbsvm"
    assert pbs.task_id("318[].pbsvm", 5) == "318[5].pbsvm"
    assert pbs.parse_array_limit(array_case("qstat_B_f").stdout) == 10000


def test_cancel_sends_each_subjob_in_a_qdel_of_its_own() -> None:
    """One qdel naming subjobs 1, 3 and 5 reached the server as 323[1,3]: 5 ran on."""
    out = array_case("qdel_three_subjobs")
    log = (ARRAYS / "server_log_qdel_three_subjobs.txt").read_text()
    assert out.rc == 0
    assert "323[1,3].pbsvm;delete job request received" in log
    assert "323[5]" in pbs.running(array_case("qstat_t_after_qdel_three_subjobs").stdout)
    ids = shlex.split(out.command)[1:]
    assert pbs.cancel_commands(ids) == [["qdel", jobid] for jobid in ids]
    single = array_case("qdel_running_subjob")
    assert pbs.cancel_commands(shlex.split(single.command)[1:]) == [shlex.split(single.command)]


def test_cancel_batches_plain_jobs_and_whole_arrays_and_splits_subjobs() -> None:
    ids = ["5.pbsvm", "598[3].pbsvm", "9[].pbsvm", "598[5]", "6", "598[7].pbsvm"]
    assert pbs.cancel_commands(ids) == [
        ["qdel", "5.pbsvm", "9[].pbsvm", "6"],
        ["qdel", "598[3].pbsvm"],
        ["qdel", "598[5]"],
        ["qdel", "598[7].pbsvm"],
    ]
    assert pbs.cancel_commands([]) == []
    commands = pbs.cancel_commands([f"{n}[{i}].s" for n in (1, 2) for i in range(1, 4)])
    assert all(len(argv) == 2 for argv in commands)


def test_the_throttle_is_the_recorded_qsub_j_with_percent() -> None:
    """`qsub -J 1-6%2` is accepted and caps running subjobs at 2; `%0` runs nothing."""
    throttled = array_case("qsub_J_throttle")
    assert (throttled.rc, pbs.getid(throttled.stdout)) == (0, "320[].pbsvm")
    assert ["qsub", *pbs.array_args(6, 2), "quick.sh"] == shlex.split(throttled.command)
    assert "max_run_subjobs = 2" in array_case("qstat_f_throttled_array").stdout
    # %0 is accepted, and then every subjob stays queued: 0 (no limit) gives no %.
    assert pbs.running(array_case("qstat_t_throttle_0").stdout)
    assert " R " not in array_case("qstat_t_throttle_0").stdout
    assert pbs.array_args(6, 0) == ["-J", "1-6"]
    assert pbs.array_args(30, 5) == ["-J", "1-30%5"]
    assert pbs.torque_array_args(30, 5) == ["-t", "1-30%5"]
    assert pbs.torque_array_args(30, 0) == ["-t", "1-30"]
    assert Scheme.of(pbs.scheme(), "pbs").array_throttle  # maxjobs reaches array_args


@given(st.integers(1, 10_000), st.integers(-1, 10_000))
def test_array_args_never_send_percent_zero(size: int, throttle: int) -> None:
    (flag, spec) = pbs.array_args(size, throttle)
    assert flag == "-J"
    assert spec == (f"1-{size}%{throttle}" if throttle >= 1 else f"1-{size}")


# --- transient submit refusals --------------------------------------------------------------

FAULTS = Scheme.of(pbs.scheme(), "pbs").submit_faults


@pytest.mark.parametrize(
    "message",
    [
        "qsub: Server temporarily unavailable, please try again later\n",  # 2 of 20 jobs failed
        "qsub: Resource temporarily unavailable\n",  # PBSE_RESCUNAV
        "qsub: job rejected by hook: the scheduler is being restarted, try again later\n",
        "Connection refused\nqsub: cannot connect to server pbsvm (errno=15010)\n",
        "Communication failure.\nqsub: cannot connect to server pbsvm (errno=15031)\n",
        "Too many open connections.\nqsub: cannot connect to server pbsvm (errno=15033)\n",
        "qsub: No free connections\n",
        "qsub: Server connection table full\n",
        "qsub: Request not allowed: Server shutting down\n",
        "No route to host\nqsub: cannot connect to server pbsvm (errno=15010)\n",
        "qsub: Server is busy\n",
    ],
)
def test_a_transient_refusal_is_tried_again(message: str) -> None:
    assert classify_refusal(FAULTS, message) == "retry"


@pytest.mark.parametrize(
    "message",
    [
        "qsub: End of File\n",
        "qsub: Premature end of message\n",
        "qsub: Batch protocol error\n",
        "qsub: Connection timed out\n",
        "qsub: Connection reset by peer\n",
    ],
)
def test_a_lost_reply_is_looked_up_before_any_retry(message: str) -> None:
    assert classify_refusal(FAULTS, message) == "uncertain"


@pytest.mark.parametrize(
    "message",
    [
        "qsub: Unknown queue\n",
        "qsub: illegal -l value\n",
        "qsub: Job exceeds queue resource limits\n",
        "qsub: Job violates queue and/or server resource limits\n",
        "qsub: Bad UID for job execution\n",
        "qsub: Unknown resource Resource_List.foo\n",
        "qsub: Array job exceeds server or queue size limit\n",
    ],
)
def test_a_permanent_refusal_is_not_retried(message: str) -> None:
    assert classify_refusal(FAULTS, message) == "fail"


@pytest.mark.parametrize(
    "message",
    [
        "qsub: Maximum number of jobs already in queue\n",  # the server's or queue's max_queued
        "qsub: would exceed queue workq's per-user limit of jobs in 'Q' state\n",
    ],
)
def test_a_limit_on_queued_jobs_is_back_pressure_not_failure(message: str) -> None:
    assert classify_refusal(FAULTS, message) == "limit"


@pytest.mark.parametrize("case", ["qsub_bad_option", "qsub_missing_script", "qsub_name_with_space"])
def test_recorded_refusals_are_permanent(case: str) -> None:
    out = recorded(case)
    assert out.rc != 0
    assert classify_refusal(FAULTS, f"{out.stdout}\n{out.stderr}") == "fail"


# --- the Pbs class: the contract on the recorded outputs ---------------------------------------


class RecordedPbs(Pbs):
    """PBS whose commands answer with one recorded case each (program -> case)."""

    def __init__(self, **cases: str) -> None:
        self.cases = cases
        self.ran: list[list[str]] = []

    def run(
        self, argv: Sequence[str], *, timeout: Optional[float] = None
    ) -> subprocess.CompletedProcess[str]:
        self.ran.append(list(argv))
        case = recorded(self.cases[argv[0]])
        return subprocess.CompletedProcess(list(argv), case.rc, case.stdout, case.stderr)


def test_the_class_reads_the_recorded_outputs() -> None:
    server = Pbs()
    assert server.parse_id(recorded("qsub_plain").stdout) == "3.pbsvm"
    listing = server.parse_listing(recorded("qstat_default_mixed").stdout)
    assert listing == Listing(["5", "6", "7", "8", "9"], ["5", "6"])
    assert server.parse_end(recorded("qstat_x_f_walltime").stdout) == (1, "timeout")
    live = recorded("qstat_unknown_and_live")
    assert server.check_error(["99999.pbsvm", "10.pbsvm"], live.rc, live.stdout, live.stderr) == [
        "10"
    ]
    version = recorded("qsub_version")
    assert server.detect(version.rc, version.stdout + version.stderr)
    assert server.workdir_flag is None


def test_the_class_asks_qstat_x_f_and_cancels_each_subjob_alone() -> None:
    server = RecordedPbs(qstat="qstat_x_f_exit3")
    assert server.how_ended("3.pbsvm") == (3, None)
    assert server.ran == [["qstat", "-x", "-f", "3.pbsvm"]]
    assert server.cancel_argvs(["9[1].pbsvm", "12.pbsvm", "9[3].pbsvm"]) == [
        ["qdel", "12.pbsvm"],
        ["qdel", "9[1].pbsvm"],
        ["qdel", "9[3].pbsvm"],
    ]
    assert RecordedPbs(qstat="qstat_x_f_exit3_history_off").how_ended("3.pbsvm") is None


# --- resources ------------------------------------------------------------------------------


def test_resources_become_one_select_chunk_per_node() -> None:
    request = Resources.of(
        {"nodes": 2, "cores": 8, "memory": "16G", "gpus": 2, "walltime": 3600,
         "queue": "workq", "account": "proj42"}
    )  # fmt: skip
    assert pbs.resource_args(request) == [
        *["-q", "workq", "-A", "proj42"],
        *["-l", "select=2:ncpus=4:mem=8192mb:ngpus=1", "-l", "place=scatter"],
        *["-l", "walltime=01:00:00"],
    ]
    assert pbs.resource_args(Resources.of({"memory": "1G"})) == ["-l", "select=1:mem=1024mb"]
    assert pbs.resource_args(Resources.of({"cores": 4})) == ["-l", "select=1:ncpus=4"]
    assert pbs.resource_args(Resources(walltime=100 * 3600)) == ["-l", "walltime=100:00:00"]
    assert pbs.resource_args(Resources()) == []
    assert Pbs().resource_args(request) == pbs.resource_args(request)
    with pytest.raises(ValueError, match=r"^run flag gpus=3 is not a multiple of nodes=2; "):
        pbs.resource_args(Resources(gpus=3, nodes=2))


def test_torque_resources_use_nodes_and_ppn() -> None:
    request = Resources.of({"nodes": 2, "cores": 8, "memory": "16G", "gpus": 2, "walltime": 60})
    assert pbs.torque_resource_args(request) == [
        *["-l", "nodes=2:ppn=4:gpus=1", "-l", "mem=16384mb", "-l", "walltime=00:01:00"],
    ]
    assert pbs.torque_resource_args(Resources(memory=1)) == ["-l", "mem=1mb"]


@given(resources())
def test_the_select_chunk_asks_at_least_the_request(request: Resources) -> None:
    args = pbs.resource_args(request)
    limits = dict(value.split("=", 1) for flag, value in zip(args, args[1:]) if flag == "-l")
    chunk = dict(
        part.split("=", 1) if "=" in part else ("nodes", part)
        for part in limits.get("select", "").split(":")
        if part
    )
    nodes = request.nodes or 1
    if request.memory is not None:
        given_bytes = int(chunk["mem"].removesuffix("mb")) * 1024**2 * nodes
        assert request.memory <= given_bytes < request.memory + nodes * 1024**2
    if request.cores is not None:
        assert int(chunk["ncpus"]) * nodes == request.cores
    if request.walltime is not None:
        assert parse_walltime(limits["walltime"]) == request.walltime
    assert ("place" in limits) == (nodes > 1)


@pytest.mark.parametrize(
    ("line", "keys"),
    [
        ("#PBS -l walltime=1:00:00", ["walltime"]),
        ("#PBS -l select=1:ncpus=8", ["nodes", "cores", "memory", "gpus"]),  # replaced whole
        ("#PBS -l mem=4gb,walltime=10:00", ["memory", "walltime"]),
        ("#PBS -l nodes=1:ppn=4", ["nodes", "cores", "gpus"]),
        ("#PBS -q workq -A proj", ["queue", "account"]),
        ("#PBS -l place=scatter", []),
        ("#PBS -N name", []),
        ("#SBATCH --mem=1G", []),
    ],
)
def test_directive_resources_reads_pbs_lines(line: str, keys: list[str]) -> None:
    assert pbs.directive_resources(line) == keys
    assert Pbs().directive_resources(line) == keys


# --- limits -------------------------------------------------------------------------------

# `qstat -Qf` as OpenPBS's reference guide shows it (no recording of it here): an execution
# queue with resources_max, one without, and a routing queue.
QSTAT_QF = """\
Queue: workq
    queue_type = Execution
    total_jobs = 0
    resources_max.mem = 4gb
    resources_max.walltime = 04:00:00
    resources_default.walltime = 01:00:00
    enabled = True
    started = True

Queue: long
    queue_type = Execution
    resources_max.walltime = 168:00:00
    enabled = True

Queue: router
    queue_type = Route
    route_destinations = workq,long
"""


def test_parse_limits_reads_each_execution_queue_s_resources_max_and_the_default_queue() -> None:
    server = array_case("qstat_B_f").stdout  # recorded OpenPBS 23.06: default_queue = workq
    limits = pbs.parse_limits(server + QSTAT_QF)
    assert limits.default == "workq"
    assert dict(limits.queues) == {
        "workq": (4 * 3600, 4 * 1024**3),
        "long": (168 * 3600, None),
    }
    # PBS compares the job's total memory, whatever its nodes
    assert Pbs().check_limits(Resources(memory=8 * 1024**3, nodes=4), limits) == (
        "memory 8G per job exceeds queue 'workq' mem 4G (use queue 'long', or less memory)"
    )
    assert Pbs().check_limits(Resources(walltime=48 * 3600, queue="long"), limits) is None
    assert Pbs().check_limits(Resources(walltime=48 * 3600, queue="router"), limits) is None


def test_parse_limits_reads_max_queued_of_the_server_and_each_queue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `qmgr -c "set server max_queued = [u:PBS_GENERIC=20]"` as `qstat -Bf` prints it (the
    # PBS Professional admin guide's form; no recording of it here), after the recorded server
    monkeypatch.setattr(pbs, "current_user", lambda: "alice")
    server = array_case("qstat_B_f").stdout.replace(
        "    max_array_size = 10000\n",
        "    max_array_size = 10000\n    max_queued = [u:PBS_GENERIC=20],[u:alice=30]\n",
    )
    queues = QSTAT_QF.replace(
        "    total_jobs = 0\n",
        "    total_jobs = 0\n    max_queued = [o:PBS_ALL=500],[u:PBS_GENERIC=10]\n",
    ).replace("    resources_max.walltime = 168:00:00\n", "    max_user_queuable = 4\n")
    limits = pbs.parse_limits(server + queues)
    assert dict(limits.submit) == {
        "user": 30,  # alice's own count wins over the generic one
        "queue:workq": 10,
        "queue:long": 4,  # Torque's max_user_queuable
    }
    assert limits.submit_counts_tasks
    monkeypatch.setattr(pbs, "current_user", lambda: "bob")
    assert dict(pbs.parse_limits(server + QSTAT_QF).submit) == {"user": 20}
    assert dict(pbs.parse_limits(array_case("qstat_B_f").stdout + QSTAT_QF).submit) == {}


@pytest.mark.parametrize(
    "output",
    ["", array_case("qstat_B_f").stdout, "Queue: q\n    resources_max.mem = 4 words\n"],
)
def test_parse_limits_refuses_what_it_does_not_understand(output: str) -> None:
    with pytest.raises(ValueError):
        pbs.parse_limits(output)
