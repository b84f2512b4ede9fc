"""Job arrays: grouping collected jobs into arrays, and the script that runs one job per task.

Inside ``with runner.batch():`` a GridRunner collects its jobs instead of submitting each
one. When the block ends they are grouped (`partition`): jobs whose submissions would be the
same but for their folder and files share an array, split at the largest array the scheduler
takes (`Scheduler.max_array_size`). An array is submitted as one script, the dispatcher
(`dispatcher_text`), that runs the job wrapper of the job whose number is the task's index.
Each task so keeps its own folder, runscript, output, error and exit code.

The scheduler writes a task's output and error to the paths it is given, with the task's
index put in for the scheme's placeholder (SLURM's ``%a``, Grid Engine's ``$TASK_ID``, PBS's
``^array_index^``). The array's folder holds, per task, ``<index>.out`` and ``<index>.err``
as symbolic links to the job's own files, so whatever the scheduler writes there (its own
messages too, such as a time-limit kill) lands in the job's folder. The files are created
before the links: PBS delivers output with ``cp``, which does not write through a link whose
target does not exist yet. A scheme without a
placeholder gets the redirection in the dispatcher instead.
"""

from __future__ import annotations

import os
import shlex
from typing import TYPE_CHECKING, Callable, NamedTuple, Optional, TypeVar

if TYPE_CHECKING:
    from collections.abc import Hashable, Iterable, Sequence

__all__ = [
    "ARRAYS_FOLDER",
    "ArrayFiles",
    "dispatcher_text",
    "index_expression",
    "partition",
    "write_array_files",
]

#: The folder, under the jobs' own root folder, that holds one folder per submitted array.
ARRAYS_FOLDER = ".arrays"

T = TypeVar("T")


def partition(items: Iterable[T], key: Callable[[T], Hashable], max_size: int) -> list[list[T]]:
    """Split `items` into groups of equal `key`, each at most `max_size` long.

    Groups come in the order their first item came, and items keep their order inside a
    group; a group longer than `max_size` is cut into consecutive pieces, all full but the
    last.

    Args:
        items: what to group (the jobs of a batch).
        key: what must be equal within a group (a job's submit flags and directives).
        max_size: the most items of one group (the largest array), >= 1.

    Returns:
        The groups; every item is in exactly one.

    Raises:
        ValueError: `max_size` is below 1.
    """
    if max_size < 1:
        raise ValueError(f"max_size must be >= 1, got {max_size!r}")
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return [
        group[start : start + max_size]
        for group in groups.values()
        for start in range(0, len(group), max_size)
    ]


def index_expression(variables: Sequence[str]) -> str:
    """Return the sh expression of a task's index: the first of `variables` that is set.

    ``["PBS_ARRAY_INDEX", "PBS_ARRAYID"]`` gives ``${PBS_ARRAY_INDEX:-${PBS_ARRAYID:-}}``.

    Raises:
        ValueError: no variable, or one that is not a valid sh variable name.
    """
    if not variables:
        raise ValueError("the scheme names no variable for an array task's index (array.index)")
    for name in variables:
        if (
            not name
            or not (name[0].isalpha() or name[0] == "_")
            or not all(c.isalnum() or c == "_" for c in name)
        ):
            raise ValueError(f"array.index holds {name!r}, which is no environment variable name")
    expression = ""
    for name in reversed(variables):
        expression = f"${{{name}:-{expression}}}"
    return expression


def dispatcher_text(
    index: str, folder: str, directives: Sequence[str] = (), redirect: Optional[bool] = None
) -> str:
    """Return the array's script: task ``i`` runs ``<folder>/<i>.grid``, its job's wrapper.

    The script does not grow with the array: ``<i>.grid`` is a link to the job wrapper of
    task ``i``, so a task reads its own job's path and nothing else. The wrapper is read
    into the script's own shell (``.``), which saves each task starting one more shell.

    Args:
        index: the sh expression of the task's index (`index_expression`).
        folder: the array's folder (absolute).
        directives: scheduler directive lines all the jobs share (``#SBATCH ...``).
        redirect: None when the scheduler writes each task's output to its own files (its
            paths hold the index); else the script redirects the error to ``<i>.err``, and
            the output to ``<i>.out`` when True.

    Returns:
        The script's text (sh).
    """
    redirection = ""
    if redirect is not None:
        redirection = (' >>"$runner_grid_dir/$runner_grid_task.out"' if redirect else "") + (
            ' 2>>"$runner_grid_dir/$runner_grid_task.err"'
        )
    return "\n".join(
        [
            "#!/bin/sh",
            *directives,
            "# Written by runner_grid's GridRunner: each task of this job array runs the job",
            "# wrapper of one job, the one its index names, in that job's own folder.",
            f'runner_grid_task="{index}"',
            f"runner_grid_dir={shlex.quote(folder)}",
            'case "$runner_grid_task" in',
            "''|*[!0-9]*)",
            "    echo \"runner_grid: no array task index (got '$runner_grid_task')\" >&2",
            "    exit 1 ;;",
            "esac",
            'if [ ! -e "$runner_grid_dir/$runner_grid_task.grid" ]; then',
            '    echo "runner_grid: this array has no task $runner_grid_task" >&2',
            "    exit 1",
            "fi",
            f'. "$runner_grid_dir/$runner_grid_task.grid"{redirection}',
            "",
        ]
    )


class ArrayFiles(NamedTuple):
    """The files of one array on disk: its script and the output paths to submit it with."""

    folder: str  # the array's own folder
    script: str  # the dispatcher's path
    out: Optional[str]  # the output path with the scheme's index placeholder, or None
    err: str  # the error path, likewise


def _fresh_file(path: str) -> None:
    """Create `path` empty, or empty it, so that a link to it never dangles.

    PBS's mom delivers a task's output with ``cp -rp``, which refuses to write through a link
    whose target does not exist: the output then never reaches the job's folder (and the
    task hangs in state E for about 30 s). Emptying an existing file is what a plain
    submission does too (the scheduler writes the file anew), so a job submitted again, on a
    resume or a retry, starts with fresh output rather than the last try's under it.
    """
    with open(path, "wb"):
        pass


def write_array_files(
    folder: str,
    name: str,
    *,
    index: str,
    tasks: Sequence[tuple[str, Optional[str], str]],
    directives: Sequence[str],
    output_index: Optional[str],
    where: Optional[Callable[[str], str]] = None,
) -> ArrayFiles:
    """Write an array's folder: the dispatcher, and per task links to its job's own files.

    Task ``i`` gets ``<i>.grid`` (its job wrapper), ``<i>.out`` and ``<i>.err`` (its job's
    output and error files), all symbolic links into the job's folder. The output and error
    files are created empty first (emptied when they exist), so no link dangles.

    Args:
        folder: the array's folder (created; must not be shared with another array).
        name: the dispatcher's file name (schedulers name the array after it).
        index: the sh expression of a task's index (`index_expression`).
        tasks: per task, in order: its job wrapper, its output file (None when the runscript
            redirects it itself; then for every task) and its error file, absolute paths.
        directives: directive lines the jobs share, copied into the dispatcher.
        output_index: the scheme's placeholder for the index in output paths, or None.
        where: for an array that runs on another host: a local path's path there; the links
            and the script then name those (they dangle here), and so do the paths returned.

    Returns:
        The paths to submit the array with.

    Raises:
        OSError: the folder, a link or the script cannot be written.
    """
    os.makedirs(folder, exist_ok=True)
    there: Callable[[str], str] = (lambda path: path) if where is None else where
    with_out = all(out is not None for _w, out, _e in tasks)
    for number, (wrapper, out, err) in enumerate(tasks, start=1):
        os.symlink(there(wrapper), os.path.join(folder, f"{number}.grid"))
        if out is not None and with_out:
            _fresh_file(out)
            os.symlink(there(out), os.path.join(folder, f"{number}.out"))
        _fresh_file(err)
        os.symlink(there(err), os.path.join(folder, f"{number}.err"))
    if output_index is not None:
        out_path = os.path.join(folder, f"{output_index}.out") if with_out else None
        err_path = os.path.join(folder, f"{output_index}.err")
        redirect: Optional[bool] = None
    else:  # every task's messages go to one file; each task redirects its job's own
        out_path = os.path.join(folder, "array.out") if with_out else None
        err_path = os.path.join(folder, "array.err")
        redirect = with_out
    script = os.path.join(folder, name)
    with open(script, "w", encoding="utf-8", errors="surrogateescape") as handle:
        handle.write(dispatcher_text(index, there(folder), directives, redirect))
    os.chmod(script, 0o755)
    if where is None:
        return ArrayFiles(folder, script, out_path, err_path)
    return ArrayFiles(
        there(folder),
        there(script),
        None if out_path is None else there(out_path),
        there(err_path),
    )
