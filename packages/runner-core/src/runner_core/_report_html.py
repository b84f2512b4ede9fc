"""`runner report`'s page: one HTML file of inline SVG, CSS and a few lines of JavaScript.

Nothing on the page comes from another host (no fonts, scripts or styles fetched), so it
opens from disk on a cluster's login node with no network. The charts are SVG drawn here;
each bar carries its details in an SVG ``<title>`` (the browser shows it on hover, with
no script), and the script only shows a clicked bar's details in a panel that can be
copied. Past `DETAIL_LIMIT` tries the timeline draws bands of consecutive tries (medians,
the full range, and each band's mix of ends) and the tables give counts; the numbers of
every try stay in ``runner report --json``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Optional

from runner_core._report import CATEGORIES, DETAIL_LIMIT, quantile
from runner_core._report_format import COLOURS, percent, seconds, size, when
from runner_core._report_format import coord as _f
from runner_core._report_format import escape as _e
from runner_core._report_format import plural as _count

if TYPE_CHECKING:
    from collections.abc import Sequence

    from runner_core._report import Report, Try

__all__ = ["render"]

#: Rows of the timeline past `DETAIL_LIMIT`: each band holds ceil(tries / BANDS) tries.
BANDS = 500
#: Failing tries listed by name in each group; all are counted.
LISTED_FAILURES = 100
#: Distinct first lines of errors listed in each group.
LISTED_MESSAGES = 20
#: Jobs named as using under half of their request; all are counted.
LISTED_UNDER = 200
#: The width of every chart, in SVG units (the page scales it to the window).
WIDTH = 1000


_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em;color:#222;
max-width:1200px}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse}td,th{padding:2px 8px;text-align:left;border-bottom:1px solid #eee}
td.n,th.n{text-align:right}svg{width:100%;height:auto;display:block}
svg text{font-size:11px;fill:#444}.axis line{stroke:#ccc}
.q{fill:#e6e6e6}.p{fill:#b5b5b5}.rng{stroke:#999;stroke-width:1}
g[data-i]:hover rect{opacity:.75}g.picked rect{stroke:#000;stroke-width:1}
.scroll{max-height:80vh;overflow-y:auto;border:1px solid #eee}
#detail{background:#f7f7f7;padding:.5em;min-height:3em;white-space:pre-wrap}
.legend span{display:inline-block;margin-right:1em}.legend i{display:inline-block;width:.9em;
height:.9em;margin-right:.3em;vertical-align:-1px}
pre.err{margin:0;font-size:12px;color:#733;white-space:pre-wrap}.absent{color:#855}
.note{color:#666}
"""
_CSS += "".join(f".c-{name}{{fill:{colour}}}" for name, colour in COLOURS.items())

# Errors first, in a script of their own, so that a fault in the main script is caught.
_ERRORS_JS = (
    "window.addEventListener('error',function(e){"
    "document.documentElement.setAttribute('data-error',String(e.message));});"
)
_MAIN_JS = """
(function(){
var panel=document.getElementById('detail');
document.addEventListener('click',function(e){
var g=e.target.closest?e.target.closest('[data-i]'):null;if(!g)return;
var t=g.querySelector('title');panel.textContent=t?t.textContent:'';
var old=document.querySelector('.picked');if(old)old.classList.remove('picked');
g.classList.add('picked');});
document.documentElement.setAttribute('data-ready',
String(document.querySelectorAll('#timeline [data-i]').length));
})();
"""


#: Steps of the time axis's ticks, in seconds.
_STEPS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900,
          1800, 3600, 7200, 10800, 21600, 43200)  # fmt: skip


def _ticks(span: float, want: int = 8) -> list[float]:
    step = next((s for s in _STEPS if span / s <= want), None)
    if step is None:
        step = 86400 * max(1, math.ceil(span / 86400 / want))
    return [i * step for i in range(int(span // step) + 1)]


def _tick_label(offset: float) -> str:
    whole = round(offset)
    if offset == 0:
        return "0"
    if offset != whole:
        return f"+{seconds(offset)}"
    if whole < 60:
        return f"+{whole} s"
    if whole % 86400 == 0:
        return f"+{whole // 86400} d"
    if whole % 3600 == 0:
        return f"+{whole // 3600} h"
    if whole % 60 == 0 and whole >= 60:
        return f"+{whole // 60} min"
    return f"+{seconds(offset)}"


class _Axis:
    """The time axis shared by the timeline and the counts over time."""

    def __init__(self, report: Report, left: float, right: float) -> None:
        self.start = report.start
        self.span = report.end - report.start
        self.left = left
        self.width = WIDTH - left - right

    def x(self, at: float) -> float:
        return self.left + (at - self.start) / self.span * self.width

    def svg(self, top: float, bottom: float) -> str:
        parts = ['<g class="axis">']
        for offset in _ticks(self.span):
            at = self.left + offset / self.span * self.width
            x = _f(at)
            anchor = "end" if at > self.left + self.width - 30 else "middle"
            parts.append(
                f'<line x1="{x}" x2="{x}" y1="{_f(top)}" y2="{_f(bottom)}"/>'
                f'<text x="{x}" y="{_f(top - 4)}" text-anchor="{anchor}">'
                f"{_tick_label(offset)}</text>"
            )
        parts.append("</g>")
        return "".join(parts)


def _try_title(t: Try) -> str:
    lines = [
        f"{t.name} (try {t.attempt} of {t.attempts})" if t.attempts > 1 else t.name,
        f"id {t.jobid or '-'}, {t.status}"
        + (f", reason {t.reason}" if t.reason else "")
        + (f", exit code {t.exit_code}" if t.exit_code is not None else ""),
        f"registered {when(t.registered_at)}",
        f"submitted {when(t.submitted_at)}",
        f"started {when(t.started_at)}",
        f"finished {when(t.finished_at)}",
        f"wait {seconds(t.wait)}, run {seconds(t.run)}",
    ]
    if t.error:
        lines.append(t.error.strip().split("\n", 1)[0][:200])
    return "\n".join(lines)


def _bar(cls: str, x0: float, x1: float, y: float, h: float, *, least: float = 0.6) -> str:
    return (
        f'<rect class="{cls}" x="{_f(x0)}" y="{_f(y)}" '
        f'width="{_f(max(least, x1 - x0))}" height="{_f(h)}"/>'
    )


def _timeline_rows(report: Report) -> str:
    tries = report.tries
    names = len(tries) <= 300
    axis = _Axis(report, 170 if names else 10, 10)
    row = min(16.0, max(3.0, 900 / max(1, len(tries))))
    top = 24.0
    height = top + row * len(tries) + 4
    parts = [f'<svg viewBox="0 0 {WIDTH} {_f(height)}" role="img">', axis.svg(top, height)]
    until = report.until
    h = row * 0.8
    for i, t in enumerate(tries):
        y = top + i * row
        parts.append(f'<g data-i="{i}"><title>{_e(_try_title(t))}</title>')
        if names:
            label = t.name if t.attempts == 1 else f"{t.name} #{t.attempt}"
            parts.append(
                f'<text x="{axis.left - 6}" y="{_f(y + h - 1)}" text-anchor="end">'
                f"{_e(label[:28])}</text>"
            )
        end = until(t.finished_at)
        if t.registered_at is not None:
            left = t.submitted_at or t.started_at or end
            parts.append(_bar("q", axis.x(t.registered_at), axis.x(left), y, h))
        if t.submitted_at is not None:
            parts.append(_bar("p", axis.x(t.submitted_at), axis.x(t.started_at or end), y, h))
        if t.started_at is not None:
            # at least 2 units wide: a job that ended at once still shows how
            parts.append(
                _bar(f"c-{t.category}", axis.x(t.started_at), axis.x(end), y, h, least=2.0)
            )
        elif t.finished_at is not None and t.category != "pending":
            # ended before it ran (cancelled in the queue, a refused submission): a mark
            parts.append(_bar(f"c-{t.category}", axis.x(t.finished_at), axis.x(end) + 2, y, h))
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def _timeline_bands(report: Report) -> str:
    tries = report.tries
    per = math.ceil(len(tries) / BANDS)
    bands = [tries[i : i + per] for i in range(0, len(tries), per)]
    strip = 70.0
    axis = _Axis(report, 10, strip + 10)
    row = min(16.0, max(2.0, 900 / len(bands)))
    top = 24.0
    height = top + row * len(bands) + 4
    h = max(1.0, row * 0.8)
    until = report.until
    parts = [f'<svg viewBox="0 0 {WIDTH} {_f(height)}" role="img">', axis.svg(top, height)]
    x_strip = WIDTH - strip - 4
    parts.append(
        f'<text x="{_f(x_strip + strip / 2)}" y="{_f(top - 4)}" text-anchor="middle">ends</text>'
    )
    for b, band in enumerate(bands):
        y = top + b * row
        first = sorted(t.first_seen or report.start for t in band)
        starts = sorted(t.started_at for t in band if t.started_at is not None)
        ends = sorted(until(t.finished_at) for t in band)
        mix: dict[str, int] = {}
        for t in band:
            mix[t.category] = mix.get(t.category, 0) + 1
        top_cat = max(mix, key=lambda c: mix[c])
        waits = sorted(w for w in (t.wait for t in band) if w is not None)
        runs = sorted(r for r in (t.run for t in band) if r is not None)
        lo = b * per + 1
        title = "\n".join(
            [
                f"tries {lo:,}-{lo + len(band) - 1:,} of {len(tries):,}: "
                f"{band[0].name} ... {band[-1].name}",
                ", ".join(f"{c} {n:,}" for c, n in sorted(mix.items(), key=lambda kv: -kv[1])),
                f"first seen {when(first[0])} - {when(first[-1])}",
                f"last end {when(ends[-1])}",
                f"wait median {seconds(quantile(waits, 0.5))}, p90 {seconds(quantile(waits, 0.9))}",
                f"run median {seconds(quantile(runs, 0.5))}, p90 {seconds(quantile(runs, 0.9))}",
            ]
        )
        parts.append(f'<g data-i="{b}" class="band"><title>{_e(title)}</title>')
        mid = y + h / 2
        parts.append(
            f'<line class="rng" x1="{_f(axis.x(first[0]))}" x2="{_f(axis.x(ends[-1]))}" '
            f'y1="{_f(mid)}" y2="{_f(mid)}"/>'
        )
        f50 = quantile(first, 0.5) or report.start
        s50 = quantile(starts, 0.5)
        e50 = quantile(ends, 0.5) or report.end
        if s50 is not None:
            parts.append(_bar("p", axis.x(f50), axis.x(s50), y, h))
            parts.append(_bar(f"c-{top_cat}", axis.x(s50), axis.x(max(s50, e50)), y, h))
        else:
            parts.append(_bar("p", axis.x(f50), axis.x(e50), y, h))
        x = x_strip
        for cat in CATEGORIES:
            n = mix.get(cat, 0)
            if n:
                w = strip * n / len(band)
                parts.append(_bar(f"c-{cat}", x, x + w, y, h))
                x += w
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def _legend(report: Report) -> str:
    items = [
        '<span><i class="q" style="background:#e6e6e6"></i>queued in the runner</span>',
        f'<span><i style="background:{COLOURS["pending"]}"></i>pending in the scheduler</span>',
    ]
    for cat in CATEGORIES:
        n = report.categories.get(cat, 0)
        if n and cat not in ("pending", "queued"):
            items.append(f'<span><i style="background:{COLOURS[cat]}"></i>{_e(cat)} ({n:,})</span>')
    return f'<p class="legend">{"".join(items)}</p>'


def _timeline(report: Report) -> str:
    n = len(report.tries)
    if n <= DETAIL_LIMIT:
        how = (
            f"One row per try ({n:,}), in the order they were first seen: the queue wait in "
            "grey, the run in the colour of how it ended. Hover over a row for its details, "
            "or click it to show them below."
        )
        chart = _timeline_rows(report)
    else:
        per = math.ceil(n / BANDS)
        how = (
            f"{n:,} tries, more than {DETAIL_LIMIT:,}: each row is a band of {per:,} "
            "consecutive tries (in the order they were first seen). The grey bar runs from "
            "the band's median first sighting to its median start, the coloured one to its "
            "median end, in the colour most of its tries ended in; the thin line spans the "
            "band's first sighting to its last end; the strip on the right is the band's mix "
            "of ends. Hover or click for counts and medians; every try's numbers are in "
            "<code>runner report --json</code>."
        )
        chart = _timeline_bands(report)
    return (
        '<section id="timeline"><h2>Timeline</h2>'
        f"<p>{how}</p>{_legend(report)}"
        f'<div class="scroll">{chart}</div>'
        '<pre id="detail">Click a row for its details.</pre></section>'
    )


def _over_time(report: Report) -> str:
    data = report.over_time
    series = [("queued", "#999999"), ("pending", "#e08b1f"), ("running", "#2f6fc0")]
    peak: float = max([1.0] + [max(data[name], default=0.0) for name, _ in series])
    axis = _Axis(report, 50, 10)
    top, plot_h = 24.0, 200.0
    bins = len(data["running"])
    step = axis.width / bins

    def y(value: float) -> float:
        return top + plot_h - value / peak * plot_h

    parts = [f'<svg viewBox="0 0 {WIDTH} {_f(top + plot_h + 8)}" role="img">']
    parts.append(axis.svg(top, top + plot_h))
    parts.append(
        f'<text x="44" y="{_f(top + 8)}" text-anchor="end">{peak:,.0f}</text>'
        f'<text x="44" y="{_f(top + plot_h)}" text-anchor="end">0</text>'
    )
    for name, colour in series:
        path = [f"M{_f(axis.left)},{_f(y(data[name][0] if bins else 0))}"]
        for i, value in enumerate(data[name]):
            path.append(f"V{_f(y(value))}H{_f(axis.left + (i + 1) * step)}")
        parts.append(
            f'<path d="{"".join(path)}" fill="none" stroke="{colour}" stroke-width="1.5">'
            f"<title>{name}</title></path>"
        )
    for i in range(bins):
        at = data["start"] + i * data["width"]
        label = ", ".join(f"{name} {data[name][i]:,.1f}" for name, _ in series)
        parts.append(
            f'<rect x="{_f(axis.left + i * step)}" y="{_f(top)}" width="{_f(step)}" '
            f'height="{_f(plot_h)}" fill="transparent"><title>{when(at)} '
            f"(+{seconds(at - report.start)}): {label}</title></rect>"
        )
    parts.append("</svg>")
    legend = "".join(
        f'<span><i style="background:{colour}"></i>{name}</span>' for name, colour in series
    )
    return (
        '<section id="over-time"><h2>Jobs queued, pending and running over time</h2>'
        f"<p>The mean number of tries queued in the runner, pending in the scheduler and "
        f"running, in each of {bins} slices of {seconds(data['width'])}.</p>"
        f'<p class="legend">{legend}</p>{parts[0]}{"".join(parts[1:])}</section>'
    )


def _histogram(title: str, hist: dict[str, Any], label: Any, colour: str) -> str:
    counts: Sequence[int] = hist["counts"]
    edges: Sequence[Optional[float]] = hist["edges"]

    def text(edge: Optional[float]) -> str:
        return "more" if edge is None else _e(label(edge))

    width, plot_h, top, left = 480.0, 150.0, 10.0, 55.0
    parts = [f'<svg viewBox="0 0 {_f(width)} {_f(top + plot_h + 30)}" role="img">']
    if counts:
        peak = max(counts) or 1
        step = (width - left - 5) / len(counts)
        for i, n in enumerate(counts):
            bar = n / peak * plot_h
            parts.append(
                f'<rect fill="{colour}" x="{_f(left + i * step)}" y="{_f(top + plot_h - bar)}" '
                f'width="{_f(max(0.5, step - 1))}" height="{_f(bar)}">'
                f"<title>{text(edges[i])} - {text(edges[i + 1])}: {n:,}</title></rect>"
            )
        for i in range(0, len(edges), max(1, len(edges) // 5)):
            x = left + i * step
            anchor = "end" if x > width - 30 else "middle"
            parts.append(
                f'<text x="{_f(x)}" y="{_f(top + plot_h + 14)}" '
                f'text-anchor="{anchor}">{text(edges[i])}</text>'
            )
        parts.append(
            f'<text x="{_f(left - 4)}" y="{_f(top + 8)}" text-anchor="end">{peak:,}</text>'
        )
    else:
        parts.append(f'<text x="{_f(left)}" y="{_f(top + 40)}">no values</text>')
    parts.append("</svg>")
    return f'<div style="flex:1;min-width:300px"><h3>{_e(title)}</h3>{"".join(parts)}</div>'


def _stats_row(name: str, d: dict[str, Any]) -> str:
    cells = "".join(
        f'<td class="n">{seconds(d[k])}</td>' for k in ("mean", "p50", "p90", "p99", "max")
    )
    return f'<tr><td>{name}</td><td class="n">{d["count"]:,}</td>{cells}</tr>'


def _distributions(report: Report) -> str:
    zero = report.wait["histogram"]["zero"]
    note = f" {zero:,} waits under 1 ms are counted but not drawn." if zero else ""
    return (
        '<section id="distributions"><h2>Wait and run times</h2>'
        "<p>Wait: from the submission (or, for a local job, its registration) to the start. "
        f"Run: from the start to the end. Log scale.{note}</p>"
        '<table><tr><th></th><th class="n">tries</th><th class="n">mean</th>'
        '<th class="n">median</th><th class="n">p90</th><th class="n">p99</th>'
        '<th class="n">max</th></tr>'
        f"{_stats_row('wait', report.wait)}{_stats_row('run', report.run)}</table>"
        '<div style="display:flex;flex-wrap:wrap;gap:1em">'
        f"{_histogram('Wait', report.wait['histogram'], seconds, '#b5b5b5')}"
        f"{_histogram('Run', report.run['histogram'], seconds, COLOURS['running'])}"
        "</div></section>"
    )


def _failures(report: Report) -> str:
    groups = report.failures
    if not groups:
        return '<section id="failures"><h2>Failures</h2><p>No try failed.</p></section>'
    parts = ['<section id="failures"><h2>Failures by reason</h2>']
    for group in groups:
        cat = group["category"]
        opened = " open" if len(groups) <= 4 else ""
        parts.append(
            f'<details class="failure" data-category="{_e(cat)}"{opened}><summary>'
            f'<b style="color:{COLOURS[cat]}">{_e(cat)}</b>: {_count(group["tries"], "try")} '
            f"of {_count(group['jobs'], 'job')} <span class=note>({_e(group['meaning'])})</span>"
            "</summary>"
        )
        messages = group["messages"]
        if len(messages) > 1 or messages[0]["first_line"]:
            parts.append('<table><tr><th class="n">tries</th><th>first line of the error</th></tr>')
            for m in messages[:LISTED_MESSAGES]:
                parts.append(
                    f'<tr><td class="n">{m["count"]:,}</td>'
                    f"<td><code>{_e(m['first_line'] or '(no error message)')}</code></td></tr>"
                )
            rest = sum(m["count"] for m in messages[LISTED_MESSAGES:])
            if rest:
                parts.append(
                    f'<tr><td class="n">{rest:,}</td><td>{len(messages) - LISTED_MESSAGES:,} '
                    "other messages</td></tr>"
                )
            parts.append("</table>")
        parts.append(
            '<table><tr><th>job</th><th>try</th><th>id</th><th class="n">exit code</th>'
            "<th>error (first lines)</th></tr>"
        )
        members = group["members"]
        for m in members[:LISTED_FAILURES]:
            code = "-" if m["exit_code"] is None else m["exit_code"]
            parts.append(
                f"<tr><td>{_e(m['name'])}</td><td>{m['attempt']}</td>"
                f'<td>{_e(m["jobid"] or "-")}</td><td class="n">{code}</td>'
                f'<td><pre class="err">{_e(m["error"])}</pre></td></tr>'
            )
        parts.append("</table>")
        if len(members) > LISTED_FAILURES:
            parts.append(
                f"<p class=note>and {len(members) - LISTED_FAILURES:,} more tries, counted "
                "above; <code>runner report --json</code> lists every one.</p>"
            )
        parts.append("</details>")
    parts.append("</section>")
    return "".join(parts)


def _usage(report: Report) -> str:
    usage = report.usage
    head = '<section id="usage"><h2>Memory and CPU used against the request</h2>'
    rows: list[dict[str, Any]] = usage["jobs"]
    if not rows:
        why = usage["absent_because"] or "no figures"
        return f'{head}<p class="absent">No accounting figures: {_e(why)}.</p></section>'
    parts = [head]
    if usage["absent_because"]:
        parts.append(
            f'<p class="absent">Some figures are missing: {_e(usage["absent_because"])}.</p>'
        )
    under = usage["under_half"]
    parts.append(
        f"<p>{len(rows):,} tries have accounting figures; {len(under):,} used less than half "
        "of the memory or CPU time they asked for (CPU time asked for: cores x elapsed).</p>"
        '<div style="display:flex;flex-wrap:wrap;gap:1em">'
        + _histogram(
            "Peak memory / memory requested",
            usage["memory_fraction"],
            percent,
            COLOURS["out_of_memory"],
        )
        + _histogram(
            "CPU time / (cores x elapsed)", usage["cpu_fraction"], percent, COLOURS["running"]
        )
        + "</div>"
    )
    if under:
        listed = ", ".join(
            f"{_e(u['name'])} ({_e(u['jobid'])}: {' and '.join(u['under'])})"
            for u in under[:LISTED_UNDER]
        )
        more = f", and {len(under) - LISTED_UNDER:,} more" if len(under) > LISTED_UNDER else ""
        parts.append(f'<p id="under-half"><b>Under half of the request:</b> {listed}{more}.</p>')
    if len(rows) <= DETAIL_LIMIT:
        parts.append(
            '<table id="usage-table"><tr><th>job</th><th>try</th><th>id</th><th>end</th>'
            '<th class="n">peak memory</th><th class="n">requested</th><th class="n">used</th>'
            '<th class="n">CPU time</th><th class="n">elapsed</th><th class="n">cores</th>'
            '<th class="n">CPU used</th></tr>'
        )
        for r in rows:
            parts.append(
                f"<tr><td>{_e(r['name'])}</td><td>{r['attempt']}</td><td>{_e(r['jobid'])}</td>"
                f"<td>{_e(r['state'] or r['category'])}</td>"
                f'<td class="n">{size(r["memory"])}</td>'
                f'<td class="n">{size(r["memory_requested"])}</td>'
                f'<td class="n">{percent(r["memory_fraction"])}</td>'
                f'<td class="n">{seconds(r["cpu"])}</td><td class="n">{seconds(r["elapsed"])}</td>'
                f'<td class="n">{r["cores"] if r["cores"] is not None else "-"}</td>'
                f'<td class="n">{percent(r["cpu_fraction"])}</td></tr>'
            )
        parts.append("</table>")
    else:
        parts.append(
            f"<p class=note>{len(rows):,} rows: the histograms above count them all; "
            "<code>runner report --json</code> has each one.</p>"
        )
    parts.append("</section>")
    return "".join(parts)


def _summary(report: Report) -> str:
    counts = ", ".join(f"{n:,} {name}" for name, n in sorted(report.counts.items()))
    state = "still running (a driver is live)" if report.live else "not running now"
    return (
        f"<h1>Run report: {_e(report.folder)}</h1>"
        f"<p>{report.jobs:,} jobs ({counts or 'none'}), {len(report.tries):,} tries. "
        f"From {when(report.start)} to {when(report.end)} "
        f"({seconds(report.end - report.start)}); {state}. "
        f"Made by <code>runner report</code> at {when(report.generated_at)} from the run "
        "journal.</p>"
    )


def render(report: Report) -> str:
    """The report as one self-contained HTML page (nothing on it is loaded from elsewhere).

    Args:
        report: `build_report(...)`.

    Returns:
        The page's text.
    """
    body = "".join(
        [
            _summary(report),
            _timeline(report),
            _over_time(report),
            _distributions(report),
            _failures(report),
            _usage(report),
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>runner report: {_e(report.folder)}</title>"
        f"<style>{_CSS}</style><script>{_ERRORS_JS}</script></head>"
        f"<body>{body}<script>{_MAIN_JS}</script></body></html>\n"
    )
