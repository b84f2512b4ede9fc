"""`runner report` against the real world: a real SLURM with accounting, and a real browser.

Each page is opened from disk by headless Chromium (the Debian package ``chromium``; .ci/run
installs it) with every host unreachable; the test reads the page back as the browser
rendered it after its script ran, checks that every try (or every band of tries) is there,
that no script error and no console error was raised, and, from Chromium's network log,
that the page asked no host for anything. Where Chromium is missing the tests skip, which
CI (RUNNER_REQUIRE_SCHEDULERS=1) turns into a failure.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import pytest

from core.report_helpers import synthetic_journal
from integration._schedulers import PATIENCE, SCHEDULERS, SubmittedIds, wait_for
from runner_core import JobManager, JobRunner, SingleJob
from runner_core._report_html import BANDS
from runner_core.cli import main

if TYPE_CHECKING:
    from runner_grid import GridRunner

pytestmark = pytest.mark.integration

ON_SLURM = pytest.mark.parametrize("scheduler", [SCHEDULERS["slurm"]], indirect=True)
MB = 1024 * 1024
#: Seconds a browser may take to open and render one report.
BROWSER_TIMEOUT = 120.0
#: What the browser's log says of a message written to the console, or of an uncaught error.
_CONSOLE = re.compile(r":(?:INFO|WARNING|ERROR):CONSOLE[^\]]*\]\s*(.*)")
#: Any reference to another host in an attribute or a CSS url().
_REMOTE = re.compile(
    r"""(?:src|href|action|data)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//""",
    re.IGNORECASE,
)


def chromium() -> str:
    """The headless browser's command; skips (a failure in CI) where none is installed."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium to open the report in: install it with `apt-get install chromium`")


class Rendered(NamedTuple):
    """A page as a real browser left it: its DOM, its console, the hosts it asked, the time."""

    dom: str
    console: list[str]
    requests: list[str]
    seconds: float


def open_in_browser(page: Path, scratch: Path) -> Rendered:
    """Open `page` from disk in headless Chromium, no host reachable, and read back its DOM.

    The page's own requests are those of Chromium's network log whose isolation key is
    the file itself (Chromium's background requests, for updates and such, have others).
    """
    profile = scratch / "chromium-profile"
    netlog = scratch / "netlog.json"
    argv = [
        chromium(),
        "--headless",
        "--no-sandbox",  # tests run as root in CI
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--proxy-server=127.0.0.1:9",  # nothing answers there: no network
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--log-net-log={netlog}",
        "--enable-logging=stderr",
        "--v=0",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    start = time.perf_counter()
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=BROWSER_TIMEOUT, check=False
    )
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}"
    console = [m.group(1) for m in map(_CONSOLE.search, proc.stderr.splitlines()) if m]
    return Rendered(proc.stdout, console, _page_requests(netlog), seconds)


def _page_requests(netlog: Path) -> list[str]:
    text = netlog.read_text(encoding="utf-8", errors="replace")
    try:
        events: list[dict[str, Any]] = json.loads(text)["events"]
    except (ValueError, KeyError):  # a log not closed: read what it holds
        events = json.loads(text.rstrip().rstrip(",") + "]}")["events"]
    urls = []
    for event in events:
        params = event.get("params") or {}
        if "url" in params and str(params.get("network_isolation_key", "")).startswith("file:"):
            urls.append(str(params["url"]))
    return sorted(set(urls))


def check_page(page: Path, scratch: Path, rows: int) -> Rendered:
    """Open the report in the browser and check it as a reader would get it.

    `rows` is the number of timeline rows (tries, or bands of tries) the page must show.
    """
    text = page.read_text(encoding="utf-8")
    assert _REMOTE.search(text) is None, "the page refers to another host"
    seen = open_in_browser(page, scratch)
    assert 'data-error="' not in seen.dom, seen.dom[:300]
    # the script ran: it counted the rows it made clickable
    ready = re.search(r'<html[^>]*\bdata-ready="(\d+)"', seen.dom)
    assert ready is not None, seen.dom[:300]
    assert int(ready.group(1)) == rows
    timeline = seen.dom[seen.dom.index('id="timeline"') : seen.dom.index('id="over-time"')]
    assert len(re.findall(r'<g data-i="\d+"', timeline)) == rows
    for section in ("over-time", "distributions", "failures", "usage"):
        assert f'id="{section}"' in seen.dom
    assert seen.console == [], seen.console
    assert seen.requests == [], seen.requests
    return seen


# --- no scheduler needed: a local run and a 100,000-job journal ------------------------------


def test_the_report_of_a_local_run_works_in_a_real_browser(tmp_path: Path) -> None:
    runner = JobRunner(parallel=True, maxjobs=2)
    with JobManager(tmp_path / "run") as manager:
        for i in range(4):
            SingleJob(f"ok{i}", f"sleep 0.{i + 1}\n").run(jobrunner=runner, jobmanager=manager)
        SingleJob("bad", "echo 'no input' >&2\nexit 3\n").run(jobrunner=runner, jobmanager=manager)
        runner.wait()
    page = tmp_path / "report.html"
    assert main(["report", str(tmp_path / "run"), "-o", str(page)]) == 0

    seen = check_page(page, tmp_path, rows=5)
    assert "no input" in seen.dom
    assert "does not measure the memory and CPU time" in seen.dom


def test_a_100000_job_report_is_made_and_opened_in_seconds(tmp_path: Path) -> None:
    jobs = 100_000
    synthetic_journal(tmp_path / "run", jobs)
    page = tmp_path / "report.html"
    argv = [sys.executable, "-m", "runner_core", "report", str(tmp_path / "run"), "-o", str(page)]
    start = time.perf_counter()
    # accounting off: the synthetic jobs never ran on this cluster's scheduler
    subprocess.run([*argv, "--no-accounting"], check=True, capture_output=True, timeout=120)
    made = time.perf_counter() - start

    per = math.ceil(jobs / BANDS)
    seen = check_page(page, tmp_path, rows=math.ceil(jobs / per))
    spans = re.findall(r"tries ([\d,]+)-([\d,]+) of 100,000", seen.dom)
    assert sum(int(b.replace(",", "")) - int(a.replace(",", "")) + 1 for a, b in spans) == jobs
    size = page.stat().st_size
    # Generous bounds for a shared machine; tools/bench/bench_report.py measures them.
    assert size < 2 * MB, size
    assert made < 30, made
    assert seen.seconds < 30, seen.seconds


# --- the real SLURM, with accounting ---------------------------------------------------------

#: Holds about 80 MB for 3 s: sacct's sampling sees it.
MEASURED = "python3 -c 'import time; b = b\"x\" * (80 * 1024 * 1024); time.sleep(3)'\n"
#: Holds about 300 MB, three times its 100M: the cgroup kills it.
HOG = "python3 -c 'b = b\"x\" * (300 * 1024 * 1024)'\n"


@ON_SLURM
def test_the_report_of_a_slurm_run_has_its_accounting_and_works_in_a_browser(
    scheduler: str,
    make_runner: Callable[..., GridRunner],
    submitted: SubmittedIds,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    runner = make_runner()
    folder = tmp_path / "run"
    with JobManager(folder) as manager:
        results = {
            "measured": SingleJob("measured", MEASURED).run(
                jobrunner=runner, jobmanager=manager, memory="200M"
            ),
            "hog": SingleJob("hog", HOG).run(jobrunner=runner, jobmanager=manager, memory="100M"),
            "bad": SingleJob("bad", "echo 'broken input' >&2\nexit 4\n").run(
                jobrunner=runner, jobmanager=manager, memory="100M"
            ),
        }
        for one in results.values():
            one.wait(timeout=PATIENCE)
    hog = results["hog"]
    assert hog.reason == "out_of_memory", (hog.status, hog.error)
    ids = {name: one.jobid for name, one in results.items()}

    def usage() -> dict[str, Any] | None:
        capsys.readouterr()
        assert main(["report", str(folder), "--json"]) == 0
        data: dict[str, Any] = json.loads(capsys.readouterr().out)
        rows = {row["jobid"]: row for row in data["usage"]["jobs"]}
        # slurmdbd completes a job's record (its steps' MaxRSS, its request) in steps,
        # a moment after the job ended
        if all(
            ids[n] in rows and rows[ids[n]]["memory"] and rows[ids[n]]["memory_requested"]
            for n in ids
        ):
            return data
        return None

    data = wait_for(usage, "sacct's records of the three jobs")
    rows = {row["name"]: row for row in data["usage"]["jobs"]}
    assert data["usage"]["absent_because"] is None
    assert rows["measured"]["memory"] >= 60 * MB  # MaxRSS of its batch step
    assert rows["measured"]["memory_requested"] == 200 * MB
    assert 0.3 < rows["measured"]["memory_fraction"] < 1.0
    assert rows["measured"]["cores"] >= 1
    assert rows["measured"]["elapsed"] >= 2
    assert rows["hog"]["state"] == "OUT_OF_MEMORY"
    assert rows["hog"]["memory_requested"] == 100 * MB
    named = {u["name"]: u["under"] for u in data["usage"]["under_half"]}
    assert "memory" not in named.get("hog", [])  # killed at its limit: it used all of it
    assert "cpu" in named["measured"]  # it slept
    reasons = {g["category"]: g for g in data["failures"]}
    assert reasons["out_of_memory"]["members"][0]["jobid"] == ids["hog"]
    assert reasons["crashed"]["members"][0]["error"] == "broken input"

    page = tmp_path / "report.html"
    assert main(["report", str(folder), "-o", str(page)]) == 0
    seen = check_page(page, tmp_path, rows=3)
    assert 'id="usage-table"' in seen.dom
    assert "OUT_OF_MEMORY" in seen.dom
    assert "MiB" in seen.dom
    if os.environ.get("RUNNER_REPORT_SCREENSHOT"):  # docs/pages/report.md's picture
        _screenshot(page, Path(os.environ["RUNNER_REPORT_SCREENSHOT"]), tmp_path)


def _screenshot(page: Path, out: Path, scratch: Path) -> None:
    subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={scratch / 'shot-profile'}",
            "--window-size=1100,1500",
            f"--screenshot={out}",
            page.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=BROWSER_TIMEOUT,
    )
