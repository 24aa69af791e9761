"""uvicorn's HTTP/1.1 protocol with deadlines for slow clients, and a connection cap.

uvicorn closes *idle* keep-alive connections, but a client that sends its request line and
headers a byte at a time (slowloris), or a body a few bytes a minute, keeps its connection and
its memory for as long as it likes, and uvicorn's keep-alive timer is reset by every byte. So
each connection here has a deadline that no trickle of bytes extends:

- **head** (``head_timeout``): from the moment the connection opens, or a response completes
  on a kept-alive connection, until the request's headers are in. Missed: ``408`` and close.
- **body** (``body_timeout``): from the headers to the last byte of the body. Missed: ``408``
  (if no response has started) and close; the application sees a disconnect.
- **connections** (``max_connections``): a connection beyond the cap is answered ``503`` and
  closed at once, before it costs anything more (uvicorn's own ``limit_concurrency``, set to
  the same number, answers requests beyond the cap ``503`` too).

Closed connections are logged once per ``LOG_EVERY`` seconds with a count, so an attack does
not flood the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("durable.http")

DEFAULT_HEAD_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 60.0
DEFAULT_MAX_CONNECTIONS = 1000
LOG_EVERY = 10.0

_CLOSE = b"Connection: close\r\nContent-Length: 0\r\n\r\n"
_TIMEOUT_RESPONSE = b"HTTP/1.1 408 Request Timeout\r\n" + _CLOSE
_BUSY_RESPONSE = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n" + _CLOSE


class _Tally:
    """Counts closed connections by reason; logs at most one line per ``LOG_EVERY``."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._logged = 0.0

    def note(self, reason: str, client: Any) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        now = time.monotonic()
        if now - self._logged >= LOG_EVERY:
            self._logged = now
            totals = ", ".join(f"{count} {what}" for what, count in sorted(self.counts.items()))
            log.warning("closed a slow or excess connection from %s (%s); so far: %s",
                        _address(client), reason, totals)


TALLY = _Tally()


def _address(client: Any) -> str:
    if isinstance(client, tuple) and len(client) >= 2:
        return f"{client[0]}:{client[1]}"
    return "an unknown client"


class GuardedH11Protocol(H11Protocol):
    """:class:`H11Protocol` plus the deadlines and the cap described in the module doc."""

    head_timeout: ClassVar[float] = DEFAULT_HEAD_TIMEOUT
    body_timeout: ClassVar[float] = DEFAULT_BODY_TIMEOUT
    max_connections: ClassVar[int] = DEFAULT_MAX_CONNECTIONS

    _deadline: asyncio.TimerHandle | None = None
    _waiting_for: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            TALLY.note("over the connection limit", self.client)
            transport.write(_BUSY_RESPONSE)
            transport.close()
            return
        self._arm("head", self.head_timeout)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _follow(self) -> None:
        """Arm the deadline that matches where the client is in its request."""
        if self.transport is None or self.transport.is_closing():
            self._disarm()
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            if self._waiting_for != "head":
                self._arm("head", self.head_timeout)
        elif state is h11.SEND_BODY:
            if self._waiting_for != "body":
                self._arm("body", self.body_timeout)
        else:
            self._disarm()

    def _arm(self, what: str, seconds: float) -> None:
        self._disarm()
        self._waiting_for = what
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None
        self._waiting_for = None

    def _expired(self) -> None:
        what, self._waiting_for, self._deadline = self._waiting_for, None, None
        if self.transport is None or self.transport.is_closing():
            return
        seconds = self.head_timeout if what == "head" else self.body_timeout
        TALLY.note(f"request {what} not received within {seconds:g}s", self.client)
        cycle = self.cycle
        if what == "head" and (cycle is None or cycle.response_complete):
            self.transport.write(_TIMEOUT_RESPONSE)
        elif what == "body" and cycle is not None and not cycle.response_started:
            self.transport.write(_TIMEOUT_RESPONSE)
            cycle.disconnected = True  # the application's receive() now says disconnect
            cycle.message_event.set()
        self.transport.close()


def guarded_protocol(head_timeout: float, body_timeout: float, max_connections: int
                     ) -> type[GuardedH11Protocol]:
    """A protocol class with these limits, for ``uvicorn.Config(http=...)``."""
    return type("DurableHttpProtocol", (GuardedH11Protocol,), {
        "head_timeout": head_timeout,
        "body_timeout": body_timeout,
        "max_connections": max_connections,
    })


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the command decides when to stop (so that
    ``durable run``'s worker shuts down after its HTTP server), and no signal is re-raised at
    the end."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
