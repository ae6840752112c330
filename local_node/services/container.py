"""The one place a council node's stores and services are built (as Synapse's
``HomeServer``).

``create_app`` builds one :class:`NodeServices` per process and every ``local-node``
command one for its pool; nothing else constructs a store or a service, so a service is
wired the same way for the server, a command, a test and a benchmark, and a store is
passed in, never made inside a service. Services are built when first asked for.

Services that talk to the hub are made per connection (:meth:`NodeServices.publisher`,
:meth:`NodeServices.reconciler`, :meth:`NodeServices.witness`,
:meth:`NodeServices.key_rotator`): the connection is opened by whoever holds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from local_node.config import NodeConfig, ReconcileSection
from local_node.feed_text import MAX_FEED_BYTES
from local_node.keyfile import KeyFile, KeySource
from local_node.services.hub_shielding import HubShielding
from local_node.services.ingest import IngestService
from local_node.services.key_rotation import KeyRotator
from local_node.services.model_training import NodeModelTrainer
from local_node.services.notices import NoticeService
from local_node.services.projection import Projector
from local_node.services.publisher import Publisher, PublishObserver
from local_node.services.reconcile import Reconciler
from local_node.services.retention import NodeRetention
from local_node.services.review import ReviewService
from local_node.services.search import SearchService
from local_node.services.status import NodeStatus
from local_node.services.witness import Witness
from local_node.storage.children import ChildStore
from local_node.storage.key_status import KeyStatusStore
from local_node.storage.models import ModelStore
from local_node.storage.notices import NoticeStore
from local_node.storage.outbox import OutboxStore
from local_node.storage.reconcile import ReconcileStore
from local_node.storage.retention import RetentionStore
from local_node.storage.review import ReviewStore
from local_node.storage.shielding import ShieldStore
from local_node.storage.witness import WitnessStore
from local_node.transport import HubClient
from server_common.audit.service import AuditLog


@dataclass(frozen=True, slots=True)
class NodeStores:
    """One of each store. Stores hold no state of their own, only SQL."""

    children: ChildStore = field(default_factory=ChildStore)
    key_status: KeyStatusStore = field(default_factory=KeyStatusStore)
    models: ModelStore = field(default_factory=ModelStore)
    notices: NoticeStore = field(default_factory=NoticeStore)
    outbox: OutboxStore = field(default_factory=OutboxStore)
    reconcile: ReconcileStore = field(default_factory=ReconcileStore)
    retention: RetentionStore = field(default_factory=RetentionStore)
    review: ReviewStore = field(default_factory=ReviewStore)
    shields: ShieldStore = field(default_factory=ShieldStore)
    witness: WitnessStore = field(default_factory=WitnessStore)


class NodeServices:
    """A council node's services over one pool.

    ``config`` is needed by the services that know the council, its policy or its audit
    log (search, retention, the audit log, anything that talks to the hub); ingest and
    the review list need only the pool. ``signing``: the council key that signs the
    node's audit checkpoints (None: the log only appends and verifies); ``trusted_keys``:
    the council keys whose checkpoints verify.
    """

    def __init__(self, pool: asyncpg.Pool, config: NodeConfig | None = None, *,
                 signing: Ed25519PrivateKey | None = None,
                 trusted_keys: Sequence[Ed25519PublicKey] = (),
                 stores: NodeStores | None = None) -> None:
        self.pool = pool
        self._config = config
        self.signing = signing
        self.trusted_keys = list(trusted_keys)
        self.stores = stores or NodeStores()

    @property
    def config(self) -> NodeConfig:
        if self._config is None:
            raise RuntimeError("this service needs the node's configuration: "
                               "build NodeServices(pool, config)")
        return self._config

    @cached_property
    def audit(self) -> AuditLog:
        return AuditLog(self.pool, self.signing, origin=self.config.audit_origin,
                        trusted_keys=self.trusted_keys,
                        seal_key_file=self.config.accounts.secret_key_file)

    @cached_property
    def projector(self) -> Projector:
        return Projector(self.stores.children, self.stores.outbox, self.stores.shields)

    @cached_property
    def ingest(self) -> IngestService:
        return IngestService(self.pool, self.stores.children, self.projector,
                             self.stores.review, self.stores.models,
                             # the default when built without a configuration (tests)
                             max_feed_bytes=(MAX_FEED_BYTES if self._config is None
                                             else self._config.ingest.max_feed_bytes))

    @cached_property
    def model_trainer(self) -> NodeModelTrainer:
        """The local matching model, trained from the council's records (``model train``)."""
        return NodeModelTrainer(self.pool, self.stores.children, self.stores.models)

    @cached_property
    def review(self) -> ReviewService:
        # Decisions are audited wherever the node's audit log is known (the CLI's are).
        return ReviewService(self.pool, self.stores.children, self.stores.review,
                             self.projector,
                             audit=self.audit if self._config is not None else None)

    @cached_property
    def notices(self) -> NoticeService:
        """Notices from the hub: fetched, routed, emailed; the inbox (docs/notices.md)."""
        return NoticeService(self.pool, self.audit, self.config.notices, self.config.council.code,
                             store=self.stores.notices)

    @cached_property
    def search(self) -> SearchService:
        return SearchService(self.pool, self.stores.children, self.config.council.code,
                             self.stores.shields, self.config.retention.policy()
                             if self._config is not None else None)

    @cached_property
    def retention(self) -> NodeRetention:
        return NodeRetention(self.pool, self.stores.retention, self.stores.outbox,
                             self.audit, self.config.retention.policy(),
                             self.config.council.code, children=self.stores.children)

    @cached_property
    def status(self) -> NodeStatus:
        return NodeStatus(self.pool, self.stores.children, self.stores.outbox,
                          self.stores.key_status, self.stores.witness)

    def publisher(self, client: HubClient, key: Ed25519PrivateKey | KeySource,
                  hub_key: Ed25519PublicKey, *, max_attempts: int | None = None,
                  observer: PublishObserver | None = None) -> Publisher:
        publishing = self.config.publisher
        shielding = HubShielding(self.pool, client, self.stores.shields,
                                 children=self.stores.children, projector=self.projector)
        return Publisher(self.pool, self.stores.outbox, client, self.config.council.code,
                         key, hub_key, batch_size=publishing.batch_size,
                         max_backoff=publishing.max_backoff, max_attempts=max_attempts,
                         pipeline=publishing.pipeline, observer=observer,
                         key_status=self.stores.key_status, shielding=shielding)

    def reconciler(self, publisher: Publisher) -> Reconciler:
        # without a configuration (a test's), the section's defaults
        section = self._config.reconcile if self._config is not None else ReconcileSection()
        return Reconciler(self.pool, self.stores.reconcile, self.stores.outbox, publisher,
                          max_wait=section.max_wait)

    def witness(self, client: HubClient, hub_keys: Sequence[Ed25519PublicKey]) -> Witness:
        """The node's witness of the hub's audit log, signing with the council key file."""
        return Witness(self.pool, client, self.config.council.code,
                       KeyFile(self.config.key_file), hub_keys, self.stores.witness)

    def key_rotator(self, client: HubClient) -> KeyRotator:
        return KeyRotator(self.pool, self.stores.key_status, client,
                          self.config.council.code, self.config.key_file)
