"""The hub's configuration (see server_common.config for how values are read)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from protocol.encoding import MAX_MESSAGE_BYTES
from protocol.request_auth import CLOCK_SKEW_SECONDS
from server_common.accounts.config import AccountsConfig
from server_common.audit.config import AuditConfig
from server_common.config import ConfigError, DatabaseConfig, Duration, ServerConfig, TlsConfig
from server_common.ratelimit.config import RateLimitConfig
from server_common.retention_config import RetentionConfig

ENV_PREFIX = "NATIONAL_HUB"
DEFAULT_DATABASE = "signpost_hub"


@dataclass(frozen=True, slots=True)
class HubSection:
    # The hub's Ed25519 key, which signs receipts; created on first start if missing.
    key_file: Path = Path(".data/hub/hub_key.pem")
    # Nonces are kept longer than the ±300 s clock window, so a replay is always caught:
    # a request stamped 300 s ahead is fresh until 600 s after it arrived, so at least that.
    nonce_ttl: Duration = Duration(900)
    # A batch that arrives a little ahead of its predecessor (nodes pipeline batches)
    # waits this long for it before the hub answers seq_gap.
    predecessor_wait: Duration = Duration(5)
    # After a council announces a new key, its old key keeps working this long (for
    # batches it signed before the switch that are still on their way), then expires.
    key_rotation_overlap: Duration = Duration(7 * 86400)
    # The most a node-protocol request body may be, refused 413 before it is read in
    # full and before its signature is checked. By default the largest message the
    # protocol decodes (protocol.encoding.MAX_MESSAGE_BYTES), so no batch a node may
    # legitimately send is refused; a lower value tightens it.
    max_node_body_bytes: int = MAX_MESSAGE_BYTES
    # The longest a node-protocol request body may take to arrive (after its headers
    # passed every check they settle), refused 408 request_timeout after that: 16 MiB
    # at 1 MB/s is 17 s.
    node_body_timeout: Duration = Duration(60)

    def __post_init__(self) -> None:
        if self.nonce_ttl < 2 * CLOCK_SKEW_SECONDS:
            raise ConfigError(f"hub.nonce_ttl must be at least {2 * CLOCK_SKEW_SECONDS}s: a "
                              f"request may be stamped {CLOCK_SKEW_SECONDS}s ahead of the "
                              "hub's clock, and its nonce must outlive it")
        if self.node_body_timeout <= 0:
            raise ConfigError("hub.node_body_timeout must be more than 0s")
        if not 0 < self.max_node_body_bytes <= MAX_MESSAGE_BYTES:
            raise ConfigError(f"hub.max_node_body_bytes must be between 1 and "
                              f"{MAX_MESSAGE_BYTES} (the protocol's largest message)")


@dataclass(frozen=True, slots=True)
class ResolverSection:
    """The background resolver (``services/resolver.py``), which links the records batch
    intake queued. Any number of hub processes may run it: one resolves at a time."""

    # Run it in this process. Off, records wait for another hub process or for
    # ``national-hub links drain``.
    enabled: bool = True
    # How often an idle resolver looks at the queue. A batch this process applies wakes
    # it at once; one applied by another replica is seen at the next look.
    interval: Duration = Duration(0.5)
    # Queue entries (one council's, oldest first) resolved in one transaction: the
    # records of one batch resolve together and may link to each other. The most; see
    # chunk_seconds. A council with no more than this queued counts as day-to-day
    # changes, which go before bulk loads.
    chunk: int = 5000
    # Aim for chunks that take about this long: after each chunk the next one's size
    # is set from the cost per record measured so far (between MIN_CHUNK and
    # ``chunk``). A change arriving during a bulk load waits for the chunk in progress,
    # which cannot be interrupted; as the hub grows each record costs more
    # (docs/scaling.md), and a fixed 5,000 would make that wait 13 s at a million
    # children. Shorter costs throughput: each chunk has fixed costs (a transaction,
    # locks, its queries). 0: always ``chunk``.
    chunk_seconds: Duration = Duration(2)
    # Queue entries one transaction resolves in bulk mode (``national-hub links drain
    # --bulk``, ``links resolve --bulk``: a council's initial load, a model change). A
    # chunk reads the blocks of every record it holds once, so a load cut into chunks of
    # a few hundred reads a common block hundreds of times; in bulk, once per this many
    # records (docs/scaling.md). The chunk holds the resolver's lock, and its council's,
    # until it is done: another council's change waits for it.
    bulk_chunk: int = 50_000

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ConfigError("resolver.interval must be positive")
        if self.chunk < 1:
            raise ConfigError("resolver.chunk must be at least 1")
        if self.bulk_chunk < 1:
            raise ConfigError("resolver.bulk_chunk must be at least 1")
        if self.chunk_seconds < 0:
            raise ConfigError("resolver.chunk_seconds must not be negative")


@dataclass(frozen=True, slots=True)
class NoticesSection:
    """The notice job (``services/notices.py``, docs/notices.md): any number of hub
    processes may run it; one writes notices at a time."""

    # How often it looks for changed records. A notice reaches a node at this plus the
    # node's own notices.interval after resolution placed the record. 0: off here.
    interval: Duration = Duration(1)

    def __post_init__(self) -> None:
        if self.interval < 0:
            raise ConfigError("notices.interval must not be negative")


@dataclass(frozen=True, slots=True)
class HealthSection:
    """Thresholds of a council's health (docs/design.md §7): at ``*_warn`` it is WARN, at
    ``*_bad`` BAD. A council that never sent a heartbeat is WARN; a fork, no usable
    key or an expired key is BAD whatever the thresholds."""

    # Nodes heartbeat every 10 s by default: two minutes of silence is worth a look.
    heartbeat_warn: Duration = Duration(120)
    heartbeat_bad: Duration = Duration(600)
    # Lag: batches the node has built that the hub has not applied.
    lag_warn: int = 5
    lag_bad: int = 50
    # Records waiting in the node's outbox for a batch. A bulk load fills it for a
    # while, so a deep outbox alone is only ever a warning; a stuck node shows as lag.
    # 0 turns the warning off.
    outbox_warn: int = 10_000
    # Days before the soonest expiry among the council's keys that are not revoked.
    key_expiry_warn: Duration = Duration(30 * 86400)
    key_expiry_bad: Duration = Duration(7 * 86400)
    # Batches the hub refused in the last 24 h.
    rejected_warn: int = 1
    rejected_bad: int = 20
    # Age of the council's oldest record waiting for the resolver: a bulk load queues
    # a few minutes' work, a stopped resolver leaves records unlinked for good.
    resolution_warn: Duration = Duration(300)
    resolution_bad: Duration = Duration(900)
    # How long the hub's audit checkpoints may go uncosigned by a council's node
    # before it is WARN (nodes witness every 5 min by default); "0s" turns it off.
    # A witness's refusal or a log inconsistent with a cosignature is BAD at once.
    witness_warn: Duration = Duration(3600)

    def __post_init__(self) -> None:
        for warn, bad in (("heartbeat_warn", "heartbeat_bad"), ("lag_warn", "lag_bad"),
                          ("rejected_warn", "rejected_bad"),
                          ("resolution_warn", "resolution_bad")):
            if getattr(self, warn) < 0:
                raise ConfigError(f"health.{warn} must not be negative")
            if getattr(self, warn) > getattr(self, bad):
                raise ConfigError(f"health.{warn} ({getattr(self, warn)}) must not exceed "
                                  f"health.{bad} ({getattr(self, bad)})")
        if self.outbox_warn < 0 or self.witness_warn < 0:
            raise ConfigError("health.outbox_warn and health.witness_warn must not be "
                              "negative")
        if self.key_expiry_bad < 0 or self.key_expiry_warn < self.key_expiry_bad:
            raise ConfigError("health.key_expiry_warn must be at least health.key_expiry_bad "
                              "(it warns earlier), and neither negative")


@dataclass(frozen=True, slots=True)
class HubConfig:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    server: ServerConfig = field(default_factory=lambda: ServerConfig(port=8400))
    # HTTPS for nodes and browsers; nodes check it against their hub.ca_file.
    tls: TlsConfig = field(default_factory=TlsConfig)
    hub: HubSection = field(default_factory=HubSection)
    health: HealthSection = field(default_factory=HealthSection)
    resolver: ResolverSection = field(default_factory=ResolverSection)
    notices: NoticesSection = field(default_factory=NoticesSection)
    accounts: AccountsConfig = field(default_factory=AccountsConfig)
    rate_limits: RateLimitConfig = field(default_factory=RateLimitConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
