"""JobManager: unique folders, also against folders on disk and from many threads at once."""

from __future__ import annotations

import tempfile
import threading
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner_core import JobError, JobManager, SingleJob

if TYPE_CHECKING:
    from pathlib import Path


def test_path_is_absolute_and_created_on_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    manager = JobManager("relative/work")
    assert manager.path == tmp_path / "relative" / "work"
    assert not manager.path.exists()
    assert manager.jobs == []
    assert "relative" in repr(manager)
    manager.register(SingleJob("a"))
    assert manager.path.is_dir()


def test_names_are_numbered_from_002(tmp_path: Path) -> None:
    manager = JobManager(tmp_path)
    jobs = [SingleJob("opt") for _ in range(3)] + [SingleJob("other")]
    paths = [manager.register(j) for j in jobs]
    assert [p.name for p in paths] == ["opt", "opt.002", "opt.003", "other"]
    assert [j.path for j in jobs] == paths
    assert all(p.is_dir() for p in paths)
    assert manager.jobs == jobs


def test_folders_already_on_disk_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "opt").mkdir()
    (tmp_path / "opt.003").mkdir()
    manager = JobManager(tmp_path)
    names = [manager.register(SingleJob("opt")).name for _ in range(3)]
    assert names == ["opt.002", "opt.004", "opt.005"]


def test_registering_a_job_twice_is_refused(tmp_path: Path) -> None:
    manager = JobManager(tmp_path)
    job = SingleJob("a")
    manager.register(job)
    with pytest.raises(JobError, match="already has the folder"):
        manager.register(job)
    with pytest.raises(JobError):
        JobManager(tmp_path / "other").register(job)


def test_many_threads_registering_at_once_get_unique_folders(tmp_path: Path) -> None:
    managers = [JobManager(tmp_path), JobManager(tmp_path)]  # two managers, one folder
    jobs = [SingleJob("same") for _ in range(40)]
    barrier = threading.Barrier(len(jobs))

    def register(i: int) -> None:
        barrier.wait()
        managers[i % 2].register(jobs[i])

    threads = [threading.Thread(target=register, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    names = sorted(j.path.name for j in jobs if j.path is not None)
    assert names == ["same"] + [f"same.{n:03d}" for n in range(2, 41)]


@given(st.lists(st.sampled_from(["a", "b", "a.002", "c d"]), max_size=12))
def test_registered_folders_are_unique_and_keep_the_name(names: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        manager = JobManager(tmp)
        paths = [manager.register(SingleJob(n)) for n in names]
        assert len(set(paths)) == len(paths)
        for name, path in zip(names, paths):
            assert path.name == name or path.name.startswith(name + ".")
