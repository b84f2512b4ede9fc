"""The job wrapper: a sh script submitted in place of the runscript that records its exit code."""

from __future__ import annotations

import contextlib
import functools
import os
import posixpath
import re
import shlex
from typing import TYPE_CHECKING, NamedTuple, Optional

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "DIRECTIVE_PREFIXES",
    "NO_TIMES",
    "Times",
    "Wrapper",
    "directive_lines",
    "exitcode_path",
    "leftovers",
    "read_exitcode",
    "read_times",
    "remove_leftovers",
    "safe_job_name",
    "times_for",
    "times_path",
    "write_wrapper",
]

#: Lines the scheduler reads as options inside a job script: SLURM, Grid Engine, PBS.
DIRECTIVE_PREFIXES = ("#SBATCH", "#$", "#PBS")


def directive_lines(script: str, prefixes: Sequence[str] = DIRECTIVE_PREFIXES) -> list[str]:
    """Return the runscript's scheduler directive lines (``#SBATCH ...``, ``#$ ...``, ``#PBS ...``).

    They are taken from anywhere in the script, in order, because the job layer may put lines of
    its own (the ``exec >`` of ``stdout_redirect``) between the interpreter line and the
    directives the user wrote in ``runscript.pre``.

    Args:
        script: the runscript's text.
        prefixes: what a directive line starts with.

    Returns:
        The lines, without their line ends.
    """
    return [line.rstrip("\r\n") for line in script.splitlines() if line.startswith(tuple(prefixes))]


def exitcode_path(workdir: str, runscript: str) -> str:
    """Return the absolute path of the file the wrapper writes the exit code to.

    ``<workdir>/<runscript without .run>.exitcode`` (``opt.run`` -> ``opt.exitcode``).
    """
    stem = runscript[: -len(".run")] if runscript.endswith(".run") else runscript
    return os.path.join(os.path.abspath(workdir), stem + ".exitcode")


def wrapper_path(workdir: str, runscript: str) -> str:
    """Return the absolute path of the wrapper script, ``<name>.grid`` beside the runscript.

    Schedulers name the job after the submitted file, and Grid Engine refuses names with white
    space or a leading digit, so the name keeps only letters, digits, ``_``, ``.`` and ``-``
    (others become ``_``) and gets a ``job_`` prefix unless it starts with a letter:
    ``opt.run`` -> ``opt.grid``, ``my job.run`` -> ``my_job.grid``, ``1st.run`` -> ``job_1st.grid``.
    """
    stem = runscript[: -len(".run")] if runscript.endswith(".run") else runscript
    return os.path.join(os.path.abspath(workdir), safe_job_name(os.path.basename(stem)) + ".grid")


def safe_job_name(name: str) -> str:
    """`name` as every scheduler takes it as a job name (``my job`` -> ``my_job``).

    Only letters, digits, ``_``, ``.`` and ``-`` are kept (others become ``_``), and a
    name that does not start with a letter gets a ``job_`` prefix (Grid Engine refuses a
    leading digit).
    """
    name = _UNSAFE.sub("_", name) or "job"
    if not name[0].isascii() or not name[0].isalpha():
        name = "job_" + name
    return name


_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


def times_path(workdir: str, runscript: str) -> str:
    """Return the absolute path of the file where the wrapper records the runscript's times.

    ``<workdir>/<runscript without .run>.times`` (``opt.run`` -> ``opt.times``): one line,
    ``start=<t> id=<id>`` while the runscript runs, ``start=<t> end=<t> id=<id>`` once it
    ended (epoch seconds); ``id`` is the scheduler's own id of the job where the wrapper
    can read it (``SLURM_JOB_ID``, which differs from the array form for an array task).
    """
    stem = runscript[: -len(".run")] if runscript.endswith(".run") else runscript
    return os.path.join(os.path.abspath(workdir), stem + ".times")


def times_for(exit_file: str) -> str:
    """Return the times file that belongs with the exit-code file `exit_file` (same stem)."""
    stem = exit_file[: -len(".exitcode")] if exit_file.endswith(".exitcode") else exit_file
    return stem + ".times"


def leftovers(exit_file: str) -> list[str]:
    """Temporary files an earlier wrapper version left in a job folder (``<name>.exitcode.<pid>``).

    Wrappers before this one wrote the exit code through such a file and left it when
    killed at the wrong moment; this one writes no temporary file at all.
    """
    folder, name = os.path.split(exit_file)
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return [
        os.path.join(folder, other)
        for other in names
        if other.startswith(name + ".") and other[len(name) + 1 :].isdigit()
    ]


# The wrapper's clock: epoch seconds with a fraction where `date` has %N (GNU, busybox),
# whole seconds where it has not (BSD date prints a literal N).
_NOW = (
    "runner_grid_now() { runner_grid_t=$(date +%s.%N 2>/dev/null); "
    "case $runner_grid_t in ''|*[!0-9.]*) runner_grid_t=$(date +%s) ;; esac; }"
)


def wrapper_text(
    script_path: str,
    workdir: str,
    exit_file: str,
    directives: Sequence[str],
    times_file: Optional[str] = None,
) -> str:
    """Return the wrapper's text.

    It starts with ``#!/bin/sh`` and the runscript's directive lines (so the scheduler still
    reads them), changes into the job's folder (PBS Pro has no working-directory flag),
    records the start time (`times_path`), runs the runscript (through its own interpreter
    line), appends the end time and writes the exit status to ``exit_file``, then exits
    with that status. Each record is one short line written with one ``write`` and read
    only when its line end is there, so a reader never takes half of one, and no
    temporary file is needed (none can be left behind, whatever kills the job). A job
    killed before the runscript ends writes no exit code: the runner then asks the
    scheduler. A stale exit-code file of an earlier run of the same job (a job the
    scheduler requeued) is removed at the start. The only programs it starts besides the
    runscript are two ``date`` calls.

    Args:
        script_path: absolute path of the runscript.
        workdir: absolute path of the job's folder.
        exit_file: absolute path of the exit-code file.
        directives: directive lines to copy.
        times_file: absolute path of the times file; by default beside `exit_file`.

    Returns:
        The script's text.
    """
    q = shlex.quote
    if times_file is None:
        times_file = times_for(exit_file)
    lines = [
        "#!/bin/sh",
        *directives,
        "# Written by runner_grid's GridRunner: runs the job's runscript, records when it",
        "# started and ended and its exit status for the runner.",
        f"cd {q(workdir)} || exit 1",
        _NOW,
        f"rm -f {q(exit_file)}",
        "runner_grid_now; runner_grid_start=$runner_grid_t",
        f'printf \'start=%s id=%s\\n\' "$runner_grid_start" "${{SLURM_JOB_ID:-}}" '
        f"> {q(times_file)}",
        f"{q(script_path)}",
        "runner_grid_status=$?",
        "runner_grid_now",
        f"printf 'end=%s\\n' \"$runner_grid_t\" >> {q(times_file)}",
        f"printf '%s\\n' \"$runner_grid_status\" > {q(exit_file)}",
        'exit "$runner_grid_status"',
        "",
    ]
    return "\n".join(lines)


class Wrapper(NamedTuple):
    """A written job wrapper: where it is, where it writes the exit code, what it copied."""

    path: str  # the wrapper's absolute path
    exit_file: str  # the exit-code file's absolute path
    directives: tuple[str, ...]  # the runscript's directive lines, copied into the wrapper


def write_wrapper(
    workdir: str,
    runscript: str,
    prefixes: Sequence[str] = DIRECTIVE_PREFIXES,
    remote_dir: Optional[str] = None,
) -> Wrapper:
    """Write the wrapper for ``workdir/runscript`` and remove a stale exit-code file.

    Makes the runscript executable for its owner if it is not.

    Args:
        workdir: the job's folder.
        runscript: the runscript's file name in it.
        prefixes: what a directive line starts with.
        remote_dir: where the job's folder is on the host it runs on, when that is not this
            one: the wrapper's paths are there (the files written are still local).

    Returns:
        The wrapper's and the exit-code file's absolute paths, and the directive lines.

    Raises:
        OSError: the runscript cannot be read or the wrapper cannot be written.
    """
    workdir = os.path.abspath(workdir)
    script_path = os.path.join(workdir, runscript)
    with open(script_path, encoding="utf-8", errors="surrogateescape") as handle:
        script = handle.read()
    mode = os.stat(script_path).st_mode
    if not mode & 0o100:
        os.chmod(script_path, mode | 0o100)
    exit_file = exitcode_path(workdir, runscript)
    times_file = times_path(workdir, runscript)
    for stale in (exit_file, times_file, *leftovers(exit_file)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(stale)
    path = wrapper_path(workdir, runscript)
    directives = tuple(directive_lines(script, prefixes))
    if remote_dir is None:
        text = wrapper_text(script_path, workdir, exit_file, directives, times_file)
    else:
        there = functools.partial(posixpath.join, remote_dir)
        text = wrapper_text(
            there(runscript),
            remote_dir,
            there(os.path.basename(exit_file)),
            directives,
            there(os.path.basename(times_file)),
        )
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as handle:
        handle.write(text)
    os.chmod(path, 0o755)
    return Wrapper(path, exit_file, directives)


class Times(NamedTuple):
    """What a job's wrapper recorded of its run (`read_times`)."""

    started: Optional[float]  # when the runscript started, epoch seconds
    finished: Optional[float]  # when it ended, or None while it runs (or was killed)
    native_id: Optional[str]  # the scheduler's own id of the job (SLURM_JOB_ID), or None


NO_TIMES = Times(None, None, None)


def read_times(times_file: str) -> Times:
    """Return what the wrapper recorded in `times_file`; `NO_TIMES` when it has not started.

    Only complete lines count (a line is written with one ``write``; one without its line
    end is being written, or was cut by a kill).
    """
    try:
        with open(times_file, encoding="ascii", errors="replace") as handle:
            text = handle.read(400)
    except OSError:
        return NO_TIMES
    values: dict[str, str] = {}
    for line in text.split("\n")[:-1]:  # what follows the last line end is not complete
        for field in line.split():
            key, _, value = field.partition("=")
            values.setdefault(key, value)
    return Times(_number(values.get("start")), _number(values.get("end")), values.get("id") or None)


def _number(text: Optional[str]) -> Optional[float]:
    try:
        return None if not text else float(text)
    except ValueError:
        return None


def remove_leftovers(exit_file: str) -> None:
    """Remove what an earlier wrapper version may have left in the job's folder (`leftovers`)."""
    for path in leftovers(exit_file):
        with contextlib.suppress(OSError):
            os.unlink(path)


def read_exitcode(exit_file: str) -> Optional[int]:
    """Return the exit code the wrapper wrote, or None when the file is absent or unreadable.

    The code counts only with its line end (the wrapper writes ``N\\n`` with one
    ``write``): a file without one is still being written, or was cut by a kill.
    """
    try:
        with open(exit_file, encoding="ascii", errors="replace") as handle:
            text = handle.read(100)
    except OSError:
        return None
    if not text.endswith("\n"):
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None
