"""Wiring: the one place the hub's pool, stores and services are built."""

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
from national_hub.metrics import HubMetrics
from national_hub.services.anti_entropy import AntiEntropy
from national_hub.services.batch_intake import BatchIntake
from national_hub.services.councils import CouncilService
from national_hub.services.health import HealthService
from national_hub.services.key_rotation import KeyRotation
from national_hub.services.linking import Linker
from national_hub.services.node_auth import NodeAuthenticator
from national_hub.services.notices import NoticeFeed, NoticeJob
from national_hub.services.notices_metrics import NoticeCollector
from national_hub.services.resolver import Resolver
from national_hub.services.retention import HubRetention
from national_hub.services.review import ReviewService
from national_hub.services.search import HubSearch
from national_hub.services.shielded_elsewhere import ShieldedElsewhere
from national_hub.services.witnesses import Witnesses
from national_hub.storage.anti_entropy import AntiEntropyStore
from national_hub.storage.batches import BatchStore
from national_hub.storage.councils import CouncilStore
from national_hub.storage.heartbeats import HeartbeatStore
from national_hub.storage.key_announcements import KeyAnnouncementStore
from national_hub.storage.nonces import NonceStore
from national_hub.storage.records import RecordStore
from national_hub.storage.resolution import ResolutionStore
from national_hub.storage.retention import HubRetentionStore
from national_hub.storage.shielding import ShieldingStore
from protocol import keys
from server_common import access, accounts, database, ratelimit, surface
from server_common.audit.service import AuditLog
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
    "GET /v1/councils/{code}/shielded",
    "GET /v1/councils/{code}/notices",
)


def load_or_create_hub_key(path: Path) -> Ed25519PrivateKey:
    if path.exists():
        return keys.load_private_key(path)
    key = keys.generate()
    keys.write_private_key(key, path)
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


def retention_service(pool: asyncpg.Pool, config: HubConfig, audit: AuditLog) -> HubRetention:
    return HubRetention(pool, CouncilStore(), HubRetentionStore(), RecordStore(),
                        ResolutionStore(), audit, config.retention.policy())


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
            councils, records = CouncilStore(), RecordStore()
            app[k.POOL], app[k.READ_POOL] = pool, read_pool
            app[k.NODE_AUTH] = NodeAuthenticator(pool, councils, NonceStore())
            app[k.COUNCILS] = CouncilService(pool, councils, HeartbeatStore())
            app[k.ROTATION] = KeyRotation(pool, councils, KeyAnnouncementStore(),
                                          overlap=config.hub.key_rotation_overlap)
            linker = Linker(records)
            resolver = app[k.RESOLVER] = Resolver(pool, linker, config.resolver)
            app[k.INTAKE] = BatchIntake(pool, councils, BatchStore(), records,
                                        app[k.HUB_KEY],
                                        predecessor_wait=config.hub.predecessor_wait,
                                        observer=metrics, queued=resolver.wake)
            app[k.HEALTH] = HealthService(pool, config.health)
            app[k.ANTI_ENTROPY] = AntiEntropy(pool, AntiEntropyStore())
            app[k.SHIELDED_ELSEWHERE] = ShieldedElsewhere(pool, ShieldingStore())
            app[k.AUDIT] = AuditLog(pool, app[k.HUB_KEY], origin=config.audit.origin)
            app[k.REVIEW] = ReviewService(pool, linker, audit=app[k.AUDIT])
            app[witness.WITNESSES] = Witnesses(pool, app[k.AUDIT])
            app[notices.NOTICE_FEED] = NoticeFeed(pool, app[k.AUDIT])
            app[NOTICE_JOB] = NoticeJob(pool, app[k.AUDIT])
            app[k.SEARCH] = HubSearch(read_pool)  # may lag: a replica if configured
            nonces, ttl = NonceStore(), config.hub.nonce_ttl

            async def purge_nonces() -> None:
                async with pool.acquire() as conn:
                    await nonces.purge_older_than(conn, ttl)

            loops = [
                app[k.AUDIT].checkpoint_periodically(config.audit.checkpoint_interval),
                run_every("nonce purge", purge_nonces, min(60.0, ttl / 3),
                          first_after=min(60.0, ttl / 3)),
            ]
            if config.retention.interval > 0:
                loops.append(run_every(
                    "retention", retention_service(pool, config, app[k.AUDIT]).run,
                    config.retention.interval))
            if config.resolver.enabled:
                loops.append(resolver.run())
            if config.notices.interval > 0:
                loops.append(run_every("notices", app[NOTICE_JOB].run,
                                       config.notices.interval))
            async with background(*loops):
                yield

    app.cleanup_ctx.append(lifecycle)
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
