"""Make the dashboard screenshots of docs/operations.md (not a test):

    python -m tests.ops.screenshots docs/images

Starts ``durable run`` on the operator test app with a fresh SQLite file, runs a few
orchestrations, and saves the list page and an instance page with Debian's Chromium.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.http.conftest import DurableRun
from tests.ops.browser import browser
from tests.ops.test_dashboard import APP, settled, start, waiting_for_approval


def main(folder: str) -> None:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, DurableRun(
        APP, "--storage", f"sqlite:///{Path(tmp) / 'shots.db'}"
    ) as run:
        base = run.base
        for name, data in (("hello", None), ("failing", 3), ("hello", None), ("retrying", None)):
            instance_id = start(base, name, data)
        parent = start(base, "parent")
        settled(base, parent, "Completed")
        approval = start(base, "approval")
        waiting_for_approval(base, approval)
        settled(base, instance_id, "Failed")
        with browser() as chromium:
            page = chromium.new_page(viewport={"width": 1200, "height": 560})
            page.goto(f"{base}/dashboard/")
            page.screenshot(path=str(out / "dashboard-list.png"))
            page.set_viewport_size({"width": 1200, "height": 1000})
            page.goto(f"{base}/dashboard/instances/{parent}")
            page.screenshot(path=str(out / "dashboard-instance.png"))
        run.stop()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/images")
