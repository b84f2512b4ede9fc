"""`python -m runner_core`: the same as the `runner` command."""

from __future__ import annotations

import sys

from runner_core.cli import main

if __name__ == "__main__":
    sys.exit(main())
