"""The simplest load balancer: each request goes to the next backend in turn, method,
path, query, headers and body passed through unchanged, the answer passed back.
Enough to show that hub replicas share nothing but PostgreSQL."""

from __future__ import annotations

import contextlib
import itertools
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

# Hop-by-hop headers and those aiohttp sets itself on each side.
_DROP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


class RoundRobin:
    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self._next = itertools.cycle(backends)
        self.sent: Counter[str] = Counter()  # requests per backend
        self.server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        backend = next(self._next)
        self.sent[backend] += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP}
        async with aiohttp.ClientSession(auto_decompress=False) as session, session.request(
                request.method, backend + request.path_qs, headers=headers,
                data=await request.read(), allow_redirects=False) as upstream:
            body = await upstream.read()
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in _DROP}
            return web.Response(status=upstream.status, body=body, headers=out)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        return app


@contextlib.asynccontextmanager
async def round_robin(backends: list[str]) -> AsyncIterator[RoundRobin]:
    balancer = RoundRobin(backends)
    balancer.server = TestServer(balancer.app(), host="127.0.0.1")
    await balancer.server.start_server()
    try:
        yield balancer
    finally:
        await balancer.server.close()
