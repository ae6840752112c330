"""The transactional outbox and the batches sent from it."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

# Arbitrary constant: the advisory lock key under which a batch is built.
_BUILD_LOCK = 0x5167_6E70_6F73_7401


# OutboxStore.assign: each entry of the batch looked up by the primary key, then its
# child's entries by (local_id, id), in LATERAL subqueries driven by the list; OFFSET 0
# keeps ``batch_seq IS NULL`` outside, so the pending index is never the way in. As
# ``id = ANY($1)`` and a join, a plan made while the statistics showed nothing pending
# (after the last batch, before a load is analysed) walked every pending entry and
# searched the list for each. In the generic plan a connection keeps after five batches
# that took 2.3 s for a 5,000-entry batch with 36,369 entries pending, now 0.2 s
# (docs/scaling.md, "Generic plans").
ASSIGN_SQL = """
    UPDATE outbox o SET batch_seq = $2
      FROM unnest($1::bigint[]) AS w(id),
           LATERAL (SELECT e.local_id, e.id FROM outbox e WHERE e.id = w.id LIMIT 1) s,
           LATERAL (SELECT p.id, p.batch_seq FROM outbox p
                     WHERE p.local_id = s.local_id AND p.id <= s.id OFFSET 0) x
     WHERE o.id = x.id AND x.batch_seq IS NULL
"""

# OutboxStore.pending: whether a newer entry of the same child is pending is asked of
# the child's own entries, by (local_id, id), behind an OFFSET 0. As a plain NOT EXISTS
# the planner made it an anti-join, and with statistics showing nothing pending (a node
# that has published everything, before a new load is analysed) both the custom and the
# generic plan compared every pending entry with every other through the pending index:
# a 5,000-entry batch out of 36,369 pending entries had not been read after four
# minutes; now 0.1 to 0.2 s, as with fresh statistics (docs/scaling.md, "Generic plans").
PENDING_SQL = """
    SELECT id, local_id, version, op, record FROM outbox o
     WHERE batch_seq IS NULL
       AND NOT EXISTS (SELECT 1 FROM (SELECT n.batch_seq FROM outbox n
                                       WHERE n.local_id = o.local_id AND n.id > o.id
                                      OFFSET 0) newer
                        WHERE newer.batch_seq IS NULL)
     ORDER BY id LIMIT $1
"""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: int
    local_id: str
    version: int
    op: str
    record: bytes | None


@dataclass(frozen=True, slots=True)
class SentBatch:
    seq: int
    hash: str
    prev: str
    envelope: bytes
    receipt: bytes | None


class OutboxStore:
    async def add(self, conn: asyncpg.Connection,
                  entries: list[tuple[str, int, str, bytes | None, str | None]]) -> None:
        """(local_id, version, op, record bytes, digest), in the caller's transaction, in
        this order (ids ascending). Copied in (COPY): an ingest chunk adds thousands, and
        as arrays unnested each record's bytes went through asyncpg's checks in Python."""
        if entries:
            await conn.copy_records_to_table(
                "outbox", records=entries,
                columns=["local_id", "version", "op", "record", "digest"])

    async def lock_for_building(self, conn: asyncpg.Connection) -> None:
        """Serialise batch building across processes until the transaction ends."""
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _BUILD_LOCK)

    async def pending(self, conn: asyncpg.Connection, limit: int) -> list[OutboxEntry]:
        """The oldest pending entries that are each child's *newest* pending one: an
        entry a later change superseded before it was sent need not be sent at all
        (``assign`` folds it into the batch that carries its successor)."""
        rows = await conn.fetch(PENDING_SQL, limit)
        return [OutboxEntry(**dict(r)) for r in rows]

    async def pending_count(self, conn: asyncpg.Connection) -> int:
        return int(await conn.fetchval("SELECT count(*) FROM outbox WHERE batch_seq IS NULL"))

    async def assign(self, conn: asyncpg.Connection, entry_ids: list[int], seq: int) -> None:
        """Mark these entries sent in batch ``seq``, with every older pending entry of
        the same children (superseded: the batch carries their newest state)."""
        await conn.execute(ASSIGN_SQL, entry_ids, seq)

    async def published_projection(self, conn: asyncpg.Connection) -> dict[str, str]:
        """local_id → digest of the newest upsert, for children whose newest op is not a delete."""
        rows = await conn.fetch(
            "SELECT DISTINCT ON (local_id) local_id, op, digest FROM outbox"
            " ORDER BY local_id, id DESC"
        )
        return {r["local_id"]: r["digest"] for r in rows if r["op"] == "upsert"}

    # --- sent batches ----------------------------------------------------------------

    async def head(self, conn: asyncpg.Connection) -> SentBatch | None:
        row = await conn.fetchrow(
            "SELECT seq, hash, prev, envelope, receipt FROM sent_batches ORDER BY seq DESC LIMIT 1"
        )
        return SentBatch(**dict(row)) if row else None

    async def batch(self, conn: asyncpg.Connection, seq: int) -> SentBatch | None:
        row = await conn.fetchrow(
            "SELECT seq, hash, prev, envelope, receipt FROM sent_batches WHERE seq = $1", seq
        )
        return SentBatch(**dict(row)) if row else None

    async def batches_after(self, conn: asyncpg.Connection, seq: int) -> list[SentBatch]:
        rows = await conn.fetch(
            "SELECT seq, hash, prev, envelope, receipt FROM sent_batches WHERE seq > $1"
            " ORDER BY seq", seq,
        )
        return [SentBatch(**dict(r)) for r in rows]

    async def add_batch(self, conn: asyncpg.Connection, seq: int, hash_: str, prev: str,
                        envelope: bytes, op_count: int) -> None:
        await conn.execute(
            "INSERT INTO sent_batches (seq, hash, prev, envelope, op_count)"
            " VALUES ($1, $2, $3, $4, $5)", seq, hash_, prev, envelope, op_count,
        )

    async def set_receipt(self, conn: asyncpg.Connection, seq: int, receipt: bytes,
                          counts: dict[str, int]) -> None:
        await conn.execute(
            "UPDATE sent_batches SET receipt = $2, receipt_at = now(), applied = $3,"
            " rejected = $4, stale = $5 WHERE seq = $1 AND receipt IS NULL",
            seq, receipt, counts.get("applied", 0), counts.get("rejected", 0),
            counts.get("stale", 0),
        )

    async def add_rejections(self, conn: asyncpg.Connection, seq: int,
                             rejections: list[tuple[str | None, str, str | None]]) -> None:
        if rejections:
            await conn.executemany(
                "INSERT INTO publish_rejections (seq, local_id, code, message)"
                " VALUES ($1, $2, $3, $4)", [(seq, *r) for r in rejections],
            )

    async def summary(self, conn: asyncpg.Connection) -> asyncpg.Record:
        return await conn.fetchrow(
            """
            SELECT (SELECT count(*) FROM outbox WHERE batch_seq IS NULL) AS outbox_depth,
                   (SELECT coalesce(max(seq), 0) FROM sent_batches) AS head_seq,
                   (SELECT coalesce(max(seq), 0) FROM sent_batches WHERE receipt IS NOT NULL)
                       AS receipted_seq,
                   (SELECT count(*) FROM sent_batches WHERE receipt IS NULL) AS awaiting_receipt,
                   (SELECT count(*) FROM publish_rejections) AS rejected_records,
                   (SELECT max(receipt_at) FROM sent_batches) AS last_receipt_at
            """
        )
