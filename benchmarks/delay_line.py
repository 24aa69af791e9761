"""A delay line: a TCP proxy that forwards every byte a fixed time after reading it.

This kernel has no netem, so to see what a network hop to PostgreSQL costs, processes connect
to this proxy instead, and each direction holds what it reads for ``one_way_ms`` before
writing it on. A round trip then takes ``2 * one_way_ms`` more than on loopback; throughput is
not limited (data read while earlier data is in flight is scheduled independently, as on a
long wire).

It also counts, per accepted connection, the *messages* the client sent: reads separated by
the answer coming back (a client write that follows a server reply starts a new message). That
is the number of round trips the client waited for; ``stats()`` sums them per connection tag.

Run alone: ``python -m benchmarks.delay_line --listen 6543 --target 127.0.0.1:5432 --rtt-ms 2``;
with ``--control PORT``, a connection there that sends ``stats`` gets the totals as one JSON
line, and ``reset`` zeroes them (benchmarks/workloads/w8l_latency.py runs it so, in its own
process, so the proxy's CPU is not the benchmark client's).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from dataclasses import asdict, dataclass, field


@dataclass
class Counts:
    connections: int = 0
    client_messages: int = 0
    client_bytes: int = 0
    server_bytes: int = 0


@dataclass(eq=False)
class _Conn:
    counts: Counts
    replied: bool = True  # the server has answered since the client last wrote
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class DelayLine:
    """``await DelayLine(target_port, one_way_ms).start()``; ``.port`` is where to connect."""

    def __init__(self, target_host: str, target_port: int, one_way_ms: float,
                 listen_host: str = "127.0.0.1", listen_port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.delay = one_way_ms / 1000.0
        self.listen = (listen_host, listen_port)
        self.port = 0
        self.totals = Counts()
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[_Conn] = set()

    async def start(self) -> DelayLine:
        self._server = await asyncio.start_server(self._accept, *self.listen)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for conn in list(self._conns):
                for task in conn.tasks:
                    task.cancel()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    def reset(self) -> None:
        """Zero the totals (connections already open keep being counted)."""
        self.totals.connections = 0
        self.totals.client_messages = 0
        self.totals.client_bytes = 0
        self.totals.server_bytes = 0

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        conn = _Conn(self.totals)
        self.totals.connections += 1
        self._conns.add(conn)
        conn.tasks = [
            asyncio.ensure_future(self._pump(reader, up_writer, conn, True)),
            asyncio.ensure_future(self._pump(up_reader, writer, conn, False)),
        ]
        try:
            await asyncio.wait(conn.tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in conn.tasks:
                task.cancel()
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()
            self._conns.discard(conn)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    conn: _Conn, upstream: bool) -> None:
        """Copy one direction; each chunk is written ``delay`` after it was read, in order."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    with contextlib.suppress(Exception):
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        sender = asyncio.ensure_future(deliver())
        try:
            while True:
                data = await reader.read(65536)
                if upstream:
                    conn.counts.client_bytes += len(data)
                    if data and conn.replied:
                        conn.counts.client_messages += 1
                        conn.replied = False
                else:
                    conn.counts.server_bytes += len(data)
                    if data:
                        conn.replied = True
                queue.put_nowait((time.monotonic() + self.delay, data))
                if not data:
                    break
            await sender
        finally:
            sender.cancel()


async def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=int, default=6543)
    parser.add_argument("--target", default="127.0.0.1:5432")
    parser.add_argument("--rtt-ms", type=float, default=2.0, help="added round-trip time")
    parser.add_argument("--control", type=int, default=0, help="port answering stats/reset")
    args = parser.parse_args()
    host, _, port = args.target.rpartition(":")
    line = await DelayLine(host or "127.0.0.1", int(port), args.rtt_ms / 2,
                           listen_port=args.listen).start()

    async def control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        command = (await reader.readline()).decode().strip()
        if command == "reset":
            line.reset()
        writer.write((json.dumps(asdict(line.totals)) + "\n").encode())
        await writer.drain()
        writer.close()

    if args.control:
        await asyncio.start_server(control, "127.0.0.1", args.control)
    print(f"delay line on 127.0.0.1:{line.port} -> {args.target}, +{args.rtt_ms} ms RTT",
          flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await line.stop()


async def ask(control_port: int, command: str = "stats") -> dict[str, int]:
    """Send ``command`` to a delay line's control port; return its totals."""
    reader, writer = await asyncio.open_connection("127.0.0.1", control_port)
    writer.write(command.encode() + b"\n")
    await writer.drain()
    answer = json.loads(await reader.readline())
    writer.close()
    return dict(answer)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main())
