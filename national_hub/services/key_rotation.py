"""Key rotation: a council enrols its next key itself, vouched for by its current one.

The request was already authenticated with the council's old key (which must be
usable: enrolled for this council, not revoked, not expired). Then the
announcement must name that same key as ``old_kid`` and be signed by it and by
the new key. The new key is enrolled, and the old one gets ``not_after`` = now
+ ``hub.key_rotation_overlap`` (or keeps an earlier expiry it already had): it
still verifies batches the node built and stored before the switch, then stops.

Announcing a key that is already enrolled for the council is not an error: a node
that lost the answer asks again and gets the same result (idempotent).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from national_hub.services.node_auth import check_key_usable
from national_hub.storage.councils import CouncilKey, CouncilStore
from national_hub.storage.key_announcements import KeyAnnouncementStore
from protocol import keys
from protocol.errors import AuthError, ErrorCode, ValidationError
from protocol.key_announcement import format_timestamp, open_announcement
from protocol.signing import Envelope
from server_common.config import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RotationResult:
    council: str
    new_kid: str
    new_not_after: datetime | None
    old_kid: str
    old_not_after: datetime
    replayed: bool

    def to_wire(self) -> dict[str, object]:
        out: dict[str, object] = {"council": self.council, "kid": self.new_kid}
        if self.new_not_after is not None:
            out["not_after"] = format_timestamp(self.new_not_after)
        out["old_kid"] = self.old_kid
        out["old_not_after"] = format_timestamp(self.old_not_after)
        return out


class KeyRotation:
    def __init__(self, pool: asyncpg.Pool, councils: CouncilStore,
                 announcements: KeyAnnouncementStore, *, overlap: float) -> None:
        if overlap <= 0:
            raise ConfigError("hub.key_rotation_overlap must be positive")
        self.pool = pool
        self.councils = councils
        self.announcements = announcements
        self.overlap = timedelta(seconds=overlap)

    async def announce(self, council: str, request_key: CouncilKey,
                       body: bytes) -> RotationResult:
        """Enrol the key announced in ``body``; ``request_key`` signed the request."""
        envelope = Envelope.decode(body)
        announcement = open_announcement(envelope, keys.public_from_raw(request_key.public_key))
        if announcement.council != council:
            raise AuthError(f"the announcement is for council {announcement.council}, "
                            f"sent to {council}", code=ErrorCode.ANNOUNCEMENT_WRONG_COUNCIL,
                            status=403)
        now = datetime.now(UTC)
        new_not_after = announcement.not_after_time
        if new_not_after is not None and new_not_after <= now:
            raise ValidationError("not_after", "is already past")
        async with self.pool.acquire() as conn, conn.transaction():
            # Lock the old key's row: an operator's revocation and this announcement
            # are ordered, and so are two announcements retiring the same key.
            old = await self.councils.get_key(conn, announcement.old_kid, for_update=True)
            if old is None:
                raise AuthError(f"key {announcement.old_kid} is not enrolled",
                                code=ErrorCode.UNKNOWN_KEY)
            check_key_usable(old, council, now)
            existing = await self.councils.get_key(conn, announcement.new_kid)
            if existing is None:
                await self.councils.add_key(conn, announcement.new_kid, council,
                                            announcement.new_public_key, new_not_after)
            else:
                # Already enrolled (a repeated announcement, or an operator enrolled
                # it): fine if it is this council's and still usable.
                check_key_usable(existing, council, now)
                new_not_after = existing.not_after
            old_not_after = await self.councils.expire_key_by(conn, old.kid, now + self.overlap)
            await self.announcements.add(conn, announcement.new_kid, council, old.kid, body)
        result = RotationResult(council, announcement.new_kid, new_not_after, old.kid,
                                old_not_after, replayed=existing is not None)
        log.info("council key rotated" if existing is None else "key announcement repeated",
                 extra={"council": council, "new_kid": result.new_kid, "old_kid": old.kid,
                        "old_not_after": format_timestamp(old_not_after)})
        return result
