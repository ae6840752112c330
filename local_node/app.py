"""Wiring: the one place the node's pool, stores and services are built."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from datetime import datetime
from typing import Any

import asyncpg
from aiohttp import web
from prometheus_client import CollectorRegistry

from local_node.config import NodeConfig
from local_node.handlers import audit as audit_handlers
from local_node.handlers import notices as notice_handlers
from local_node.handlers import practitioner
from local_node.handlers.appkeys import AUDIT, CONFIG, POOL, SEARCH, Auditor
from local_node.keyfile import KeyFile
from local_node.metrics import NodeMetrics
from local_node.services.ingest import IngestService
from local_node.services.key_rotation import KeyRotator, RotationOutcome
from local_node.services.notices import NoticeService
from local_node.services.notices_metrics import NodeNoticeCollector
from local_node.services.projection import Projector
from local_node.services.publisher import Publisher, PublishObserver
from local_node.services.reconcile import Reconciler
from local_node.services.retention import NodeRetention
from local_node.services.review import ReviewService
from local_node.services.search import SearchService
from local_node.services.witness import Witness
from local_node.storage.children import ChildStore
from local_node.storage.key_status import KeyStatusStore
from local_node.storage.outbox import OutboxStore
from local_node.storage.reconcile import ReconcileStore
from local_node.storage.retention import RetentionStore
from local_node.storage.review import ReviewStore
from local_node.transport import connect
from protocol import keys
from protocol.batch import check_council_code
from server_common import access, accounts, database, ratelimit, surface
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


def practitioner_auditor(log: AuditLog) -> Auditor:
    """Audited reads: the entry is committed before the answer leaves (or it fails)."""
    async def write(who: Principal, action: str, purpose: str, parameters: dict[str, Any],
                    child_ids: list[str]) -> None:
        await log.record(AuditEntry(who.user, str(who.role), who.organisation, purpose,
                                    action, parameters, tuple(child_ids)))
    return write


def ingest_service(pool: asyncpg.Pool) -> IngestService:
    children = ChildStore()
    return IngestService(pool, children, Projector(children, OutboxStore()))


def review_service(pool: asyncpg.Pool, audit: AuditLog | None = None) -> ReviewService:
    """The review decisions; given the node's audit log, each is audited (the CLI's are)."""
    children = ChildStore()
    return ReviewService(pool, children, ReviewStore(), Projector(children, OutboxStore()),
                         audit=audit)


@contextlib.asynccontextmanager
async def open_publisher(config: NodeConfig, pool: asyncpg.Pool,
                         max_attempts: int | None = None,
                         observer: PublishObserver | None = None) -> AsyncIterator[Publisher]:
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
        yield Publisher(pool, OutboxStore(), client, config.council.code, key, hub_key,
                        batch_size=config.publisher.batch_size,
                        max_backoff=config.publisher.max_backoff, max_attempts=max_attempts,
                        pipeline=config.publisher.pipeline, observer=observer)


def reconciler(pool: asyncpg.Pool, publisher: Publisher) -> Reconciler:
    return Reconciler(pool, ReconcileStore(), OutboxStore(), publisher)


def hub_witness(config: NodeConfig, pool: asyncpg.Pool, publisher: Publisher) -> Witness:
    """The node's witness of the hub's audit log, on the publisher's connection."""
    assert config.hub.public_key_file is not None  # open_publisher checked it
    hub_key = keys.load_public_key(config.hub.public_key_file.read_bytes(),
                                   str(config.hub.public_key_file))
    return Witness(pool, publisher.client, config.council.code, KeyFile(config.key_file),
                   [hub_key])


def retention_service(pool: asyncpg.Pool, config: NodeConfig) -> NodeRetention:
    return NodeRetention(pool, RetentionStore(), OutboxStore(),
                         AuditLog(pool, None, origin=config.audit_origin),
                         config.retention.policy(), config.council.code)


async def rotate_key(config: NodeConfig, not_after: datetime | None = None) -> RotationOutcome:
    """``local-node keys rotate``: announce a new key to the hub and switch to it."""
    # Requests are signed with an explicit key each (old, then new), never the file's.
    async with open_pool(config) as pool, connect(
            config.hub, config.council.code, keys.load_private_key(config.key_file)) as client:
        await database.check_pool(pool, PACKAGE)  # before anything changes, not half-way
        rotator = KeyRotator(pool, KeyStatusStore(), client, config.council.code,
                             config.key_file)
        return await rotator.rotate(not_after)


def create_app(config: NodeConfig, *, publish: bool = True) -> web.Application:
    registry = CollectorRegistry()  # the app's own: never prometheus-client's global one
    metrics = NodeMetrics(registry, OutboxStore())
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
            app[SEARCH] = SearchService(pool, ChildStore(), config.council.code)
            # The node's own audit log: every local search and child view, fail closed;
            # its checkpoints are signed with the council key (when it has one yet).
            signing = (keys.load_private_key(config.key_file) if config.key_file.exists()
                       else None)
            audit_log = app[AUDIT_LOG] = AuditLog(
                pool, signing, origin=config.audit_origin)
            app[AUDIT] = practitioner_auditor(audit_log)
            notices = app[notice_handlers.NOTICES] = NoticeService(
                pool, audit_log, config.notices, config.council.code)
            # Coroutines made only as they start: one made and never awaited warns
            def own_loops() -> list[Coroutine[Any, Any, None]]:
                loops = []
                if signing is not None:
                    loops.append(audit_log.checkpoint_periodically(
                        config.audit.checkpoint_interval))
                if config.retention.interval > 0:
                    loops.append(run_every("retention", retention_service(pool, config).run,
                                           config.retention.interval))
                return loops

            def publishing_loops(publisher: Publisher) -> list[Coroutine[Any, Any, None]]:
                loops = [publisher.run_forever(config.publisher.interval,
                                               config.publisher.heartbeat_interval)]
                if config.audit.witness_interval > 0:
                    loops.append(run_every("witness the hub's audit log",
                                           hub_witness(config, pool, publisher).run_once,
                                           config.audit.witness_interval))
                if config.notices.interval > 0:
                    notices.client = publisher.client  # fetched with the publisher's
                    loops.append(run_every("notices from the hub", notices.run,
                                           config.notices.interval))
                if config.reconcile.interval > 0:
                    loops.append(run_every("reconcile with the hub",
                                           reconciler(pool, publisher).reconcile,
                                           config.reconcile.interval,
                                           first_after=config.reconcile.interval))
                return loops

            async with background(*own_loops()):
                if not publish:
                    yield
                    return
                async with open_publisher(config, pool, observer=metrics) as publisher, \
                        background(*publishing_loops(publisher)):
                    yield

    app.cleanup_ctx.append(lifecycle)
    accounts.install(app, POOL, config.accounts,
                     service=f"Signpost {config.council.name or config.council.code}",
                     council=config.council.code)
    ratelimit.install(app, POOL, config.rate_limits)
    app.add_routes(health_routes(POOL, PACKAGE))
    app.add_routes(static_routes())
    app.add_routes(practitioner.routes())
    app.add_routes(notice_handlers.routes())
    app.add_routes(audit_handlers.routes())

    async def before_scrape(request: web.Request) -> None:
        await metrics.refresh(request.app[POOL])
        await notice_metrics.refresh(request.app[notice_handlers.NOTICES])

    app.add_routes([metrics_route(registry, before_scrape)])
    return app
