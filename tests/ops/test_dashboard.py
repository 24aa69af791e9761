"""The web dashboard in a real headless browser, against a real ``durable run`` process:
list, filter, open an instance, read its timeline, raise an event and terminate from the page,
see the state change; and the key it demands beyond loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.http.conftest import MGMT, TIMEOUT, DurableRun, wait_until
from tests.ops.browser import browser

APP = Path(__file__).with_name("ops_app.py")
SYSTEM_KEY = "dashboard-system-key-0123456789abcdef"


def start(base: str, name: str, data: Any = None, key: str | None = None) -> str:
    headers = {"x-functions-key": key} if key else {}
    response = httpx.post(f"{base}{MGMT}/orchestrators/{name}", json=data, headers=headers)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def status(base: str, instance_id: str, key: str | None = None) -> dict[str, Any]:
    headers = {"x-functions-key": key} if key else {}
    response = httpx.get(f"{base}{MGMT}/instances/{instance_id}", headers=headers)
    assert response.status_code in (200, 202), response.text
    return dict(response.json())


def settled(base: str, instance_id: str, wanted: str, key: str | None = None) -> None:
    wait_until(lambda: status(base, instance_id, key)["runtimeStatus"] == wanted,
               what=f"{instance_id} to be {wanted}")


def waiting_for_approval(base: str, instance_id: str, key: str | None = None) -> None:
    wait_until(lambda: status(base, instance_id, key).get("customStatus"),
               what=f"{instance_id} to wait for its event")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DurableRun]:
    storage = f"sqlite:///{tmp_path_factory.mktemp('dash') / 'hub.db'}"
    with DurableRun(APP, "--storage", storage) as run:
        yield run
        run.stop()


def badge_becomes(page: Any, wanted: str) -> None:
    """Reload until the instance page's status badge reads ``wanted``."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        text = page.locator("#instance-status .badge").inner_text()
        if text == wanted:
            return
        assert time.monotonic() < deadline, f"status stayed {text}, wanted {wanted}"
        page.wait_for_timeout(100)
        page.reload()


def test_list_filter_timeline_raise_and_terminate(server: DurableRun) -> None:
    base = server.base
    done = [start(base, "hello"), start(base, "hello")]
    failed = start(base, "failing", 5)
    approvals = [start(base, "approval"), start(base, "approval")]
    for instance_id in done:
        settled(base, instance_id, "Completed")
    settled(base, failed, "Failed")
    for instance_id in approvals:
        waiting_for_approval(base, instance_id)
    with browser() as chromium:
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        page.on("dialog", lambda dialog: dialog.accept())
        page.goto(f"{base}/dashboard/")
        rows = page.locator("#instances tbody tr")
        assert rows.count() >= 5
        assert page.locator('.count[data-status="Failed"] b').inner_text() == "1"
        # Filter by status.
        page.select_option("#filter-status", "Failed")
        page.click("#apply-filters")
        page.wait_for_url("**status=Failed**")
        assert rows.count() == 1 and failed in rows.first.inner_text()
        # Filter by name (any status): the two approvals, newest first.
        page.select_option("#filter-status", "")
        page.fill("#filter-name", "approval")
        page.click("#apply-filters")
        page.wait_for_url("**name=approval**")
        ids = [rows.nth(i).locator("td").first.inner_text() for i in range(rows.count())]
        assert ids == approvals[::-1]
        # Open an instance: details and timeline.
        page.click(f"text={approvals[0]}")
        page.wait_for_selector("#timeline")
        assert page.locator("#instance-id").inner_text() == approvals[0]
        assert page.locator("#instance-status .badge").inner_text() == "Running"
        assert "waiting for approval" in page.locator("#custom-status").inner_text()
        kinds = page.locator("#timeline .row").evaluate_all(
            "rows => rows.map(r => r.dataset.kind + ':' + r.dataset.outcome)")
        assert kinds[0] == "orchestration:running"
        assert "activity:completed" in kinds and "timer:running" in kinds
        # Raise the event from the page; the orchestration completes with its payload.
        page.fill("#event-name", "Approval")
        page.fill("#event-data", '{"by": "dashboard"}')
        page.click("#raise-event")
        badge_becomes(page, "Completed")
        assert '"by": "dashboard"' in page.locator("#output").inner_text()
        assert status(base, approvals[0])["output"] == {"approved": {"by": "dashboard"}}
        assert page.locator('#timeline .row[data-kind="event"]').count() == 1
        # Terminate the other one from its page.
        page.goto(f"{base}/dashboard/instances/{approvals[1]}")
        page.fill("#reason", "not needed")
        page.click("#terminate")
        badge_becomes(page, "Terminated")
        assert status(base, approvals[1])["output"] == "not needed"
        # A failed instance shows its failure with the user's frames.
        page.goto(f"{base}/dashboard/instances/{failed}")
        failure = page.locator("#failure").inner_text()
        assert "cannot handle 5" in failure and "ops_app.py" in failure
        assert "durable/orchestration" not in failure


def test_a_refused_suspend_or_resume_shows_why(server: DurableRun) -> None:
    """A page that still offers Suspend for an instance suspended meanwhile (by another user,
    or the CLI): the click is refused (409) and the page says why, in its message box."""
    base = server.base
    instance_id = start(base, "approval")
    waiting_for_approval(base, instance_id)
    with browser() as chromium:
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        page.on("dialog", lambda dialog: dialog.accept())
        page.goto(f"{base}/dashboard/instances/{instance_id}")
        assert page.locator("#suspend").count() == 1
        behind = httpx.post(f"{base}{MGMT}/instances/{instance_id}/suspend")
        assert behind.status_code == 202, behind.text
        settled(base, instance_id, "Suspended")
        page.click("#suspend")
        message = page.locator("#message.error")
        message.wait_for()
        assert message.inner_text() == (
            f"Cannot suspend the orchestration instance '{instance_id}' because it is "
            "Suspended; only a Running or Pending instance can be suspended.")
    # The action API itself: 409 with the reason, for a resume of a Running instance too.
    action = f"{base}/dashboard/api/instances/{instance_id}"
    marked = {"X-Durable-Dashboard": "1"}
    assert httpx.post(f"{action}/resume", json={}, headers=marked).status_code == 200
    settled(base, instance_id, "Running")
    again = httpx.post(f"{action}/resume", json={}, headers=marked)
    assert again.status_code == 409 and "because it is Running" in again.json()["message"]
    assert httpx.post(f"{action}/terminate", json={}, headers=marked).status_code == 200
    settled(base, instance_id, "Terminated")


def test_purge_and_restart_from_the_page(server: DurableRun) -> None:
    base = server.base
    instance_id = start(base, "hello")
    settled(base, instance_id, "Completed")
    with browser() as chromium:
        page = chromium.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        page.goto(f"{base}/dashboard/instances/{instance_id}")
        page.click("#restart")
        page.wait_for_url(lambda url: instance_id not in url)
        restarted = page.locator("#instance-id").inner_text()
        assert restarted != instance_id
        settled(base, restarted, "Completed")
        page.goto(f"{base}/dashboard/instances/{instance_id}")
        page.click("#purge")
        page.wait_for_url(f"{base}/dashboard/")
        response = httpx.get(f"{base}{MGMT}/instances/{instance_id}")
        assert response.status_code == 404
        page.goto(f"{base}/dashboard/instances/{instance_id}")
        assert "No instance has the ID" in page.content()


def test_a_key_is_demanded_beyond_loopback(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'keyed.db'}"
    env = {"DURABLE_SYSTEM_KEY": SYSTEM_KEY, "DURABLE_FUNCTION_KEY": "function-key-0123456789"}
    with DurableRun(APP, "--storage", storage, "--host", "0.0.0.0", env=env) as run:
        base = run.base
        instance_id = start(base, "approval", key=SYSTEM_KEY)
        waiting_for_approval(base, instance_id, SYSTEM_KEY)
        # Without a key: the login page, and no action.
        assert httpx.get(f"{base}/dashboard/").status_code == 401
        page_url = f"{base}/dashboard/instances/{instance_id}"
        assert httpx.get(page_url).status_code == 401
        assert httpx.get(page_url, params={"code": env["DURABLE_FUNCTION_KEY"]}
                         ).status_code == 401
        action = f"{base}/dashboard/api/instances/{instance_id}/terminate"
        marked = {"X-Durable-Dashboard": "1"}
        assert httpx.post(action, json={}, headers=marked).status_code == 401
        assert httpx.post(action, json={}, headers={"x-functions-key": SYSTEM_KEY}
                          ).status_code == 403  # not from the page
        assert status(base, instance_id, SYSTEM_KEY)["runtimeStatus"] == "Running"
        with browser() as chromium:
            page = chromium.new_page()
            page.on("dialog", lambda dialog: dialog.accept())
            response = page.goto(f"{base}/dashboard/")
            assert response is not None and response.status == 401
            page.fill("#key", "not-the-key")
            page.press("#key", "Enter")
            page.wait_for_selector("#key")
            assert "not valid" in page.content()
            page.fill("#key", SYSTEM_KEY)
            page.press("#key", "Enter")
            page.wait_for_selector("#instances")
            # The cookie carries the key from here on: pages and actions work.
            page.goto(page_url)
            page.click("#terminate")
            badge_becomes(page, "Terminated")
        run.stop()
