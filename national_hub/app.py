"""Wiring: the hub's app, its pool and its background jobs; the stores and services are
built by :class:`~national_hub.services.container.HubServices`, here and in every
``national-hub`` command."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import CollectorRegistry

from national_hub.config import DEFAULT_DATABASE, HubConfig
from national_hub.handlers import (
    anti_entropy,
    audit,
    audit_page,
    federation,
    health,
    links,
    notices,
    openapi,
    ops,
    practitioner,
    practitioner_pages,
    review_page,
    shielded,
    witness,
)
from national_hub.handlers import appkeys as k
from national_hub.handlers.nav import HUB_NAV
from national_hub.metrics import HubMetrics
from national_hub.services.container import HubServices
from national_hub.services.notices import NoticeJob
from national_hub.services.notices_metrics import NoticeCollector
from protocol import keys
from server_common import access, accounts, database, pages, ratelimit, surface
from server_common.headers import static_routes
from server_common.metrics import HttpMetrics, metrics_route
from server_common.tasks import background, run_every
from server_common.web import TRUSTED_PROXIES, health_routes

log = logging.getLogger(__name__)
PACKAGE = "national_hub"
NOTICE_JOB = web.AppKey("notice_job", NoticeJob)

# Beyond server_common.access.ANONYMOUS (probes, login, its style sheet): the API's
# description, which describes endpoints and never data, and the hub's public key,
# which nodes pin and which is public by nature.
ANONYMOUS = ("GET /openapi.json", "GET /v1/hub/key")
# The node protocol: authenticated by each request's Ed25519 signature, verified in
# national_hub.handlers.federation before anything else.
NODE_SIGNED = (
    "POST /v1/councils/{code}/batches",
    "GET /v1/councils/{code}/cursor",
    "POST /v1/councils/{code}/keys",
    "POST /v1/councils/{code}/heartbeats",
    "POST /v1/councils/{code}/digests",
    "POST /v1/councils/{code}/digests/records",
    "GET /v1/councils/{code}/audit/checkpoint",
    "POST /v1/councils/{code}/audit/cosignatures",
    "POST /v1/councils/{code}/audit/refusals",
    "GET /v1/councils/{code}/audit/node-log",
    "POST /v1/councils/{code}/audit/node-log",
    "GET /v1/councils/{code}/shielded",
    "GET /v1/councils/{code}/notices",
)


def load_or_create_hub_key(path: Path) -> Ed25519PrivateKey:
    """The hub's signing key, created on first start (once, however many hub processes
    start together)."""
    key, created = keys.load_or_create_private_key(path)
    if created:
        log.info("created hub signing key", extra={"kid": keys.key_id(key.public_key())})
    return key


def open_pool(config: HubConfig) -> contextlib.AbstractAsyncContextManager[asyncpg.Pool]:
    return database.open_pool(config.database, DEFAULT_DATABASE)


@contextlib.asynccontextmanager
async def open_read_pool(config: HubConfig, primary: asyncpg.Pool
                         ) -> AsyncIterator[asyncpg.Pool]:
    """The pool for reads that may lag: a streaming replica's when ``database.read_url``
    is set, else the primary's own."""
    if not config.database.read_url:
        yield primary
        return
    pool = await database.create_pool(config.database.read_url, config.database)
    try:
        yield pool
    finally:
        await pool.close()


def create_app(config: HubConfig) -> web.Application:
    registry = CollectorRegistry()  # the app's own: never prometheus-client's global one
    metrics = HubMetrics(registry)
    notice_metrics = NoticeCollector()
    registry.register(notice_metrics)
    app = web.Application(middlewares=surface.middlewares(HttpMetrics(registry, PACKAGE)),
                          client_max_size=config.server.max_body_bytes)
    app[k.CONFIG] = config
    # Deny by default: only these answer anyone (server_common.access)
    access.install(app, anonymous=ANONYMOUS, node_signed=NODE_SIGNED)
    app[TRUSTED_PROXIES] = config.server.proxy_networks()
    app[k.HUB_KEY] = load_or_create_hub_key(config.hub.key_file)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        async with open_pool(config) as pool, open_read_pool(config, pool) as read_pool:
            await database.check_pool(pool, PACKAGE)
            app[k.POOL], app[k.READ_POOL] = pool, read_pool
            services = app[k.SERVICES] = HubServices(config, pool, read_pool=read_pool,
                                                     hub_key=app[k.HUB_KEY], observer=metrics)
            app[k.NODE_AUTH] = services.node_auth
            app[k.COUNCILS] = services.councils
            app[k.ROTATION] = services.rotation
            app[k.RESOLVER] = services.resolver
            app[k.INTAKE] = services.intake
            app[k.HEALTH] = services.health
            app[k.ANTI_ENTROPY] = services.anti_entropy
            app[k.SHIELDED_ELSEWHERE] = services.shielded_elsewhere
            app[k.AUDIT] = services.audit
            app[k.REVIEW] = services.review
            app[witness.WITNESSES] = services.witnesses
            app[witness.NODE_LOGS] = services.node_logs
            app[k.SEARCH] = services.search  # may lag: a replica if configured
            app[notices.NOTICE_FEED] = services.notice_feed
            app[NOTICE_JOB] = services.notice_job
            ttl = config.hub.nonce_ttl

            async def purge_nonces() -> None:
                await services.node_auth.purge_nonces(ttl)

            loops = [
                services.audit.checkpoint_periodically(config.audit.checkpoint_interval),
                run_every("nonce purge", purge_nonces, min(60.0, ttl / 3),
                          first_after=min(60.0, ttl / 3)),
            ]
            if config.retention.interval > 0:
                loops.append(run_every("retention", services.retention.run,
                                       config.retention.interval))
            if config.resolver.enabled:
                loops.append(services.resolver.run())
            if config.notices.interval > 0:
                loops.append(run_every("notices", app[NOTICE_JOB].run,
                                       config.notices.interval))
            async with background(*loops):
                yield

    app.cleanup_ctx.append(lifecycle)
    pages.setup(app, service=practitioner_pages.SERVICE, package="national_hub", nav=HUB_NAV)
    # "/" is the practitioner's search page (the landing page for other roles)
    accounts.install(app, k.POOL, config.accounts, service=practitioner_pages.SERVICE,
                     landing=False)
    ratelimit.install(app, k.POOL, config.rate_limits)
    app.add_routes(federation.routes())
    app.add_routes(anti_entropy.routes())
    app.add_routes(witness.routes())
    app.add_routes(shielded.routes())
    app.add_routes(notices.routes())
    app.add_routes(health.routes())
    app.add_routes(health_routes(k.POOL, PACKAGE,
                                 extra_check=lambda conn: app[k.AUDIT].check_writable(conn)))
    app.add_routes(audit.routes())
    app.add_routes(audit_page.routes())
    app.add_routes(review_page.routes())
    app.add_routes(links.routes())
    app.add_routes(ops.routes())
    app.add_routes(openapi.routes())
    app.add_routes(static_routes())
    app.add_routes(practitioner.routes())
    app.add_routes(practitioner_pages.routes())

    async def before_scrape(request: web.Request) -> None:
        await metrics.refresh(request.app[k.HEALTH], request.app[k.AUDIT])
        await notice_metrics.refresh(request.app[notices.NOTICE_FEED], request.app[NOTICE_JOB])

    app.add_routes([metrics_route(registry, before_scrape)])
    return app
