"""JobManager: gives every job its own, uniquely named folder under one root folder."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Union

from runner_core._errors import JobError

if TYPE_CHECKING:
    from pathlib import Path

    from runner_core._jobs import SingleJob


class JobManager:
    """Hands out job folders: `name`, `name.002`, `name.003`, ... under `folder`.

    Registration is thread-safe and the names are unique also against folders that
    are already on disk (left over from an earlier run, or made by someone else).

    Args:
        folder: the root folder; made absolute at once, created on first use.

    Attributes:
        jobs: the registered jobs, in registration order.
    """

    def __init__(self, folder: Union[str, os.PathLike[str]] = "runner_workdir") -> None:
        """Create a manager for `folder` (nothing is created on disk yet)."""
        from pathlib import Path  # noqa: PLC0415 - pathlib costs ~10 ms; keep `import runner_core` light

        self._path = Path(os.path.abspath(os.fspath(folder)))
        self.jobs: list[SingleJob] = []
        self._lock = threading.Lock()
        self._next: dict[str, int] = {}
        self._created = False

    def __repr__(self) -> str:
        return f"JobManager({str(self._path)!r})"

    @property
    def path(self) -> Path:
        """The absolute root folder (created on first use)."""
        return self._path

    def register(self, job: SingleJob) -> Path:
        """Give `job` its own new folder and record the job.

        Sets `job.path` and appends the job to `jobs`.

        Args:
            job: a job that has no folder yet.

        Returns:
            The job's folder.

        Raises:
            JobError: the job already has a folder.
            OSError: the folder cannot be created (permissions, full disk...).
        """
        name = job.name
        root = self._path
        with self._lock:
            if job.path is not None:
                raise JobError(
                    f"job {name!r} already has the folder {str(job.path)!r}; "
                    "a job is registered once"
                )
            if not self._created:
                os.makedirs(root, exist_ok=True)
                self._created = True
            number = self._next.get(name, 1)
            while True:
                folder = name if number == 1 else f"{name}.{number:03d}"
                path = root / folder
                try:
                    os.mkdir(path)
                except FileExistsError:
                    number += 1
                    continue
                break
            self._next[name] = number + 1
            job.path = path
            self.jobs.append(job)
        return path
