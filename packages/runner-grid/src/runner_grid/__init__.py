"""runner-grid: submit jobs to SLURM, PBS or Grid Engine through `GridRunner`."""

from runner_grid.__about__ import __version__

__all__ = ["__version__"]
