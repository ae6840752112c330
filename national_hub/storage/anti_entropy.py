"""Anti-entropy reads (docs/PROTOCOL.md §12.1): bucket digests and per-record state of a
council's records, computed in SQL exactly as ``protocol.anti_entropy`` computes them.

A bucket is the first ``bits`` bits of SHA-256(local_id); a bucket digest is SHA-256
over ``local_id \\n version \\n digest \\n`` of its live records in byte order of
local_id (local ids are ASCII, so ``COLLATE "C"`` is Python's sort). A damaged row
(``record_intact`` false, migration 006) takes the digest ``damaged``, which no
node ever has, so its bucket always differs.
"""

from __future__ import annotations

import asyncpg

from protocol.anti_entropy import DAMAGED, DELETED, LIVE, MAX_BITS, BucketDigest, HeldEntry

# The bucket of a row, for a bit count in $2 (0–16).
_BUCKET = (f"((get_byte(sha256(convert_to(r.local_id, 'UTF8')), 0) * 256"
           f" + get_byte(sha256(convert_to(r.local_id, 'UTF8')), 1)) >> ({MAX_BITS} - $2))")


class AntiEntropyStore:
    async def bucket_digests(self, conn: asyncpg.Connection, council: str,
                             bits: int) -> list[BucketDigest]:
        rows = await conn.fetch(
            f"""
            SELECT bucket, count(*) AS n,
                   encode(sha256(convert_to(string_agg(
                       local_id || E'\\n' || version || E'\\n' || d || E'\\n', ''
                       ORDER BY local_id COLLATE "C"), 'UTF8')), 'hex') AS digest
              FROM (SELECT r.local_id, r.version, {_BUCKET} AS bucket,
                           CASE WHEN record_intact(r) THEN r.digest ELSE '{DAMAGED}' END AS d
                      FROM records r
                     WHERE r.council_code = $1 AND r.record IS NOT NULL) x
             GROUP BY bucket ORDER BY bucket
            """,
            council, bits,
        )
        return [BucketDigest(r["bucket"], r["n"], r["digest"]) for r in rows]

    async def bucket_records(self, conn: asyncpg.Connection, council: str, bits: int,
                             buckets: list[int], *, limit: int | None = None
                             ) -> list[HeldEntry]:
        """Every row held in these buckets, tombstones too, by local_id (the first
        ``limit`` of them)."""
        rows = await conn.fetch(
            f"""
            SELECT r.local_id, r.version, r.digest,
                   CASE WHEN r.record IS NULL THEN '{DELETED}'
                        WHEN record_intact(r) THEN '{LIVE}' ELSE '{DAMAGED}' END AS state
              FROM records r
             WHERE r.council_code = $1 AND {_BUCKET} = ANY($3::int[])
             ORDER BY r.local_id COLLATE "C"
             LIMIT $4
            """,
            council, bits, buckets, limit,
        )
        return [HeldEntry(r["local_id"], r["version"], r["state"],
                          r["digest"] if r["state"] == LIVE else None) for r in rows]

    async def damaged(self, conn: asyncpg.Connection, council: str,
                      local_ids: list[str]) -> set[str]:
        """Those of these local ids whose live row is no longer intact."""
        if not local_ids:
            return set()
        rows = await conn.fetch(
            "SELECT r.local_id FROM records r WHERE r.council_code = $1"
            " AND r.local_id = ANY($2::text[]) AND r.record IS NOT NULL"
            " AND NOT record_intact(r)", council, local_ids,
        )
        return {r["local_id"] for r in rows}
