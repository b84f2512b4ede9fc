"""Tests for the PBS scheme's parsers on outputs in the formats PBS Pro and Torque document.

No PBS server runs on these machines: these samples follow the layouts shown in the PBS Pro
reference guide and Torque's qstat documentation, not recordings.
"""

# ruff: noqa: E501  (scheduler outputs keep their exact width)

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from runner_grid.schemes import pbs

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
    st.sampled_from(["", ".server", ".pbs.example.org", "[].srv"]),
)
@example(["Job submitted"], 5, ".server")
def test_getid_reads_the_last_id_line_whatever_comes_before(
    noise: list[str], number: int, suffix: str
) -> None:
    assert pbs.getid("\n".join([*noise, f"{number}{suffix}", ""])) == f"{number}{suffix}"


@pytest.mark.parametrize("output", ["", "\n", "qsub: Bad UID for job execution\n", "1.2.3 x\n"])
def test_getid_without_an_id_is_none(output: str) -> None:
    assert pbs.getid(output) is None


def test_running_pbspro() -> None:
    assert pbs.running(PBSPRO_QSTAT) == ["101", "102", "103", "104", "105", "1234567"]


def test_running_torque_default_and_alternative_format() -> None:
    assert pbs.running(TORQUE_QSTAT) == ["201", "203", "204"]
    assert pbs.running(TORQUE_QSTAT_A) == ["301"]
    assert pbs.running("") == []


def test_running_refuses_garbage() -> None:
    with pytest.raises(ValueError, match="neither a header nor a job line"):
        pbs.running("Connection refused\n")


def test_check_lists_the_whole_queue() -> None:
    assert pbs.check_commands(["1.s"]) == [["qstat"]]


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


def test_detect_tells_pbs_from_grid_engine() -> None:
    assert pbs.detect(0, "pbs_version = 2022.1.1\n")
    assert pbs.detect(0, "Version: 6.1.3\nCommit: abc\n")
    # Grid Engine's qsub, recorded here: `qsub --version` exits 2.
    assert not pbs.detect(2, 'qsub: invalid option argument "--version"\n')
    assert not pbs.detect(0, "SGE 8.1.9\nusage: qsub [options]\n")


def test_pbs_scheme_has_no_workdir_flag() -> None:
    assert pbs.scheme()["workdir"] is None


def test_detect_rejects_the_recorded_grid_engine_qsub() -> None:
    # `qsub --version` of this machine's Grid Engine, recorded in tests/grid/data/sge.
    data = Path(__file__).parent / "data" / "sge"
    stdout = (data / "qsub_version.stdout").read_text()
    stderr = (data / "qsub_version.stderr").read_text()
    rc = int((data / "qsub_version.rc").read_text())
    assert not pbs.detect(rc, stdout + stderr)
    help_out = (data / "qsub_help.stdout").read_text() + (data / "qsub_help.stderr").read_text()
    assert not pbs.detect(0, help_out)
