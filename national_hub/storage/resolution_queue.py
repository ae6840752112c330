"""SQL of the resolution queue: records batch intake changed, awaiting the resolver.

The queue is append-only: intake inserts, the resolver deletes what it resolved. Who
resolves is decided by one transaction-scoped advisory lock (``RESOLVER_LOCK``), which
review decisions take too, so national ids are only ever changed by one transaction
at a time whatever the number of hub processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

# Arbitrary constant, distinct from the schema-upgrade lock (server_common.database).
RESOLVER_LOCK = 0x5167_7265_736F_6C76 & 0x7FFF_FFFF_FFFF_FFFF


@dataclass(frozen=True, slots=True)
class Claimed:
    """A chunk of one council's queue, oldest first, one entry per record."""

    council: str
    local_ids: list[str]
    released: list[str]  # national ids released by the chunk's deletes
    entries: int  # queue rows the chunk covers (a record may be queued twice)


@dataclass(frozen=True, slots=True)
class QueueDepth:
    entries: int
    oldest: datetime | None


class ResolutionQueueStore:
    async def enqueue(self, conn: asyncpg.Connection, council: str,
                      local_ids: Sequence[str],
                      released: Sequence[str | None] | None = None) -> None:
        """Queue records, in order; ``released`` gives, per record, the national id a
        delete released (or None)."""
        if not local_ids:
            return
        await conn.execute(
            "INSERT INTO resolution_queue (council_code, local_id, released_id)"
            " SELECT $1, * FROM unnest($2::text[], $3::text[])",
            council, list(local_ids), list(released or [None] * len(local_ids)))

    async def enqueue_live(self, conn: asyncpg.Connection, council: str,
                           local_ids: Sequence[str]) -> None:
        """Queue these records of the council that are live (re-resolution)."""
        await conn.execute(
            "INSERT INTO resolution_queue (council_code, local_id)"
            " SELECT council_code, local_id FROM records WHERE council_code = $1"
            " AND local_id = ANY($2::text[]) AND record IS NOT NULL ORDER BY local_id",
            council, list(local_ids))

    async def lock(self, conn: asyncpg.Connection, *, wait: bool) -> bool:
        """Take the resolver's lock until the transaction ends; without ``wait``, give
        up at once when another transaction (another hub process) holds it."""
        if wait:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", RESOLVER_LOCK)
            return True
        return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)",
                                        RESOLVER_LOCK))

    async def claim(self, conn: asyncpg.Connection, limit: int,
                    small: int | None = None) -> Claimed | None:
        """A council's next entries (at most ``limit`` rows, oldest first), deleted
        together with every other entry of the same records visible now: the resolver
        reads the records after this statement, so it sees at least the versions they
        queued. Call under the resolver's lock.

        Which council: one with no more than ``small`` entries queued (default
        ``limit``: its whole queue fits in a chunk) goes first, oldest first, then the
        others oldest first. A council's day-to-day changes are few,
        so they are not held up behind another council's bulk load (first in, first
        out made a change wait for the whole load: "visible in search within 2 s"
        then held only when nothing big was arriving). Each council's records are
        still resolved in the order they came."""
        head = await conn.fetchval(
            "SELECT council_code FROM resolution_queue GROUP BY council_code"
            " ORDER BY count(*) > $1, min(id) LIMIT 1", limit if small is None else small)
        if head is None:
            return None
        rows = await conn.fetch(
            "SELECT local_id FROM resolution_queue WHERE council_code = $1"
            " ORDER BY id LIMIT $2", head, limit)
        local_ids = list(dict.fromkeys(r["local_id"] for r in rows))
        deleted = await conn.fetch(
            "DELETE FROM resolution_queue WHERE council_code = $1"
            " AND local_id = ANY($2::text[]) RETURNING released_id", head, local_ids)
        released = sorted({r["released_id"] for r in deleted if r["released_id"]})
        return Claimed(head, local_ids, released, len(deleted))

    async def depth(self, conn: asyncpg.Connection) -> dict[str, QueueDepth]:
        """Entries waiting and the oldest one's time, per council."""
        rows = await conn.fetch("SELECT council_code, count(*) AS n, min(queued_at) AS oldest"
                                " FROM resolution_queue GROUP BY council_code")
        return {r["council_code"]: QueueDepth(int(r["n"]), r["oldest"]) for r in rows}

    async def is_empty(self, conn: asyncpg.Connection) -> bool:
        return not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM resolution_queue)")
