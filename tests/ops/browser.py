"""Headless Chromium for the dashboard tests: Debian's ``chromium`` package driven by
Playwright's Python API (``executable_path``; Playwright's own browser download is not used).

``.ci/run`` installs the package; where it is missing the tests skip and say why.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


def chromium_path() -> str | None:
    configured = os.environ.get("DURABLE_TEST_CHROMIUM")
    if configured:
        return configured
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@contextmanager
def browser() -> Iterator[Any]:
    """A Playwright browser on the system Chromium, or skip with the reason."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium found: apt-get install chromium (.ci/run does)")
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        except Exception as exc:  # an unusable binary: say so rather than fail obscurely
            pytest.skip(f"Chromium at {path} does not start: {exc}")
        try:
            yield launched
        finally:
            launched.close()
