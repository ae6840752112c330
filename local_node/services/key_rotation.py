"""Rotating the council's signing key (``local-node keys rotate``).

The node makes a new key, announces it to the hub in an envelope signed by the old
and the new key (docs/PROTOCOL.md §5.1), with the request signed by the old key,
and switches its key file only once the hub has enrolled the new key and accepted
a request signed by it. A publisher running in another process notices the
replaced key file and signs with the new key from then on (``local_node.keyfile``).

Crash safety. Every step leaves a state from which the node can publish and a
second ``keys rotate`` finishes the job:

1. The new key is first written to ``council_key.next.pem`` (atomically). Until
   the switch, ``council_key.pem`` is the old key, which the hub accepts: before
   the announcement because nothing changed, after it for the overlap period.
2. The announcement is idempotent at the hub, so a rotation interrupted before or
   after the hub answered is resumed with the *same* pending key: announcing it
   again just gets the same answer, and no stray key is enrolled.
3. The switch copies the old key to ``council_key.<kid>.pem``, then renames the new
   key over ``council_key.pem`` (one atomic rename: the file is the old key or the
   new one, both usable at the hub), then removes the pending file. If it stops
   after the rename, the pending file equals the key in use; the next run sees
   that and only removes it.

A rotation left unfinished for longer than the hub's overlap (7 days by default)
cannot be finished this way: the old key no longer signs the announcement. The
operator then enrols ``council_key.next.pub.pem`` with ``national-hub councils add``
and moves ``council_key.next.pem`` over ``council_key.pem``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from local_node.keyfile import archive_path, pending_path
from local_node.storage.key_status import KeyStatusStore
from local_node.transport import HubClient
from protocol import keys
from protocol.errors import ErrorCode, SignpostError
from protocol.key_announcement import KeyAnnouncement, format_timestamp, parse_timestamp

log = logging.getLogger(__name__)


class RotationError(SignpostError):
    """The hub's answer does not confirm the announced key; nothing was switched."""


@dataclass(frozen=True, slots=True)
class RotationOutcome:
    old_kid: str
    new_kid: str
    old_not_after: str | None  # until when the hub accepts the old key
    new_not_after: str | None  # the new key's expiry at the hub, None if it has none
    archived: Path | None      # where the old key was kept
    resumed: bool              # a pending key from an interrupted rotation was used
    already_done: bool = False  # only the leftovers of a finished rotation were cleared


class KeyRotator:
    def __init__(self, pool: asyncpg.Pool, key_status: KeyStatusStore, client: HubClient,
                 council: str, key_path: Path) -> None:
        self.pool = pool
        self.key_status = key_status
        self.client = client
        self.council = council
        self.key_path = key_path

    async def rotate(self, not_after: datetime | None = None) -> RotationOutcome:
        """Generate (or resume) a new key, announce it, and switch to it."""
        old = keys.load_private_key(self.key_path)
        old_kid = keys.key_id(old.public_key())
        pending = pending_path(self.key_path)
        resumed = pending.exists()
        if resumed:
            new = keys.load_private_key(pending)
            if keys.key_id(new.public_key()) == old_kid:
                # Stopped after the switch: the pending file is the key in use.
                self._drop_pending()
                return RotationOutcome(old_kid, old_kid, None, None, None, resumed=True,
                                       already_done=True)
        else:
            new = keys.generate()
            keys.write_private_key(new, pending)
        new_kid = keys.key_id(new.public_key())

        announcement = KeyAnnouncement.of(
            self.council, old, new, issued_at=format_timestamp(datetime.now(UTC)),
            not_after=None if not_after is None else format_timestamp(not_after))
        answer = await self.client.post_key_announcement(announcement.sign(old, new).encode(),
                                                         old)
        if answer.get("kid") != new_kid:
            raise RotationError(f"the hub confirmed key {answer.get('kid')!r}, not {new_kid}",
                                code=ErrorCode.INTERNAL)
        # Proof before switching: the hub accepts a request signed by the new key.
        cursor = await self.client.read_cursor(key=new)

        archived = archive_path(self.key_path, old_kid)
        keys.write_private_key(old, archived)
        # the switch: one atomic rename of the private key
        keys.write_private_key(new, self.key_path)
        self._drop_pending()

        old_not_after = answer.get("old_not_after")
        old_not_after = old_not_after if isinstance(old_not_after, str) else None
        async with self.pool.acquire() as conn:
            if old_not_after is not None:
                await self.key_status.record(
                    conn, old_kid, parse_timestamp(old_not_after, "old_not_after"))
            await self.key_status.record(
                conn, new_kid, None if cursor.key_not_after is None
                else parse_timestamp(cursor.key_not_after, "key_not_after"))
        log.info("signing key rotated", extra={"old_kid": old_kid, "kid": new_kid,
                                               "old_not_after": old_not_after})
        return RotationOutcome(old_kid, new_kid, old_not_after, cursor.key_not_after,
                               archived, resumed=resumed)

    def _drop_pending(self) -> None:
        pending = pending_path(self.key_path)
        pending.unlink(missing_ok=True)
        keys.public_path_for(pending).unlink(missing_ok=True)
