"""Benchmark: Settings attribute and key reads against the same reads on a plain dict."""

from __future__ import annotations

import importlib
import os
import platform
import sys
import timeit
from typing import Any

TARGET = 3.0  # Settings may cost at most this many times the plain-dict read
NUMBER = 200_000  # reads per timing
REPEAT = 7  # timings per case; the minimum is the least disturbed one


def _ns_per_op(stmt: str, namespace: dict[str, Any]) -> float:
    timer = timeit.Timer(stmt, globals=namespace)
    return min(timer.repeat(repeat=REPEAT, number=NUMBER)) / NUMBER * 1e9


def _report(label: str, settings_ns: float, dict_ns: float) -> None:
    ratio = settings_ns / dict_ns
    mark = "PASS" if ratio <= TARGET else "OVER"
    print(
        f"{label:<46} Settings {settings_ns:7.1f} ns  dict {dict_ns:7.1f} ns  "
        f"ratio {ratio:5.2f}x  {mark} (target <= {TARGET:.0f}x)"
    )


def main() -> int:
    """Time the reads, print ns per op and the ratios; always exit 0."""
    module_name = os.environ.get("RUNNER_SETTINGS_MODULE", "runner_settings")
    settings_cls = importlib.import_module(module_name).Settings
    print(f"Python {platform.python_version()} ({sys.implementation.name}), {module_name}")
    print(f"min of {REPEAT} repeats x {NUMBER} reads each")

    plain = {"a": {"b": {"c": 1}}}
    tree = settings_cls(plain)
    ns = {"s": tree, "d": plain}
    _report(
        "s.a.b.c  vs  d['a']['b']['c']",
        _ns_per_op("s.a.b.c", ns),
        _ns_per_op("d['a']['b']['c']", ns),
    )

    big_plain = {f"key{i}": i for i in range(10_000)}
    big = settings_cls(big_plain)
    ns = {"s": big, "d": big_plain}
    _report(
        "s.key5000  vs  d['key5000']  (10,000 keys)",
        _ns_per_op("s.key5000", ns),
        _ns_per_op("d['key5000']", ns),
    )
    _report(
        "s['key5000']  vs  d['key5000']  (10,000 keys)",
        _ns_per_op("s['key5000']", ns),
        _ns_per_op("d['key5000']", ns),
    )
    # Not part of the target: what a read of a missing key (a detached branch) costs.
    missing = _ns_per_op("s.nothing", {"s": settings_cls()})
    print(f"{'s.nothing (missing key, detached branch)':<46} Settings {missing:7.1f} ns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
