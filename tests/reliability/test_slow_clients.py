"""Slow and excess connections are cut off (defect 7), on a real ``durable run`` with short
limits from the environment. Transport behaviour, the same on every backend: SQLite only."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.http.conftest import wait_until
from tests.reliability.conftest import Server, serve

LIMITS = {"DURABLE_RUN_HEAD_TIMEOUT": "1", "DURABLE_RUN_BODY_TIMEOUT": "1",
          "DURABLE_RUN_MAX_CONNECTIONS": "20"}
GIVE_UP = 10.0  # a server that never closes fails the test after this long


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[Server]:
    running = serve(f"sqlite:///{tmp_path / 'slow.db'}", env=LIMITS)
    try:
        yield running
    finally:
        running.close()


def connect(server: Server) -> socket.socket:
    address = urlsplit(server.base)
    sock = socket.create_connection((address.hostname, address.port))
    sock.settimeout(0.2)
    return sock


def trickle(sock: socket.socket, data: bytes) -> tuple[bytes, float]:
    """Send ``data`` a byte every 0.2 s until the server answers or closes; return what it
    sent and how long the connection lived."""
    started = time.monotonic()
    received = b""
    for byte in data:
        if time.monotonic() - started > GIVE_UP:
            break
        try:
            sock.sendall(bytes([byte]))
        except OSError:  # the server closed the connection
            break
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            break
        received += chunk
        if not chunk or b"\r\n\r\n" in received:
            break
    return received, time.monotonic() - started


def test_headers_sent_slowly_get_408_and_the_connection_closed(limited: Server) -> None:
    with connect(limited) as sock:
        received, lived = trickle(sock, b"GET /runtime/webhooks/durabletask/instances HTTP/1.1"
                                        b"\r\nHost: x\r\nX-Slow: " + b"z" * 200)
    assert received.startswith(b"HTTP/1.1 408"), received
    assert lived < GIVE_UP
    wait_until(lambda: "request head not received within 1s" in limited.log(),
               what="the log to say why")


def test_a_body_sent_slowly_gets_408_and_nothing_is_started(limited: Server) -> None:
    with connect(limited) as sock:
        sock.sendall(b"POST /runtime/webhooks/durabletask/orchestrators/echo_input/slow HTTP/1.1"
                     b"\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100"
                     b"\r\n\r\n")
        received, lived = trickle(sock, b'"' + b"b" * 98 + b'"')
    assert received.startswith(b"HTTP/1.1 408"), received
    assert lived < GIVE_UP
    assert limited.status("slow").status_code == 404
    assert "Traceback" not in limited.log()


def test_connections_beyond_the_limit_are_refused_and_the_server_recovers(
    limited: Server,
) -> None:
    idle = [connect(limited) for _ in range(20)]
    try:
        with connect(limited) as extra:
            extra.settimeout(5)
            assert extra.recv(100).startswith(b"HTTP/1.1 503")
    finally:
        for sock in idle:
            sock.close()
    # Once the idle ones are gone, requests are served again.
    wait_until(lambda: httpx.get(f"{limited.mgmt}/instances", timeout=5).status_code == 200,
               what="the server to serve again")


def test_a_kept_alive_connection_is_not_cut_between_requests(limited: Server) -> None:
    """The head deadline starts again after each response: requests 0.6 s apart on one
    connection, 2 s in all, all answered."""
    with httpx.Client(timeout=5) as client:
        answers = []
        for number in range(4):
            answers.append(client.post(f"{limited.mgmt}/orchestrators/chain/kept-{number}",
                                       json=1).status_code)
            time.sleep(0.6)  # the client thinking, not a wait for work
    assert answers == [202] * 4
    for number in range(4):
        limited.wait_for(f"kept-{number}", "Completed")
    # httpx would have reconnected silently: the server must not have cut it.
    assert "closed a slow or excess connection" not in limited.log()
