"""The fault proxy does to HTTP traffic what each fault says, and nothing else: a
request dropped or cut short never reaches the server; a response cut short was
served; a duplicate reaches the server twice; a cut link refuses everything until
it is back; without faults every request and answer passes byte for byte (chunked
answers too); the same seed gives each connection the same faults."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench.chaos.proxy import FaultProxy, FaultRates


class Backend:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.second = asyncio.Event()

    async def echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.bodies.append(body)
        if len(self.bodies) == 2:
            self.second.set()
        return web.Response(body=b"echo:" + body)

    async def chunked(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for part in (b"one,", b"two,", b"three"):
            await resp.write(part)
        await resp.write_eof()
        return resp


@pytest.fixture
async def backend() -> AsyncIterator[tuple[Backend, int]]:
    b = Backend()
    app = web.Application()
    app.router.add_post("/echo", b.echo)
    app.router.add_get("/chunked", b.chunked)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    assert server.port is not None
    yield b, server.port
    await server.close()


async def _post(url: str, body: bytes) -> bytes | None:
    """The answer's body, or None when the connection failed."""
    connector = aiohttp.TCPConnector(force_close=True)  # a connection per request
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=5)) as http:
        try:
            async with http.post(f"{url}/echo", data=body) as resp:
                return await resp.read()
        except (aiohttp.ClientError, TimeoutError):
            return None


async def _proxy(port: int, rates: FaultRates, seed: int = 1) -> FaultProxy:
    return await FaultProxy([("127.0.0.1", port)], rates, seed).start()


async def test_no_faults_pass_everything_through(backend: tuple[Backend, int]) -> None:
    b, port = backend
    proxy = await _proxy(port, FaultRates())
    body = bytes(range(256)) * 400  # larger than one socket read
    try:
        async with aiohttp.ClientSession() as http:  # keep-alive: many requests, one connection
            for i in range(5):
                async with http.post(f"{proxy.url}/echo", data=body + bytes([i])) as resp:
                    assert await resp.read() == b"echo:" + body + bytes([i])
            async with http.get(f"{proxy.url}/chunked") as resp:
                assert await resp.read() == b"one,two,three"
    finally:
        await proxy.close()
    assert len(b.bodies) == 5 and proxy.faults == {}
    assert proxy.statuses == {200: 6}


@pytest.mark.parametrize(("fault", "served", "answered"), [
    ("drop", 0, False),
    ("truncate_request", 0, False),
    ("truncate_response", 1, False),
    ("duplicate", 2, True),
    ("overtake", 2, True),
    ("delay", 1, True),
])
async def test_each_fault(backend: tuple[Backend, int], fault: str, served: int,
                          answered: bool) -> None:
    b, port = backend
    proxy = await _proxy(port, FaultRates(**{fault: 1.0}, max_delay=0.3))
    try:
        answer = await _post(proxy.url, b"x" * 5000)
        if served == 2:  # the replay runs on its own connection
            await asyncio.wait_for(b.second.wait(), 5)
        else:
            await asyncio.sleep(0.3)  # long enough for a request that did get through
    finally:
        await proxy.close()
    assert (answer == b"echo:" + b"x" * 5000) is answered
    assert b.bodies == [b"x" * 5000] * served  # whole requests only, never a part
    assert proxy.faults[fault] == 1


async def test_cut_refuses_until_the_link_is_back(backend: tuple[Backend, int]) -> None:
    b, port = backend
    proxy = await _proxy(port, FaultRates())
    try:
        proxy.cut(0.5)
        assert await _post(proxy.url, b"during") is None
        await asyncio.sleep(0.6)
        assert await _post(proxy.url, b"after") == b"echo:after"
    finally:
        await proxy.close()
    assert b.bodies == [b"after"]
    assert proxy.faults["cut"] == 1 and proxy.faults["refused_while_cut"] == 1


async def test_same_seed_same_faults(backend: tuple[Backend, int]) -> None:
    _, port = backend
    rates = FaultRates(drop=0.2, truncate_response=0.2, duplicate=0.2)
    outcomes = []
    for seed in (5, 5, 6):
        proxy = await _proxy(port, rates, seed)
        try:
            outcomes.append([await _post(proxy.url, b"n") is not None for _ in range(30)])
        finally:
            await proxy.close()
    assert outcomes[0] == outcomes[1]
    assert outcomes[0] != outcomes[2]
