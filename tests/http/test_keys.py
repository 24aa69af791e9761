"""Access keys: which key opens which route, and only when listening beyond loopback."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

import durable as df
from durable.http.keys import KeyRing, RedactKeysFilter, is_loopback, load_keys, mask, redact
from durable.storage import open_backend
from tests.http.conftest import MGMT, Served, serving

FUNCTION, ADMIN, ANONYMOUS = "/api/function-level", "/api/admin-level", "/api/anonymous"
MANAGEMENT = f"{MGMT}/instances"


@pytest.fixture
async def locked(tmp_path: Path):
    async with serving(tmp_path, keys_required=True) as served:
        yield served


async def status_with(served: Served, path: str, key: str | None, how: str = "query") -> int:
    if key is None:
        return (await served.http.get(path)).status_code
    if how == "query":
        return (await served.http.get(path, params={"code": key})).status_code
    return (await served.http.get(path, headers={"x-functions-key": key})).status_code


@pytest.mark.parametrize("how", ["query", "header"])
async def test_each_key_opens_exactly_its_routes(locked: Served, how: str) -> None:
    keys = locked.keys
    table = {
        # path: (no key, wrong key, function key, system key, master key)
        ANONYMOUS: (200, 200, 200, 200, 200),
        FUNCTION: (401, 401, 200, 401, 200),
        ADMIN: (401, 401, 401, 401, 200),
        MANAGEMENT: (401, 401, 401, 200, 200),
    }
    for path, expected in table.items():
        got = (
            await status_with(locked, path, None),
            await status_with(locked, path, "wrong-key", how),
            await status_with(locked, path, keys.function, how),
            await status_with(locked, path, keys.system, how),
            await status_with(locked, path, keys.master, how),
        )
        assert got == expected, path


async def test_a_401_says_why_and_runs_nothing(locked: Served) -> None:
    response = await locked.http.post(f"{MGMT}/orchestrators/echo/locked-out")
    assert response.status_code == 401
    assert response.json()["Message"] == "A valid key is required."
    assert not await locked.client.get_status("locked-out")


async def test_the_openapi_document_needs_no_key(locked: Served) -> None:
    assert (await locked.http.get(f"{MGMT}/openapi.json")).status_code == 200


async def test_unknown_routes_are_404_even_without_a_key(locked: Served) -> None:
    assert (await locked.http.get("/api/nope")).status_code == 404
    assert (await locked.http.get(f"{MGMT}/nope")).status_code == 404


async def test_check_status_urls_carry_the_system_key_and_work(locked: Served) -> None:
    started = await locked.http.post("/api/start/echo/keyed", json=5)
    assert started.status_code == 202
    status_url = started.json()["statusQueryGetUri"]
    assert parse_qs(urlsplit(status_url).query)["code"] == [locked.keys.system]
    await locked.finished("keyed")
    status = await locked.http.get(status_url.replace("http://testserver", ""))
    assert status.status_code == 200 and status.json()["output"] == 5


async def test_without_the_requirement_no_key_is_needed(tmp_path: Path) -> None:
    async with serving(tmp_path, keys_required=False) as served:
        for path in (ANONYMOUS, FUNCTION, ADMIN, MANAGEMENT):
            assert (await served.http.get(path)).status_code == 200, path
        started = await served.http.post("/api/start/echo/open", json=1)
        assert "code=" not in started.json()["statusQueryGetUri"]


async def test_keys_from_the_environment_win(tmp_path: Path) -> None:
    environ = {"DURABLE_FUNCTION_KEY": "fn-from-env", "DURABLE_MASTER_KEY": "master-from-env"}
    async with serving(tmp_path, keys_required=True, environ=environ) as served:
        assert served.keys.function == "fn-from-env"
        assert served.keys.sources == {
            "function": "environment", "system": "task hub", "master": "environment"
        }
        assert await status_with(served, FUNCTION, "fn-from-env") == 200
        assert await status_with(served, ADMIN, "master-from-env") == 200


async def test_generated_keys_are_stored_once_per_task_hub(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    first, second = open_backend(url), open_backend(url)
    await first.open()
    await second.open()
    try:
        rings = await asyncio.gather(
            *(load_keys(backend, required=True, environ={})
              for backend in (first, second, first, second))
        )
    finally:
        await first.close()
        await second.close()
    assert len({(r.function, r.system, r.master) for r in rings}) == 1
    ring = rings[0]
    assert len({ring.function, ring.system, ring.master}) == 3
    assert all(len(key) >= 32 for key in (ring.function, ring.system, ring.master))


def test_a_non_ascii_key_is_refused_not_crashed() -> None:
    keys = KeyRing("f", "s", "m", required=True)
    assert not keys.allows(df.AuthLevel.FUNCTION, "ключ")
    assert keys.allows(df.AuthLevel.FUNCTION, "f") and keys.allows("system", "m")


@pytest.mark.parametrize("host,loopback", [
    ("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("::1", True),
    ("[::1]", True), ("0.0.0.0", False), ("::", False), ("", False), ("192.168.1.5", False),
    ("example.com", False),
])
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_masked_keys_cannot_be_used() -> None:
    key = "abcdefghijklmnopqrstuvwxyz0123456789"
    shown = mask(key)
    assert shown.startswith("abcd") and "efgh" not in shown


def test_keys_in_urls_are_redacted_from_log_lines() -> None:
    assert redact("GET /api/x?code=s3cret&y=1 HTTP/1.1") == "GET /api/x?code=***&y=1 HTTP/1.1"
    assert redact("/i?a=1&CODE=abc") == "/i?a=1&CODE=***"
    assert redact("/i?barcode=1") == "/i?barcode=1"
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                               '%s - "%s %s"', ("1.2.3.4", "GET", "/x?code=k3y"), None)
    assert RedactKeysFilter().filter(record)
    assert "k3y" not in record.getMessage() and "code=***" in record.getMessage()


async def test_route_auth_levels_default_to_the_app_and_blueprint_level(tmp_path: Path) -> None:
    app = df.DFApp()  # Azure's default: FUNCTION
    blueprint = df.Blueprint(http_auth_level=df.AuthLevel.ANONYMOUS)

    @app.route(route="app-default")
    def app_default(req: df.HttpRequest) -> str:
        return "app"

    @blueprint.route(route="blueprint-default")
    def blueprint_default(req: df.HttpRequest) -> str:
        return "blueprint"

    app.register_functions(blueprint)
    async with serving(tmp_path, app=app, keys_required=True) as served:
        assert await status_with(served, "/api/app-default", None) == 401
        assert await status_with(served, "/api/app-default", served.keys.function) == 200
        assert await status_with(served, "/api/blueprint-default", None) == 200
