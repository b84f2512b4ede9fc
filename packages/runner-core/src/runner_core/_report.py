"""The numbers of `runner report`: every try of every job, counts over time, waits, failures, use.

`build_report(state, usage)` reads a journal's state (and what the scheduler's accounting
says, if anything) into a `Report`; `Report.as_dict()` is what `runner report --json`
prints, and `runner_core._report_html.render` draws the same report as one HTML page.
Nothing here is dropped for size: the timeline's tries, the failures and the accounting
are all in the dict; the page aggregates (bands of tries, bins of time) past
`DETAIL_LIMIT` tries.

Cost: one pass over the tries, one sort, and a few passes over the tries' numbers; a
100,000-job journal takes well under a second after `read_journal`.
"""

from __future__ import annotations

import bisect
import math
import time
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from runner_core._status import REASONS, JobStatus

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from runner_core._journal import JobRecord, JournalState
    from runner_core._usage import Usage, UsageReport

__all__ = ["DETAIL_LIMIT", "Report", "Try", "build_report", "category"]

#: Tries up to which the page draws one timeline row each; past it, bands of tries.
DETAIL_LIMIT = 2000
#: Bins of the counts over time.
TIME_BINS = 300
#: Histogram bins per power of ten of the wait and run times.
BINS_PER_DECADE = 4
#: A job that used less than this fraction of what it asked for is named.
UNDER = 0.5
#: Lines of a job's error shown with a failure.
ERROR_LINES = 3

#: The colour classes of the timeline, in the order of the legend: how a try ended, or
#: where it is now.
CATEGORIES = (
    "successful",
    "crashed",
    "failed",
    "timeout",
    "out_of_memory",
    "node_fail",
    "preempted",
    "submit_failed",
    "cancelled",
    "running",
    "pending",
    "queued",
)
#: The categories of tries that did not end well: what "Failures" groups.
FAILED_CATEGORIES = frozenset(CATEGORIES[1:9])


def category(status: Optional[JobStatus], reason: Optional[str]) -> str:
    """The timeline's colour class of a try: its end reason, else its state.

    Args:
        status: the try's state; None for an earlier try that was retried (it ended
            without success).
        reason: its end reason (a word of `REASONS`), or None.

    Returns:
        One of `CATEGORIES`.
    """
    if status is JobStatus.SUCCESSFUL:
        return "successful"
    if reason in REASONS:
        return str(reason)
    if status is None or status is JobStatus.CRASHED:
        return "crashed"
    if status is JobStatus.FAILED:
        return "failed"
    if status is JobStatus.CANCELLED:
        return "cancelled"
    if status is JobStatus.RUNNING:
        return "running"
    if status is JobStatus.SUBMITTED:
        return "pending"
    return "queued"


class Try(NamedTuple):
    """One try of one job, as the timeline shows it (times are epoch seconds or None).

    `wait` is the seconds from its submission (or, never submitted, its registration)
    to its start, `run` from its start to its end, `first_seen` the earliest of its
    times; each None where a time it needs is unknown.
    """

    name: str
    number: int
    attempt: int
    attempts: int
    jobid: Optional[str]
    status: str
    reason: Optional[str]
    exit_code: Optional[int]
    error: Optional[str]
    category: str
    registered_at: Optional[float]
    submitted_at: Optional[float]
    started_at: Optional[float]
    finished_at: Optional[float]
    wait: Optional[float]
    run: Optional[float]
    first_seen: Optional[float]

    def as_dict(self) -> dict[str, Any]:
        """The try as JSON-ready data."""
        return self._asdict()


def make_try(  # noqa: PLR0917 - the fields of a Try, in its order
    name: str,
    number: int,
    attempt: int,
    attempts: int,
    jobid: Optional[str],
    status: str,
    reason: Optional[str],
    exit_code: Optional[int],
    error: Optional[str],
    category: str,
    registered: Optional[float],
    submitted: Optional[float],
    started: Optional[float],
    finished: Optional[float],
) -> Try:
    """A Try, with its wait, run and first sighting worked out."""
    since = submitted if submitted is not None else registered
    wait = None if since is None or started is None else max(0.0, started - since)
    run = None if started is None or finished is None else max(0.0, finished - started)
    first = registered
    if first is None:
        first = submitted if submitted is not None else started if started is not None else finished
    return Try(
        name, number, attempt, attempts, jobid, status, reason, exit_code, error, category,
        registered, submitted, started, finished, wait, run, first,
    )  # fmt: skip


def _float(value: object) -> Optional[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _int(value: object) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


#: A state's name and colour category when the try has no end reason.
_PLAIN = {status: (status.name, category(status, None)) for status in JobStatus}


def tries_of(record: JobRecord) -> list[Try]:
    """Every try of one job: its earlier tries that were retried (`record.attempts`), then itself.

    Args:
        record: the job's record; `attempts` (a list of dicts with attempt, jobid,
            reason, exit_code, error, submitted_at, started_at, finished_at) may be
            absent.

    Returns:
        The tries in order, the last one the record itself. The last try waited in the
        runner's queue from the end of the try before it.
    """
    earlier = getattr(record, "attempts", None) or []
    count = len(earlier) + 1
    found: list[Try] = []
    back_in_queue = record.registered_at
    for index, data in enumerate(earlier, start=1):
        reason = data.get("reason")
        reason = reason if isinstance(reason, str) else None
        jobid = data.get("jobid")
        error = data.get("error")
        finished = _float(data.get("finished_at"))
        found.append(
            make_try(
                record.name,
                record.number,
                _int(data.get("attempt")) or index,
                count,
                None if jobid is None else str(jobid),
                "RETRIED",
                reason,
                _int(data.get("exit_code")),
                error if isinstance(error, str) else None,
                category(None, reason),
                record.registered_at if index == 1 else None,
                _float(data.get("submitted_at")),
                _float(data.get("started_at")),
                finished,
            )
        )
        back_in_queue = finished
    found.append(_last_try(record, count, back_in_queue))
    return found


def _last_try(record: JobRecord, count: int, registered: Optional[float]) -> Try:
    status_name, plain = _PLAIN[record.status]
    reason = record.reason
    return make_try(
        record.name,
        record.number,
        count,
        count,
        record.jobid,
        status_name,
        reason,
        record.exit_code,
        record.error,
        plain if reason is None else category(record.status, reason),
        registered,
        record.submitted_at,
        record.started_at,
        record.finished_at,
    )


def quantile(ordered: Sequence[float], q: float) -> Optional[float]:
    """The q-quantile (0..1) of sorted values, by the nearest rank; None for no values."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def log_histogram(ordered: Sequence[float]) -> dict[str, Any]:
    """Counts of sorted `ordered` values (seconds) in bins of equal width on a log scale.

    Returns:
        {"edges": [...], "counts": [...], "zero": n}: bin i holds edges[i] <= v <
        edges[i+1] (the last bin includes its upper edge); "zero" counts the values
        below 1 ms, which a log scale cannot place.
    """
    zero = bisect.bisect_left(ordered, 1e-3)
    if zero == len(ordered):
        return {"edges": [], "counts": [], "zero": zero}
    low = math.floor(math.log10(ordered[zero]) * BINS_PER_DECADE)
    high = math.floor(math.log10(ordered[-1]) * BINS_PER_DECADE) + 1
    # log10 rounds: widen by a bin where a value sits just outside the edges it gave
    if 10 ** (low / BINS_PER_DECADE) > ordered[zero]:
        low -= 1
    if 10 ** (high / BINS_PER_DECADE) < ordered[-1]:
        high += 1
    edges = [10 ** (e / BINS_PER_DECADE) for e in range(low, high + 1)]
    places = [zero] + [bisect.bisect_left(ordered, e) for e in edges[1:-1]] + [len(ordered)]
    counts = [b - a for a, b in zip(places, places[1:])]
    return {"edges": edges, "counts": counts, "zero": zero}


def distribution(values: list[float]) -> dict[str, Any]:
    """Count, mean, median, p90, p99, max and a log histogram of seconds (sorts `values`)."""
    values.sort()
    return {
        "count": len(values),
        "mean": sum(values) / len(values) if values else None,
        "p50": quantile(values, 0.5),
        "p90": quantile(values, 0.9),
        "p99": quantile(values, 0.99),
        "max": values[-1] if values else None,
        "histogram": log_histogram(values),
    }


def occupancy(
    spans: Iterable[tuple[float, float]], start: float, width: float, bins: int
) -> list[float]:
    """The mean number of spans open during each time bin (exact: a span counts by its overlap).

    Args:
        spans: (from, to) epoch seconds, from <= to, inside [start, start + width * bins].
        start: the first bin's start.
        width: seconds per bin (> 0).
        bins: the number of bins.

    Returns:
        `bins` numbers; their sum times `width` is the spans' total length inside the bins.
    """
    full = [0] * (bins + 1)  # a difference array of the whole bins a span covers
    part = [0.0] * (bins + 1)
    for a, b in spans:
        fa = (a - start) / width
        fb = (b - start) / width
        # a start corrected by the job's own stamp may come a moment before its submission
        fb = max(fb, fa)
        ia = int(fa)
        ib = int(fb)
        if ia == ib:
            part[ia] += fb - fa
            continue
        part[ia] += ia + 1 - fa
        part[ib] += fb - ib
        full[ia + 1] += 1
        full[ib] -= 1
    out: list[float] = []
    level = 0
    for i in range(bins):
        level += full[i]
        out.append(level + part[i])
    out[-1] += part[bins]  # a span ending exactly at the last bin's end
    return out


def _first_lines(error: Optional[str]) -> str:
    if not error:
        return ""
    return "\n".join(error.strip().splitlines()[:ERROR_LINES])


class Report:
    """A run's report: built by `build_report`, printed by `as_dict`, drawn by `_report_html`.

    Attributes:
        folder: the run's folder.
        generated_at: when the report was made (epoch seconds).
        jobs: how many jobs the journal has.
        tries: every try, ordered by when it was first seen.
        counts: jobs (last tries) per state name.
        categories: tries per colour category.
        start, end: the time span the report covers (epoch seconds).
        live: a driver still runs the run (open tries are drawn up to `end`, now).
        over_time: {"start", "width", "queued", "pending", "running"}: the mean number of
            tries in each place during each of `TIME_BINS` bins.
        wait, run: `distribution` of the wait and run seconds.
        failures: tries that did not end well, by category (see `as_dict`).
        usage: the accounting section (see `as_dict`).
    """

    def __init__(self, state: JournalState, usage: Optional[UsageReport]) -> None:
        """Compute the report of `state`; `usage` is the accounting, or None when not asked."""
        self.folder = state.folder
        self.generated_at = time.time()
        self.jobs = len(state.jobs)
        driver = state.driver
        self.live = driver is not None and bool(driver.live)
        tries: list[Try] = []
        for record in state.jobs:
            if getattr(record, "attempts", None):
                tries.extend(tries_of(record))
            else:  # most jobs run once: no list per job
                tries.append(_last_try(record, 1, record.registered_at))
        self.counts: dict[str, int] = {}
        for t in tries:
            if t.attempt == t.attempts:
                self.counts[t.status] = self.counts.get(t.status, 0) + 1
        tries.sort(key=lambda t: (t.first_seen or 0.0, t.number, t.attempt))
        self.tries = tries
        self.categories: dict[str, int] = {}
        for t in tries:
            self.categories[t.category] = self.categories.get(t.category, 0) + 1
        self._span()
        self._over_time()
        self.wait = distribution([w for w in (t.wait for t in tries) if w is not None])
        self.run = distribution([r for r in (t.run for t in tries) if r is not None])
        self.failures = self._failures()
        self.usage = self._usage(usage)

    def _span(self) -> None:
        times = [
            at
            for t in self.tries
            for at in (t.registered_at, t.submitted_at, t.started_at, t.finished_at)
            if at is not None
        ]
        self.start = min(times) if times else self.generated_at
        latest = max(times) if times else self.start
        if self.live:
            latest = max(latest, self.generated_at)
        self.end = max(latest, self.start + 1.0)

    def until(self, at: Optional[float]) -> float:
        """`at`, or the report's end for a span still open."""
        return self.end if at is None else at

    def _over_time(self) -> None:
        width = (self.end - self.start) / TIME_BINS
        queued: list[tuple[float, float]] = []
        pending: list[tuple[float, float]] = []
        running: list[tuple[float, float]] = []
        open_end = self.end
        for t in self.tries:
            registered, submitted, started, closed = t[10:14]
            if closed is None:
                closed = open_end
            if registered is not None:
                left = submitted if submitted is not None else started
                queued.append((registered, closed if left is None else left))
            if submitted is not None:
                pending.append((submitted, closed if started is None else started))
            if started is not None:
                running.append((started, closed))
        self.over_time: dict[str, Any] = {
            "start": self.start,
            "width": width,
            "queued": occupancy(queued, self.start, width, TIME_BINS),
            "pending": occupancy(pending, self.start, width, TIME_BINS),
            "running": occupancy(running, self.start, width, TIME_BINS),
        }

    def _failures(self) -> list[dict[str, Any]]:
        groups: dict[str, list[Try]] = {}
        for t in self.tries:
            if t.category in FAILED_CATEGORIES:
                groups.setdefault(t.category, []).append(t)
        out: list[dict[str, Any]] = []
        for name in sorted(groups, key=lambda g: (-len(groups[g]), g)):
            members = groups[name]
            messages: dict[str, int] = {}
            for t in members:
                first = (t.error or "").strip().split("\n", 1)[0]
                messages[first] = messages.get(first, 0) + 1
            out.append(
                {
                    "category": name,
                    "meaning": REASONS.get(name, _MEANINGS.get(name, "")),
                    "tries": len(members),
                    "jobs": len({t.number for t in members}),
                    "messages": [
                        {"first_line": m, "count": n}
                        for m, n in sorted(messages.items(), key=lambda kv: (-kv[1], kv[0]))
                    ],
                    "members": [
                        {
                            "name": t.name,
                            "attempt": t.attempt,
                            "jobid": t.jobid,
                            "status": t.status,
                            "exit_code": t.exit_code,
                            "error": _first_lines(t.error),
                        }
                        for t in members
                    ],
                }
            )
        return out

    def _usage(self, usage: Optional[UsageReport]) -> dict[str, Any]:
        if usage is None:
            return {"asked": False, "absent_because": "not asked for (--no-accounting)", "jobs": []}
        rows: list[dict[str, Any]] = []
        for t in self.tries:
            found = usage.usage.get(t.jobid) if t.jobid is not None else None
            if found is not None:
                rows.append(_usage_row(t, found))
        under = [
            {"name": r["name"], "attempt": r["attempt"], "jobid": r["jobid"], "under": r["under"]}
            for r in rows
            if r["under"]
        ]
        absent = usage.absent_because
        if not rows and absent is None:
            absent = "the scheduler's accounting has no record of these jobs"
        return {
            "asked": True,
            "absent_because": absent,
            "jobs": rows,
            "under_half": under,
            "memory_fraction": _fractions([r["memory_fraction"] for r in rows]),
            "cpu_fraction": _fractions([r["cpu_fraction"] for r in rows]),
        }

    def as_dict(self, *, tries: bool = True) -> dict[str, Any]:
        """The report as JSON-ready data (what `runner report --json` prints).

        Args:
            tries: include every try (the timeline's rows); False leaves them out.

        Returns:
            {"folder", "generated_at", "jobs", "counts", "categories", "start", "end",
            "live", "tries", "over_time", "wait", "run", "failures", "usage"}.
        """
        data: dict[str, Any] = {
            "folder": self.folder,
            "generated_at": self.generated_at,
            "jobs": self.jobs,
            "tries_count": len(self.tries),
            "counts": self.counts,
            "categories": self.categories,
            "start": self.start,
            "end": self.end,
            "live": self.live,
        }
        if tries:
            data["tries"] = [t.as_dict() for t in self.tries]
        data.update(
            over_time=self.over_time,
            wait=self.wait,
            run=self.run,
            failures=self.failures,
            usage=self.usage,
        )
        return data


_MEANINGS = {
    "crashed": "ended by itself with a non-zero exit code",
    "failed": "could not be run, or its runner reported a failure",
}


def _ratio(used: Optional[float], asked: Optional[float]) -> Optional[float]:
    if used is None or asked is None or asked <= 0:
        return None
    return used / asked


def _usage_row(t: Try, u: Usage) -> dict[str, Any]:
    memory_fraction = _ratio(u.memory, u.memory_requested)
    cpu_asked = None if u.elapsed is None or u.cores is None else u.elapsed * u.cores
    cpu_fraction = _ratio(u.cpu, cpu_asked)
    under = []
    # A job killed at its memory limit used all of it, whatever the last sample says.
    if memory_fraction is not None and memory_fraction < UNDER and t.category != "out_of_memory":
        under.append("memory")
    if cpu_fraction is not None and cpu_fraction < UNDER:
        under.append("cpu")
    return {
        "name": t.name,
        "attempt": t.attempt,
        "jobid": t.jobid,
        "category": t.category,
        "memory": u.memory,
        "memory_requested": u.memory_requested,
        "memory_fraction": memory_fraction,
        "cpu": u.cpu,
        "elapsed": u.elapsed,
        "cores": u.cores,
        "cpu_fraction": cpu_fraction,
        "walltime_requested": u.walltime_requested,
        "state": u.state,
        "under": under,
    }


def _fractions(values: Sequence[Optional[float]]) -> dict[str, Any]:
    """Counts of fractions of the request in tenths: 0-10 %, ..., 90-100 %, then over 100 %.

    Returns:
        {"edges": [0.0, 0.1, ..., 1.0, None], "counts": [11 numbers]}.
    """
    counts = [0] * 11
    for v in values:
        if v is not None:
            counts[10 if v > 1.0 else min(9, max(0, int(v * 10)))] += 1
    # the last bin has no upper edge: null
    return {"edges": [i / 10 for i in range(11)] + [None], "counts": counts}


def build_report(state: JournalState, usage: Optional[UsageReport] = None) -> Report:
    """Compute the report of a run from its journal alone (and the accounting, where given).

    Args:
        state: `read_journal(folder)`.
        usage: what the runners' `usage_recorded` found, merged; None when the
            accounting was not asked for.

    Returns:
        The Report.
    """
    return Report(state, usage)
