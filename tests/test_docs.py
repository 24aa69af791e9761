"""The documentation, checked against the code: docs/architecture.md names every module under
durable/, and the examples of docs/testing.md run (tests/testing/test_docs_testing.py)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_architecture_page_names_every_module() -> None:
    text = (REPO / "docs" / "architecture.md").read_text()
    missing = []
    for path in sorted((REPO / "durable").rglob("*.py")):
        relative = path.relative_to(REPO).as_posix()
        if relative == "durable/__init__.py":
            continue
        if path.name == "__init__.py" and not ast.get_docstring(ast.parse(path.read_text())):
            continue  # an empty package marker
        if f"`{relative}`" not in text:
            missing.append(relative)
    assert not missing, f"docs/architecture.md: give these modules a line: {missing}"
