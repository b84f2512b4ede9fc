"""Check the built distributions: a wheel and an sdist per package, exact dependencies."""

from __future__ import annotations

import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement

# What each wheel must declare, no more and no less (ARCHITECTURE.md, "Dependency direction").
EXPECTED: dict[str, set[str]] = {
    "runner_settings": set(),
    "runner_core": {
        "runner-settings<0.2,>=0.1",
        "typing-extensions>=4.6",
        'runner-grid<0.2,>=0.1; extra == "grid"',
    },
    "runner_grid": {"runner-core<0.2,>=0.1"},
}


def _normalise(requirement: str) -> str:
    return str(Requirement(requirement))


def _wheel_requirements(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(name).decode())
    return {_normalise(r) for r in metadata.get_all("Requires-Dist") or []}


def main(dist: Path) -> int:
    """Return 0 when every package has a wheel and an sdist with exactly its dependencies."""
    problems: list[str] = []
    for project, expected in EXPECTED.items():
        wheels = sorted(dist.glob(f"{project}-*.whl"))
        sdists = sorted(dist.glob(f"{project}-*.tar.gz"))
        if len(wheels) != 1 or len(sdists) != 1:
            problems.append(
                f"{project}: want one wheel and one sdist in {dist}, got {wheels + sdists}"
            )
            continue
        got = _wheel_requirements(wheels[0])
        want = {_normalise(r) for r in expected}
        if got != want:
            problems.append(
                f"{wheels[0].name}: Requires-Dist {sorted(got)}, expected {sorted(want)}"
            )
        with tarfile.open(sdists[0]) as archive:
            names = archive.getnames()
        if not any(n.endswith("/py.typed") for n in names):
            problems.append(f"{sdists[0].name}: py.typed missing")
        with zipfile.ZipFile(wheels[0]) as archive:
            if not any(n.endswith("/py.typed") for n in archive.namelist()):
                problems.append(f"{wheels[0].name}: py.typed missing")
        print(f"ok  {wheels[0].name}  requires {sorted(got) or 'nothing'}")
        print(f"ok  {sdists[0].name}")
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
