"""The predefined schemes: one module per scheduler family, each with its class and `scheme()`."""

from __future__ import annotations

from typing import Any, Callable

from runner_grid.schemes import pbs, sge, slurm

__all__ = ["SCHEMES", "pbs", "sge", "slurm"]

#: Scheme name -> factory returning a fresh scheme as a plain dict (what `GridRunner.config` holds).
SCHEMES: dict[str, Callable[[], dict[str, Any]]] = {
    "pbs": pbs.scheme,
    "sge": sge.scheme,
    "slurm": slurm.scheme,
}
