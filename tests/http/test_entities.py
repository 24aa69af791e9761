"""The entity routes of the management API (reference §4), in-process over a real Host."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.http.conftest import MGMT, Served, eventually, serving

ENTITIES = f"{MGMT}/entities"


@pytest.fixture
async def api(tmp_path: Path):
    async with serving(tmp_path) as served:
        yield served


async def state_of(api: Served, key: str) -> object:
    response = await api.http.get(f"{ENTITIES}/counter/{key}")
    return response.json() if response.status_code == 200 else None


async def test_signal_read_and_delete_an_entity(api: Served) -> None:
    assert (await api.http.get(f"{ENTITIES}/counter/c1")).status_code == 404
    response = await api.http.post(f"{ENTITIES}/Counter/c1", params={"op": "add"}, json=5)
    assert response.status_code == 202

    async def five() -> bool:
        return await state_of(api, "c1") == 5

    await eventually(five, what="the counter at 5")
    # A body that is not application/json is passed as a string (int() accepts "3").
    response = await api.http.post(f"{ENTITIES}/counter/c1", params={"op": "add"},
                                   content=b"3", headers={"content-type": "text/plain"})
    assert response.status_code == 202

    async def eight() -> bool:
        return await state_of(api, "c1") == 8

    await eventually(eight, what="the counter at 8")
    assert (await api.http.delete(f"{ENTITIES}/counter/c1")).status_code == 202

    async def gone() -> bool:
        return (await api.http.get(f"{ENTITIES}/counter/c1")).status_code == 404

    await eventually(gone, what="the counter to be deleted")


async def test_list_entities_with_paging_and_state(api: Served) -> None:
    for key in ("a", "b", "c"):
        await api.http.post(f"{ENTITIES}/counter/{key}", params={"op": "add"}, json=1)

    async def three() -> bool:
        return len((await api.http.get(ENTITIES)).json()) == 3

    await eventually(three, what="three entities")
    first = await api.http.get(f"{ENTITIES}/counter", params={"top": 2, "fetchState": "true"})
    assert first.status_code == 200
    body = first.json()
    assert [e["entityId"] for e in body] == [{"name": "counter", "key": "a"},
                                             {"name": "counter", "key": "b"}]
    assert body[0]["state"] == 1 and body[0]["lastOperationTime"].endswith("Z")
    token = first.headers["x-ms-continuation-token"]
    rest = await api.http.get(f"{ENTITIES}/counter", params={"top": 2},
                              headers={"x-ms-continuation-token": token})
    assert [e["entityId"]["key"] for e in rest.json()] == ["c"]
    assert "state" not in rest.json()[0]
    assert "x-ms-continuation-token" not in rest.headers


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/counter/k", {"params": {"op": "add"}, "content": b"{bad",
                                "headers": {"content-type": "application/json"}}),
        ("POST", "/unknown/k", {"params": {"op": "add"}, "json": 1}),
        ("POST", "/counter/%24", {"params": {"op": "add"}}),
        ("GET", "/counter/a%00b", {}),
        ("GET", "/bad%40name", {}),
        ("GET", "", {"params": {"top": "0"}}),
        ("GET", "", {"params": {"lastOperationTimeFrom": "yesterday"}}),
        ("GET", "", {"headers": {"x-ms-continuation-token": "%%%"}}),
    ],
)
async def test_bad_entity_requests_are_400(api: Served, method: str, path: str,
                                           kwargs: dict) -> None:
    response = await api.http.request(method, f"{ENTITIES}{path}", **kwargs)
    assert response.status_code == 400, response.text
    assert "Message" in response.json()


async def test_entity_routes_need_a_key_beyond_loopback(tmp_path: Path) -> None:
    async with serving(tmp_path, keys_required=True) as api:
        assert (await api.http.get(ENTITIES)).status_code == 401
        response = await api.http.get(ENTITIES, params={"code": api.keys.system})
        assert response.status_code == 200
