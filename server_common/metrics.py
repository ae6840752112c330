"""Prometheus plumbing both servers share: a registry per app, the request-latency
histogram recorded in one middleware, and the ``/metrics`` route.

Each app builds its own ``CollectorRegistry`` (never prometheus-client's global
one), so a hub and several nodes can live in one process, as they do in tests.

Latency is labelled with the route's canonical path (``/v1/councils/{code}/batches``),
never the raw path, so the number of series stays bounded whatever clients send;
a request that matched no route is labelled ``unmatched``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from server_common.accounts.principal import Role
from server_common.accounts.web import require_roles
from server_common.web import Handler

REQUEST_DURATION = "signpost_http_request_duration_seconds"
UNMATCHED = "unmatched"
# Batch intake of a large batch takes seconds; the default buckets stop at 10 s.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

BeforeScrape = Callable[[web.Request], Awaitable[None]]
# Clients may send any method token; anything else is "other", so labels stay bounded.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_label(request: web.Request) -> str:
    """The canonical path of the route that handled the request (bounded cardinality)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


class HttpMetrics:
    """The request-latency histogram of one app, and the middleware that records it."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.service = service
        self.duration = Histogram(
            REQUEST_DURATION, "Time to answer an HTTP request, by route and status.",
            ["service", "method", "route", "status"], buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def observe(self, request: web.Request, status: int, seconds: float) -> None:
        method = request.method if request.method in METHODS else "other"
        self.duration.labels(self.service, method, route_label(request),
                             str(status)).observe(seconds)

    @property
    def middleware(self) -> Middleware:
        """Put it before ``error_middleware``, so it sees the status the client gets."""

        @web.middleware
        async def metrics_middleware(request: web.Request,
                                     handler: Handler) -> web.StreamResponse:
            started = time.perf_counter()
            try:
                response = await handler(request)
            except web.HTTPException as exc:  # redirects; errors are answered inside
                self.observe(request, exc.status, time.perf_counter() - started)
                raise
            except asyncio.CancelledError:  # the client went away: no status to record
                raise
            self.observe(request, response.status, time.perf_counter() - started)
            return response

        return metrics_middleware


def metrics_route(registry: CollectorRegistry, before: BeforeScrape | None = None,
                  path: str = "/metrics") -> web.RouteDef:
    """``GET /metrics`` in the Prometheus text format, for operators only (Prometheus
    scrapes with an operator's bearer token: ``users token``). ``before`` refreshes
    what custom collectors read (their ``collect()`` is synchronous; the data behind
    it is not)."""

    @require_roles(Role.OPERATOR)
    async def metrics(request: web.Request) -> web.Response:
        if before is not None:
            await before(request)
        # The classic text format (0.0.4), which every Prometheus 2.x server reads.
        return web.Response(body=generate_latest(registry),
                            headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

    return web.get(path, metrics)
