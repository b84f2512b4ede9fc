"""Tests for the Grid Engine scheme's parsers, on outputs recorded from Grid Engine 8.1.9 here."""

# ruff: noqa: E501, W291  (recorded scheduler outputs keep their exact width)

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from runner_grid.schemes import sge
from strategies import noise_lines

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
    assert sge.running(QSTAT) == ["22", "23", "24", "26", "25"]
    assert sge.running(QSTAT_R) == ["22"]
    assert sge.running(QSTAT_STATES) == ["101", "102", "103", "104", "105", "106", "107"]


def test_running_empty_queue_and_blank_lines() -> None:
    assert sge.running("") == []
    assert sge.running("\n\n") == []


def test_running_reads_xml() -> None:
    xml = (
        "<?xml version='1.0'?>\n<job_info>\n <queue_info>\n  <job_list state=\"running\">\n"
        "   <JB_job_number>22</JB_job_number>\n  </job_list>\n </queue_info>\n <job_info>\n"
        '  <job_list state="pending">\n   <JB_job_number>31</JB_job_number>\n'
        "  </job_list>\n </job_info>\n</job_info>\n"
    )
    assert sge.running(xml) == ["22", "31"]


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
    [("0", "0", 0), ("0", "3", 3), ("100 : assumedly after job", "137", 137), ("1", "0", 1)],
)
def test_parse_exitcode(failed: str, status: str, expected: int) -> None:
    assert sge.parse_exitcode(QACCT.format(n=7, failed=failed, status=status)) == expected


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
    assert sorted(sge.running(stdout)) == sorted(expected)


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


def test_detect_on_recorded_probes() -> None:
    stdout, stderr, rc = recorded("qsub_help")
    assert sge.detect(rc, stdout + stderr)
    stdout, stderr, rc = recorded("qsub_version")
    assert not sge.detect(rc, stdout + stderr)
