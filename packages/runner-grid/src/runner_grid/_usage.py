"""What recorded grid jobs used against their request, from the scheduler's accounting.

`runner report` asks `GridRunner.usage_recorded`, which hands the records, grouped by
scheme, to `usage_of_records`. SLURM answers through ``sacct`` (slurmdbd), a batch of
ids per command; Grid Engine through ``qacct`` (its accounting file); PBS is not
supported yet. Every command runs through the scheduler's `Scheduler.run`. A scheduler
that keeps no accounting, or a command that fails, leaves the jobs without figures and
says why, in the UsageReport's `absent_because`.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, Callable, Optional

from runner_core.report import Usage, UsageReport
from runner_grid._commands import SchedulerCommandError
from runner_grid.schemes.sge import _bytes as sge_bytes
from runner_grid.schemes.sge import _number, _records
from runner_grid.schemes.sge import _seconds as sge_seconds

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from runner_core.ext import JobRecord
    from runner_grid.schemes._base import Scheduler

__all__ = ["parse_qacct", "parse_sacct", "sacct_argvs", "usage_of_records"]

logger = logging.getLogger(__name__)

#: Job ids per ``sacct`` command (its ``-j`` list is one argument).
SACCT_BATCH = 500
#: Above this many jobs, SLURM's accounting is read in one ``sacct`` of the run's time
#: window (the user's jobs from the first submission to the last end), not by ids.
SACCT_BY_IDS = 2000
#: Above this many jobs, Grid Engine's accounting is read in one ``qacct -j`` listing
#: (every job of the user) rather than one ``qacct -j ID`` per job.
QACCT_ONE_BY_ONE = 50
SACCT_FORMAT = "JobID,State,MaxRSS,TotalCPU,Elapsed,ReqMem,AllocCPUS,Timelimit"


def recorded_ids(records: Iterable[JobRecord]) -> list[str]:
    """Every scheduler id of the records and of their earlier tries, once each, in order."""
    ids: dict[str, None] = {}
    for record in records:
        for attempt in getattr(record, "attempts", None) or []:
            if attempt.get("jobid"):
                ids[str(attempt["jobid"])] = None
        if record.jobid:
            ids[record.jobid] = None
    return list(ids)


def usage_of_records(
    groups: Mapping[str, Sequence[JobRecord]],
    scheduler_of: Callable[[str], Optional[Scheduler]],
) -> UsageReport:
    """What the jobs of each scheme used, by their scheduler's accounting.

    Args:
        groups: scheme name -> the records run on it.
        scheduler_of: the scheduler of a scheme name, or None when it cannot be had.

    Returns:
        job id -> Usage for every id the accounting knows, and why the others have none.
    """
    usage: dict[str, Usage] = {}
    absent: list[str] = []
    for name, records in groups.items():
        ids = recorded_ids(records)
        if not ids:
            absent.append(f"no job of scheme {name!r} reached the scheduler")
            continue
        scheduler = scheduler_of(name)
        if scheduler is None:
            absent.append(f"the scheduler of scheme {name!r} cannot be asked (see the log)")
            continue
        family = scheduler.name
        if family == "slurm":
            found, why = _slurm_usage(scheduler, ids, sacct_argvs(ids, window=_window(records)))
        elif family == "sge":
            found, why = _sge_usage(scheduler, ids)
        elif family == "pbs":
            found, why = {}, "reading PBS accounting (tracejob, qstat -x) is not supported yet"
        else:
            found, why = {}, f"scheme {name!r} has no known accounting command"
        usage.update(found)
        if why:
            absent.append(why)
    return UsageReport(usage, "; ".join(absent) or None)


# --- SLURM: sacct ---------------------------------------------------------------------------


def _window(records: Iterable[JobRecord]) -> Optional[tuple[float, float]]:
    """The run's time span, from its first submission to its last end; None if unknown."""
    first: Optional[float] = None
    last: Optional[float] = None
    for record in records:
        own = {"submitted_at": record.submitted_at, "finished_at": record.finished_at}
        tries = [*(getattr(record, "attempts", None) or []), own]
        for data in tries:
            submitted, finished = data.get("submitted_at"), data.get("finished_at")
            if isinstance(submitted, (int, float)):
                first = float(submitted) if first is None else min(first, submitted)
            if isinstance(finished, (int, float)):
                last = float(finished) if last is None else max(last, finished)
    return None if first is None or last is None else (first, last)


def sacct_argvs(
    ids: Sequence[str],
    batch: int = SACCT_BATCH,
    window: Optional[tuple[float, float]] = None,
) -> list[list[str]]:
    """The ``sacct`` commands that give the accounting of `ids`.

    Args:
        ids: the job ids.
        batch: ids per command.
        window: the run's first submission and last end (epoch seconds); with more
            than `SACCT_BY_IDS` ids, one command lists the user's jobs of that span
            (a minute wider on each side) instead of asking by ids.

    Returns:
        The argvs.
    """
    if window is not None and len(ids) > SACCT_BY_IDS:
        start, end = (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(at))
            for at in (window[0] - 60, window[1] + 60)
        )
        return [
            [
                "sacct",
                f"--starttime={start}",
                f"--endtime={end}",
                "--noheader",
                "--parsable2",
                f"--format={SACCT_FORMAT}",
            ]
        ]
    return [
        [
            "sacct",
            "-j",
            ",".join(ids[i : i + batch]),
            "--noheader",
            "--parsable2",
            f"--format={SACCT_FORMAT}",
        ]
        for i in range(0, len(ids), batch)
    ]


_SLURM_BYTES = re.compile(r"^(\d+(?:\.\d+)?)([KMGTP]?)([nc]?)$")
#: What follows the state word of a sacct State field (``CANCELLED by 0`` is ``CANCELLED``).
_STATE_DETAIL = re.compile(r"\s.*", re.S)
_SLURM_TIME = re.compile(r"^(?:(\d+)-)?(\d+(?::\d+){0,2}(?:\.\d+)?)$")


def slurm_bytes(text: str) -> tuple[Optional[float], str]:
    """sacct's ``4640K``, ``500M``, ``4000Mc`` in bytes (powers of 1024), with its per-what
    suffix ("c": per CPU, "n": per node, "": the job's); (None, "") when empty or not a size."""
    match = _SLURM_BYTES.match(text.strip())
    if match is None:
        return None, ""
    number, unit, per = match.groups()
    return float(number) * 1024 ** " KMGTP".index(unit or " "), per


def slurm_seconds(text: str) -> Optional[float]:
    """sacct's ``[D-][HH:]MM:SS[.mmm]`` (or ``SS``) in seconds; None for ``UNLIMITED`` and such."""
    match = _SLURM_TIME.match(text.strip())
    if match is None:
        return None
    days, clock = match.groups()
    total = 0.0
    for part in clock.split(":"):
        total = total * 60 + float(part)
    return total + 86400 * int(days or 0)


def parse_sacct(output: str) -> dict[str, Usage]:
    """The usage of each job in a ``sacct --parsable2 --format=`` `SACCT_FORMAT` answer.

    A job's line gives its state, request, elapsed time and total CPU time; its steps'
    lines (``123.batch``, ``123.0``) give the peak memory, the largest of which counts.

    Args:
        output: sacct's standard output, without a header.

    Returns:
        job id (``123``, ``123_4`` for an array task) -> Usage.
    """
    jobs: dict[str, dict[str, str]] = {}
    peaks: dict[str, float] = {}
    for line in output.splitlines():
        fields = line.strip().split("|")
        if len(fields) < 8:
            continue
        jobid, state, maxrss, cpu, elapsed, reqmem, cores, limit = fields[:8]
        main, _, step = jobid.partition(".")
        rss, _ = slurm_bytes(maxrss)
        if rss is not None:
            peaks[main] = max(rss, peaks.get(main, 0.0))
        if not step:
            jobs[main] = {
                "state": _STATE_DETAIL.sub("", state),
                "cpu": cpu,
                "elapsed": elapsed,
                "reqmem": reqmem,
                "cores": cores,
                "limit": limit,
            }
    usage: dict[str, Usage] = {}
    for jobid, f in jobs.items():
        count = int(f["cores"]) if f["cores"].isdigit() else None
        asked, per = slurm_bytes(f["reqmem"])
        if asked is not None and per == "c" and count:
            asked *= count  # a request per CPU, in SLURM before 21.08
        usage[jobid] = Usage(
            memory=peaks.get(jobid),
            cpu=slurm_seconds(f["cpu"]),
            elapsed=slurm_seconds(f["elapsed"]),
            memory_requested=asked,
            cores=count,
            walltime_requested=slurm_seconds(f["limit"]),
            state=f["state"] or None,
        )
    return usage


def _slurm_usage(
    scheduler: Scheduler, ids: Sequence[str], argvs: Sequence[Sequence[str]]
) -> tuple[dict[str, Usage], str]:
    usage: dict[str, Usage] = {}
    for argv in argvs:
        try:
            proc = scheduler.run(argv)
        except SchedulerCommandError as exc:
            return usage, f"sacct could not be asked: {exc}"
        if proc.returncode != 0:
            said = (proc.stderr or proc.stdout).strip().splitlines()
            return usage, (
                "SLURM keeps no job accounting here (sacct exited "
                f"{proc.returncode}: {said[0] if said else 'no message'}); slurmdbd and "
                "AccountingStorageType in slurm.conf give it"
            )
        usage.update(parse_sacct(proc.stdout))
    found = {jobid: usage[jobid] for jobid in ids if jobid in usage}
    missing = len(ids) - len(found)
    why = f"sacct has no record of {missing} of {len(ids)} jobs" if missing else ""
    return found, why


# --- Grid Engine: qacct ---------------------------------------------------------------------

_SLOT_LIMIT = re.compile(r"\b([hs]_(?:rt|vmem))=([^,\s]+)")


def parse_qacct(output: str) -> dict[str, Usage]:
    """The usage of each job (and task) in a ``qacct -j`` answer.

    The peak memory is ``maxvmem`` (what ``h_vmem`` limits; None where it was never
    sampled), the CPU time ``cpu``, the elapsed ``ru_wallclock``; the request is in
    ``category`` (``h_vmem`` is per slot: times ``slots``) and ``h_rt``.

    Returns:
        job id (``N``, or ``N.T`` for task T of an array job) -> Usage.
    """
    usage: dict[str, Usage] = {}
    for chunk in re.split(r"^={10,}\s*$", output, flags=re.MULTILINE):
        for task, fields in _records(chunk).items():
            number = fields.get("jobnumber", "").strip()
            if not number:
                continue
            jobid = number if task in ("undefined", "") else f"{number}.{task}"
            slots_text = fields.get("slots", "").strip()
            slots = int(slots_text) if slots_text.isdigit() else None
            limits = dict(_SLOT_LIMIT.findall(fields.get("category", "")))
            vmem = limits.get("h_vmem") or limits.get("s_vmem")
            per_slot = sge_bytes(vmem, binary_units=False) if vmem else None
            rt = limits.get("h_rt") or limits.get("s_rt")
            # 0 when no sample was taken (a job of a second); ru_maxrss is no help: its
            # unit differs between Grid Engine versions
            peak = sge_bytes(fields.get("maxvmem", ""), binary_units=True) or None
            usage[jobid] = Usage(
                memory=peak,
                cpu=_number(fields.get("cpu")),
                elapsed=_number(fields.get("ru_wallclock")),
                memory_requested=None if per_slot is None else per_slot * (slots or 1),
                cores=slots,
                walltime_requested=sge_seconds(rt) if rt else None,
                state=f"exit {fields.get('exit_status', '?').strip()}",
            )
    return usage


def _sge_usage(scheduler: Scheduler, ids: Sequence[str]) -> tuple[dict[str, Usage], str]:
    if len(ids) <= QACCT_ONE_BY_ONE:
        argvs = [_qacct_argv(jobid) for jobid in ids]
    else:
        argvs = [["qacct", "-j"]]  # every job in the accounting file, once
    usage: dict[str, Usage] = {}
    failed = ""
    for argv in argvs:
        try:
            proc = scheduler.run(argv)
        except SchedulerCommandError as exc:
            return usage, f"qacct could not be asked: {exc}"
        if proc.returncode == 0:
            usage.update(parse_qacct(proc.stdout))
        else:
            said = (proc.stderr or proc.stdout).strip().splitlines()
            failed = said[0] if said else f"exit {proc.returncode}"
    found = {jobid: usage[jobid] for jobid in ids if jobid in usage}
    missing = len(ids) - len(found)
    if not missing:
        return found, ""
    if not found:
        return found, (
            "Grid Engine's accounting has no record of these jobs"
            + (f" (qacct: {failed})" if failed else "")
            + "; it is written when a job ends, if the cluster keeps an accounting file"
        )
    return found, f"qacct has no record of {missing} of {len(ids)} jobs"


def _qacct_argv(jobid: str) -> list[str]:
    number, _, task = jobid.partition(".")
    return ["qacct", "-j", number, "-t", task] if task else ["qacct", "-j", number]
