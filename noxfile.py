"""Every check a person or CI runs is a session here: `nox -l` lists them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
PACKAGES = ["runner-settings", "runner-core", "runner-grid"]
PACKAGE_DIRS = [str(ROOT / "packages" / name) for name in PACKAGES]
DIST = ROOT / "dist"
PYTHONS = ["3.9", "3.10", "3.11", "3.12", "3.13"]
TEST_DEPS = ["pytest>=8", "hypothesis>=6.100", "coverage[toml]>=7"]

nox.needs_version = ">=2024.4.15"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = [
    "lint",
    "typecheck",
    "tests",
    "minimal_core",
    "grid_extra",
    "vendored_settings",
    "docs",
    "integration",
]


def _put_pyenv_pythons_on_path() -> None:
    """Let nox find python3.X for every version pyenv holds.

    pyenv keeps the other interpreters in `$(pyenv root)/versions/<v>/bin`, which is
    not on PATH, so without this nox would skip every version but the default.
    """
    root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    versions = Path(root) / "versions"
    if not versions.is_dir():
        return
    extra = [str(d / "bin") for d in sorted(versions.iterdir()) if (d / "bin").is_dir()]
    os.environ["PATH"] = os.pathsep.join([os.environ.get("PATH", ""), *extra])


_put_pyenv_pythons_on_path()


def _install_editable(session: nox.Session, *extra: str) -> None:
    args: list[str] = []
    for d in PACKAGE_DIRS:
        args += ["-e", d]
    session.install(*args, *extra)


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The unit and behaviour suite (settings, core, grid) on every Python present."""
    _install_editable(session, *TEST_DEPS)
    session.run(
        "coverage",
        "run",
        "-m",
        "pytest",
        "tests/settings",
        "tests/core",
        "tests/grid",
        *session.posargs,
    )
    session.run("coverage", "combine", success_codes=[0, 1], silent=True)
    session.run("coverage", "report", "--fail-under=0")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint rules and formatting."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over every package and the typing checks under tests/typing."""
    _install_editable(session, "mypy>=1.11", *TEST_DEPS)
    session.run("mypy")


@nox.session
def build(session: nox.Session) -> None:
    """A wheel and an sdist for each package, into dist/."""
    # hatchling is the build backend `hatch build` drives; calling it directly skips
    # hatch's own build environments, which nest badly inside a nox virtualenv.
    session.install("hatchling>=1.26", "packaging")
    shutil.rmtree(DIST, ignore_errors=True)
    for d in PACKAGE_DIRS:
        with session.chdir(d):
            session.run(
                "python", "-m", "hatchling", "build", "-t", "wheel", "-t", "sdist", "-d", str(DIST)
            )
    session.run("python", str(ROOT / "tools" / "check_dist.py"), str(DIST))


def _install_wheels(session: nox.Session, *requirements: str) -> None:
    """Install from the built wheels, as a user would; never the source tree."""
    session.install("--find-links", str(DIST), *requirements)


@nox.session(requires=["build"])
def minimal_core(session: nox.Session) -> None:
    """Install runner-core alone from its wheel: runner-grid is absent, local runs work."""
    _install_wheels(session, "runner-core")
    with tempfile.TemporaryDirectory() as tmp:
        session.run("python", str(ROOT / "tools" / "check_install.py"), "minimal", tmp)


@nox.session(requires=["build"])
def grid_extra(session: nox.Session) -> None:
    """Install runner-core[grid] from the wheels: runner-grid comes along."""
    _install_wheels(session, "runner-core[grid]")
    with tempfile.TemporaryDirectory() as tmp:
        session.run("python", str(ROOT / "tools" / "check_install.py"), "grid", tmp)


@nox.session
def vendored_settings(session: nox.Session) -> None:
    """Copy _settings.py under another package name; run the Settings tests on the copy."""
    session.install(*TEST_DEPS)
    source = ROOT / "packages" / "runner-settings" / "src" / "runner_settings" / "_settings.py"
    with tempfile.TemporaryDirectory() as tmp:
        vendor = Path(tmp) / "myproject_vendor"
        vendor.mkdir()
        (vendor / "__init__.py").write_text("")
        shutil.copy2(source, vendor / "settings.py")
        # The copy must import in an isolated interpreter with no site-packages at all.
        session.run(
            "python",
            "-I",
            "-S",
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]);"
            "from myproject_vendor.settings import Settings;"
            "s = Settings(); s.a.b.c = 1; assert s == {'a': {'b': {'c': 1}}}, s;"
            "assert s.flatten().unflatten() == Settings.unflatten(s.flatten()) == s;"
            "print('vendored import ok:', Settings.__module__)",
            tmp,
        )
        session.run(
            "pytest",
            "tests/settings",
            env={"RUNNER_SETTINGS_MODULE": "myproject_vendor.settings", "PYTHONPATH": tmp},
        )


@nox.session
def docs(session: nox.Session) -> None:
    """Run the pages' code examples, then build the site; any warning is an error."""
    _install_editable(session, "mkdocs>=1.6", "mkdocstrings[python]>=0.26", *TEST_DEPS)
    session.run("pytest", "tests/docs", *session.posargs)
    session.run("mkdocs", "build", "--strict", "-f", "docs/mkdocs.yml", "-d", str(ROOT / "site"))


@nox.session(requires=["build"])
def demo(session: nox.Session) -> None:
    """The main job: install the packages from wheels and run the bundled example batch."""
    _install_wheels(session, "runner-core")
    session.run("python", str(ROOT / "tools" / "demo" / "run_demo.py"), *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: each prints ratios against a baseline measured in the same run."""
    _install_editable(session)
    scripts = sorted((ROOT / "tools" / "bench").glob("bench_*.py"))
    if not scripts:
        session.error("no benchmarks found under tools/bench/")
    for script in scripts:
        session.run("python", str(script), *session.posargs)


@nox.session
def integration(session: nox.Session) -> None:
    """Tests against a real SLURM and a real Grid Engine started on this machine."""
    _install_editable(session, *TEST_DEPS)
    # sshd.sh first: it makes the remote login user, whom slurm.sh gives an association.
    for tool in ("sshd.sh", "slurm.sh", "sge.sh"):
        script = ROOT / "tools" / tool
        if os.geteuid() == 0:
            session.run("bash", str(script), "start", external=True)
            if tool == "sshd.sh":  # and its two-factor twin (tests/integration/test_remote_2fa.py)
                session.run("bash", str(script), "start-2fa", external=True)
        else:
            session.warn(f"not root: {tool} cannot install or start its scheduler")
    session.run("pytest", "tests/integration", *session.posargs)


if __name__ == "__main__":  # pragma: no cover - convenience for `python noxfile.py`
    sys.exit(subprocess.call([sys.executable, "-m", "nox", *sys.argv[1:]]))
