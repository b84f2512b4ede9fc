"""Tests for the Grid Engine scheme's parsers, on outputs recorded from Grid Engine 8.1.9 here."""

# ruff: noqa: E501, W291  (recorded scheduler outputs keep their exact width)

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from runner_core import REASONS, Resources, parse_walltime
from runner_grid._poller import SchemeCheck
from runner_grid.schemes import sge
from runner_grid.schemes._common import current_user
from runner_grid.schemes.sge import GridEngine
from strategies import jobs_of, noise_lines, queue_entries, resources

if TYPE_CHECKING:
    from collections.abc import Sequence

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
        # h_vmem enforced over the sum of processes; the sampled maxvmem missed the peak
        (qacct("37  : qmaster enforced h_rt, h_cpu, or h_vmem limit", 137, wallclock=2, maxvmem="40.5MB",
               category="-l h_vmem=100M"), (137, "out_of_memory")),
        (qacct("37  : qmaster enforced h_rt, h_cpu, or h_vmem limit", 137, wallclock=2, maxvmem="60MB",
               category="-l h_rt=60,h_vmem=100M"), (137, "out_of_memory")),
        (qacct("37  : qmaster enforced h_rt, h_cpu, or h_vmem limit", 137, wallclock=59, maxvmem="10MB",
               category="-l h_rt=60,h_vmem=100M"), (137, "timeout")),
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


# --- the GridEngine class: the contract on the recorded outputs ------------------------------


class RecordedGridEngine(GridEngine):
    """Grid Engine whose commands answer with one recorded case each (program -> case)."""

    def __init__(self, **cases: str) -> None:
        self.cases = cases
        self.ran: list[list[str]] = []

    def run(
        self, argv: Sequence[str], *, timeout: Optional[float] = None
    ) -> subprocess.CompletedProcess[str]:
        self.ran.append(list(argv))
        stdout, stderr, rc = recorded(self.cases[argv[0]])
        return subprocess.CompletedProcess(list(argv), rc, stdout, stderr)


def test_the_class_reads_the_recorded_outputs() -> None:
    engine = GridEngine()
    assert engine.parse_id(recorded("qsub_plain")[0]) == "41"
    listing = engine.parse_listing(recorded("qstat_default")[0])
    assert listing.queued == ["55", "56.1", "56.2", "56.3", "56.4", "56.5", "57"] + [
        f"58.{i}" for i in range(1, 6)
    ] + ["59"]
    assert listing.started == ["55", "56.1", "56.2", "56.3", "56.4", "56.5"]
    assert engine.parse_end(recorded("qacct_timelimit")[0]) == (137, "timeout")
    stdout, stderr, rc = recorded("qsub_help")
    assert engine.detect(rc, stdout + stderr)
    assert engine.check_error(["55"], 1, "", "error") is None  # qstat's failures are failures
    assert engine.probe_argv() == ["qsub", "-help"]


def test_the_class_asks_qacct_for_a_task_and_reads_its_answer() -> None:
    engine = RecordedGridEngine(qacct="qacct_exit3", qstat="qstat_default")
    assert engine.how_ended("61.2") == (3, None)
    assert engine.ran == [["qacct", "-j", "61", "-t", "2"]]
    assert SchemeCheck(lambda: engine)(["55", "58"]) >= {"55", "58.1"}
    assert engine.ran[-1] == ["qstat", "-u", current_user()]
    never = RecordedGridEngine(qacct="qacct_never_existed")
    assert never.how_ended("99") is None


# --- resources ------------------------------------------------------------------------------


def test_resources_become_qsub_flags_with_h_vmem_per_slot() -> None:
    request = Resources.of(
        {"cores": 4, "memory": "8G", "walltime": "1-01:00:00", "queue": "all.q", "account": "p"}
    )
    assert sge.resource_args(request) == [
        *["-q", "all.q", "-A", "p", "-pe", "smp", "4"],
        *["-l", "h_vmem=2048M", "-l", "h_rt=25:00:00"],  # 8G over 4 slots
    ]
    assert sge.resource_args(Resources.of({"memory": "1G"})) == ["-l", "h_vmem=1024M"]
    assert sge.resource_args(Resources.of({"memory": "1G", "cores": 3})) == [
        *["-pe", "smp", "3", "-l", "h_vmem=342M"],  # 341.33 rounded up
    ]
    assert sge.resource_args(Resources(nodes=1)) == []
    assert GridEngine().resource_args(request) == sge.resource_args(request)


@given(resources().filter(lambda r: (r.nodes or 1) == 1).map(lambda r: r.replace(gpus=None)))
def test_h_vmem_times_slots_is_at_least_the_request(request: Resources) -> None:
    args = sge.resource_args(request)
    limits = dict(value.split("=", 1) for flag, value in zip(args, args[1:]) if flag == "-l")
    slots = request.cores or 1
    if request.memory is not None:
        given_bytes = int(limits["h_vmem"].rstrip("M")) * 1024**2 * slots
        assert request.memory <= given_bytes < request.memory + slots * 1024**2
    if request.walltime is not None:
        assert parse_walltime(limits["h_rt"]) == request.walltime


def test_gpus_need_the_sites_gpu_resource() -> None:
    with pytest.raises(
        ValueError,
        match=r"^run flag gpus=2: Grid Engine has no standard GPU resource; name your site's "
        r"\(qconf -sc lists them\) in GridEngine.gpu_resource, or set .*gpu_resource='gpu'\), "
        r"or pass it as a plain run flag: l='gpu=2'$",
    ):
        GridEngine().resource_args(Resources(gpus=2))

    class Site(GridEngine):
        gpu_resource = "gpu"
        parallel_environment = "mpi"

    assert Site().resource_args(Resources(gpus=2, cores=8)) == [
        *["-pe", "mpi", "8", "-l", "gpu=2"],
    ]
    assert Site().directive_resources("#$ -l gpu=1,h_rt=60") == ["walltime", "gpus"]
    assert GridEngine().directive_resources("#$ -l gpu=1") == []


def test_more_than_one_node_is_refused() -> None:
    with pytest.raises(
        ValueError,
        match=r"^run flag nodes=2: Grid Engine places a job's slots by its parallel environment "
        r"\('smp'\), not by nodes; give cores alone, with a parallel environment that spans "
        r"hosts where the site has one$",
    ):
        sge.resource_args(Resources(nodes=2, cores=4))


@pytest.mark.parametrize(
    ("line", "keys"),
    [
        ("#$ -l h_vmem=2G", ["memory"]),
        ("#$ -l h_rt=1:00:00,h_vmem=2G", ["memory", "walltime"]),
        ("#$ -pe smp 4", ["cores"]),
        ("#$ -q all.q -A proj", ["queue", "account"]),
        ("#$ -l mem_free=1G", []),
        ("#$ -N name", []),
        ("#SBATCH --mem=1G", []),
        ("#$-l h_vmem=1G", ["memory"]),  # Grid Engine reads it: no space is needed
    ],
)
def test_directive_resources_reads_grid_engine_lines(line: str, keys: list[str]) -> None:
    assert sge.directive_resources(line) == keys


# --- limits -------------------------------------------------------------------------------


def test_parse_limits_reads_each_queue_s_h_rt_and_h_vmem() -> None:
    stdout, _, rc = recorded("qconf_sq_all")
    assert rc == 0
    limits = sge.parse_limits(stdout)
    assert dict(limits.queues) == {"all.q": (None, None)}
    assert limits.default == "all.q"  # the one queue: where a job naming none goes
    # documented forms (queue_conf(5)): time as H:M:S or seconds, sizes, host overrides
    output = (
        "qname                 short.q\nh_rt                  0:5:0\n"
        "h_vmem                1G,[node1=2G]\n"
        "qname                 long.q\nh_rt                  86400\nh_vmem                INFINITY\n"
    )
    limits = sge.parse_limits(output)
    assert limits.default is None
    assert dict(limits.queues) == {"short.q": (300, 2 * 1024**3), "long.q": (86400, None)}
    assert GridEngine().check_limits(
        Resources(walltime=3600, memory=8 * 1024**3, cores=2, queue="short.q"), limits
    ) == (
        "walltime 1:00:00 exceeds queue 'short.q' h_rt 0:05:00 (use queue 'long.q', or less "
        "walltime)"
    )


def test_parse_limits_reads_max_u_jobs_from_the_global_configuration() -> None:
    queues, conf = recorded("qconf_sq_all")[0], recorded("qconf_sconf")[0]
    assert sge.limit_commands()[1] == ["qconf", "-sconf"]
    limits = sge.parse_limits(queues + conf)
    assert dict(limits.queues) == {"all.q": (None, None)}
    assert dict(limits.submit) == {}  # max_u_jobs 0 and max_jobs 0: no limit
    conf = conf.replace("max_u_jobs                   0", "max_u_jobs                   20")
    limits = sge.parse_limits(queues + conf)
    assert dict(limits.submit) == {"user": 20}  # all the user's jobs
    assert not limits.submit_counts_tasks  # an array is one job for max_u_jobs
    conf = conf.replace("max_jobs                     0", "max_jobs                     8")
    assert dict(sge.parse_limits(queues + conf).submit) == {"user": 8}  # all users': ours too
    assert dict(sge.parse_limits(queues).submit) == {}  # the configuration not read: no limit


@pytest.mark.parametrize("output", ["", "error: no queue\n", "qname a.q\nh_rt soon\n"])
def test_parse_limits_refuses_what_it_does_not_understand(output: str) -> None:
    with pytest.raises(ValueError):
        sge.parse_limits(output)
