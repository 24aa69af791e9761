"""The CORS policy as Core Tools configures it (``--cors``, ``Host.CORS``): parsing, and what
a response gets. Over HTTP against real processes: tests/azure/test_host_settings.py."""

from __future__ import annotations

import httpx
import pytest
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from durable.errors import InvalidInputError
from durable.http.cors import CorsMiddleware, CorsPolicy


def test_parsing() -> None:
    assert CorsPolicy.parse("") is None and CorsPolicy.parse(" , ") is None
    listed = CorsPolicy.parse("http://localhost:3000, HTTPS://App.Example,", credentials=True)
    assert listed == CorsPolicy(frozenset({"http://localhost:3000", "https://app.example"}),
                                any_origin=False, credentials=True)
    assert CorsPolicy.parse("*") == CorsPolicy(frozenset(), any_origin=True)
    with pytest.raises(InvalidInputError, match=r"credentials cannot be allowed for any"):
        CorsPolicy.parse("http://a.example,*", credentials=True)


async def test_the_policy_replaces_headers_the_app_set_itself() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        response = Response("ok", headers={"Access-Control-Allow-Origin": "http://stale",
                                           "X-Other": "kept"})
        await response(scope, receive, send)

    policy = CorsPolicy.parse("http://a.example")
    assert policy is not None
    transport = httpx.ASGITransport(app=CorsMiddleware(app, policy))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        allowed = await client.get("/", headers={"Origin": "http://a.example"})
        assert allowed.headers.get_list("access-control-allow-origin") == ["http://a.example"]
        assert allowed.headers["x-other"] == "kept"
        untouched = await client.get("/")
        assert untouched.headers["access-control-allow-origin"] == "http://stale"
