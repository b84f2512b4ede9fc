"""The demo behind `nox -s demo`: run the bundled example jobs with the installed `runner`."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

JOBS = Path(__file__).resolve().parent / "jobs"
# The one job that fails on purpose, and how.
FAILING = "broken_input"
FAILING_EXIT = 3
FAILING_MESSAGE = "not above absolute zero"
# What each job that succeeds leaves in its folder.
RESULT_FILES = {
    "decay_chain": "decay.dat",
    "ising_cold": "ising.dat",
    "ising_hot": "ising.dat",
    "random_walk": "msd.dat",
}
# Written into the demo's folder so that a later run may safely delete it again.
MARKER = ".runner-demo"


def _fresh_folder(folder: Path) -> None:
    """Empty the demo's own folder from a previous run; never touch anyone else's."""
    if folder.exists():
        if not (folder / MARKER).is_file():
            sys.exit(
                f"demo: {folder} exists and was not made by this demo; "
                "remove it or pass --workdir with another folder"
            )
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("made by tools/demo/run_demo.py; deleted by its next run\n")


def _check(condition: bool, what: str, problems: list[str]) -> None:
    print(f"  {'ok  ' if condition else 'FAIL'} {what}")
    if not condition:
        problems.append(what)


def _check_json(document: dict[str, Any], problems: list[str]) -> None:
    jobs = {job["name"]: job for job in document["jobs"]}
    expected = {FAILING, *RESULT_FILES}
    _check(set(jobs) == expected, f"one job per script: {sorted(jobs)}", problems)
    _check(
        (document["succeeded"], document["failed"]) == (len(RESULT_FILES), 1),
        f"{document['succeeded']} succeeded and {document['failed']} failed",
        problems,
    )
    broken = jobs.get(FAILING, {})
    _check(
        broken.get("status") == "CRASHED" and broken.get("exit_code") == FAILING_EXIT,
        f"{FAILING} ended CRASHED with exit code {FAILING_EXIT} "
        f"(got {broken.get('status')}, {broken.get('exit_code')})",
        problems,
    )
    _check(
        FAILING_MESSAGE in (broken.get("error") or ""),
        f"its error says why: {broken.get('error')!r}",
        problems,
    )
    for name, result in sorted(RESULT_FILES.items()):
        job = jobs.get(name, {})
        written = job.get("path") is not None and (Path(job["path"]) / result).is_file()
        _check(
            job.get("status") == "SUCCESSFUL" and job.get("exit_code") == 0 and written,
            f"{name} SUCCESSFUL with exit code 0 and wrote {result}",
            problems,
        )


def main() -> int:
    """Run the demo batch twice (shown, then as JSON) and check it did what it promises."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("demo-work"),
        help="folder for the job folders, emptied first (default: ./demo-work)",
    )
    options = parser.parse_args()
    workdir: Path = options.workdir.resolve()

    runner = shutil.which("runner")
    if runner is None:
        print("demo: the `runner` command is not on PATH; install runner-core first")
        return 2
    scripts = sorted(str(p) for p in JOBS.glob("*.sh"))
    _fresh_folder(workdir)

    command = [runner, "run", "--parallel", "--maxjobs", "2", "--workdir", str(workdir / "run")]
    print(f"demo: {len(scripts)} example jobs from {JOBS}, one of which fails on purpose")
    print(f"demo: job folders under {workdir / 'run'}")
    print("demo: $ runner run --parallel --maxjobs 2 --workdir", workdir / "run", "jobs/*.sh\n")
    sys.stdout.flush()
    shown = subprocess.run([*command, *scripts], check=False)

    print(f"\ndemo: `runner run` exited with status {shown.returncode}; checking the promises:")
    problems: list[str] = []
    _check(shown.returncode == 1, "exit status 1: one job failed, the others succeeded", problems)

    check = [runner, "run", "--parallel", "--maxjobs", "2", "--json"]
    check += ["--workdir", str(workdir / "json"), *scripts]
    quiet = subprocess.run(check, capture_output=True, text=True, check=False)
    _check(quiet.returncode == 1, "the same batch with --json exits 1 too", problems)
    try:
        document = json.loads(quiet.stdout)
    except json.JSONDecodeError as exc:
        _check(False, f"--json printed JSON ({exc}): {quiet.stdout[:200]!r}", problems)
    else:
        try:
            _check_json(document, problems)
        except (KeyError, TypeError, AttributeError) as exc:
            _check(False, f"--json printed the documented shape (missing {exc})", problems)

    if problems:
        print(f"\ndemo: FAILED, {len(problems)} promise(s) not kept; stderr of the JSON run:")
        print(quiet.stderr)
        return 1
    print(f"\ndemo: OK; look around the job folders in {workdir / 'run'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
