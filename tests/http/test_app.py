"""The guards in front of every route: the body-size limit and odd requests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.http.conftest import MGMT, Served, serving

LIMIT = 1024


@pytest.fixture
async def api(tmp_path: Path):
    async with serving(tmp_path, max_request_body=LIMIT) as served:
        yield served


def body_of(size: int) -> bytes:
    text = json.dumps("x" * (size - 2))
    assert len(text) == size
    return text.encode()


@pytest.mark.parametrize("path", [f"{MGMT}/orchestrators/echo/big", "/api/start/echo/big",
                                  f"{MGMT}/instances/big/raiseEvent/go"])
async def test_a_body_over_the_limit_is_413(api: Served, path: str) -> None:
    response = await api.http.post(path, content=body_of(LIMIT + 1),
                                   headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert str(LIMIT) in response.json()["Message"]
    assert not await api.client.get_status("big")


async def test_a_body_at_the_limit_is_accepted(api: Served) -> None:
    response = await api.http.post(f"{MGMT}/orchestrators/echo/fits", content=body_of(LIMIT))
    assert response.status_code == 202
    assert (await api.finished("fits")).output == "x" * (LIMIT - 2)


async def test_a_streamed_body_is_cut_off_at_the_limit(api: Served) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'"'
        for _ in range(LIMIT):
            yield b"x"
        yield b'"'

    response = await api.http.post(f"{MGMT}/orchestrators/echo/streamed", content=chunks())
    assert response.status_code == 413
    assert not await api.client.get_status("streamed")


async def call_raw(api: Served, scope_changes: dict, body: bytes = b"") -> tuple[int, bytes]:
    """Call the ASGI app directly with a hand-made scope (for requests httpx will not send)."""
    asgi = api.http._transport.app  # type: ignore[attr-defined]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": f"{MGMT}/orchestrators/echo/raw",
        "raw_path": f"{MGMT}/orchestrators/echo/raw".encode(), "query_string": b"",
        "headers": [(b"host", b"testserver")], "server": ("testserver", 80),
        "client": ("127.0.0.1", 5000), "root_path": "",
    }
    scope.update(scope_changes)
    sent: list[dict] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    await asgi(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, content


async def test_a_non_numeric_content_length_is_400(api: Served) -> None:
    status, content = await call_raw(
        api, {"headers": [(b"host", b"testserver"), (b"content-length", b"lots")]}
    )
    assert status == 400 and b"Content-Length" in content


async def test_a_declared_length_over_the_limit_is_413_before_reading(api: Served) -> None:
    status, _ = await call_raw(
        api, {"headers": [(b"host", b"testserver"), (b"content-length", b"999999999")]}
    )
    assert status == 413


async def test_a_scope_without_raw_path_still_routes(api: Served) -> None:
    status, content = await call_raw(api, {"raw_path": None}, b"7")
    assert status == 202 and json.loads(content)["id"] == "raw"


async def test_lifespan_and_websocket_scopes_are_handled(api: Served) -> None:
    asgi = api.http._transport.app  # type: ignore[attr-defined]
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict] = []

    async def receive() -> dict:
        return incoming.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    await asgi({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete",
                                         "lifespan.shutdown.complete"]
    await asgi({"type": "websocket"}, receive, send)  # ignored: no websockets
    assert len(sent) == 2
