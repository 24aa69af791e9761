"""The management API's routes, status codes, headers and JSON (reference §4), in-process."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

import durable as df
from tests.http.conftest import MGMT, Served, Status, eventually, serving

STATUS_KEYS = [
    "name", "instanceId", "runtimeStatus", "input", "customStatus", "output", "createdTime",
    "lastUpdatedTime",
]
PAYLOAD_KEYS = {
    "id", "statusQueryGetUri", "sendEventPostUri", "terminatePostUri", "purgeHistoryDeleteUri",
    "restartPostUri", "suspendPostUri", "resumePostUri",
}


@pytest.fixture
async def api(tmp_path: Path):
    async with serving(tmp_path) as served:
        yield served


async def start(api: Served, name: str, instance_id: str | None = None, body: object = None,
                **params: str) -> httpx.Response:
    path = f"{MGMT}/orchestrators/{name}" + (f"/{instance_id}" if instance_id else "")
    content = json.dumps(body) if body is not None else None
    return await api.http.post(path, content=content, params=params)


async def running(api: Served, instance_id: str) -> None:
    async def check() -> bool:
        status = await api.client.get_status(instance_id)
        return status.runtime_status is Status.Running
    await eventually(check, what=f"{instance_id} running")


# -- start ----------------------------------------------------------------------------------


async def test_start_answers_202_with_the_check_status_payload(api: Served) -> None:
    response = await start(api, "echo", body={"a": [1, 2]})
    assert response.status_code == 202
    payload = response.json()
    assert set(payload) == PAYLOAD_KEYS  # the host's own start response has no rewindPostUri
    instance_id = payload["id"]
    assert response.headers["location"] == payload["statusQueryGetUri"]
    assert response.headers["retry-after"] == "10"
    assert payload["statusQueryGetUri"] == (
        f"http://testserver{MGMT}/instances/{instance_id}?taskHub=default&connection=Storage"
    )
    assert payload["sendEventPostUri"].endswith(
        f"/instances/{instance_id}/raiseEvent/{{eventName}}?taskHub=default&connection=Storage"
    )
    assert "/terminate?reason={text}&taskHub=" in payload["terminatePostUri"]
    status = await api.finished(instance_id)
    # Raw JSON in, raw JSON out: no double encoding.
    assert status.input_ == {"a": [1, 2]} and status.output == {"a": [1, 2]}


async def test_start_matches_the_function_name_ignoring_case(api: Served) -> None:
    response = await start(api, "DOUBLER", "shouted", body=21)
    assert response.status_code == 202
    status = await api.finished("shouted")
    assert status.output == 42 and status.name == "doubler"  # the registered spelling


async def test_start_with_an_id_and_no_body(api: Served) -> None:
    response = await start(api, "echo", "my-id")
    assert response.status_code == 202
    assert response.json()["id"] == "my-id"
    status = await api.finished("my-id")
    assert status.runtime_status is Status.Completed and status.output is None


@pytest.mark.parametrize("body", [b"{not json", b'{"a": 1', b"\xff\xfe", b"[1,]", b"NaN",
                                  b'{"x": -Infinity}', b"[" * 100_000])
async def test_start_with_invalid_json_is_400_and_starts_nothing(api: Served, body: bytes):
    response = await api.http.post(f"{MGMT}/orchestrators/echo/bad-json", content=body)
    assert response.status_code == 400
    assert response.json()["Message"].startswith("Invalid JSON content")
    assert not await api.client.get_status("bad-json")


@pytest.mark.parametrize("raw_id", ["@entity", "a%2Fb", "a%3Fb", "a%23b", "a%5Cb", "x%01y",
                                    "i" * 257])
async def test_start_with_a_bad_instance_id_is_400(api: Served, raw_id: str) -> None:
    response = await api.http.post(f"{MGMT}/orchestrators/echo/{raw_id}")
    assert response.status_code == 400
    body = response.json()
    assert body["ExceptionType"] == "InvalidInstanceIdError"
    assert await api.client.get_status_all() == []


async def test_start_of_an_unknown_orchestrator_is_400(api: Served) -> None:
    response = await start(api, "no_such_thing", "x")
    assert response.status_code == 400
    assert "no_such_thing" in response.json()["ExceptionMessage"]


async def test_start_of_a_running_id_is_409_and_changes_nothing(api: Served) -> None:
    assert (await start(api, "wait_for_go", "single", body=1)).status_code == 202
    await running(api, "single")
    before = await api.client.get_status("single")
    response = await start(api, "wait_for_go", "single", body=2)
    assert response.status_code == 409
    body = response.json()
    assert body["ExceptionType"] == "InstanceAlreadyExistsError"
    assert body["instanceId"] == "single" and body["runtimeStatus"] == "Running"
    after = await api.client.get_status("single")
    assert after.input_ == 1 and after.created_time == before.created_time


async def test_start_of_a_finished_id_replaces_it(api: Served) -> None:
    assert (await start(api, "echo", "again", body="first")).status_code == 202
    await api.finished("again")
    assert (await start(api, "echo", "again", body="second")).status_code == 202
    assert (await api.finished("again")).output == "second"


async def test_start_and_wait_answers_with_the_result(api: Served) -> None:
    done = await start(api, "doubler", body=21, timeout="10", pollingInterval="0.01")
    assert done.status_code == 200 and done.json() == 42
    failed = await start(api, "fails", timeout="10", pollingInterval="0.01")
    assert failed.status_code == 200 and failed.json()["runtimeStatus"] == "Failed"
    failed500 = await start(api, "fails", timeout="10", pollingInterval="0.01",
                            returnInternalServerErrorOnFailure="true")
    assert failed500.status_code == 500 and failed500.json()["runtimeStatus"] == "Failed"
    text = await start(api, "echo", body="words", timeout="10", pollingInterval="0.01")
    assert text.status_code == 200 and text.content == b'"words"'  # JSON, unlike the SDK helper
    pending = await start(api, "wait_for_go", timeout="0.05", pollingInterval="0.01")
    assert pending.status_code == 202 and set(pending.json()) == PAYLOAD_KEYS


@pytest.mark.parametrize("params", [
    {"timeout": "soon", "pollingInterval": "1"},
    {"timeout": "1", "pollingInterval": "2"},
    {"timeout": "-1", "pollingInterval": "0"},
    {"timeout": "nan", "pollingInterval": "0"},
    {"timeout": "1e9", "pollingInterval": "0"},
])
async def test_start_with_bad_wait_parameters_is_400(api: Served, params: dict) -> None:
    response = await start(api, "echo", "w", **params)
    assert response.status_code == 400
    assert not await api.client.get_status("w")


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
async def test_start_route_with_another_verb_is_404(api: Served, method: str) -> None:
    response = await api.http.request(method, f"{MGMT}/orchestrators/echo/x")
    assert response.status_code == 404


# -- status ---------------------------------------------------------------------------------


async def test_status_of_an_unknown_instance_is_404_with_an_empty_body(api: Served) -> None:
    response = await api.http.get(f"{MGMT}/instances/nobody")
    assert response.status_code == 404 and response.content == b""


async def test_status_of_a_running_instance_is_202_with_location(api: Served) -> None:
    await start(api, "wait_for_go", "r1", body={"in": True})
    await running(api, "r1")
    url = f"{MGMT}/instances/r1?taskHub=default"
    response = await api.http.get(url)
    assert response.status_code == 202
    assert response.headers["location"] == f"http://testserver{url}"
    assert response.headers["retry-after"] == "5"
    body = response.json()
    assert list(body) == STATUS_KEYS
    assert body["runtimeStatus"] == "Running" and body["input"] == {"in": True}
    assert body["customStatus"] == {"waiting": "go"}
    assert body["createdTime"].endswith("Z") and len(body["createdTime"]) == 20
    hidden = await api.http.get(f"{MGMT}/instances/r1", params={"showInput": "false"})
    assert hidden.json()["input"] is None


async def test_status_with_history(api: Served) -> None:
    await start(api, "doubler", "h1", body=5)
    await api.finished("h1")
    plain = (await api.http.get(f"{MGMT}/instances/h1?showHistory=true")).json()
    kinds = [event["EventType"] for event in plain["historyEvents"]]
    assert kinds[0] == "ExecutionStarted" and "TaskCompleted" in kinds
    assert kinds[-1] == "ExecutionCompleted"
    assert all("Result" not in event for event in plain["historyEvents"])
    full = await api.http.get(f"{MGMT}/instances/h1",
                              params={"showHistory": "True", "showHistoryOutput": "TRUE"})
    completed = [e for e in full.json()["historyEvents"] if e["EventType"] == "TaskCompleted"]
    assert completed[0]["FunctionName"] == "double" and completed[0]["Result"] == 10
    assert "historyEvents" not in (await api.http.get(f"{MGMT}/instances/h1")).json()


async def test_status_of_finished_instances(api: Served) -> None:
    await start(api, "echo", "ok", body=1)
    await start(api, "fails", "bad")
    await api.finished("ok")
    await api.finished("bad")
    ok = await api.http.get(f"{MGMT}/instances/ok")
    assert ok.status_code == 200 and ok.json()["output"] == 1
    assert "location" not in ok.headers
    bad = await api.http.get(f"{MGMT}/instances/bad")
    assert bad.status_code == 200 and bad.json()["runtimeStatus"] == "Failed"
    assert "boom" in bad.json()["output"]
    bad500 = await api.http.get(f"{MGMT}/instances/bad?returnInternalServerErrorOnFailure=true")
    assert bad500.status_code == 500 and bad500.json()["runtimeStatus"] == "Failed"


@pytest.mark.parametrize("flag", ["showHistory", "showHistoryOutput", "showInput",
                                  "returnInternalServerErrorOnFailure"])
async def test_status_with_a_bad_boolean_is_400(api: Served, flag: str) -> None:
    response = await api.http.get(f"{MGMT}/instances/x", params={flag: "maybe"})
    assert response.status_code == 400 and flag in response.json()["Message"]


# -- list and query -------------------------------------------------------------------------


async def test_list_pages_with_continuation_tokens(api: Served) -> None:
    for n in range(5):
        await start(api, "echo", f"page-{n}", body=n)
    for n in range(5):
        await api.finished(f"page-{n}")
    seen: list[str] = []
    headers: dict[str, str] = {}
    pages = 0
    while True:
        response = await api.http.get(f"{MGMT}/instances", params={"top": "2"}, headers=headers)
        assert response.status_code == 200
        pages += 1
        seen += [item["instanceId"] for item in response.json()]
        token = response.headers.get("x-ms-continuation-token")
        if not token:
            break
        headers = {"x-ms-continuation-token": token}
    assert pages == 3 and sorted(seen) == [f"page-{n}" for n in range(5)]
    everything = await api.http.get(f"{MGMT}/instances/")
    assert len(everything.json()) == 5 and "x-ms-continuation-token" not in everything.headers
    assert all(list(item) == STATUS_KEYS for item in everything.json())


async def test_list_filters(api: Served) -> None:
    await start(api, "echo", "alpha-1", body=1)
    await start(api, "fails", "alpha-2")
    await start(api, "wait_for_go", "beta-1")
    await api.finished("alpha-1")
    await api.finished("alpha-2")
    await running(api, "beta-1")

    async def ids(**params: object) -> list[str]:
        response = await api.http.get(f"{MGMT}/instances", params=params)
        assert response.status_code == 200, response.text
        return sorted(item["instanceId"] for item in response.json())

    assert await ids(instanceIdPrefix="alpha") == ["alpha-1", "alpha-2"]
    assert await ids(runtimeStatus="Completed,failed") == ["alpha-1", "alpha-2"]
    assert await ids(runtimeStatus=["Running", "Failed"]) == ["alpha-2", "beta-1"]
    assert await ids(createdTimeFrom="2000-01-01T00:00:00Z") == ["alpha-1", "alpha-2", "beta-1"]
    assert await ids(createdTimeTo="2000-01-01T00:00:00Z") == []
    hidden = await api.http.get(f"{MGMT}/instances", params={"showInput": "false"})
    assert all(item["input"] is None for item in hidden.json())


async def test_the_id_prefix_is_literal_and_case_sensitive(api: Served) -> None:
    """instanceIdPrefix is a key range (durable/storage/keys.py): '%' and '_' are no
    wildcards, case and accents count, and entities never appear."""
    for instance_id in ("50%-off", "50_x", "500", "Émile-1", "émile-2", "日本-1"):
        await api.client.start_new("echo", instance_id, 1)
    await api.client.signal_entity(df.EntityId("counter", "50%"), "add", 1)

    async def ids(prefix: str) -> list[str]:
        response = await api.http.get(f"{MGMT}/instances",
                                      params={"instanceIdPrefix": prefix, "top": "2"})
        assert response.status_code == 200, response.text
        found = [item["instanceId"] for item in response.json()]
        token = response.headers.get("x-ms-continuation-token")
        while token:
            response = await api.http.get(f"{MGMT}/instances", params={
                "instanceIdPrefix": prefix, "top": "2"},
                headers={"x-ms-continuation-token": token})
            found += [item["instanceId"] for item in response.json()]
            token = response.headers.get("x-ms-continuation-token")
        return sorted(found)

    assert await ids("50%") == ["50%-off"]
    assert await ids("50_") == ["50_x"]
    assert await ids("50") == ["50%-off", "500", "50_x"]
    assert await ids("É") == ["Émile-1"] and await ids("é") == ["émile-2"]
    assert await ids("日本") == ["日本-1"]
    for nothing in ("%", "_", "@", "@counter", "\U0010ffff", "émile-2-"):
        assert await ids(nothing) == [], nothing


@pytest.mark.parametrize("params,headers", [
    ({"createdTimeFrom": "yesterday"}, {}),
    ({"createdTimeTo": "2024-13-45"}, {}),
    ({"runtimeStatus": "Sleeping"}, {}),
    ({"top": "0"}, {}),
    ({"top": "-3"}, {}),
    ({"top": "lots"}, {}),
    ({"top": "100000"}, {}),
    ({}, {"x-ms-continuation-token": "not-a-token"}),
    ({}, {"x-ms-continuation-token": "W10"}),
])
async def test_list_with_bad_parameters_is_400(api: Served, params: dict, headers: dict):
    response = await api.http.get(f"{MGMT}/instances", params=params, headers=headers)
    assert response.status_code == 400
    assert "Message" in response.json()


# -- purge ----------------------------------------------------------------------------------


async def test_purge_by_id(api: Served) -> None:
    await start(api, "echo", "gone", body=1)
    await api.finished("gone")
    first = await api.http.delete(f"{MGMT}/instances/gone")
    assert first.status_code == 200 and first.json() == {"instancesDeleted": 1}
    assert not await api.client.get_status("gone")
    second = await api.http.delete(f"{MGMT}/instances/gone")
    assert second.status_code == 404 and "Message" in second.json()


async def test_purge_by_filter(api: Served) -> None:
    await start(api, "echo", "old-1", body=1)
    await start(api, "echo", "old-2", body=2)
    await start(api, "wait_for_go", "live")
    await api.finished("old-1")
    await api.finished("old-2")
    await running(api, "live")
    missing = await api.http.delete(f"{MGMT}/instances")
    assert missing.status_code == 400 and "createdTimeFrom" in missing.json()["Message"]
    purged = await api.http.delete(f"{MGMT}/instances",
                                   params={"createdTimeFrom": "2000-01-01T00:00:00Z"})
    assert purged.status_code == 200 and purged.json() == {"instancesDeleted": 2}
    assert await api.client.get_status("live")  # running instances are never purged
    nothing = await api.http.delete(f"{MGMT}/instances",
                                    params={"createdTimeFrom": "2000-01-01T00:00:00Z"})
    assert nothing.status_code == 404


# -- events and control ---------------------------------------------------------------------


async def test_raise_event(api: Served) -> None:
    await start(api, "wait_for_go", "ev")
    await running(api, "ev")
    url = f"{MGMT}/instances/ev/raiseEvent/go"
    wrong_type = await api.http.post(url, content=b'"x"', headers={"content-type": "text/plain"})
    assert wrong_type.status_code == 400
    assert wrong_type.json()["Message"] == "Only application/json request content is supported"
    no_type = await api.http.post(url, content=b'"x"')
    assert no_type.status_code == 400
    bad = await api.http.post(url, content=b"{oops", headers={"content-type": "application/json"})
    assert bad.status_code == 400
    unknown = await api.http.post(f"{MGMT}/instances/nobody/raiseEvent/go", json={"a": 1})
    assert unknown.status_code == 404 and "Message" in unknown.json()
    assert (await api.client.get_status("ev")).runtime_status is Status.Running
    ok = await api.http.post(url, json={"payload": [1, "two"]},
                             headers={"content-type": "application/json; charset=utf-8"})
    assert ok.status_code == 202 and ok.content == b""
    status = await api.finished("ev")
    assert status.output == {"got": {"payload": [1, "two"]}}
    late = await api.http.post(url, json=1)
    assert late.status_code == 410 and "Message" in late.json()


async def test_terminate_suspend_resume(api: Served) -> None:
    await start(api, "wait_for_go", "ctl")
    await running(api, "ctl")
    base = f"{MGMT}/instances/ctl"
    # Resuming a Running instance: 409 with durable's error body (Azure: an unhandled 500).
    refused = await api.http.post(f"{base}/resume")
    assert refused.status_code == 409, refused.text
    assert refused.json() == {
        "Message": "Cannot resume the orchestration instance 'ctl' because it is Running; "
                   "only a Suspended instance can be resumed.",
        "ExceptionMessage": "Cannot resume the orchestration instance 'ctl' because it is "
                            "Running; only a Suspended instance can be resumed.",
        "ExceptionType": "InstanceStatusConflictError",
        "instanceId": "ctl",
        "runtimeStatus": "Running",
    }
    assert (await api.http.post(f"{base}/suspend", params={"reason": "pause"})).status_code == 202

    async def status_is(expected: Status) -> bool:
        return (await api.client.get_status("ctl")).runtime_status is expected

    await eventually(lambda: status_is(Status.Suspended), what="suspended")
    again = await api.http.post(f"{base}/suspend", params={"reason": "twice"})
    assert again.status_code == 409, again.text
    assert again.json()["runtimeStatus"] == "Suspended"
    assert again.json()["Message"].startswith(
        "Cannot suspend the orchestration instance 'ctl' because it is Suspended")
    assert (await api.http.post(f"{base}/resume")).status_code == 202
    await eventually(lambda: status_is(Status.Running), what="resumed")
    history = (await api.client.get_status("ctl", show_history=True)).history or []
    assert [e["EventType"] for e in history
            if e["EventType"] in ("ExecutionSuspended", "ExecutionResumed")] == [
        "ExecutionSuspended", "ExecutionResumed"]  # the refused requests sent nothing
    assert (await api.http.post(f"{base}/terminate?reason=enough")).status_code == 202
    await eventually(lambda: status_is(Status.Terminated), what="terminated")
    for operation in ("terminate", "suspend", "resume"):
        finished = await api.http.post(f"{base}/{operation}")
        assert finished.status_code == 410, operation
        unknown = await api.http.post(f"{MGMT}/instances/nobody/{operation}")
        assert unknown.status_code == 404, operation


async def test_restart(api: Served) -> None:
    await start(api, "echo", "orig", body={"v": 1})
    await api.finished("orig")
    response = await api.http.post(f"{MGMT}/instances/orig/restart")
    assert response.status_code == 202
    new_id = response.json()["id"]
    assert new_id != "orig" and set(response.json()) == PAYLOAD_KEYS
    assert (await api.finished(new_id)).output == {"v": 1}
    same = await api.http.post(f"{MGMT}/instances/orig/restart",
                               params={"restartWithNewInstanceId": "false"})
    assert same.status_code == 202 and same.json()["id"] == "orig"
    assert (await api.http.post(f"{MGMT}/instances/nobody/restart")).status_code == 404
    await start(api, "wait_for_go", "busy")
    await running(api, "busy")
    clash = await api.http.post(f"{MGMT}/instances/busy/restart?restartWithNewInstanceId=false")
    assert clash.status_code == 409


async def test_rewind_route_status_codes(api: Served) -> None:
    await start(api, "fails", "rw")
    await api.finished("rw")
    response = await api.http.post(f"{MGMT}/instances/rw/rewind?reason=x")
    assert response.status_code == 202  # it fails again (the code always raises): rewound
    status = await api.finished("rw")
    assert status.runtime_status is Status.Failed
    assert (await api.http.post(f"{MGMT}/instances/nobody/rewind")).status_code == 404
    await start(api, "echo", "fine", body=1)
    await api.finished("fine")
    assert (await api.http.post(f"{MGMT}/instances/fine/rewind")).status_code == 410
    await start(api, "wait_for_go", "busy-rw")
    await running(api, "busy-rw")
    assert (await api.http.post(f"{MGMT}/instances/busy-rw/rewind")).status_code == 409


# -- routing --------------------------------------------------------------------------------


@pytest.mark.parametrize("method,path", [
    ("GET", f"{MGMT}"),
    ("GET", f"{MGMT}/nope"),
    ("GET", f"{MGMT}/entities/counter/key"),
    ("POST", f"{MGMT}/makeprimary"),
    ("PUT", f"{MGMT}/instances/x"),
    ("GET", f"{MGMT}/instances/x/terminate"),
    ("POST", f"{MGMT}/instances/x/explode"),
    ("GET", "/nothing/here"),
    ("GET", "/"),
])
async def test_unknown_routes_are_404(api: Served, method: str, path: str) -> None:
    response = await api.http.request(method, path)
    assert response.status_code == 404


async def test_routes_ignore_case_and_trailing_slashes(api: Served) -> None:
    await start(api, "wait_for_go", "cased")
    await running(api, "cased")
    response = await api.http.post(f"{MGMT}/Instances/cased/RAISEEVENT/go/", json="hi")
    assert response.status_code == 202
    assert (await api.finished("cased")).output == {"got": "hi"}


async def test_invalid_percent_encoding_in_the_path_is_400(api: Served) -> None:
    response = await api.http.get(f"{MGMT}/instances/%ff%fe")
    assert response.status_code == 400


async def test_openapi_document(api: Served) -> None:
    response = await api.http.get(f"{MGMT}/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.0")
    assert "/instances/{instanceId}/raiseEvent/{eventName}" in document["paths"]
