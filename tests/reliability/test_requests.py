"""Malformed requests get a 4xx, the same on both backends (defect 5, HTTP part), through a
real ``durable run`` on SQLite and on PostgreSQL."""

from __future__ import annotations

import socket
from urllib.parse import unquote, urlsplit

from tests.http.conftest import wait_until
from tests.reliability.conftest import Server, serve

LONE_SURROGATE = b'"\\ud800"'  # valid JSON text, but no store can hold the string


def test_a_lone_surrogate_in_a_body_is_a_400(server: Server) -> None:
    for body in (LONE_SURROGATE, b'{"name": "x-\\udcff.txt"}', b'["ok", {"\\udfff": 1}]'):
        started = server.start("echo_input", "surrogate", content=body)
        assert started.status_code == 400, started.text
        assert "lone surrogate" in started.json()["ExceptionMessage"]
        assert server.status("surrogate").status_code == 404  # nothing was stored
    assert server.start("wait_for_go", "waiting").status_code == 202
    event = server.raise_event("waiting", "go", content=LONE_SURROGATE)
    assert event.status_code == 400, event.text
    # The instance is untouched and still takes a good event.
    assert server.raise_event("waiting", "go", json="fine").status_code == 202
    assert server.wait_for("waiting", "Completed")["output"] == {"got": "fine"}
    # A surrogate pair is a real character, and travels.
    assert server.start("echo_input", "emoji", content=b'"\\ud83d\\ude00"').status_code == 202
    assert server.wait_for("emoji", "Completed")["output"] == "\U0001F600"


def test_top_must_be_ascii_digits(server: Server) -> None:
    for top in ("%C2%B2", "%D9%A3", "-1", "0", "1001", "x", "1e2"):
        response = server.http.get(f"{server.mgmt}/instances?top={top}")
        assert response.status_code == 400, (top, response.text)
    assert server.http.get(f"{server.mgmt}/instances?top=7").status_code == 200


def test_control_characters_in_ids_are_handled_the_same_on_every_backend(server: Server) -> None:
    """NUL and other control characters: no instance can have them in its ID, so a lookup is
    404, a prefix finds nothing, and a start with one is 400, on SQLite and PostgreSQL alike."""
    assert server.start("wait_for_go", "plain").status_code == 202
    for bad in ("a%00b", "%00", "a%01", "%7F", "tab%09"):
        assert server.status(bad).status_code == 404, bad
        assert server.http.delete(f"{server.mgmt}/instances/{bad}").status_code == 404, bad
        for action in ("terminate", "suspend", "resume", "restart", "rewind"):
            response = server.http.post(f"{server.mgmt}/instances/{bad}/{action}")
            assert response.status_code == 404, (bad, action, response.text)
        event = server.raise_event(bad, "go", json=1)
        assert event.status_code == 404, (bad, event.text)
        started = server.start("wait_for_go", bad)
        assert started.status_code == 400, (bad, started.text)
        listing = server.http.get(f"{server.mgmt}/instances",
                                  params={"instanceIdPrefix": unquote(bad)})
        assert listing.status_code == 200 and listing.json() == [], (bad, listing.text)
    # A NUL inside an event name or a terminate reason is just data (JSON escapes it).
    assert server.raise_event("plain", "go%00x", json=1).status_code == 202
    assert server.http.post(f"{server.mgmt}/instances/plain/terminate?reason=a%00b"
                            ).status_code == 202
    assert server.wait_for("plain", "Terminated")["output"] == "a\x00b"
    # A crafted continuation token with a NUL in it is a 400, not a 500.
    token = "WzEuMCwgImFcdTAwMDBiIl0"  # base64 of [1.0, "a\u0000b"]
    response = server.http.get(f"{server.mgmt}/instances",
                               headers={"x-ms-continuation-token": token})
    assert response.status_code == 400, response.text


def test_a_client_that_disconnects_mid_body_is_not_an_error(storage_url: str) -> None:
    verbose = serve(storage_url, "--verbose")  # debug logging shows the disconnect was seen
    try:
        address = urlsplit(verbose.base)
        said = "disconnected before sending its whole request"
        for number in range(3):
            with socket.create_connection((address.hostname, address.port)) as sock:
                sock.sendall(b"POST /runtime/webhooks/durabletask/orchestrators/echo_input/gone "
                             b"HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 1000\r\n\r\n[1, 2,")
            wait_until(lambda n=number: verbose.log().count(said) > n,
                       what=f"disconnect {number + 1} to be noticed")
        # The server is fine, and said nothing alarming about it.
        assert verbose.start("chain", "still-fine", json=1).status_code == 202
        assert verbose.wait_for("still-fine", "Completed")["output"] == [0]
        assert verbose.status("gone").status_code == 404
        log = verbose.log()
        assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
    finally:
        verbose.close()
