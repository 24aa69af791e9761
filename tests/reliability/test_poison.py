"""A bad payload costs only its own instance: defects 1-3 of the reliability issue, through a
real ``durable run`` on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.reliability.conftest import TIMEOUT, Server
from tests.reliability.poison_app import FRAGILE_ENVELOPE

MALFORMED_ENVELOPES = [
    {"__class__": 1, "__module__": "os", "__data__": None},
    {"__class__": "x", "__module__": [], "__data__": None},
]


def failures_logged(server: Server) -> int:
    return server.log().count("failed inside durable")


def test_a_malformed_envelope_in_an_event_is_just_a_dict(server: Server) -> None:
    """Defect 1: the event used to hot-loop the worker; now it is carried as the dict it is."""
    for number, envelope in enumerate(MALFORMED_ENVELOPES):
        instance_id = f"envelope-{number}"
        assert server.start("wait_for_go", instance_id).status_code == 202
        server.wait_for(instance_id, "Running")
        assert server.raise_event(instance_id, "go", json=envelope).status_code == 202
        done = server.wait_for(instance_id, "Completed", "Failed")
        assert done["runtimeStatus"] == "Completed", done
        assert done["output"] == {"got": envelope}
    assert failures_logged(server) == 0, server.log()


def test_an_event_its_class_cannot_rebuild_fails_only_its_instance(server: Server) -> None:
    """A real class whose from_json fails on the event: that instance fails once, with a clear
    message; no retry loop, terminate and purge work, others are untouched."""
    assert server.start("wait_for_go", "fragile").status_code == 202
    assert server.start("wait_for_go", "healthy").status_code == 202
    server.wait_for("fragile", "Running")
    server.wait_for("healthy", "Running")
    assert server.raise_event("fragile", "go", json=FRAGILE_ENVELOPE).status_code == 202
    failed = server.wait_for("fragile", "Failed", "Completed")
    assert failed["runtimeStatus"] == "Failed", failed
    message = failed["output"]
    assert "Fragile.from_json" in message and "TypeError" in message, message
    assert failures_logged(server) <= 1, server.log()  # once, not ~870 times a second
    # The log says it once, without a flood of tracebacks.
    assert server.log().count("Traceback") <= 1, server.log()
    assert server.raise_event("healthy", "go", json=1).status_code == 202
    assert server.wait_for("healthy", "Completed")["output"] == {"got": 1}
    assert server.http.delete(f"{server.mgmt}/instances/fragile").status_code == 200
    assert server.status("fragile").status_code == 404


def test_terminate_ends_an_instance_waiting_with_a_bad_event_queued(server: Server) -> None:
    """A terminate sent right after an event its class cannot rebuild always ends it."""
    assert server.start("wait_for_go", "doomed").status_code == 202
    server.wait_for("doomed", "Running")
    assert server.raise_event("doomed", "go", json=FRAGILE_ENVELOPE).status_code == 202
    terminate = server.http.post(f"{server.mgmt}/instances/doomed/terminate?reason=stop")
    assert terminate.status_code in (202, 410)  # 410: it already failed on the event
    done = server.wait_for("doomed", "Terminated", "Failed")
    assert done["runtimeStatus"] in ("Terminated", "Failed")


async def test_a_result_that_cannot_be_stored_fails_only_its_instance(server: Server) -> None:
    """Defect 2: 300 chains and 10 activities returning os.fsdecode(b"name-\\xff.txt"),
    started together: every chain completes, each bad one fails with the reason."""
    async with httpx.AsyncClient(timeout=30) as client:
        async def start(name: str, instance_id: str, body: object) -> int:
            url = f"{server.mgmt}/orchestrators/{name}/{instance_id}"
            return (await client.post(url, json=body)).status_code

        starts = [start("chain", f"chain-{i:03d}", 3) for i in range(300)]
        starts += [start("poison_at", f"bad-{i}", ["activity result", "lone surrogate"])
                   for i in range(10)]
        assert set(await asyncio.gather(*starts)) == {202}
    deadline = time.monotonic() + 60
    for i in range(300):
        done = server.wait_for(f"chain-{i:03d}", "Completed", "Failed",
                               timeout=max(1.0, deadline - time.monotonic()))
        assert done["runtimeStatus"] == "Completed" and done["output"] == [0, 1, 2], done
    for i in range(10):
        done = server.wait_for(f"bad-{i}", "Completed", "Failed", timeout=TIMEOUT)
        assert done["runtimeStatus"] == "Failed", done
        assert "output of activity 'produce' cannot be stored" in done["output"], done
        assert "lone surrogate U+DCFF" in done["output"], done
    assert failures_logged(server) == 0, server.log()[-3000:]


def test_an_output_or_custom_status_that_cannot_be_stored_fails_the_instance(
    server: Server,
) -> None:
    for where in ("orchestrator output", "custom status"):
        instance_id = where.replace(" ", "-")
        assert server.start("poison_at", instance_id,
                            json=[where, "lone surrogate"]).status_code == 202
        done = server.wait_for(instance_id, "Completed", "Failed")
        assert done["runtimeStatus"] == "Failed", done
        assert "cannot be stored" in done["output"] and "U+DCFF" in done["output"], done
    assert server.start("chain", "after", json=2).status_code == 202
    assert server.wait_for("after", "Completed")["output"] == [0, 1]


def test_an_accepted_start_never_breaks_status_or_listing(server: Server) -> None:
    """Defect 3: a start whose input is an envelope answers 202, and the instance can be read,
    alone and in every page of a listing."""
    inputs = [*MALFORMED_ENVELOPES, FRAGILE_ENVELOPE]
    for number, value in enumerate(inputs):
        assert server.start("wait_for_go", f"odd-input-{number}", json=value).status_code == 202
    for number, value in enumerate(inputs):
        response = server.status(f"odd-input-{number}")
        assert response.status_code in (200, 202), response.text
        assert response.json()["input"] == value
    for top in ("1", "2", "100"):
        token = None
        seen = []
        while True:
            headers = {"x-ms-continuation-token": token} if token else {}
            page = server.http.get(f"{server.mgmt}/instances", params={"top": top},
                                   headers=headers)
            assert page.status_code == 200, page.text
            seen += [item["instanceId"] for item in page.json()]
            token = page.headers.get("x-ms-continuation-token")
            if not token:
                break
        assert {f"odd-input-{n}" for n in range(len(inputs))} <= set(seen)
    # A start through a user route with the Python client: the same values, the same rules.
    response = server.http.post(f"{server.base}/api/start-with/malformed envelope "
                                "(class not a string)")
    assert response.status_code == 202
    done = server.wait_for(response.json()["id"], "Completed")
    assert done["output"] == MALFORMED_ENVELOPES[0]
