"""Check an install variant from built wheels: what is installed, and that it runs."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
from pathlib import Path

import runner_core
from runner_core import JobManager, JobRunner, JobStatus, SingleJob

# Whatever the venv tool seeds by itself is not part of the project's footprint.
SEEDED = {"pip", "setuptools", "wheel"}

EXPECTED = {
    "minimal": {"runner-core", "runner-settings", "typing-extensions"},
    "grid": {"runner-core", "runner-settings", "typing-extensions", "runner-grid"},
}


def _installed() -> set[str]:
    names = {
        d.metadata["Name"].lower().replace("_", "-") for d in importlib.metadata.distributions()
    }
    return names - SEEDED


def _run_local_job(folder: Path) -> None:
    job = SingleJob(name="hello", runscript='echo "hello from $(pwd)"\nexit 0\n')
    with JobRunner(parallel=True, maxjobs=2) as runner:
        results = job.run(jobrunner=runner, jobmanager=JobManager(folder / "jobs"))
    assert results.status is JobStatus.SUCCESSFUL, (results.status, results.error)
    assert job.path is not None
    out = (job.path / "hello.out").read_text()
    assert out.startswith("hello from"), out
    print(f"ok  a local job ran in {job.path}: {out.strip()!r}")


def main(variant: str, tmp: str) -> int:
    """Check the variant ("minimal" or "grid") installed in this interpreter."""
    folder = Path(tmp)
    installed = _installed()
    if installed != EXPECTED[variant]:
        print(f"FAIL installed {sorted(installed)}, expected {sorted(EXPECTED[variant])}")
        return 1
    print(f"ok  installed exactly {sorted(installed)}")

    if "site-packages" not in str(runner_core.__file__):
        print(f"FAIL runner_core imported from {runner_core.__file__}, not from a wheel")
        return 1
    print(f"ok  runner_core {runner_core.__version__} from {runner_core.__file__}")
    _run_local_job(folder)

    script = folder / "job.sh"
    script.write_text("#!/bin/sh\necho from the runner command\n")
    cli = [
        sys.executable,
        "-m",
        "runner_core",
        "run",
        "--workdir",
        str(folder / "cli"),
        str(script),
    ]
    done = subprocess.run(cli, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"FAIL `runner run` exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return 1
    print("ok  `python -m runner_core run` ran a script")

    grid_present = importlib.util.find_spec("runner_grid") is not None
    grid_cli = [*cli[:4], "--grid", "auto", *cli[4:]]
    if variant == "minimal":
        if grid_present:
            print("FAIL runner_grid is importable in the minimal install")
            return 1
        done = subprocess.run(grid_cli, capture_output=True, text=True, check=False)
        if done.returncode == 0 or "runner-core[grid]" not in done.stderr:
            print(f"FAIL `--grid` should ask for runner-core[grid]:\n{done.stderr}")
            return 1
        print("ok  runner_grid is absent and `--grid` says to install runner-core[grid]")
    else:
        from runner_grid import GridRunner  # noqa: PLC0415 - optional package: only this variant has it

        known = sorted(GridRunner.config)
        print(f"ok  runner_grid came along with the extra; schemes {known}")
        # A scheme name no grid runner knows: the command must find GridRunner through
        # runner-grid's entry point and get its refusal, without submitting anything.
        unknown_cli = [*cli[:4], "--grid", "no_such_scheme", *cli[4:]]
        done = subprocess.run(unknown_cli, capture_output=True, text=True, check=False)
        if done.returncode != 2 or "'no_such_scheme'" not in done.stderr:
            print(f"FAIL `--grid` did not reach runner_grid.GridRunner:\n{done.stderr}")
            return 1
        print("ok  `--grid` finds GridRunner through runner-grid's entry point")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
