"""The latency histogram: one middleware, canonical route labels, one registry per app."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest
from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry
from pytest_aiohttp import AiohttpClient

from protocol.errors import ConflictError, ErrorCode
from server_common.accounts import Principal, Role
from server_common.accounts.web import PRINCIPAL
from server_common.metrics import REQUEST_DURATION, HttpMetrics, metrics_route
from server_common.web import Handler, error_middleware
from tests.scrape import parse

COUNT = REQUEST_DURATION + "_count"


@web.middleware
async def as_operator(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request signed in as an operator (/metrics is for operators; how a principal
    is authenticated is the accounts tests' business)."""
    request[PRINCIPAL] = Principal("olga", Role.OPERATOR, "NHS England", None)
    return await handler(request)


def make_app(service: str) -> web.Application:
    registry = CollectorRegistry()
    app = web.Application(middlewares=[HttpMetrics(registry, service).middleware,
                                       error_middleware, as_operator])

    async def thing(request: web.Request) -> web.Response:
        return web.json_response({"id": request.match_info["id"]})

    async def conflict(request: web.Request) -> web.Response:
        raise ConflictError("no", code=ErrorCode.SEQ_GAP)

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/things/1")

    app.add_routes([web.get("/things/{id}", thing), web.post("/conflict", conflict),
                    web.get("/moved", moved), metrics_route(registry)])
    return app


async def test_latency_is_labelled_by_route_template_and_final_status(
        aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(make_app("svc"))
    for i in range(3):
        assert (await client.get(f"/things/{i}")).status == 200
    assert (await client.post("/conflict")).status == 409
    assert (await client.get("/moved", allow_redirects=False)).status == 302
    assert (await client.get("/no/such/page")).status == 404
    assert (await client.get("/things/1", headers={"X": "y"})).status == 200
    assert (await client.request("PROPFIND", "/things/1")).status == 405

    metrics = parse(await (await client.get("/metrics")).text())
    assert metrics.value(COUNT, service="svc", method="GET", route="/things/{id}",
                         status="200") == 4
    assert metrics.value(COUNT, route="/conflict", status="409") == 1  # the error's status
    assert metrics.value(COUNT, route="/moved", status="302") == 1
    assert metrics.value(COUNT, route="unmatched", status="404") == 1
    assert metrics.value(COUNT, method="other", route="unmatched", status="405") == 1
    routes = {labels["route"] for labels, _ in metrics.series(COUNT)}
    assert routes == {"/things/{id}", "/conflict", "/moved", "unmatched"}  # no raw paths
    # buckets reach a minute: a big batch takes seconds
    assert metrics.series(REQUEST_DURATION + "_bucket", le="60.0")


async def test_two_apps_in_one_process_keep_their_own_metrics(
        aiohttp_client: AiohttpClient) -> None:
    one = await aiohttp_client(make_app("one"))
    two = await aiohttp_client(make_app("two"))  # no duplicate-series error
    await one.get("/things/a")
    seen_by_two = parse(await (await two.get("/metrics")).text())
    assert seen_by_two.series(COUNT, service="one") == []
    # nothing lands in prometheus-client's process-wide default registry
    assert REGISTRY.get_sample_value(COUNT, {"service": "one", "method": "GET",
                                             "route": "/things/{id}", "status": "200"}) is None


async def test_request_log_says_what_happened(aiohttp_client: AiohttpClient,
        caplog: pytest.LogCaptureFixture) -> None:
    """The one request log line of each request: a redirect is logged as such, and a
    client that gives up before the answer as 499 — never as a server error."""
    started = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        started.set()
        await asyncio.sleep(30)
        return web.json_response({})

    app = make_app("svc")
    app.router.add_get("/slow", slow)
    client = await aiohttp_client(app)
    caplog.set_level(logging.INFO, logger="server_common.web")
    assert (await client.get("/moved", allow_redirects=False)).status == 302
    request = asyncio.create_task(client.get("/slow"))
    await started.wait()
    request.cancel()  # the client hangs up
    with contextlib.suppress(asyncio.CancelledError):
        await request

    async with asyncio.timeout(10):
        while True:
            statuses = {getattr(r, "path", None): getattr(r, "status", None)
                        for r in caplog.records if r.getMessage() == "request"}
            if "/slow" in statuses:
                break
            await asyncio.sleep(0.01)
    assert statuses == {"/moved": 302, "/slow": 499}
