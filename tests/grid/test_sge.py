"""Tests for the Grid Engine scheme's parsers, on outputs recorded from Grid Engine 8.1.9 here."""

# ruff: noqa: E501, W291  (recorded scheduler outputs keep their exact width)

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from runner_core import REASONS
from runner_grid.schemes import sge
from strategies import jobs_of, noise_lines, queue_entries

# Recorded with `qstat -u root` on the Grid Engine of tools/sge.sh: plain jobs, a running array
# (one line per task), a -terse array, and a held job.
QSTAT = """\
job-ID  prior   name       user         state submit/start at     queue                          slots ja-task-ID 
-----------------------------------------------------------------------------------------------------------------
     22 0.75000 s.sh       root         r     11/24/2026 14:29:02 all.q@vm                           1        
     23 0.75000 s.sh       root         r     11/24/2026 14:29:02 all.q@vm                           1        
     24 0.75000 s.sh       root         r     11/24/2026 14:29:02 all.q@vm                           1 1
     24 0.75000 s.sh       root         r     11/24/2026 14:29:02 all.q@vm                           1 2
     26 0.25000 s.sh       root         r     11/24/2026 14:29:03 all.q@vm                           1 3
     25 0.00000 s.sh       root         hqw   11/24/2026 14:29:03                                    1        
"""

# Recorded with `qstat -r -u root`: indented detail lines after each job.
QSTAT_R = """\
job-ID  prior   name       user         state submit/start at     queue                          slots ja-task-ID 
-----------------------------------------------------------------------------------------------------------------
     22 0.75000 s.sh       root         r     11/24/2026 14:29:02 all.q@vm                           1        
       Full jobname:     s.sh
       Master Queue:     all.q@vm
       Hard Resources:   
       Soft Resources:   
       Binding:          NONE
"""

# Pending array and states from the qstat(1) documentation, in the recorded column layout.
QSTAT_STATES = """\
job-ID  prior   name       user         state submit/start at     queue                          slots ja-task-ID 
-----------------------------------------------------------------------------------------------------------------
    101 0.00000 a          root         qw    11/24/2026 14:29:03                                    1 1-5:1
    102 0.00000 b          root         Eqw   11/24/2026 14:29:03                                    1        
    103 0.50000 c          root         dr    11/24/2026 14:29:03 all.q@vm                           1        
    104 0.50000 d          root         t     11/24/2026 14:29:03 all.q@vm                           1        
    105 0.50000 e          root         Rr    11/24/2026 14:29:03 all.q@vm                           1        
    106 0.50000 f          root         s     11/24/2026 14:29:03 all.q@vm                           1        
    107 0.00000 g          root         hRwq  11/24/2026 14:29:03                                    1        
"""


@given(noise_lines, st.integers(1, 10**9), st.sampled_from(["job", "array", "terse", "terse-array"]),
       st.text(alphabet="abc xyz\"'()", max_size=10))  # fmt: skip
@example(["Warning: no suitable queues"], 22, "job", 's.sh "x"')
def test_getid_reads_the_last_id_line_whatever_comes_before(
    noise: list[str], number: int, form: str, name: str
) -> None:
    line = {
        "job": f'Your job {number} ("{name}") has been submitted',
        "array": f'Your job-array {number}.1-5:1 ("{name}") has been submitted',
        "terse": f"{number}",
        "terse-array": f"{number}.1-3:1",
    }[form]
    assert sge.getid("\n".join([*noise, line, ""])) == str(number)


def test_getid_recorded() -> None:
    assert sge.getid('Your job 22 ("s.sh") has been submitted\n') == "22"
    assert sge.getid('Your job-array 24.1-5:1 ("s.sh") has been submitted\n') == "24"
    assert sge.getid("23\n") == "23"
    assert sge.getid("26.1-3:1\n") == "26"


@pytest.mark.parametrize(
    "output", ["", "\n", "Unable to run job: denied: host is no submit host.\n"]
)
def test_getid_without_an_id_is_none(output: str) -> None:
    assert sge.getid(output) is None


def test_running_lists_every_job_once() -> None:
    assert jobs_of(sge.running(QSTAT)) == ["22", "23", "24", "26", "25"]
    assert jobs_of(sge.running(QSTAT_R)) == ["22"]
    assert jobs_of(sge.running(QSTAT_STATES)) == ["101", "102", "103", "104", "105", "106", "107"]


@given(queue_entries(), st.booleans(), st.booleans())
@example([(24, True, False)], True, False)
def test_any_listing_gives_every_job_once_in_order(
    jobs: list[tuple[int, bool, bool]], details: bool, blank: bool
) -> None:
    """Headers, blank lines, -r detail lines and array task lines never change the ids (qstat
    lists no finished job, so every job listed counts)."""
    lines = QSTAT.splitlines()[:2]
    for number, array, pending in jobs:
        state, where = ("qw", " " * 30) if pending else ("r", "all.q@vm" + " " * 22)
        for task in ("1", "2") if array else ("",):
            lines.append(
                f"{number:>7} 0.75000 s.sh       root         {state:<5} 11/24/2026 14:29:02 {where} 1 {task}"
            )
        if details:
            lines += ["       Full jobname:     s.sh", "       Hard Resources:   "]
        if blank:
            lines.append("")
    assert jobs_of(sge.running("\n".join(lines) + "\n")) == [str(n) for n, _a, _p in jobs]


def test_running_empty_queue_and_blank_lines() -> None:
    assert jobs_of(sge.running("")) == []
    assert jobs_of(sge.running("\n\n")) == []


def test_running_reads_xml() -> None:
    xml = (
        "<?xml version='1.0'?>\n<job_info>\n <queue_info>\n  <job_list state=\"running\">\n"
        "   <JB_job_number>22</JB_job_number>\n  </job_list>\n </queue_info>\n <job_info>\n"
        '  <job_list state="pending">\n   <JB_job_number>31</JB_job_number>\n'
        "  </job_list>\n </job_info>\n</job_info>\n"
    )
    assert jobs_of(sge.running(xml)) == ["22", "31"]


@pytest.mark.parametrize(
    "output", ["error: commlib error: got select error (Connection refused)\n", "garbage 1 2\n"]
)
def test_running_refuses_what_is_not_a_listing(output: str) -> None:
    with pytest.raises(ValueError, match="neither a header nor a job line"):
        sge.running(output)


def test_check_lists_the_users_jobs() -> None:
    (argv,) = sge.check_commands(["1", "2"])
    assert argv[:2] == ["qstat", "-u"]
    assert argv[2]


# Recorded `qacct -j 1` (trimmed to the fields read, plus neighbours).
QACCT = """\
==============================================================
qname        all.q               
jobnumber    {n}                   
failed       {failed}    
exit_status  {status}                   
ru_wallclock 0s
"""


@pytest.mark.parametrize(
    ("failed", "status", "expected"),
    [
        ("0", "0", 0),
        ("0", "3", 3),
        ("100 : assumedly after job", "137", 137),
        # "assumedly before job": Grid Engine queues the job again, the record is not its end.
        ("1 : assumedly before job", "0", None),
        ("15 : in epilog", "0", 1),
    ],
)
def test_parse_exitcode(failed: str, status: str, expected: int | None) -> None:
    assert sge.parse_exitcode(QACCT.format(n=7, failed=failed, status=status)) == expected


# A qacct record with the fields parse_end reads, in the recorded layout.
QACCT_FULL = """\
==============================================================
qname        all.q               
jobnumber    {n}                   
taskid       {task}
failed       {failed}
exit_status  {status}                  
ru_wallclock {wallclock}s
cpu          {cpu}s
maxvmem      {maxvmem}
category     {category}
"""


def qacct(
    failed: str = "0",
    status: int = 0,
    *,
    wallclock: int = 1,
    cpu: float = 0.01,
    maxvmem: str = "4.770MB",
    category: str = "NONE",
    task: str = "undefined",
) -> str:
    """One accounting record of job 7."""
    return QACCT_FULL.format(
        n=7, task=task, failed=failed, status=status, wallclock=wallclock, cpu=cpu,
        maxvmem=maxvmem, category=category,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (qacct(), (0, None)),
        (qacct(status=3), (3, None)),
        # The wrapper outlived its runscript, which SIGKILLed itself: ended by itself.
        (qacct(status=137), (137, None)),
        (qacct("100 : assumedly after job", 137), (137, "cancelled")),
        (qacct("100 : assumedly after job", 143), (143, "cancelled")),
        (qacct("100 : assumedly after job", 138), (138, None)),  # SIGUSR1, no limit asked for
        (qacct("100 : assumedly after job", 0), (1, None)),
        (qacct("100 : assumedly after job", 138, wallclock=4, category="-l s_rt=3"), (138, "timeout")),
        (qacct("100 : assumedly after job", 137, wallclock=61, category="-l h_rt=0:1:0"), (137, "timeout")),
        (qacct("100 : assumedly after job", 137, wallclock=59, category="-l h_rt=0:1:0"), (137, "cancelled")),
        (qacct("100 : assumedly after job", 152, wallclock=9, cpu=30.5, category="-l h_cpu=30"), (152, "timeout")),
        (qacct("100 : assumedly after job", 137, maxvmem="1.000GB", category="-l h_vmem=1G"),
         (137, "out_of_memory")),
        (qacct("100 : assumedly after job", 137, maxvmem="0.990GB", category="-l h_vmem=1G"),
         (137, "cancelled")),
        (qacct("100 : assumedly after job", 137, maxvmem="1.000GB", category="-l h_vmem=1g"),
         (137, "out_of_memory")),  # 1g is 10**9 bytes, 1.000GB 2**30
        (qacct("37  : qmaster enforced h_rt, h_cpu, or h_vmem limit", 137, wallclock=6, category="-l h_rt=5"),
         (137, "timeout")),
        (qacct("37  : qmaster enforced h_rt, h_cpu, or h_vmem limit", 137, wallclock=1, maxvmem="205.691MB",
               category="-q all.q -l h_rt=60,h_vmem=150M"), (137, "out_of_memory")),
        (qacct("37  : qmaster enforced h_rt, h_cpu, or h_vmem limit", 0), (1, "timeout")),
        (qacct("25  : rescheduling"), None),
        (qacct("24  : migrating"), None),
        (qacct("26  : opening input/output file"), None),  # error state Eqw: still queued
        (qacct("28  : changing into working directory"), None),
        (qacct("11  : before job"), None),
        (qacct("15  : in epilog", 0), (1, None)),
        (qacct("19  : before writing exit_status", 0), (1, None)),
    ],
)  # fmt: skip
def test_parse_end(record: str, expected: tuple[int, str | None] | None) -> None:
    assert sge.parse_end(record) == expected
    assert sge.parse_exitcode(record) == (None if expected is None else expected[0])


def test_parse_end_the_last_record_of_each_task_counts() -> None:
    rescheduled = qacct("25  : rescheduling")
    assert sge.parse_end(rescheduled + qacct(status=4)) == (4, None)
    assert sge.parse_end(qacct(status=4) + rescheduled) is None
    tasks = qacct(task="1") + qacct(status=2, task="2") + qacct(task="3")
    assert sge.parse_end(tasks) == (2, None)
    assert sge.parse_end(qacct(task="1") + rescheduled.replace("undefined", "2")) is None


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["0", "1", "25  : rescheduling", "37  : qmaster enforced h_rt",
                             "100 : assumedly after job"]),
            st.integers(0, 255),
            st.sampled_from(["NONE", "-l h_rt=5", "-l h_vmem=1G", "-l s_rt=1:0,h_vmem=10M"]),
        ),
        max_size=4,
    )
)  # fmt: skip
@example([("25  : rescheduling", 0, "NONE"), ("0", 0, "NONE")])
def test_parse_exitcode_is_the_code_of_parse_end(records: list[tuple[str, int, str]]) -> None:
    """The PLAMS-era parse_exitcode and parse_end never disagree, every reason is a known word,
    and only the last record counts."""
    output = "".join(qacct(f, s, wallclock=6, category=c) for f, s, c in records)
    end = sge.parse_end(output)
    assert sge.parse_exitcode(output) == (None if end is None else end[0])
    if end is not None:
        assert end[1] is None or end[1] in REASONS
        assert end == sge.parse_end(qacct(*records[-1][:2], wallclock=6, category=records[-1][2]))


def test_exitcode_query_names_the_task_of_an_array_job() -> None:
    assert sge.exitcode_commands("41") == [["qacct", "-j", "41"]]
    assert sge.exitcode_commands("56.3") == [["qacct", "-j", "56", "-t", "3"]]
    assert sge.scheme()["commands"]["parse_end"] is sge.parse_end


def test_parse_exitcode_unknown_and_several_records() -> None:
    assert sge.parse_exitcode("error: job id 7 not found\n") is None
    two = QACCT.format(n=7, failed="0", status="0") + QACCT.format(n=7, failed="0", status="2")
    assert sge.parse_exitcode(two) == 2


def test_detect() -> None:
    # First lines of `qsub -help`, recorded here and from other Grid Engine releases' docs.
    assert sge.detect(0, "SGE 8.1.9\nusage: qsub [options]\n")
    assert sge.detect(0, "GE 6.2u5\nusage: qsub [options]\n")
    assert sge.detect(0, "OGS/GE 2011.11p1\nusage: qsub [options]\n")
    assert sge.detect(0, "UGE 8.5.4\n")
    assert not sge.detect(0, "usage: qsub [-a date_time] [-A account_string]\n")
    assert not sge.detect(2, "SGE 8.1.9\n")
    assert not sge.detect(0, "")


# --- outputs recorded by tests/grid/data/record_sge.sh (real Grid Engine 8.1.9 here) --------

DATA = Path(__file__).parent / "data" / "sge"


def recorded(case: str) -> tuple[str, str, int]:
    """stdout, stderr and exit status of one recorded case."""
    stdout = (DATA / f"{case}.stdout").read_text()
    stderr = (DATA / f"{case}.stderr").read_text()
    return stdout, stderr, int((DATA / f"{case}.rc").read_text().strip())


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("qsub_plain", "41"),
        ("qsub_terse", "42"),
        ("qsub_array_plain", "43"),
        ("qsub_array_terse", "44"),
        ("qsub_bad_option", None),
        ("qsub_missing_script", None),
        ("qsub_name_with_space", None),
    ],
)
def test_getid_on_recorded_qsub(case: str, expected: str | None) -> None:
    stdout, _stderr, _rc = recorded(case)
    assert sge.getid(stdout) == expected


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("qstat_default", ["55", "56", "57", "58", "59"]),
        ("qstat_u_root", ["55", "56", "57", "58", "59"]),
        ("qstat_xml", ["55", "56", "57", "58", "59"]),
        ("qstat_after_qdel", ["55", "56", "57", "58"]),
        ("qstat_after_all", []),
    ],
)
def test_running_on_recorded_qstat(case: str, expected: list[str]) -> None:
    stdout, _stderr, rc = recorded(case)
    assert rc == 0
    assert sorted(jobs_of(sge.running(stdout))) == sorted(expected)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("qacct_exit0", 0),
        ("qacct_exit3", 3),
        ("qacct_sigkill", 137),
        ("qacct_qdel_running", 137),
        ("qacct_timelimit", 137),
        ("qacct_array", 0),
        ("qacct_qdel_pending", None),
        ("qacct_never_existed", None),
    ],
)
def test_parse_exitcode_on_recorded_qacct(case: str, expected: int | None) -> None:
    stdout, _stderr, _rc = recorded(case)
    assert sge.parse_exitcode(stdout) == expected


# --- how jobs end, recorded by tests/grid/data/record_sge_reasons.sh (data/sge-reasons) -------

REASONS_DATA = Path(__file__).parent / "data" / "sge-reasons"


def read_case(case: str) -> tuple[str, str, int]:
    """stdout, stderr and exit status of one case in data/sge-reasons."""
    stdout = (REASONS_DATA / f"{case}.stdout").read_text()
    stderr = (REASONS_DATA / f"{case}.stderr").read_text()
    return stdout, stderr, int((REASONS_DATA / f"{case}.rc").read_text().strip())


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("qacct_exit0", (0, None)),
        ("qacct_exit3", (3, None)),
        # A plain script that SIGKILLs its own shell: Grid Engine records it exactly as a
        # qdel. Under GridRunner the wrapper is that shell and outlives its runscript
        # (qacct_wrapper_selfkill below), so this record only comes from a kill from outside.
        ("qacct_sigkill", (137, "cancelled")),
        ("qacct_qdel_running", (137, "cancelled")),
        ("qacct_timelimit", (137, "timeout")),  # failed 37, -l h_rt=5
        ("qacct_array", (0, None)),
        ("qacct_qdel_pending", None),  # deleted before it ran: no record at all
        ("qacct_never_existed", None),
    ],
)
def test_parse_end_on_recorded_qacct(case: str, expected: tuple[int, str | None] | None) -> None:
    stdout, _stderr, _rc = recorded(case)
    assert sge.parse_end(stdout) == expected


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("qacct_wrapper_selfkill", (137, None)),  # failed 0: the wrapper exited 137 itself
        ("qacct_wrapper_qdel_running", (137, "cancelled")),  # failed 100, SIGKILL
        ("qacct_wrapper_h_rt", (137, "timeout")),  # failed 37, -l h_rt=3
        ("qacct_wrapper_s_rt", (138, "timeout")),  # failed 100, SIGUSR1 after s_rt=3
        ("qacct_h_vmem", (137, "out_of_memory")),  # failed 37, maxvmem 205.691MB > 150M
        ("qacct_rescheduled_pending", None),  # failed 25: queued again (state Rq)
        ("qacct_rescheduled_finished", (0, None)),  # then its second run ended well
    ],
)
def test_parse_end_on_recorded_reasons(case: str, expected: tuple[int, str | None] | None) -> None:
    stdout, _stderr, rc = read_case(case)
    assert rc == 0
    assert sge.parse_end(stdout) == expected
    assert sge.parse_exitcode(stdout) == (None if expected is None else expected[0])


def test_wrapper_records_what_qacct_says() -> None:
    assert (REASONS_DATA / "wrapper_selfkill_exitcode.txt").read_text().strip() == "137"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("qstat_rescheduled_pending", ["56", "57", "58", "60"]),  # 60 Rq, 56 dr
        ("qstat_rescheduled_running", ["60"]),  # Rr
    ],
)
def test_a_rescheduled_job_stays_in_the_queue(case: str, expected: list[str]) -> None:
    stdout, _stderr, rc = read_case(case)
    assert rc == 0
    assert jobs_of(sge.running(stdout)) == expected


def test_every_reasons_case_is_listed() -> None:
    listed = (REASONS_DATA / "CASES.md").read_text()
    for stdout in REASONS_DATA.glob("*.stdout"):
        assert f"| {stdout.stem} |" in listed, stdout


def test_detect_on_recorded_probes() -> None:
    stdout, stderr, rc = recorded("qsub_help")
    assert sge.detect(rc, stdout + stderr)
    stdout, stderr, rc = recorded("qsub_version")
    assert not sge.detect(rc, stdout + stderr)
