"""Benchmark of `runner report` on a 100,000-job journal: the page, its size, `--json`, a browser.

- A journal of N_JOBS finished grid jobs in the journal's format (registered, submitted,
  with an id, running, ended: 90 % successful, 5 % out of memory, 5 % crashed, with
  errors), wait and run times spread as a real campaign's are;
- `runner report DIR -o FILE --no-accounting` in a new process (as from another shell):
  the first, which reads every record and leaves the journal reader's snapshot, then the
  best of ROUNDS (which start from the snapshot): the time, and the page's size; the same
  with `--json` to /dev/null;
- where headless Chromium is installed, the time it takes to open the page from disk and
  hand back its rendered DOM (a browser start included).

Accounting is off: the synthetic jobs never ran on a scheduler (on a real run, SLURM's is
one `sacct` of the run's time window past 2,000 jobs).

Target (issue 17): `runner report` < 5 s.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_JOBS = 100_000
ROUNDS = 3
TARGET_REPORT = 5.0


def mark(ok: bool) -> str:
    return "PASS" if ok else "OVER"


def write_journal(folder: Path, jobs: int) -> None:
    """The journal of a finished 100,000-job grid run (the format `read_journal` reads)."""
    rnd = random.Random(17)
    t0 = 1_800_000_000.0
    (folder / ".runner").mkdir(parents=True)
    lines = [
        json.dumps({"k": "open", "v": 1, "s": 1, "host": "h", "pid": 1, "t": t0}),
        json.dumps({"k": "runner", "r": 1, "info": {"kind": "grid", "scheme": "slurm"}}),
    ]
    for j in range(1, jobs + 1):
        registered = t0 + j * 0.05
        submitted = registered + rnd.random() * 5
        started = submitted + rnd.expovariate(1 / 120)
        finished = started + rnd.lognormvariate(5, 1)
        lines += [
            f'{{"k":"job","j":{j},"name":"job{j}","dir":"job{j}","hash":"h","r":1,'
            f'"t":{registered}}}',
            f'{{"k":"st","j":{j},"s":"submitted","t":{submitted}}}',
            f'{{"k":"id","j":{j},"id":"{1000 + j}"}}',
            f'{{"k":"st","j":{j},"s":"running","t":{started}}}',
        ]
        draw = rnd.random()
        if draw < 0.9:
            lines.append(f'{{"k":"end","j":{j},"s":"successful","code":0,"t":{finished}}}')
        elif draw < 0.95:
            lines.append(
                f'{{"k":"end","j":{j},"s":"crashed","code":137,"why":"out_of_memory",'
                f'"err":"oom-kill event","t":{finished}}}'
            )
        else:
            lines.append(
                f'{{"k":"end","j":{j},"s":"crashed","code":1,'
                f'"err":"Traceback\\nValueError: input {j % 7}","t":{finished}}}'
            )
    (folder / ".runner" / "journal.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def best_of(argv: list[str], rounds: int = ROUNDS) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def browser_seconds(page: Path, scratch: Path) -> float | None:
    """Seconds for headless Chromium to open `page` and print its rendered DOM; None if absent."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return None
    argv = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        f"--user-data-dir={scratch / 'profile'}",
        "--proxy-server=127.0.0.1:9",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=300)
    seconds = time.perf_counter() - start
    assert 'data-ready="' in proc.stdout, "the page's script did not run"
    return seconds


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench_report_") as name:
        tmp = Path(name)
        run = tmp / "run"
        print(f"== runner report on a {N_JOBS:,}-job journal ==")
        write_journal(run, N_JOBS)
        size = (run / ".runner" / "journal.jsonl").stat().st_size
        print(f"  journal: {size / 2**20:.1f} MiB")
        page = tmp / "report.html"
        report = [sys.executable, "-m", "runner_core", "report", str(run), "--no-accounting"]
        seconds = best_of([*report, "-o", str(page)], rounds=1)
        print(
            f"  runner report, the first (reads every record, writes the journal's snapshot): "
            f"{seconds:.2f} s (target < {TARGET_REPORT:g} s) {mark(seconds < TARGET_REPORT)}"
        )
        seconds = best_of([*report, "-o", str(page)])
        print(
            f"  runner report (new process, best of {ROUNDS}): {seconds:.2f} s "
            f"(target < {TARGET_REPORT:g} s) {mark(seconds < TARGET_REPORT)}"
        )
        print(f"  page: {page.stat().st_size / 1024:,.0f} KiB")
        seconds = best_of([*report, "--json"])
        print(f"  runner report --json (every try's numbers): {seconds:.2f} s")
        opened = browser_seconds(page, tmp)
        if opened is None:
            print("  browser: no chromium installed; not measured")
        else:
            print(
                f"  headless Chromium opens and renders it (browser start included): {opened:.2f} s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
