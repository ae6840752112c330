"""The ``[rate_limits]`` config section, the same on hub and node."""

from __future__ import annotations

from dataclasses import dataclass

from server_common.config import ConfigError


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """Requests allowed per minute. Every request is held to its client's address's
    allowance before its credentials are checked; once it proves who it is, it counts
    against that signed-in user (wherever they connect from) or that council node
    instead. 0 turns a limit off."""

    per_user: int = 600
    per_council: int = 3000  # a node publishing flat out sends a few batches a second
    per_address: int = 600  # what one address may send that is not (yet) authenticated
    # Anti-entropy digest summaries (``POST …/digests``) a council node may ask for, on
    # top of per_council: each is a pass over every record the hub holds of the council
    # (1.3 s at 246,000); a reconcile asks for at most three.
    per_council_digests: int = 12
    # Anti-entropy drill-downs (``POST …/digests/records``, up to 256 buckets each, 0.38 s
    # at 246,000 records) likewise: 32 is what a reconcile of such a council that lost
    # everything asks for (8,192 buckets of ~32 records); a larger council's node waits
    # out the 429's Retry-After and goes on (``reconcile.max_wait``).
    per_council_drilldowns: int = 32

    def __post_init__(self) -> None:
        for name in ("per_user", "per_council", "per_address", "per_council_digests",
                     "per_council_drilldowns"):
            if getattr(self, name) < 0:
                raise ConfigError(f"rate_limits.{name} must be 0 (off) or more")
