"""The one place the hub's stores and services are built (as Synapse's ``HomeServer``).

``create_app`` builds one :class:`HubServices` per process and hands its services to
the handlers; every ``national-hub`` command builds one for its pool and asks it for
the service it needs. Nothing else constructs a store or a service, so a service is
wired the same way whether a request or an operator's command uses it, and a store is
passed in, never made inside a service.

Services are built when first asked for (``cached_property``): a command that only
lists councils builds no resolver, and each one is built once per container.

>>> HubStores().records is HubStores().records
False
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from national_hub.config import HubConfig
from national_hub.services.anti_entropy import AntiEntropy
from national_hub.services.batch_intake import BatchIntake, IntakeObserver
from national_hub.services.councils import CouncilService
from national_hub.services.health import HealthService
from national_hub.services.key_rotation import KeyRotation
from national_hub.services.linking import Linker
from national_hub.services.model_training import ModelTrainer
from national_hub.services.node_auth import NodeAuthenticator
from national_hub.services.node_logs import NodeLogWitness
from national_hub.services.notices import NoticeFeed, NoticeJob
from national_hub.services.resolver import Resolver
from national_hub.services.retention import HubRetention
from national_hub.services.review import ReviewService
from national_hub.services.search import HubSearch
from national_hub.services.shielded_elsewhere import ShieldedElsewhere
from national_hub.services.witnesses import Witnesses
from national_hub.storage.anti_entropy import AntiEntropyStore
from national_hub.storage.batches import BatchStore
from national_hub.storage.councils import CouncilStore
from national_hub.storage.health import HealthStore, WitnessHealthStore
from national_hub.storage.heartbeats import HeartbeatStore
from national_hub.storage.key_announcements import KeyAnnouncementStore
from national_hub.storage.models import ModelStore
from national_hub.storage.node_logs import NodeLogStore
from national_hub.storage.nonces import NonceStore
from national_hub.storage.notices import NoticeStore
from national_hub.storage.records import RecordStore
from national_hub.storage.resolution import ResolutionStore
from national_hub.storage.resolution_queue import ResolutionQueueStore
from national_hub.storage.retention import HubRetentionStore
from national_hub.storage.search import SearchStore
from national_hub.storage.shielding import ShieldingStore
from server_common.audit.entry import Actor
from server_common.audit.service import AuditLog
from server_common.audit.witness_store import WitnessStore


@dataclass(frozen=True, slots=True)
class HubStores:
    """One of each store. Stores hold no state of their own, only SQL."""

    anti_entropy: AntiEntropyStore = field(default_factory=AntiEntropyStore)
    batches: BatchStore = field(default_factory=BatchStore)
    councils: CouncilStore = field(default_factory=CouncilStore)
    health: HealthStore = field(default_factory=HealthStore)
    heartbeats: HeartbeatStore = field(default_factory=HeartbeatStore)
    key_announcements: KeyAnnouncementStore = field(default_factory=KeyAnnouncementStore)
    models: ModelStore = field(default_factory=ModelStore)
    node_logs: NodeLogStore = field(default_factory=NodeLogStore)
    nonces: NonceStore = field(default_factory=NonceStore)
    notices: NoticeStore = field(default_factory=NoticeStore)
    queue: ResolutionQueueStore = field(default_factory=ResolutionQueueStore)
    records: RecordStore = field(default_factory=RecordStore)
    resolution: ResolutionStore = field(default_factory=ResolutionStore)
    retention: HubRetentionStore = field(default_factory=HubRetentionStore)
    search: SearchStore = field(default_factory=SearchStore)
    shielding: ShieldingStore = field(default_factory=ShieldingStore)
    witness_health: WitnessHealthStore = field(default_factory=WitnessHealthStore)
    witnesses: WitnessStore = field(default_factory=WitnessStore)


class HubServices:
    """The hub's services over one pool.

    ``read_pool``: where searches and child views read (a streaming replica), else the
    pool. ``hub_key``: signs receipts and checkpoints; None for a command that signs
    nothing (batch intake needs it). ``actor``: who administrative changes are audited
    as (the operating-system user of a command); None in the server, whose changes come
    from nodes. ``trusted_keys``: further hub keys whose checkpoints verify (retired by
    rotation). ``observer``: told of every batch (the server's metrics).
    """

    def __init__(self, config: HubConfig, pool: asyncpg.Pool, *,
                 read_pool: asyncpg.Pool | None = None,
                 hub_key: Ed25519PrivateKey | None = None, actor: Actor | None = None,
                 trusted_keys: Sequence[Ed25519PublicKey] = (),
                 observer: IntakeObserver | None = None,
                 stores: HubStores | None = None) -> None:
        self.config = config
        self.pool = pool
        self.read_pool = read_pool or pool
        self.hub_key = hub_key
        self.actor = actor
        self.trusted_keys = list(trusted_keys)
        self.observer = observer
        self.stores = stores or HubStores()

    @cached_property
    def audit(self) -> AuditLog:
        return AuditLog(self.pool, self.hub_key, origin=self.config.audit.origin,
                        trusted_keys=self.trusted_keys,
                        seal_key_file=self.config.accounts.secret_key_file,
                        witness_keys=self.stores.councils.witness_keys)

    @cached_property
    def node_auth(self) -> NodeAuthenticator:
        return NodeAuthenticator(self.pool, self.stores.councils, self.stores.nonces)

    @cached_property
    def councils(self) -> CouncilService:
        # Audited only where someone is answerable: an operator's command.
        return CouncilService(self.pool, self.stores.councils, self.stores.heartbeats,
                              audit=self.audit if self.actor else None, actor=self.actor)

    @cached_property
    def rotation(self) -> KeyRotation:
        return KeyRotation(self.pool, self.stores.councils, self.stores.key_announcements,
                           overlap=self.config.hub.key_rotation_overlap)

    @cached_property
    def linker(self) -> Linker:
        return Linker(self.stores.records, self.stores.resolution, models=self.stores.models)

    @cached_property
    def resolver(self) -> Resolver:
        return Resolver(self.pool, self.linker, self.config.resolver,
                        queue=self.stores.queue, councils=self.stores.councils)

    @cached_property
    def intake(self) -> BatchIntake:
        if self.hub_key is None:
            raise RuntimeError("batch intake signs receipts: build HubServices with hub_key")
        return BatchIntake(self.pool, self.stores.councils, self.stores.batches,
                           self.stores.records, self.hub_key,
                           predecessor_wait=self.config.hub.predecessor_wait,
                           observer=self.observer, queued=self.resolver.wake,
                           policy=self.config.retention.policy())

    @cached_property
    def health(self) -> HealthService:
        return HealthService(self.pool, self.config.health, self.stores.health,
                             queue=self.stores.queue, witnesses=self.stores.witness_health,
                             notices=self.stores.notices)

    @cached_property
    def anti_entropy(self) -> AntiEntropy:
        return AntiEntropy(self.pool, self.stores.anti_entropy, self.stores.records)

    @cached_property
    def shielded_elsewhere(self) -> ShieldedElsewhere:
        return ShieldedElsewhere(self.pool, self.stores.shielding, queue=self.stores.queue)

    @cached_property
    def review(self) -> ReviewService:
        return ReviewService(self.pool, self.linker, councils=self.stores.councils,
                             queue=self.stores.queue, shielding=self.stores.shielding,
                             audit=self.audit)

    @cached_property
    def witnesses(self) -> Witnesses:
        return Witnesses(self.pool, self.audit, self.stores.witnesses)

    @cached_property
    def node_logs(self) -> NodeLogWitness:
        """The hub's witness of each council node's own audit log."""
        return NodeLogWitness(self.pool, self.stores.councils, self.stores.node_logs,
                              self.audit)

    @cached_property
    def search(self) -> HubSearch:
        return HubSearch(self.read_pool, self.stores.search,  # may lag: a replica
                         policy=self.config.retention.policy())

    @cached_property
    def retention(self) -> HubRetention:
        return HubRetention(self.pool, self.stores.councils, self.stores.retention,
                            self.stores.records, self.stores.resolution, self.audit,
                            self.config.retention.policy(), queue=self.stores.queue,
                            shielding=self.stores.shielding)

    @cached_property
    def model_trainer(self) -> ModelTrainer:
        return ModelTrainer(self.pool, self.stores.resolution, self.stores.models)

    @cached_property
    def notice_job(self) -> NoticeJob:
        """Makes notices from what resolution and review changed (docs/notices.md)."""
        return NoticeJob(self.pool, self.audit, self.stores.notices,
                         policy=self.config.retention.policy())

    @cached_property
    def notice_feed(self) -> NoticeFeed:
        """What each node fetches of its council's notices."""
        return NoticeFeed(self.pool, self.audit, self.stores.notices)
