"""The node's configuration (see server_common.config for how values are read)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from server_common.accounts.config import AccountsConfig
from server_common.audit.witnessing import node_log_origin
from server_common.config import ConfigError, DatabaseConfig, Duration, ServerConfig, TlsConfig
from server_common.ratelimit.config import RateLimitConfig
from server_common.retention_config import RetentionConfig

ENV_PREFIX = "LOCAL_NODE"


@dataclass(frozen=True, slots=True)
class CouncilSection:
    code: str = ""
    name: str = ""
    # The council's Ed25519 signing key (``local-node keys generate`` writes it).
    key_file: Path | None = None
    # How the council's practitioners reach its index team: shown on a shielded child's
    # page, which withholds the detail and says to ask the index team.
    index_team_email: str = ""
    index_team_phone: str = ""


@dataclass(frozen=True, slots=True)
class HubSection:
    url: str = "http://127.0.0.1:8400"
    # The hub's receipt-signing public key: receipts that do not verify are refused.
    public_key_file: Path | None = None
    # The CA (PEM) the hub's HTTPS certificate must chain to: only that CA is trusted,
    # so a certificate from any other CA (or none) is refused. Unset: the system's
    # trust store. Only meaningful with an https:// url.
    ca_file: Path | None = None
    timeout: Duration = Duration(60)

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"hub.url must start with https:// (or http://): {self.url!r}")
        if self.ca_file is not None and not self.url.startswith("https://"):
            raise ConfigError(f"hub.ca_file is set but hub.url is not https: {self.url!r}")


@dataclass(frozen=True, slots=True)
class PublisherSection:
    batch_size: int = 5000
    interval: Duration = Duration(1)
    heartbeat_interval: Duration = Duration(10)
    max_backoff: Duration = Duration(60)
    # Batches in flight at once; the hub applies them in order (see docs/PROTOCOL.md).
    pipeline: int = 2


@dataclass(frozen=True, slots=True)
class ReconcileSection:
    # How often ``serve`` compares the hub's copy with the node's and republishes what
    # differs (docs/PROTOCOL.md §12.1); "0s" turns the schedule off.
    interval: Duration = Duration(6 * 3600)
    # How long one reconcile may wait, in all, for the hub's anti-entropy allowance when
    # the hub answers 429 with Retry-After (``rate_limits.per_council_digests`` and
    # ``per_council_drilldowns`` at the hub); past it the reconcile stops with
    # ``rate_limited`` and the next one starts over. 10 minutes covers the drill-downs of
    # a council of 2.6 million records that lost everything (32 a minute).
    max_wait: Duration = Duration(600)

    def __post_init__(self) -> None:
        if self.max_wait < 0:
            raise ConfigError("reconcile.max_wait must be 0 (never wait) or more")


@dataclass(frozen=True, slots=True)
class AuditSection:
    # How often ``serve`` witnesses the hub's audit log: checks the hub's latest
    # checkpoint against the last one this council cosigned, and cosigns it
    # (docs/audit.md "Witnesses"); "0s" turns it off.
    witness_interval: Duration = Duration(300)
    # How often ``serve`` signs a checkpoint of the node's own audit log, with the
    # council key, when it grew.
    checkpoint_interval: Duration = Duration(300)

    def __post_init__(self) -> None:
        if self.witness_interval < 0 or self.checkpoint_interval <= 0:
            raise ConfigError("audit.witness_interval must be ≥ 0 and "
                              "audit.checkpoint_interval > 0")


NOTICE_KINDS = ("linked", "new_involvement", "separated")


@dataclass(frozen=True, slots=True)
class NoticesSection:
    """Notices from the hub (docs/notices.md): what this council sends.

    Environment: ``LOCAL_NODE__NOTICES__SMTP_HOST`` and so on."""

    # How often ``serve`` asks the hub for new notices and sends the emails due. 0: off.
    interval: Duration = Duration(2)
    # The council's mail relay; empty: notices reach inboxes and no email is sent.
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_timeout: Duration = Duration(10)
    smtp_starttls: bool = False
    from_address: str = "signpost@localhost"
    # The node's address as practitioners reach it, for the link in an email.
    base_url: str = "http://127.0.0.1:8500"
    # The index team's shared mailbox (shielded children's notices, and children with
    # no lead professional here); empty: the team sees them in its inbox only.
    index_team_email: str = ""
    # Which kinds of notice are emailed (comma-separated; all reach the inbox).
    email_kinds: str = ",".join(NOTICE_KINDS)
    # Email the lead professional of this council's own involvement; email watchers.
    email_lead_professional: bool = True
    email_watchers: bool = True

    def kinds(self) -> frozenset[str]:
        return frozenset(k.strip() for k in self.email_kinds.split(",") if k.strip())

    def __post_init__(self) -> None:
        if self.interval < 0:
            raise ConfigError("notices.interval must not be negative")
        unknown = self.kinds() - set(NOTICE_KINDS)
        if unknown:
            raise ConfigError(f"notices.email_kinds: unknown kind {sorted(unknown)[0]!r} "
                              f"(one of {', '.join(NOTICE_KINDS)})")
        if not 0 < self.smtp_port < 65536:
            raise ConfigError("notices.smtp_port must be a TCP port")


@dataclass(frozen=True, slots=True)
class IngestSection:
    # The largest feed file ``local-node ingest`` reads (it holds the file in memory):
    # a larger one, or an endless one (a device, a pipe that never ends), is refused
    # once this much is read, nothing loaded. East Sussex's 246,000 children are about
    # 100 MB across the three feeds.
    max_feed_bytes: int = 1024 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.max_feed_bytes < 1:
            raise ConfigError("ingest.max_feed_bytes must be ≥ 1")


@dataclass(frozen=True, slots=True)
class MatchingSection:
    # ``local-node ingest`` of a feed with at least this many rows retrains the local
    # matching model when the node has none, or when its children grew by more than
    # half since the last training (docs/feeds.md); 0 never retrains on its own.
    retrain_rows: int = 10_000
    # Training samples (``model train`` options default to these): random row pairs for
    # u, and candidate pairs (rows sharing a blocking key) for EM.
    random_pairs: int = 100_000
    candidate_pairs: int = 100_000

    def __post_init__(self) -> None:
        if self.retrain_rows < 0:
            raise ConfigError("matching.retrain_rows must be ≥ 0")
        if self.random_pairs < 1 or self.candidate_pairs < 1:
            raise ConfigError("matching.random_pairs and matching.candidate_pairs must be ≥ 1")


@dataclass(frozen=True, slots=True)
class NodeConfig:
    council: CouncilSection = field(default_factory=CouncilSection)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    server: ServerConfig = field(default_factory=lambda: ServerConfig(port=8500))
    # HTTPS for the node's own web server (practitioners' search, /metrics).
    tls: TlsConfig = field(default_factory=TlsConfig)
    hub: HubSection = field(default_factory=HubSection)
    publisher: PublisherSection = field(default_factory=PublisherSection)
    reconcile: ReconcileSection = field(default_factory=ReconcileSection)
    audit: AuditSection = field(default_factory=AuditSection)
    notices: NoticesSection = field(default_factory=NoticesSection)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    accounts: AccountsConfig = field(default_factory=AccountsConfig)
    rate_limits: RateLimitConfig = field(default_factory=RateLimitConfig)
    matching: MatchingSection = field(default_factory=MatchingSection)
    ingest: IngestSection = field(default_factory=IngestSection)

    @property
    def audit_origin(self) -> str:
        """The name of the node's own audit log (its entries and checkpoints)."""
        return node_log_origin(self.council.code)

    def require_council(self) -> str:
        if not self.council.code:
            raise ConfigError("council.code is required (e.g. E10000011)")
        return self.council.code

    @property
    def database_name(self) -> str:
        return self.database.name or f"signpost_node_{self.council.code.lower()}"

    @property
    def key_file(self) -> Path:
        return self.council.key_file or Path(f".data/node-{self.council.code}/council_key.pem")
