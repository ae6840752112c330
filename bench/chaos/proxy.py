"""A fault-injecting HTTP/1.1 proxy between nodes and the hub, seeded.

It frames traffic into requests and responses (Content-Length or chunked bodies), so
each fault hits exactly one request:

- ``drop``: the connection is closed instead of forwarding the request;
- ``delay``: the request is held up to ``max_delay`` seconds first (past the node's
  timeout sometimes, so a request the hub will apply is given up by the node);
- ``truncate_request``: only part of the request reaches the hub, then both sides close;
- ``truncate_response``: the hub gets and answers the whole request (a batch is
  applied) but only part of its answer reaches the node;
- ``duplicate``: the same request bytes are sent again on a second connection to
  the hub (a replay; its answer is discarded but counted);
- ``overtake``: such a copy reaches the hub first and is answered, then the original
  is sent (so the hub sees the original as the replay);
- ``cut(seconds)``: the link goes down: open connections are severed and new ones
  closed at once until the period ends.

Connection ``n`` draws its faults from ``random.Random(f"{seed}:{n}")``, so a seed
fixes what happens to each connection; which request rides which connection still
depends on timing. ``script`` (a list of faults or None, one per request, in
arrival order) overrides the draws while it lasts, for tests that need one exact
fault. Statuses of every answer seen (replays too) are counted, so a run can report
its 5xx.

Example::

    proxy = FaultProxy([("127.0.0.1", 8080)], FaultRates(drop=0.05), seed=7)
    await proxy.start()
    ... nodes use proxy.url ...
    proxy.cut(30)
    await proxy.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, fields
from typing import Any

FAULTS = ("drop", "delay", "truncate_request", "truncate_response", "duplicate", "overtake")
_HEAD_LIMIT = 1 << 20


@dataclass(frozen=True, slots=True)
class FaultRates:
    """Chance per request of each fault (at most one fault per request)."""

    drop: float = 0.0
    delay: float = 0.0
    truncate_request: float = 0.0
    truncate_response: float = 0.0
    duplicate: float = 0.0
    overtake: float = 0.0
    max_delay: float = 2.0

    def choose(self, rng: random.Random) -> str | None:
        roll = rng.random()
        for f in fields(self):
            if f.name in FAULTS:
                roll -= getattr(self, f.name)
                if roll < 0:
                    return f.name
        return None


NO_FAULTS = FaultRates()


class _Closed(Exception):
    """The peer closed the connection before a whole message arrived."""


async def read_message(reader: asyncio.StreamReader, *, response: bool = False) -> bytes | None:
    """One whole HTTP/1.1 message (head and body) as raw bytes; None at a clean EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise _Closed from exc
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    status = int(lines[0].split()[1]) if response else 0
    try:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return head + await _read_chunked(reader)
        if "content-length" in headers:
            return head + await reader.readexactly(int(headers["content-length"]))
        if response and not (100 <= status < 200 or status in (204, 304)):
            return head + await reader.read()  # body until the server closes
        return head
    except asyncio.IncompleteReadError as exc:
        raise _Closed from exc


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        body += size_line
        size = int(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            while True:  # trailers, then the blank line
                line = await reader.readuntil(b"\r\n")
                body += line
                if line == b"\r\n":
                    return bytes(body)
        body += await reader.readexactly(size + 2)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


class FaultProxy:
    def __init__(self, upstreams: list[tuple[str, int]], rates: FaultRates = NO_FAULTS,
                 seed: int = 0) -> None:
        self.upstreams = upstreams
        self.rates = rates
        self.seed = seed
        self.faults: Counter[str] = Counter()    # faults injected, by kind
        self.statuses: Counter[int] = Counter()  # answers seen from upstream, by status
        self.requests = 0
        self.script: list[str | None] = []
        self._connections = itertools.count()
        self._next_upstream = itertools.cycle(range(len(upstreams)))
        self._cut_until = 0.0
        self._open: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._closing = False
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> FaultProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port,
                                                  limit=_HEAD_LIMIT)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        self._closing = True
        if self._server:
            self._server.close()
        await asyncio.sleep(0)  # sessions of connections accepted just now start (and end)
        self._sever()  # every session and replay then ends on its own
        while self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._server:
            await self._server.wait_closed()

    def cut(self, seconds: float) -> None:
        """Take the link down for ``seconds``: sever what is open, refuse what comes."""
        self.faults["cut"] += 1
        self._cut_until = time.monotonic() + seconds
        self._sever()

    @property
    def is_cut(self) -> bool:
        return time.monotonic() < self._cut_until

    def _sever(self) -> None:
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._session(reader, writer)
        except asyncio.CancelledError:
            pass  # closing: the session's sockets are already aborted
        finally:
            self._tasks.discard(task)

    async def _session(self, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        rng = random.Random(f"{self.seed}:{next(self._connections)}")
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._open.add(writer)
        try:
            if self._closing:
                return
            if self.is_cut:
                self.faults["refused_while_cut"] += 1
                return
            while (request := await read_message(reader)) is not None:
                self.requests += 1
                fault = self.script.pop(0) if self.script else self.rates.choose(rng)
                if fault:
                    self.faults[fault] += 1
                if fault == "drop" or self.is_cut:
                    return
                if fault == "delay":
                    await asyncio.sleep(rng.uniform(0, self.rates.max_delay))
                if upstream is None:
                    upstream = await self._connect()
                up_reader, up_writer = upstream
                if fault == "truncate_request":
                    up_writer.write(request[:rng.randrange(1, len(request))])
                    await up_writer.drain()
                    return
                if fault == "overtake":
                    await self._replay(request)
                up_writer.write(request)
                await up_writer.drain()
                if fault == "duplicate":
                    self._spawn(self._replay(request))
                response = await read_message(up_reader, response=True)
                if response is None:
                    return
                self.statuses[status_of(response)] += 1
                if fault == "truncate_response":
                    writer.write(response[:rng.randrange(1, len(response))])
                    await writer.drain()
                    return
                writer.write(response)
                await writer.drain()
        except (OSError, _Closed, asyncio.LimitOverrunError, ValueError):
            pass  # either side went away, or the upstream is down: the client sees a close
        finally:
            self._open.discard(writer)
            writer.transport.abort()
            if upstream:
                self._open.discard(upstream[1])
                upstream[1].transport.abort()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        host, port = self.upstreams[next(self._next_upstream)]
        up_reader, up_writer = await asyncio.open_connection(host, port, limit=_HEAD_LIMIT)
        self._open.add(up_writer)
        return up_reader, up_writer

    async def _replay(self, request: bytes) -> None:
        """The same bytes again on a connection of their own; the answer is only counted."""
        with contextlib.suppress(OSError, _Closed, asyncio.LimitOverrunError, ValueError):
            if self._closing:
                return
            up_reader, up_writer = await self._connect()
            try:
                up_writer.write(request)
                await up_writer.drain()
                response = await read_message(up_reader, response=True)
                if response is not None:
                    self.statuses[status_of(response)] += 1
            finally:
                self._open.discard(up_writer)
                up_writer.transport.abort()
