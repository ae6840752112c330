"""The hub's configuration (see server_common.config for how values are read)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from server_common.config import DatabaseConfig, Duration, ServerConfig

ENV_PREFIX = "NATIONAL_HUB"
DEFAULT_DATABASE = "signpost_hub"


@dataclass(frozen=True, slots=True)
class HubSection:
    # The hub's Ed25519 key, which signs receipts; created on first start if missing.
    key_file: Path = Path(".data/hub/hub_key.pem")
    # Nonces are kept longer than the ±300 s clock window, so a replay is always caught.
    nonce_ttl: Duration = Duration(900)
    # A batch that arrives a little ahead of its predecessor (nodes pipeline batches)
    # waits this long for it before the hub answers seq_gap.
    predecessor_wait: Duration = Duration(5)


@dataclass(frozen=True, slots=True)
class HubConfig:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    server: ServerConfig = field(default_factory=lambda: ServerConfig(port=8400))
    hub: HubSection = field(default_factory=HubSection)
