"""The ``[audit]`` config section."""

from __future__ import annotations

from dataclasses import dataclass

from server_common.config import ConfigError, Duration


@dataclass(frozen=True, slots=True)
class AuditConfig:
    # Names this log in every signed checkpoint (C2SP tlog-checkpoint "origin").
    origin: str = "signpost-hub/audit"
    # How often the server signs a checkpoint of the log, when it grew since the last.
    checkpoint_interval: Duration = Duration(300)

    def __post_init__(self) -> None:
        if not self.origin or any(c.isspace() or c == "+" for c in self.origin):
            raise ConfigError("audit.origin must be non-empty, without spaces or '+'")
        if self.checkpoint_interval <= 0:
            raise ConfigError("audit.checkpoint_interval must be positive")
