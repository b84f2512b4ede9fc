"""GridRunner's side of the run journal: what it records of itself, and recorded jobs found again.

`runner status`, `runner cancel`, `runner resume` and `runner report` work from a run's
journal with no live driver: they build the runner again from what `journal_info`
recorded (`from_journal_info`), then ask its scheduler, on this machine or over ssh on the
run's host, about the recorded jobs. Jobs are grouped by the runner that ran them, so a run
with several runners (schemes, hosts) asks each its own scheduler.

Lock order: `_REBUILT_LOCK` is a leaf (nothing runs while it is held).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional

from runner_core import JobRunner
from runner_grid._cancel import cancel_records
from runner_grid._ending import observe_records
from runner_grid._remote import SshError
from runner_grid._usage import usage_of_records
from runner_grid._wrapper import exitcode_path

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from runner_core.ext import JobRecord, RecordedState
    from runner_core.report import UsageReport
    from runner_grid._site import RemoteSite
    from runner_grid.schemes._base import Scheduler
    from runner_settings import Settings

__all__ = ["GridRecords", "recorded_arguments"]

logger = logging.getLogger(__name__)

#: Submit commands run at once by default (the runner's submit workers).
SUBMIT_WORKERS = 4

#: What a recorded runner's record says of where its jobs ran: grouped by these.
_WHERE = ("scheme", "host", "ssh_config", "remote_root")

#: The runners `GridRecords._rebuilt` made, by class and where their jobs ran.
_REBUILT: dict[tuple[Any, ...], GridRecords] = {}
_REBUILT_LOCK = threading.Lock()


def recorded_arguments(config: Settings, info: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments of a GridRunner as `GridRecords.journal_info` recorded them.

    Raises:
        ValueError: the run used a scheme of its own, which the journal cannot rebuild.
    """
    name = str(info.get("scheme", "auto"))
    if name not in config:
        raise ValueError(
            f"the run used the grid scheme {name!r}, which is not in GridRunner.config; "
            "resume it by running its script again with JobManager(folder, resume=True)"
        )
    arguments: dict[str, Any] = {
        "grid": name,
        "sleepstep": float(info.get("sleepstep", 5)),
        "parallel": bool(info.get("parallel", True)),
        "maxjobs": int(info.get("maxjobs", 0)),
        "submit_workers": int(info.get("submit_workers", SUBMIT_WORKERS)),
    }
    if info.get("host"):
        arguments["host"] = str(info["host"])
        arguments["ssh_config"] = info.get("ssh_config")
        arguments["remote_root"] = info.get("remote_root")
        fetch = info.get("fetch", "all")
        arguments["fetch"] = fetch if isinstance(fetch, str) or fetch is None else list(fetch)
    return arguments


def _by_runner(records: Sequence[JobRecord]) -> list[tuple[dict[str, Any], list[JobRecord]]]:
    """The records grouped by where their jobs ran (scheme, host), with that runner's record."""
    groups: dict[tuple[str, ...], tuple[dict[str, Any], list[JobRecord]]] = {}
    for record in records:
        info = dict(record.runner)
        info.setdefault("scheme", "auto")
        key = tuple(str(info.get(k)) for k in _WHERE)
        groups.setdefault(key, (info, []))[1].append(record)
    return list(groups.values())


class GridRecords(JobRunner):
    """The journal hooks of `runner_grid.GridRunner` (see `runner_core.JobRunner`'s)."""

    config: ClassVar[Settings]
    scheme_name: str
    maxjobs: int
    sleepstep: float
    submit_workers: int
    _site: Optional[RemoteSite]

    def journal_info(self) -> dict[str, Any]:
        """What the run journal records of this runner (``runner resume`` builds it again).

        A scheme of your own is "custom": such a run is resumed by running its script again.
        A remote runner records its host, ssh configuration file and remote root, so the
        commands of the ``runner`` CLI reach the same host from this machine."""
        info: dict[str, Any] = {
            "kind": "grid",
            "scheme": self.scheme_name,
            "parallel": self.parallel,
            "maxjobs": self.maxjobs,
            "sleepstep": self.sleepstep,
            "submit_workers": self.submit_workers,
        }
        site = self._site
        if site is not None:
            info["host"] = site.host.host
            info["ssh_config"] = site.host.options.config_file
            info["remote_root"] = site.root
            info["fetch"] = site.fetch if isinstance(site.fetch, str) else list(site.fetch)
        return info

    @classmethod
    def from_journal_info(cls, info: Mapping[str, Any]) -> GridRecords:
        """The runner again from what `journal_info` recorded (``runner resume DIR``).

        Raises:
            ValueError: the run used a scheme of its own (not in `config`), which the journal
                cannot rebuild: resume it by running its script again with ``resume=True``.
            runner_grid.SshError: a remote run's host cannot be reached.
        """
        return cls(**recorded_arguments(cls.config, info))

    def scheduler(self) -> Scheduler:
        """The scheduler this runner uses (see `runner_grid.GridRunner.scheduler`)."""
        raise NotImplementedError  # pragma: no cover - GridRunner's

    @classmethod
    def _rebuilt(cls, info: Mapping[str, Any]) -> GridRecords:
        """The runner of recorded jobs: a remote one is built once per process for each host
        and root, so it logs in once for all of `runner cancel`'s steps (one code with 2FA);
        a local one anew each time (it reads `config` as it is now)."""
        if not info.get("host"):
            return cls.from_journal_info({**info, "sleepstep": 1})
        key = (cls, *(str(info.get(k)) for k in _WHERE))
        with _REBUILT_LOCK:
            runner = _REBUILT.get(key)
        if runner is None:
            runner = cls.from_journal_info({**info, "sleepstep": 1})
            with _REBUILT_LOCK:
                runner = _REBUILT.setdefault(key, runner)
        return runner

    @classmethod
    def _each_recorded(
        cls,
        records: Sequence[JobRecord],
        ask: bool,
        use: Callable[[Optional[Scheduler], list[JobRecord]], object],
    ) -> None:
        """Call `use(scheduler, group)` per group of records of one runner; the scheduler only
        when `ask` (None when it cannot be had: logged). A remote group's own files (exit
        code, times, output) are copied back first, so what is read is what the job wrote."""
        for info, group in _by_runner(records):
            scheduler: Optional[Scheduler] = None
            if ask or info.get("host"):
                try:
                    runner = cls._rebuilt(info)
                    scheduler = runner.scheduler()
                    site = runner._site
                    if site is not None:
                        site.fetch_ended(
                            [exitcode_path(r.path, r.name + ".run") for r in group if r.path],
                            own_only=True,
                        )
                except (ValueError, TypeError, OSError, SshError) as exc:
                    logger.error("cannot ask the scheduler of %s: %s", _where(info), exc)
                    scheduler = None
            use(scheduler if ask else None, group)

    @classmethod
    def observe_recorded(
        cls, records: Sequence[JobRecord], ask_scheduler: bool = False
    ) -> dict[int, RecordedState]:
        """Where recorded jobs are now (`JobRunner.observe_recorded`), by `observe_records`."""
        seen: dict[int, RecordedState] = {}
        cls._each_recorded(
            records,
            ask_scheduler,
            lambda scheduler, group: seen.update(observe_records(group, scheduler)),
        )
        return seen

    @classmethod
    def cancel_recorded(cls, records: Sequence[JobRecord]) -> list[JobRecord]:
        """Cancel a run's grid jobs from their records, no live runner: `cancel_records`."""
        stopped: list[JobRecord] = []

        def cancel(scheduler: Optional[Scheduler], group: list[JobRecord]) -> None:
            if scheduler is None:
                logger.error("cannot cancel %d jobs: no scheduler to ask", len(group))
            else:
                stopped.extend(cancel_records(scheduler, group))

        cls._each_recorded(records, True, cancel)
        return stopped

    @classmethod
    def usage_recorded(cls, records: Sequence[JobRecord]) -> UsageReport:
        """What recorded jobs used, by the scheduler's accounting (`runner report`): see
        `runner_grid._usage.usage_of_records` (sacct, qacct; PBS not yet)."""
        groups: dict[str, list[JobRecord]] = {}
        schedulers: dict[str, Optional[Scheduler]] = {}
        for info, group in _by_runner(records):
            key = _where(info, named=False)
            groups[key] = group
            try:
                schedulers[key] = cls._rebuilt(info).scheduler()
            except (ValueError, TypeError, OSError, SshError) as exc:
                logger.error("cannot ask the scheduler of %s: %s", _where(info), exc)
                schedulers[key] = None
        return usage_of_records(groups, schedulers.get)


def _where(info: Mapping[str, Any], named: bool = True) -> str:
    """``scheme 'slurm' on 'cluster'`` (or without the word and quotes: ``slurm on cluster``)."""
    host, scheme = info.get("host"), info.get("scheme")
    if not named:
        return f"{scheme}" + (f" on {host}" if host else "")
    return f"scheme {scheme!r}" + (f" on {host!r}" if host else "")
