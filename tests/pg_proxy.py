"""A TCP proxy in front of PostgreSQL that can lose the reply to one COMMIT.

What a network cut at the wrong instant does: the client's COMMIT reaches the server, the server
commits, and its answer never comes back. The client cannot tell whether the transaction
landed. This proxy makes that happen on purpose, for exactly the transaction a test names:

- it reads the PostgreSQL wire protocol in both directions (message type and length only,
  plus the few messages it matches on: the client's Query and Parse texts, the server's
  RowDescription, DataRow, CommandComplete and ReadyForQuery);
- once armed with a :class:`Cut`, it watches each transaction; when the client sends the
  COMMIT of a transaction that matched, the COMMIT goes through, the server's replies to it
  are read and dropped up to its ReadyForQuery (so the commit has certainly landed), and then
  both connections are closed. The client sees the connection die during COMMIT.

Connect with ``sslmode=disable&gssencmode=disable`` (:meth:`CuttingProxy.url_for` adds them):
an encrypted stream could not be read.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit


@dataclass
class Cut:
    """Which transaction loses its COMMIT reply: the first, after arming, in which the client
    sent ``sent`` (a piece of SQL text, in a Query or Parse message), or whose replies
    described a column named ``column`` and returned at least one row for it."""

    sent: str | None = None
    column: str | None = None
    # Filled in when the cut happens: the rows the dropped transaction had returned (text
    # values of the statement that matched ``column``), and the names of its columns.
    columns: list[str] = field(default_factory=list)
    rows: list[list[str | None]] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False)
class _Conn:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    matched: bool = False  # this transaction matched the armed cut
    described: list[str] = field(default_factory=list)  # columns of the current result
    rows: list[list[str | None]] = field(default_factory=list)
    dropping: Cut | None = None  # the COMMIT went through; drop replies until ReadyForQuery
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class CuttingProxy:
    """``await CuttingProxy(host, port).start()``; then :meth:`arm` a :class:`Cut`."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.connections = 0
        self.cuts: list[Cut] = []  # cuts that happened, in order
        self._armed: Cut | None = None
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[_Conn] = set()

    @classmethod
    def for_url(cls, url: str) -> CuttingProxy:
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 5432)

    def url_for(self, url: str) -> str:
        """``url`` (a postgresql:// URL to the proxied server) redirected through the proxy."""
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")
        userinfo = netloc[0] + "@" if netloc[1] else ""
        extra = "sslmode=disable&gssencmode=disable"
        query = f"{parts.query}&{extra}" if parts.query else extra
        return urlunsplit((parts.scheme, f"{userinfo}127.0.0.1:{self.port}", parts.path,
                           query, ""))

    async def start(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for conn in list(self._conns):
            for task in conn.tasks:
                task.cancel()
        with contextlib.suppress(Exception):
            await self._server.wait_closed()
        self._server = None

    def arm(self, cut: Cut) -> Cut:
        """Cut the next transaction that matches ``cut`` (once); ``cut.done`` is set after."""
        self._armed = cut
        return cut

    # -- plumbing -----------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.connections += 1
        conn = _Conn(writer, up_writer)
        self._conns.add(conn)
        conn.tasks = [
            asyncio.ensure_future(self._from_client(reader, conn)),
            asyncio.ensure_future(self._from_server(up_reader, conn)),
        ]
        try:
            await asyncio.wait(conn.tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in conn.tasks:
                task.cancel()
            for side in (writer, up_writer):
                with contextlib.suppress(Exception):
                    side.close()
            self._conns.discard(conn)

    async def _from_client(self, reader: asyncio.StreamReader, conn: _Conn) -> None:
        # The first message has no type byte: a StartupMessage (or a CancelRequest).
        head = await reader.readexactly(4)
        (length,) = struct.unpack("!i", head)
        body = await reader.readexactly(length - 4)
        if body[:4] in (b"\x04\xd2\x16\x2f", b"\x04\xd2\x16\x30"):  # SSL/GSS encryption request
            raise RuntimeError("connect through CuttingProxy with sslmode=disable and "
                               "gssencmode=disable (use url_for)")
        conn.server.write(head + body)
        while True:
            head = await reader.readexactly(5)
            kind, length = head[:1], struct.unpack("!i", head[1:])[0]
            body = await reader.readexactly(length - 4)
            cut = self._armed
            if (cut is not None and cut.sent is not None and kind in (b"Q", b"P")
                    and cut.sent in _text_of(kind, body)):
                conn.matched = True
            if (cut is not None and conn.matched and kind == b"Q"
                    and _ends_with_commit(_text_of(kind, body))):
                self._armed = None
                conn.dropping = cut
            conn.server.write(head + body)
            await conn.server.drain()

    async def _from_server(self, reader: asyncio.StreamReader, conn: _Conn) -> None:
        while True:
            head = await reader.readexactly(5)
            kind, length = head[:1], struct.unpack("!i", head[1:])[0]
            body = await reader.readexactly(length - 4)
            if conn.dropping is not None:
                if kind == b"Z":  # the COMMIT's answer is complete: it landed; cut
                    self._finish(conn, conn.dropping)
                    return
                continue  # dropped
            cut = self._armed
            if kind == b"T":
                conn.described = _columns(body)
                conn.rows = []
            elif kind == b"D" and cut is not None and cut.column in conn.described:
                conn.rows.append(_values(body))
            elif kind == b"C" and cut is not None and cut.column in conn.described:
                if conn.rows:
                    conn.matched = True
                    cut.columns, cut.rows = conn.described, conn.rows
            elif kind == b"Z" and body == b"I":
                conn.matched = False  # the transaction ended without a matching COMMIT
                conn.described, conn.rows = [], []
            conn.client.write(head + body)
            await conn.client.drain()

    def _finish(self, conn: _Conn, cut: Cut) -> None:
        self.cuts.append(cut)
        for side in (conn.client, conn.server):
            with contextlib.suppress(Exception):
                side.transport.abort()
        cut.done.set()


def _cstring(body: bytes, start: int) -> tuple[str, int]:
    end = body.index(b"\x00", start)
    return body[start:end].decode("utf-8", "replace"), end + 1


def _text_of(kind: bytes, body: bytes) -> str:
    """The SQL of a Query ('Q': the text) or Parse ('P': name, then text) message."""
    if kind == b"Q":
        return _cstring(body, 0)[0]
    _name, after = _cstring(body, 0)
    return _cstring(body, after)[0]


def _ends_with_commit(text: str) -> bool:
    return text.rstrip().rstrip(";").rstrip().upper().endswith("COMMIT")


def _columns(body: bytes) -> list[str]:
    """Column names of a RowDescription."""
    (count,) = struct.unpack_from("!h", body, 0)
    names, at = [], 2
    for _ in range(count):
        name, at = _cstring(body, at)
        names.append(name)
        at += 18  # table OID, attribute number, type OID, size, modifier, format
    return names


def _values(body: bytes) -> list[str | None]:
    """Column values of a DataRow (text format)."""
    (count,) = struct.unpack_from("!h", body, 0)
    values: list[str | None] = []
    at = 2
    for _ in range(count):
        (size,) = struct.unpack_from("!i", body, at)
        at += 4
        if size < 0:
            values.append(None)
            continue
        values.append(body[at:at + size].decode("utf-8", "replace"))
        at += size
    return values
