"""How `runner report`'s page writes things: times, sizes, counts, SVG numbers, its colours."""

from __future__ import annotations

import html
import time
from typing import Optional

__all__ = ["COLOURS", "coord", "escape", "percent", "plural", "seconds", "size", "when"]

#: The colour of each category of `runner_core._report.CATEGORIES`.
COLOURS = {
    "successful": "#3a9a4a",
    "crashed": "#d0453a",
    "failed": "#8e2a7f",
    "timeout": "#e08b1f",
    "out_of_memory": "#c2185b",
    "node_fail": "#5d4037",
    "preempted": "#7b8ea8",
    "submit_failed": "#6a1b9a",
    "cancelled": "#9e9e9e",
    "running": "#2f6fc0",
    "pending": "#b5b5b5",
    "queued": "#dcdcdc",
}


def escape(text: object) -> str:
    """`text` as HTML text or attribute value."""
    return html.escape(str(text), quote=True)


def when(at: Optional[float]) -> str:
    """An epoch time as local ``YYYY-mm-dd HH:MM:SS``, "-" for None."""
    if at is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def seconds(value: Optional[float]) -> str:
    """A duration for people: ``0.41 s``, ``12.3 s``, ``4 min 05 s``, ``3 h 12 min``, ``2 d 4 h``.

    None gives "-".
    """
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.3g} ms"
    if value < 10:
        return f"{value:.2f} s"
    if value < 60:
        return f"{value:.1f} s"
    whole = round(value)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


def size(value: Optional[float]) -> str:
    """Bytes for people: ``812 MiB``, ``1.5 GiB``."""
    if value is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit in ("B", "KiB") else f"{value:.1f} {unit}"
        value /= 1024
    return "-"  # pragma: no cover - the loop returns


def percent(value: Optional[float]) -> str:
    """A fraction as ``42 %``, "-" for None."""
    return "-" if value is None else f"{100 * value:.0f} %"


def plural(n: int, what: str) -> str:
    """``1 try``, ``2,000 tries``, ``3 jobs``."""
    if n == 1:
        return f"1 {what}"
    return f"{n:,} {what[:-1] + 'ies' if what.endswith('y') else what + 's'}"


def coord(value: float) -> str:
    """An SVG coordinate, short."""
    return f"{value:.1f}".rstrip("0").rstrip(".")
