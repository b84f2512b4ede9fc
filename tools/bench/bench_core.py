"""Benchmark of runner_core: per-job overhead (journal on and off), cost at scale, import time.

The overhead part runs each side as a whole process of its own (a fresh interpreter,
a fresh folder), in rounds that rotate which side goes first, and prints medians of the
per-round ratios: our JobRunner with the journal on against a plain ThreadPoolExecutor(2)
doing the same file and process work (issue 19: at most 1.1x), journal on against off,
and how many journal records and bytes a job costs.

Usage: python tools/bench/bench_core.py [--jobs 1000] [--rounds 11] [--only overhead]
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from runner_core import JobManager, JobRunner, SingleJob

N_JOBS = 1000
ROUNDS = 11  # at least 7 pairs: the median of the rounds is what counts
N_SCALE = 10_000
# issue 19: the local runner with the journal on within 1.1x of a plain thread pool.
TARGET_RATIO = 1.1
TARGET_IMPORT_MS = 30.0
SCRIPT = "#!/bin/sh\nexit 0\n"
SIDES = ("plain", "journal on", "journal off")


def mark(ok: bool) -> str:
    return "PASS" if ok else "OVER"


def cpu_seconds(children: bool = True) -> float:
    """CPU time (user + system) of this process (and its reaped children) so far."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = me.ru_utime + me.ru_stime
    return own + kids.ru_utime + kids.ru_stime if children else own


def baseline(root: Path, n: int) -> None:
    """ThreadPoolExecutor(2) + subprocess.run doing the same file work as a SingleJob."""
    root.mkdir()

    def one(i: int) -> int:
        folder = root / f"job.{i:05d}"
        folder.mkdir()
        script = folder / "job.run"
        script.write_text(SCRIPT)
        script.chmod(0o755)
        with open(folder / "job.out", "wb") as out, open(folder / "job.err", "wb") as err:
            for attempt in range(1, 41):
                try:
                    return subprocess.run(
                        [str(script)],
                        cwd=folder,
                        stdout=out,
                        stderr=err,
                        start_new_session=True,
                        check=False,
                    ).returncode
                except OSError as exc:  # ETXTBSY: a concurrent fork holds a write fd
                    if exc.errno != errno.ETXTBSY:
                        raise
                    time.sleep(0.0005 * attempt)
            raise RuntimeError("text file busy 40 times")

    with ThreadPoolExecutor(2) as pool:
        codes = list(pool.map(one, range(n)))
    assert codes == [0] * n


def with_runner(root: Path, n: int, journal: bool) -> None:
    """The same batch through JobRunner(parallel=True, maxjobs=2) + SingleJob + JobManager."""
    runner = JobRunner(parallel=True, maxjobs=2)
    manager = JobManager(root, journal=journal)
    results = [
        SingleJob("job", "exit 0").run(jobrunner=runner, jobmanager=manager) for _ in range(n)
    ]
    runner.wait()
    manager.close()  # the journal's last fsync and close count too
    bad = [r for r in results if not r.ok]
    assert not bad, bad[:3]


def journal_counts(root: Path, n: int) -> dict[str, Any]:
    """Records and bytes per job in the journal of `root` (a run of `n` jobs), kinds counted."""
    data = (root / ".runner" / "journal.jsonl").read_bytes()
    kinds: dict[str, int] = {}
    for line in data.splitlines():
        kind = json.loads(line)["k"]
        kinds[kind] = kinds.get(kind, 0) + 1
    return {"records": sum(kinds.values()) / n, "bytes": len(data) / n, "kinds": kinds}


def count_writes(root: Path, n: int) -> None:
    """Print how many `os.write` calls the journal made for `n` jobs (an untimed run)."""
    real = os.write
    writes = 0

    def counting(fd: int, data: bytes) -> int:
        nonlocal writes
        if bytes(data[:5]) == b'{"k":':  # a journal line; runscripts start with "#!"
            writes += 1
        return real(fd, data)

    os.write = counting  # type: ignore[assignment]
    try:
        with_runner(root, n, journal=True)
    finally:
        os.write = real
    print(json.dumps({"writes": writes / n}))


def child(side: str, root: Path, n: int) -> None:
    """One side of one round, in a process of its own: print its times as JSON."""
    if side == "count writes":
        count_writes(root, n)
        return
    c0, d0 = cpu_seconds(), cpu_seconds(children=False)
    t0 = time.perf_counter()
    if side == "plain":
        baseline(root, n)
    else:
        with_runner(root, n, journal=side == "journal on")
    wall = time.perf_counter() - t0
    out: dict[str, Any] = {
        "wall": wall,
        "cpu": cpu_seconds() - c0,
        "driver": cpu_seconds(children=False) - d0,
    }
    if side == "journal on":
        out.update(journal_counts(root, n))
    print(json.dumps(out))


def run_child(side: str, tmp: Path, n: int) -> dict[str, Any]:
    root = tmp / side.replace(" ", "_")
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", side, str(root), str(n)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{side} round failed:\n{proc.stderr}")
        result: dict[str, Any] = json.loads(proc.stdout)
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)


def overhead(n: int, rounds: int) -> None:
    print(
        f"== local overhead: {n} trivial jobs, maxjobs=2, each side a whole process, "
        f"{rounds} rounds rotating who goes first; medians of the per-round ratios =="
    )
    walls: dict[str, list[float]] = {s: [] for s in SIDES}
    cpus: dict[str, list[float]] = {s: [] for s in SIDES}
    drivers: dict[str, list[float]] = {s: [] for s in SIDES}
    counts: dict[str, Any] = {}
    print(f"  in {tempfile.gettempdir()} (set TMPDIR to measure on another file system)")
    with tempfile.TemporaryDirectory(prefix="bench_core_") as name:
        tmp = Path(name)
        run_child("journal on", tmp, max(50, n // 10))  # warm-up: disk, page cache, pycs
        for r in range(rounds):
            # File creation on this disk drifts over a run, penalising whoever goes
            # later: rotate the order, and compare the sides within each round.
            order = SIDES[r % 3 :] + SIDES[: r % 3]
            line = []
            for side in order:
                got = run_child(side, tmp, n)
                walls[side].append(got["wall"])
                cpus[side].append(got["cpu"])
                drivers[side].append(got["driver"])
                if side == "journal on":
                    counts = got
                line.append(f"{side} {got['wall'] / n * 1e3:.3f}")
            print(f"  round {r + 1}: " + ", ".join(line) + " ms/job wall")

    def ratios(a: str, b: str, what: dict[str, list[float]]) -> list[float]:
        return [x / y for x, y in zip(what[a], what[b])]

    def show(label: str, a: str, b: str, target: float | None = None) -> None:
        wall = ratios(a, b, walls)
        med = statistics.median(wall)
        cpu = statistics.median(ratios(a, b, cpus))
        driver = statistics.median(ratios(a, b, drivers))
        verdict = "" if target is None else f" (target <= {target}x) {mark(med <= target)}"
        print(
            f"  {label}: {med:.3f}x wall{verdict}, {cpu:.3f}x CPU, {driver:.3f}x driver "
            f"CPU; per round {', '.join(f'{x:.2f}' for x in wall)}"
        )

    def per_job(what: dict[str, list[float]], side: str) -> str:
        return f"{statistics.median(what[side]) / n * 1e3:.3f}"

    print("  medians in ms per job: wall, CPU (driver + its children), driver CPU alone")
    for side in SIDES:
        print(
            f"  {side:12s} {per_job(walls, side)} wall, {per_job(cpus, side)} CPU, "
            f"{per_job(drivers, side)} driver"
        )
    show("journal on  vs plain pool", "journal on", "plain", TARGET_RATIO)
    show("journal on  vs journal off", "journal on", "journal off")
    show("journal off vs plain pool", "journal off", "plain")
    cost = [(a - b) / n * 1e6 for a, b in zip(drivers["journal on"], drivers["journal off"])]
    print(
        f"  the journal's own cost: {statistics.median(cost):.0f} us of driver CPU per job "
        "(median of the per-round differences, on - off)"
    )
    kinds = counts.get("kinds", {})
    with tempfile.TemporaryDirectory(prefix="bench_core_") as name:
        writes = run_child("count writes", Path(name), n)["writes"]
    print(
        f"  journal: {counts.get('records', 0):.2f} records, {counts.get('bytes', 0):.0f} "
        f"bytes and {writes:.2f} writes per job (the whole run's / jobs); records by kind {kinds}"
    )
    print(f"  load average now: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


def scale(maxthreads: int) -> None:
    """Queue N_SCALE jobs; sample peak threads; report memory peaks."""
    peak_threads = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak_threads
        while not stop.is_set():
            peak_threads = max(peak_threads, threading.active_count())
            stop.wait(0.005)

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with tempfile.TemporaryDirectory(prefix="bench_core_scale_") as tmp:
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        tracemalloc.start()
        start = time.perf_counter()
        runner = JobRunner(parallel=True, maxjobs=2, maxthreads=maxthreads)
        manager = JobManager(tmp)
        results = [
            SingleJob("job", "exit 0").run(jobrunner=runner, jobmanager=manager)
            for _ in range(N_SCALE)
        ]
        runner.wait()
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        stop.set()
        sampler.join()
        ok = sum(r.ok for r in results)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"  maxthreads={maxthreads}: {ok}/{N_SCALE} ok in {elapsed:.1f} s, "
        f"tracemalloc peak {peak / 2**20:.1f} MiB ({peak / N_SCALE / 1024:.2f} KiB/job), "
        f"ru_maxrss +{(rss1 - rss0) / 1024:.1f} MiB, peak threads {peak_threads} "
        f"(job threads: at most maxjobs=2 of the cap {maxthreads}; + main + sampler)"
    )


def import_time() -> None:
    print(f"== import runner_core (target < {TARGET_IMPORT_MS:g} ms) ==")
    py = sys.executable

    # What a user sees: the modules' .pyc files exist (pip writes them at install). A
    # PYTHONDONTWRITEBYTECODE=1 in the environment (some CI machines set it) would make
    # every import compile from source, so bytecode is allowed and written once first,
    # into a cache folder of the bench's own.
    cache = tempfile.mkdtemp(prefix="bench_core_pycache_")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache
    subprocess.run([py, "-c", "import runner_core"], check=True, env=env)

    def importtime_us() -> int:
        proc = subprocess.run(
            [py, "-X", "importtime", "-c", "import runner_core"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        for line in proc.stderr.splitlines():
            parts = [p.strip() for p in line.split("|")]
            if len(parts) == 3 and parts[2] == "runner_core":
                return int(parts[1])
        raise RuntimeError("runner_core not in -X importtime output")

    def wall(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([py, "-c", code], check=True, env=env)
        return time.perf_counter() - start

    cumulative = min(importtime_us() for _ in range(15)) / 1e3
    bare = min(wall("pass") for _ in range(15))
    loaded = min(wall("import runner_core") for _ in range(15))
    extra = (loaded - bare) * 1e3
    ok = mark(cumulative < TARGET_IMPORT_MS)
    print(
        f"  -X importtime cumulative runner_core: {cumulative:.1f} ms "
        f"(target < {TARGET_IMPORT_MS:g} ms) {ok}"
    )
    print(
        f"  wall: python -c pass {bare * 1e3:.1f} ms, -c 'import runner_core' "
        f"{loaded * 1e3:.1f} ms, extra {extra:.1f} ms (target < {TARGET_IMPORT_MS:g} ms) "
        f"{mark(extra < TARGET_IMPORT_MS)}"
    )
    shutil.rmtree(cache, ignore_errors=True)


def main() -> int:
    os.environ.pop("PYTHONPROFILEIMPORTTIME", None)
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=N_JOBS, help="jobs per round")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="rounds (at least 7)")
    parser.add_argument("--only", choices=["overhead", "scale", "import"], default=None)
    args = parser.parse_args()
    if args.rounds < 7:
        parser.error("--rounds: at least 7, so that the median of the rounds means something")
    if args.only in (None, "overhead"):
        overhead(args.jobs, args.rounds)
    if args.only in (None, "scale"):
        print(f"== cost at scale: {N_SCALE} queued trivial jobs, maxjobs=2 ==")
        scale(32)
        scale(256)
    if args.only in (None, "import"):
        import_time()
    return 0


if __name__ == "__main__":
    sys.exit(main())
