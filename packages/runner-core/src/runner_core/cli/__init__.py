"""The `runner` command line (`runner run ...`), built on runner_core's public names only.

`main(argv)` is the console script `runner` and `python -m runner_core`. With
`--grid`, the grid runner class is found through the entry point that runner-grid
registers (group `runner_core.grid_runners`, name `GridRunner`; see `_runners`).
"""

from __future__ import annotations

from runner_core.cli._main import main

__all__ = ["main"]
