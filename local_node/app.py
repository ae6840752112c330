"""Wiring: the node's app, its pool, its connection to the hub and its background jobs.
The stores and services are built by :class:`~local_node.services.container.NodeServices`,
here and in every ``local-node`` command; the functions below are shorthands over it
(tests and benchmarks use them too)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine, Sequence
from datetime import datetime
from typing import Any

import asyncpg
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from prometheus_client import CollectorRegistry

from local_node.config import NodeConfig
from local_node.handlers import audit as audit_handlers
from local_node.handlers import notices as notice_handlers
from local_node.handlers import practitioner, review_page
from local_node.handlers.appkeys import AUDIT, CONFIG, POOL, REVIEW, SEARCH, SERVICES, Auditor
from local_node.handlers.nav import NODE_NAV
from local_node.keyfile import KeyFile
from local_node.metrics import NodeMetrics
from local_node.services.container import NodeServices, NodeStores
from local_node.services.ingest import IngestService
from local_node.services.key_rotation import RotationOutcome
from local_node.services.notices_metrics import NodeNoticeCollector
from local_node.services.publisher import Publisher, PublishObserver
from local_node.services.reconcile import Reconciler
from local_node.services.retention import NodeRetention
from local_node.services.review import ReviewService
from local_node.services.witness import Witness
from local_node.transport import connect
from protocol import keys
from protocol.batch import check_council_code
from server_common import access, accounts, database, pages, ratelimit, surface
from server_common.accounts.principal import Principal
from server_common.audit.entry import AuditEntry
from server_common.audit.service import AuditLog
from server_common.config import ConfigError
from server_common.headers import static_routes
from server_common.metrics import HttpMetrics, metrics_route
from server_common.refusals import AUDIT_LOG
from server_common.tasks import background, run_every
from server_common.web import TRUSTED_PROXIES, health_routes

PACKAGE = "local_node"
log = logging.getLogger(__name__)


def open_pool(config: NodeConfig) -> contextlib.AbstractAsyncContextManager[asyncpg.Pool]:
    """The node's pool; a node without a valid council code has no database to open."""
    check_council_code(config.require_council(), "council.code")
    return database.open_pool(config.database, config.database_name)


@contextlib.asynccontextmanager
async def open_services(config: NodeConfig, *, checked: bool = False,
                        signing: Ed25519PrivateKey | None = None,
                        trusted_keys: Sequence[Ed25519PublicKey] = (),
                        ) -> AsyncIterator[NodeServices]:
    """The node's services for one command, as the server builds them, over a pool of
    the command's own (its schema checked first when ``checked``)."""
    async with open_pool(config) as pool:
        if checked:
            await database.check_pool(pool, PACKAGE)
        yield NodeServices(pool, config, signing=signing, trusted_keys=trusted_keys)


def practitioner_auditor(log: AuditLog) -> Auditor:
    """Audited reads: the entry is committed before the answer leaves (or it fails)."""
    async def write(who: Principal, action: str, purpose: str, parameters: dict[str, Any],
                    child_ids: list[str]) -> None:
        await log.record(AuditEntry(who.user, str(who.role), who.organisation, purpose,
                                    action, parameters, tuple(child_ids)))
    return write


def ingest_service(pool: asyncpg.Pool) -> IngestService:
    return NodeServices(pool).ingest


def review_service(pool: asyncpg.Pool) -> ReviewService:
    """The review decisions, unaudited (a command's, built with the config, are)."""
    return NodeServices(pool).review


@contextlib.asynccontextmanager
async def open_publisher(config: NodeConfig, pool: asyncpg.Pool,
                         max_attempts: int | None = None,
                         observer: PublishObserver | None = None, *,
                         services: NodeServices | None = None) -> AsyncIterator[Publisher]:
    if not config.key_file.exists():
        raise ConfigError(
            f"council key {config.key_file} not found: run 'local-node keys generate'")
    if config.hub.public_key_file is None or not config.hub.public_key_file.exists():
        raise ConfigError("hub.public_key_file must name the hub's public key (PEM)")
    # Re-read whenever the file is replaced (``local-node keys rotate`` in another
    # process): the publisher switches keys without a restart. Loaded once now to fail fast.
    key = KeyFile(config.key_file)
    key()
    await database.check_pool(pool, PACKAGE)
    hub_key = keys.load_public_key(config.hub.public_key_file.read_bytes(),
                                   str(config.hub.public_key_file))
    async with connect(config.hub, config.council.code, key) as client:
        services = services or NodeServices(pool, config)
        yield services.publisher(client, key, hub_key, max_attempts=max_attempts,
                                 observer=observer)


def reconciler(pool: asyncpg.Pool, publisher: Publisher) -> Reconciler:
    return NodeServices(pool).reconciler(publisher)


def hub_witness(config: NodeConfig, pool: asyncpg.Pool, publisher: Publisher,
                services: NodeServices | None = None) -> Witness:
    """The node's witness of the hub's audit log, on the publisher's connection."""
    assert config.hub.public_key_file is not None  # open_publisher checked it
    hub_key = keys.load_public_key(config.hub.public_key_file.read_bytes(),
                                   str(config.hub.public_key_file))
    return (services or NodeServices(pool, config)).witness(publisher.client, [hub_key])


def retention_service(pool: asyncpg.Pool, config: NodeConfig) -> NodeRetention:
    return NodeServices(pool, config).retention


async def rotate_key(config: NodeConfig, not_after: datetime | None = None) -> RotationOutcome:
    """``local-node keys rotate``: announce a new key to the hub and switch to it."""
    # Requests are signed with an explicit key each (old, then new), never the file's.
    async with open_pool(config) as pool, connect(
            config.hub, config.council.code, keys.load_private_key(config.key_file)) as client:
        await database.check_pool(pool, PACKAGE)  # before anything changes, not half-way
        return await NodeServices(pool, config).key_rotator(client).rotate(not_after)


def create_app(config: NodeConfig, *, publish: bool = True) -> web.Application:
    registry = CollectorRegistry()  # the app's own: never prometheus-client's global one
    stores = NodeStores()  # the metrics read the outbox before the pool exists
    metrics = NodeMetrics(registry, stores.outbox)
    notice_metrics = NodeNoticeCollector()
    registry.register(notice_metrics)
    app = web.Application(middlewares=surface.middlewares(HttpMetrics(registry, PACKAGE)),
                          client_max_size=config.server.max_body_bytes)
    app[CONFIG] = config
    # Deny by default: only server_common.access.ANONYMOUS (probes, login) answer anyone
    access.install(app)
    app[TRUSTED_PROXIES] = config.server.proxy_networks()

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        async with open_pool(config) as pool:
            await database.check_pool(pool, PACKAGE)
            app[POOL] = pool
            # The node's own audit log: every local search and child view, fail closed;
            # its checkpoints are signed with the council key (when it has one yet).
            signing = (keys.load_private_key(config.key_file) if config.key_file.exists()
                       else None)
            services = app[SERVICES] = NodeServices(pool, config, signing=signing,
                                                    stores=stores)
            app[SEARCH] = services.search
            audit_log = app[AUDIT_LOG] = services.audit
            app[AUDIT] = practitioner_auditor(audit_log)
            app[REVIEW] = services.review  # the /review page's decisions, audited
            notices = app[notice_handlers.NOTICES] = services.notices
            # Coroutines made only as they start: one made and never awaited warns
            def own_loops() -> list[Coroutine[Any, Any, None]]:
                loops = []
                if signing is not None:
                    loops.append(audit_log.checkpoint_periodically(
                        config.audit.checkpoint_interval))
                if config.retention.interval > 0:
                    loops.append(run_every("retention", services.retention.run,
                                           config.retention.interval))
                return loops

            def publishing_loops(publisher: Publisher) -> list[Coroutine[Any, Any, None]]:
                loops = [publisher.run_forever(config.publisher.interval,
                                               config.publisher.heartbeat_interval)]
                if config.audit.witness_interval > 0:
                    witness = hub_witness(config, pool, publisher, services)
                    loops.append(run_every("witness the hub's audit log, and the hub ours",
                                           lambda: witness.run_both(audit_log),
                                           config.audit.witness_interval))
                if config.notices.interval > 0:
                    notices.client = publisher.client  # fetched with the publisher's
                    loops.append(run_every("notices from the hub", notices.run,
                                           config.notices.interval))
                if config.reconcile.interval > 0:
                    loops.append(run_every("reconcile with the hub",
                                           services.reconciler(publisher).reconcile,
                                           config.reconcile.interval,
                                           first_after=config.reconcile.interval))
                return loops

            async with background(*own_loops()):
                if not publish:
                    yield
                    return
                async with open_publisher(config, pool, observer=metrics,
                                          services=services) as publisher, \
                        background(*publishing_loops(publisher)):
                    yield

    app.cleanup_ctx.append(lifecycle)
    service = f"Signpost {config.council.name or config.council.code}"
    pages.setup(app, service=service, package="local_node", nav=NODE_NAV)
    accounts.install(app, POOL, config.accounts, service=service,
                     council=config.council.code)
    ratelimit.install(app, POOL, config.rate_limits)
    app.add_routes(health_routes(POOL, PACKAGE))
    app.add_routes(static_routes())
    app.add_routes(practitioner.routes())
    app.add_routes(notice_handlers.routes())
    app.add_routes(audit_handlers.routes())
    app.add_routes(review_page.routes())

    async def before_scrape(request: web.Request) -> None:
        await metrics.refresh(request.app[POOL])
        await notice_metrics.refresh(request.app[notice_handlers.NOTICES])

    app.add_routes([metrics_route(registry, before_scrape)])
    return app
