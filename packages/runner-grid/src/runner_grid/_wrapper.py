"""The job wrapper: a sh script submitted in place of the runscript that records its exit code."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
from typing import TYPE_CHECKING, NamedTuple, Optional

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "DIRECTIVE_PREFIXES",
    "Wrapper",
    "directive_lines",
    "exitcode_path",
    "read_exitcode",
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
    name = _UNSAFE.sub("_", os.path.basename(stem)) or "job"
    if not name[0].isascii() or not name[0].isalpha():
        name = "job_" + name
    return os.path.join(os.path.abspath(workdir), name + ".grid")


_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


def wrapper_text(script_path: str, workdir: str, exit_file: str, directives: Sequence[str]) -> str:
    """Return the wrapper's text.

    It starts with ``#!/bin/sh`` and the runscript's directive lines (so the scheduler still
    reads them), changes into the job's folder (PBS Pro has no working-directory flag), runs the
    runscript (through its own interpreter line), and writes the exit status to ``exit_file``
    atomically (a temporary file renamed into place), then exits with that status. A job killed
    before the runscript ends writes nothing: the runner then asks the scheduler.

    Args:
        script_path: absolute path of the runscript.
        workdir: absolute path of the job's folder.
        exit_file: absolute path of the exit-code file.
        directives: directive lines to copy.

    Returns:
        The script's text.
    """
    q = shlex.quote
    lines = [
        "#!/bin/sh",
        *directives,
        "# Written by runner_grid's GridRunner: runs the job's runscript and records its exit",
        "# status for the runner, which reads it when the job has left the queue.",
        f"cd {q(workdir)} || exit 1",
        f"{q(script_path)}",
        "runner_grid_status=$?",
        f"runner_grid_tmp={q(exit_file)}.$$",
        'printf \'%s\\n\' "$runner_grid_status" > "$runner_grid_tmp" && '
        f'mv -f "$runner_grid_tmp" {q(exit_file)}',
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
    workdir: str, runscript: str, prefixes: Sequence[str] = DIRECTIVE_PREFIXES
) -> Wrapper:
    """Write the wrapper for ``workdir/runscript`` and remove a stale exit-code file.

    Makes the runscript executable for its owner if it is not.

    Args:
        workdir: the job's folder.
        runscript: the runscript's file name in it.
        prefixes: what a directive line starts with.

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
    with contextlib.suppress(FileNotFoundError):
        os.unlink(exit_file)
    path = wrapper_path(workdir, runscript)
    directives = tuple(directive_lines(script, prefixes))
    text = wrapper_text(script_path, workdir, exit_file, directives)
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as handle:
        handle.write(text)
    os.chmod(path, 0o755)
    return Wrapper(path, exit_file, directives)


def read_exitcode(exit_file: str) -> Optional[int]:
    """Return the exit code the wrapper wrote, or None when the file is absent or unreadable."""
    try:
        with open(exit_file, encoding="ascii", errors="replace") as handle:
            text = handle.read().strip()
    except OSError:
        return None
    try:
        return int(text)
    except ValueError:
        return None
