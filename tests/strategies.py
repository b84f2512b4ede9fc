"""Hypothesis strategies shared by the test suites (settings trees, grid commands)."""

from __future__ import annotations

# --- settings ----------------------------------------------------------------

# --- grid --------------------------------------------------------------------
