"""User HTTP routes: templates, request and response conversion, error mapping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import durable as df
from durable.http.routes import compile_template
from tests.http.conftest import MGMT, Served, serving


@pytest.fixture
async def api(tmp_path: Path):
    async with serving(tmp_path) as served:
        yield served


# -- templates ------------------------------------------------------------------------------


@pytest.mark.parametrize("template,path,expected", [
    ("orchestrators/{functionName}/{instanceId}", "/orchestrators/f/i",
     {"functionName": "f", "instanceId": "i"}),
    ("orchestrators/{functionName}/{instanceId}", "/Orchestrators/f/i/",
     {"functionName": "f", "instanceId": "i"}),
    ("orchestrators/{functionName}/{instanceId}", "/orchestrators/f", None),
    ("orchestrators/{functionName}/{instanceId?}", "/orchestrators/f", {"functionName": "f"}),
    ("orchestrators/{functionName}/{instanceId?}", "/orchestrators/f/i",
     {"functionName": "f", "instanceId": "i"}),
    ("items/{id:int}", "/items/42", {"id": "42"}),
    ("items/{id:int}", "/items/x", None),
    ("items/{id:int}", "/items/99999999999", None),
    ("items/{id:long}", "/items/99999999999", {"id": "99999999999"}),
    ("items/{id:int:min(10)}", "/items/9", None),
    ("items/{id:range(1,5)}", "/items/5", {"id": "5"}),
    ("items/{id:range(1,5)}", "/items/6", None),
    ("files/{*path}", "/files/a/b/c.txt", {"path": "a/b/c.txt"}),
    ("files/{*path}", "/files", {}),
    ("page/{n=1}", "/page", {"n": "1"}),
    ("page/{n=1}", "/page/7", {"n": "7"}),
    ("users/{name:alpha:maxlength(3)}", "/users/bob", {"name": "bob"}),
    ("users/{name:alpha:maxlength(3)}", "/users/bobby", None),
    ("ids/{id:guid}", "/ids/0f8fad5b-d9cb-469f-a165-70867728950e",
     {"id": "0f8fad5b-d9cb-469f-a165-70867728950e"}),
    ("flags/{on:bool}", "/flags/TRUE", {"on": "TRUE"}),
    ("file/{name}.{ext}", "/file/report.pdf", {"name": "report", "ext": "pdf"}),
    ("when/{at:datetime}", "/when/2024-05-01", {"at": "2024-05-01"}),
    ("when/{at:datetime}", "/when/soon", None),
    ("", "/", {}),
])
def test_route_templates(template: str, path: str, expected: dict | None) -> None:
    assert compile_template(template).match(path) == expected


@pytest.mark.parametrize("template", [
    "a/{b", "a/b}", "a/{}", "a/{x:nonsense}", "a/{*rest}/b", "a/{x}/{x}", "a//b",
    "a/{x?}.txt", "a/{x:regex(()}", "a/{x:min(a)}",
])
def test_malformed_templates_are_rejected_up_front(template: str) -> None:
    with pytest.raises(df.InvalidInputError):
        compile_template(template)


# -- requests and responses -----------------------------------------------------------------


async def test_handlers_get_an_azure_style_request(api: Served) -> None:
    response = await api.http.post(
        "/api/inspect/deep/path", params={"q": "1", "r": "two"}, json={"k": "v"}
    )
    assert response.status_code == 200
    seen = response.json()
    assert seen["method"] == "POST"
    assert seen["url"] == "http://testserver/api/inspect/deep/path?q=1&r=two"
    assert seen["params"] == {"q": "1", "r": "two"}
    assert seen["route_params"] == {"rest": "deep/path"}
    assert seen["content_type"] == "application/json"
    assert json.loads(seen["body"]) == {"k": "v"}


async def test_the_most_specific_route_wins(api: Served) -> None:
    assert (await api.http.get("/api/items/special")).json() == {"kind": "literal"}
    assert (await api.http.get("/api/items/12")).json() == {"kind": "number", "id": "12"}
    assert (await api.http.get("/api/items/abc")).json() == {"kind": "name", "id": "abc"}


@pytest.mark.parametrize("kind,status,content_type,body", [
    ("text", 200, "text/plain; charset=utf-8", b"text"),
    ("none", 204, None, b""),
    ("bytes", 200, "application/octet-stream", b"\x00\x01"),
    ("list", 200, "application/json", b"[1,2,3]"),
    ("response", 201, "text/plain; charset=utf-8", b"made"),
    ("json", 200, "application/json", b'{"a":1}'),
])
async def test_return_values_become_responses(
    api: Served, kind: str, status: int, content_type: str | None, body: bytes
) -> None:
    response = await api.http.get(f"/api/returns/{kind}")
    assert response.status_code == status
    assert response.headers.get("content-type") == content_type
    assert response.content == body
    if kind == "response":
        assert response.headers["x-made"] == "yes"


async def test_a_crashing_handler_is_500_without_details(api: Served) -> None:
    response = await api.http.get("/api/returns/crash")
    assert response.status_code == 500
    assert "a bug in the handler" not in response.text
    assert response.json()["Message"] == "Something went wrong while processing your request"


async def test_invalid_json_escaping_a_handler_is_400(api: Served) -> None:
    response = await api.http.post("/api/returns/parse", content=b"{nope")
    assert response.status_code == 400
    assert response.json()["ExceptionType"] == "InvalidRequestBodyError"


async def test_unmatched_routes_and_methods_are_404(api: Served) -> None:
    assert (await api.http.get("/api/no/such/route")).status_code == 404
    assert (await api.http.get("/api/start/echo/x")).status_code == 404  # POST only
    assert (await api.http.get("/elsewhere")).status_code == 404


async def test_the_route_prefix_is_configurable(tmp_path: Path) -> None:
    from durable.http.app import create_app

    async with serving(tmp_path) as served:
        asgi = create_app(served.host.app, served.client, keys=served.keys, route_prefix="")
        import httpx

        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            assert (await http.get("/anonymous")).text == "anonymous ok"
            assert (await http.get("/api/anonymous")).status_code == 404
            assert (await http.get(f"{MGMT}/instances")).status_code == 200


# -- starting from a route ------------------------------------------------------------------


async def test_start_from_a_route_returns_the_check_status_response(api: Served) -> None:
    response = await api.http.post("/api/start/echo/from-route", json={"x": 1})
    assert response.status_code == 202
    payload = response.json()
    # Python SDK shape: 9 keys including rewindPostUri, origin of the incoming request.
    assert len(payload) == 9 and "rewindPostUri" in payload
    assert payload["statusQueryGetUri"].startswith(f"http://testserver{MGMT}/instances/from-route?")
    assert response.headers["location"] == payload["statusQueryGetUri"]
    assert response.headers["retry-after"] == "10"
    assert (await api.finished("from-route")).output == {"x": 1}


async def test_instance_already_exists_escaping_a_route_is_409_json(api: Served) -> None:
    assert (await api.http.post("/api/start/wait_for_go/dup")).status_code == 202
    response = await api.http.post("/api/start/wait_for_go/dup")
    assert response.status_code == 409
    body = response.json()
    assert body["ExceptionType"] == "InstanceAlreadyExistsError"
    assert body["instanceId"] == "dup"


async def test_bad_input_escaping_a_route_is_400(api: Served) -> None:
    unknown = await api.http.post("/api/start/nope/x")
    assert unknown.status_code == 400
    assert unknown.json()["ExceptionType"] == "FunctionNotFoundError"
    bad_id = await api.http.post("/api/start/echo/@entity")
    assert bad_id.status_code == 400


async def test_wait_for_completion_or_check_status(api: Served) -> None:
    done = await api.http.post("/api/run/doubler", json=4)
    assert done.status_code == 200 and done.json() == 8
    text = await api.http.post("/api/run/echo", json="plain")
    assert text.status_code == 200 and text.content == b"plain"  # a str output is sent as is
    failed = await api.http.post("/api/run/fails", content=b"null")
    assert failed.status_code == 500 and failed.json()["runtimeStatus"] == "Failed"
    waiting = await api.http.post("/api/run/wait_for_go?timeout=50", content=b"null")
    assert waiting.status_code == 202 and "statusQueryGetUri" in waiting.json()


async def test_management_payload_uses_the_server_origin(api: Served) -> None:
    payload = (await api.http.get("/api/links/some%20id")).json()
    assert payload["id"] == "some id"
    assert payload["statusQueryGetUri"] == (
        f"http://origin.example:7071{MGMT}/instances/some%20id?taskHub=default&connection=Storage"
    )


def test_request_and_response_types() -> None:
    request = df.HttpRequest(
        "post", "http://h/api/x?a=1", headers={"X-Thing": "v"}, params={"a": "1"},
        route_params={"id": "7"}, body='{"k": 1}',
    )
    assert request.method == "POST"
    assert request.headers["x-thing"] == "v" and "X-THING" in request.headers
    assert request.get_json() == {"k": 1} and request.route_params == {"id": "7"}
    with pytest.raises(ValueError):
        df.HttpRequest("GET", "http://h", body=b"nope").get_json()
    response = df.HttpResponse("hi", status_code=201, mimetype="text/html")
    assert response.get_body() == b"hi" and response.status_code == 201
    assert response.mimetype == "text/html" and response.charset == "utf-8"
    with pytest.raises(df.InvalidInputError):
        df.HttpResponse(status_code=99)
    with pytest.raises(TypeError):
        df.HttpResponse(body={"a": 1})  # type: ignore[arg-type]
