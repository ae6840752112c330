"""What the node has published, as anti-entropy compares it with the hub (PROTOCOL §12.1)."""

from __future__ import annotations

import asyncpg


class ReconcileStore:
    async def expected(self, conn: asyncpg.Connection) -> dict[str, tuple[int, str]]:
        """local_id → (version, digest) of every child the hub should hold live: the
        last projection put in the outbox (merged or purged children are withdrawn)."""
        rows = await conn.fetch(
            "SELECT local_id, published_version, published_digest FROM children"
            " WHERE published_digest IS NOT NULL AND merged_into IS NULL"
        )
        return {r["local_id"]: (r["published_version"], r["published_digest"]) for r in rows}

    async def lock_published(self, conn: asyncpg.Connection,
                             local_ids: list[str]) -> dict[str, tuple[int, str | None]]:
        """(version, digest or None if withdrawn) of those of these children that exist,
        locked until the transaction ends so no ingest changes them meanwhile. One being
        changed right now is left out (SKIP LOCKED: never wait on, or deadlock with, an
        ingest), so the caller sees it as changed and leaves it to the publisher."""
        rows = await conn.fetch(
            "SELECT local_id, published_version, published_digest, merged_into FROM children"
            " WHERE local_id = ANY($1::text[]) ORDER BY local_id FOR UPDATE SKIP LOCKED", local_ids,
        )
        return {r["local_id"]: (r["published_version"],
                                r["published_digest"] if r["merged_into"] is None else None)
                for r in rows}

    async def unsettled(self, conn: asyncpg.Connection, local_ids: list[str]) -> set[str]:
        """Those of these children with an op not yet in a receipted batch: still on
        its way, so the hub cannot be expected to reflect it yet."""
        rows = await conn.fetch(
            "SELECT DISTINCT o.local_id FROM outbox o"
            " LEFT JOIN sent_batches b ON b.seq = o.batch_seq"
            " WHERE o.local_id = ANY($1::text[]) AND (o.batch_seq IS NULL OR b.receipt IS NULL)",
            local_ids,
        )
        return {r["local_id"] for r in rows}

    async def refused(self, conn: asyncpg.Connection, local_ids: list[str]) -> set[str]:
        """Those of these children whose published version the hub rejected as invalid:
        sending the same bytes again would only be rejected again."""
        rows = await conn.fetch(
            "SELECT DISTINCT c.local_id FROM children c"
            " JOIN outbox o ON o.local_id = c.local_id AND o.version = c.published_version"
            " JOIN publish_rejections r ON r.seq = o.batch_seq AND r.local_id = o.local_id"
            " WHERE c.local_id = ANY($1::text[])", local_ids,
        )
        return {r["local_id"] for r in rows}

    async def highest_versions(self, conn: asyncpg.Connection,
                               local_ids: list[str]) -> dict[str, int]:
        """The highest version this node ever used for each of these local ids."""
        rows = await conn.fetch(
            "SELECT local_id, max(v) AS v FROM ("
            "  SELECT local_id, version AS v FROM outbox WHERE local_id = ANY($1::text[])"
            "  UNION ALL SELECT local_id, published_version FROM children"
            "   WHERE local_id = ANY($1::text[])) x GROUP BY local_id", local_ids,
        )
        return {r["local_id"]: r["v"] for r in rows}

    async def published_bytes(self, conn: asyncpg.Connection,
                              local_ids: list[str]) -> dict[str, bytes]:
        """The exact bytes of each child's newest published upsert."""
        rows = await conn.fetch(
            "SELECT DISTINCT ON (local_id) local_id, record FROM outbox"
            " WHERE local_id = ANY($1::text[]) AND op = 'upsert' AND record IS NOT NULL"
            " ORDER BY local_id, id DESC", local_ids,
        )
        return {r["local_id"]: r["record"] for r in rows}

    async def set_versions(self, conn: asyncpg.Connection,
                           versions: list[tuple[str, int]]) -> None:
        """Raise children's published version (a republish above what the hub holds)."""
        if versions:
            await conn.execute(
                "UPDATE children c SET published_version = v.version"
                " FROM unnest($1::text[], $2::bigint[]) AS v(local_id, version)"
                " WHERE c.local_id = v.local_id",
                [v[0] for v in versions], [v[1] for v in versions],
            )
