"""`runner report`: its numbers (`_report`), its page (`_report_html`) and the command.

The reports are built from real local runs and from synthetic journals in the journal's
own format; the pages are checked in a real browser in tests/integration/test_report.py.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from core.report_helpers import synthetic_journal
from runner_core import JobManager, JobRecord, JobRunner, JobStatus, SingleJob, read_journal
from runner_core._journal import JournalState
from runner_core._report import (
    DETAIL_LIMIT,
    TIME_BINS,
    build_report,
    category,
    log_histogram,
    occupancy,
)
from runner_core._report_html import BANDS, render
from runner_core._usage import Usage, UsageReport
from runner_core.cli import main

if TYPE_CHECKING:
    from pathlib import Path

ERROR = "bad input in line 7\nsecond line\nthird line\nfourth line, not shown"
#: Any reference to another host in an attribute or a CSS url(): the page must have none.
REMOTE = re.compile(
    r"""(?:src|href|action|data)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//""",
    re.I,
)


def _local_run(folder: Path) -> None:
    """Seven jobs, two at a time: five succeed, one crashes with an error, one exits 2."""
    runner = JobRunner(parallel=True, maxjobs=2)
    with JobManager(folder) as manager:
        for i in range(5):
            SingleJob(f"ok{i}", f"sleep 0.{i + 1}\n").run(jobrunner=runner, jobmanager=manager)
        script = "".join(f"echo '{line}' >&2\n" for line in ERROR.splitlines()) + "exit 3\n"
        SingleJob("bad", script).run(jobrunner=runner, jobmanager=manager)
        SingleJob("quiet", "exit 2\n").run(jobrunner=runner, jobmanager=manager)
        runner.wait()


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of one real local run (shared by the tests that only read it)."""
    folder = tmp_path_factory.mktemp("report") / "run"
    _local_run(folder)
    return folder


def _rows(page: str) -> list[str]:
    """The data-i values of the timeline's rows, in the page's order."""
    timeline = page[page.index('<section id="timeline">') : page.index('<section id="over-time">')]
    return re.findall(r'<g data-i="(\d+)"', timeline)


# --- a real local run ----------------------------------------------------------------------


def test_a_local_run_has_every_job_waits_runs_and_failures(local_run: Path) -> None:
    report = build_report(read_journal(local_run))

    assert report.jobs == 7
    assert len(report.tries) == 7
    assert report.counts == {"SUCCESSFUL": 5, "CRASHED": 2}
    assert report.categories == {"successful": 5, "crashed": 2}
    assert report.wait["count"] == 7
    assert report.run["count"] == 7
    # the sleeps of 0.1 ... 0.5 s are inside the run times
    assert report.run["max"] >= 0.5
    (crashed,) = report.failures
    assert crashed["category"] == "crashed"
    assert crashed["tries"] == 2
    by_name = {m["name"]: m for m in crashed["members"]}
    assert by_name["bad"]["exit_code"] == 3
    assert by_name["bad"]["error"] == "bad input in line 7\nsecond line\nthird line"
    assert by_name["quiet"]["exit_code"] == 2
    assert {m["first_line"] for m in crashed["messages"]} >= {"bad input in line 7"}


def test_the_counts_over_time_hold_every_run_second(local_run: Path) -> None:
    """Law: the mean number running per bin, times the bin's width, sums to the total run time."""
    report = build_report(read_journal(local_run))
    data = report.over_time
    assert len(data["running"]) == TIME_BINS
    total_run = sum(t.run for t in report.tries if t.run is not None)
    assert sum(data["running"]) * data["width"] == pytest.approx(total_run, rel=1e-2, abs=1e-2)
    assert max(data["running"]) <= 2.0 + 1e-6  # maxjobs=2
    assert max(data["pending"]) == 0  # a local runner has no scheduler queue


def test_the_page_of_a_local_run_has_a_row_per_try_and_nothing_from_elsewhere(
    local_run: Path,
) -> None:
    report = build_report(read_journal(local_run), UsageReport({}, "the local runner says so"))
    page = render(report)

    assert _rows(page) == [str(i) for i in range(7)]
    assert REMOTE.search(page) is None
    assert "<title>" in page  # each row's hover text
    assert "bad input in line 7" in page
    assert "fourth line, not shown" not in page
    assert "No accounting figures: the local runner says so" in page
    for name in ("ok0", "ok4", "bad", "quiet"):
        assert f">{name}</text>" in page


def test_runner_report_writes_the_page_and_json_gives_the_same_numbers(
    local_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "page.html"
    assert main(["report", str(local_run), "-o", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert len(_rows(page)) == 7
    assert "does not measure the memory and CPU time" in page  # JobRunner.usage_recorded
    assert "written to" in capsys.readouterr().err

    assert main(["report", str(local_run), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["jobs"] == 7
    assert len(data["tries"]) == 7
    assert data["counts"] == {"SUCCESSFUL": 5, "CRASHED": 2}
    assert data["usage"]["absent_because"].startswith("the local runner does not measure")
    assert sum(g["tries"] for g in data["failures"]) == 2
    assert data["wait"]["count"] == data["run"]["count"] == 7
    assert {t["name"] for t in data["tries"]} == {"ok0", "ok1", "ok2", "ok3", "ok4", "bad", "quiet"}


def test_runner_report_on_a_folder_without_a_journal_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert "no run journal" in capsys.readouterr().err


def test_runner_report_cannot_write_its_page_says_so(
    local_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(local_run), "-o", str(tmp_path / "no" / "such" / "x.html")]) == 2
    assert "cannot write the report" in capsys.readouterr().err


# --- retries: earlier tries in record.attempts ---------------------------------------------


def _retried_record(root: Path) -> JobRecord:
    record = JobRecord(1, "sim", "sim", str(root / "sim"))
    record.registered_at = 100.0
    record.submitted_at = 160.0
    record.started_at = 170.0
    record.finished_at = 200.0
    record.status = JobStatus.SUCCESSFUL
    record.exit_code = 0
    record.jobid = "13"
    record.runner = {"kind": "grid", "scheme": "slurm"}
    attempts: list[dict[str, Any]] = [
        {"attempt": 1, "jobid": "11", "reason": "out_of_memory", "exit_code": 137,
         "error": "oom-kill", "request": {"memory": "1G"},
         "submitted_at": 101.0, "started_at": 110.0, "finished_at": 120.0},
        {"attempt": 2, "jobid": "12", "reason": "timeout", "exit_code": 0, "error": None,
         "request": {"memory": "2G"},
         "submitted_at": 125.0, "started_at": 130.0, "finished_at": 150.0},
    ]  # fmt: skip
    try:
        record.attempts = attempts  # type: ignore[attr-defined,unused-ignore]
    except AttributeError:  # a JobRecord without the `attempts` slot yet
        pytest.skip("JobRecord has no `attempts` yet")
    return record


def test_every_try_of_a_retried_job_is_a_row_coloured_by_its_reason(tmp_path: Path) -> None:
    state = JournalState(str(tmp_path))
    state.jobs = [_retried_record(tmp_path)]
    report = build_report(state)

    assert [(t.attempt, t.attempts, t.jobid, t.category) for t in report.tries] == [
        (1, 3, "11", "out_of_memory"),
        (2, 3, "12", "timeout"),
        (3, 3, "13", "successful"),
    ]
    first, second, last = report.tries
    assert (first.wait, first.run) == (9.0, 10.0)
    assert (second.wait, second.run) == (5.0, 20.0)
    # the last try waited in the runner's queue from the end of the one before it
    assert last.registered_at == 150.0
    assert (last.wait, last.run) == (10.0, 30.0)
    assert report.counts == {"SUCCESSFUL": 1}
    assert [g["category"] for g in report.failures] == ["out_of_memory", "timeout"]
    assert report.failures[0]["members"][0]["error"] == "oom-kill"

    page = render(report)
    assert _rows(page) == ["0", "1", "2"]
    assert "sim (try 1 of 3)" in page
    assert 'class="c-out_of_memory"' in page
    assert 'class="c-timeout"' in page


def test_accounting_names_the_jobs_under_half_of_their_request(tmp_path: Path) -> None:
    state = JournalState(str(tmp_path))
    state.jobs = [_retried_record(tmp_path)]
    gib = 1024.0**3
    usage = UsageReport(
        {
            "11": Usage(memory=1.1 * gib, cpu=9.0, elapsed=10.0, memory_requested=gib, cores=1),
            "13": Usage(
                memory=0.5 * gib,
                cpu=10.0,
                elapsed=30.0,
                memory_requested=2 * gib,
                cores=2,
                state="COMPLETED",
            ),
        },
        "sacct has no record of 1 of 3 jobs",
    )
    report = build_report(state, usage)

    rows = {r["jobid"]: r for r in report.usage["jobs"]}
    assert set(rows) == {"11", "13"}
    assert rows["11"]["memory_fraction"] == pytest.approx(1.1)
    assert rows["11"]["cpu_fraction"] == pytest.approx(0.9)
    assert rows["13"]["memory_fraction"] == pytest.approx(0.25)
    assert rows["13"]["cpu_fraction"] == pytest.approx(10 / 60)
    assert report.usage["under_half"] == [
        {"name": "sim", "attempt": 3, "jobid": "13", "under": ["memory", "cpu"]}
    ]
    assert report.usage["memory_fraction"]["counts"][10] == 1  # over 100 %
    assert report.usage["memory_fraction"]["counts"][2] == 1  # 20-30 %

    page = render(report)
    assert 'id="usage-table"' in page
    assert "sim (13: memory and cpu)" in page
    assert "Some figures are missing: sacct has no record of 1 of 3 jobs" in page


# --- a large run: aggregated, nothing dropped ----------------------------------------------


def test_a_large_run_is_drawn_in_bands_that_hold_every_try(tmp_path: Path) -> None:
    jobs = 3 * DETAIL_LIMIT + 17
    ends = synthetic_journal(tmp_path, jobs)
    report = build_report(read_journal(tmp_path))

    assert len(report.tries) == jobs
    assert report.categories == ends
    assert report.wait["count"] == report.run["count"] == jobs
    assert sum(g["tries"] for g in report.failures) == ends["out_of_memory"] + ends["crashed"]
    oom = next(g for g in report.failures if g["category"] == "out_of_memory")
    assert len(oom["members"]) == ends["out_of_memory"]  # every one, for --json

    page = render(report)
    per = math.ceil(jobs / BANDS)
    rows = _rows(page)
    assert rows == [str(i) for i in range(math.ceil(jobs / per))]
    # each band's title counts its tries: together, every try
    spans = re.findall(r"tries ([\d,]+)-([\d,]+) of ([\d,]+)", page)
    covered = [int(b.replace(",", "")) - int(a.replace(",", "")) + 1 for a, b, _ in spans]
    assert sum(covered) == jobs
    assert {n for _, _, n in spans} == {f"{jobs:,}"}
    assert len(page) < 1_500_000
    assert REMOTE.search(page) is None


# --- the parts --------------------------------------------------------------------------------


@given(
    spans=st.lists(
        st.tuples(st.floats(0, 1000), st.floats(0, 1000)).map(sorted).map(tuple),  # type: ignore[arg-type]
        max_size=50,
    ),
    bins=st.integers(1, 40),
)
def test_occupancy_keeps_the_length_of_every_span(
    spans: list[tuple[float, float]], bins: int
) -> None:
    """Law: the bins' means times the width sum to the spans' total length."""
    width = 1000.0 / bins
    out = occupancy(spans, 0.0, width, bins)
    assert len(out) == bins
    assert sum(out) * width == pytest.approx(sum(b - a for a, b in spans), abs=1e-2 * bins)
    assert all(v >= 0 for v in out)


@given(st.lists(st.floats(0, 1e6), max_size=200))
@example([999999.9999999999])  # log10 rounds it up to 6.0: below the first edge it gave
def test_the_log_histogram_counts_every_value_once(values: list[float]) -> None:
    values.sort()
    hist = log_histogram(values)
    assert sum(hist["counts"]) + hist["zero"] == len(values)
    assert len(hist["edges"]) == len(hist["counts"]) + (1 if hist["counts"] else 0)
    for v in values:
        if v >= 1e-3:
            assert hist["edges"][0] <= v <= hist["edges"][-1] * (1 + 1e-9)


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        (JobStatus.SUCCESSFUL, None, "successful"),
        (JobStatus.CRASHED, None, "crashed"),
        (JobStatus.CRASHED, "out_of_memory", "out_of_memory"),
        (JobStatus.FAILED, "submit_failed", "submit_failed"),
        (JobStatus.FAILED, None, "failed"),
        (JobStatus.CANCELLED, "cancelled", "cancelled"),
        (JobStatus.RUNNING, None, "running"),
        (JobStatus.SUBMITTED, None, "pending"),
        (JobStatus.QUEUED, None, "queued"),
        (None, "timeout", "timeout"),
        (None, None, "crashed"),
    ],
)
def test_a_try_is_coloured_by_its_reason_first_then_its_state(
    status: JobStatus, reason: str, expected: str
) -> None:
    assert category(status, reason) == expected
