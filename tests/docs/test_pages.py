"""The Python code blocks of the documentation pages run, in order, and their asserts hold."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

PAGES = Path(__file__).resolve().parents[2] / "docs" / "pages"

#: The pages whose code blocks are whole programs, run one after another in one namespace.
#: (Other pages show fragments and console sessions.)
RUN = ["campaigns.md", "from-plams.md", "schemes.md", "settings.md"]

_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def python_blocks(page: Path) -> list[tuple[int, str]]:
    """The ```python blocks of a page, each with the line number where its code starts."""
    text = page.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in _FENCE.finditer(text)]


def test_the_pages_to_run_exist_and_hold_code() -> None:
    for name in RUN:
        assert python_blocks(PAGES / name), f"{name} has no ```python block to run"


@pytest.mark.parametrize("name", RUN)
def test_code_blocks_run(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = PAGES / name
    monkeypatch.chdir(tmp_path)  # the examples create job folders
    namespace: dict[str, Any] = {"__name__": f"docs.{page.stem}"}
    for line, code in python_blocks(page):
        # Padded so that a traceback names the line of the page.
        compiled = compile("\n" * (line - 1) + code, os.fspath(page), "exec")
        exec(compiled, namespace)  # the page's own examples, nothing from outside
