"""The batch log: every applied batch's exact envelope and receipt, and refusals."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class StoredBatch:
    seq: int
    hash: str
    receipt: bytes


class BatchStore:
    async def get(self, conn: asyncpg.Connection, council: str, seq: int) -> StoredBatch | None:
        row = await conn.fetchrow(
            "SELECT seq, hash, receipt FROM batches WHERE council_code = $1 AND seq = $2",
            council, seq,
        )
        return StoredBatch(**dict(row)) if row else None

    async def insert(self, conn: asyncpg.Connection, *, council: str, seq: int, hash_: str,
                     prev: str, kid: str, envelope: bytes, receipt: bytes, op_count: int,
                     applied: int, rejected: int) -> None:
        await conn.execute(
            "INSERT INTO batches (council_code, seq, hash, prev, kid, envelope, receipt,"
            " op_count, applied_count, rejected_count)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            council, seq, hash_, prev, kid, envelope, receipt, op_count, applied, rejected,
        )

    async def record_rejection(self, conn: asyncpg.Connection, council: str, seq: int | None,
                               code: str, message: str) -> None:
        await conn.execute(
            "INSERT INTO rejected_batches (council_code, seq, code, message)"
            " VALUES ($1, $2, $3, $4)", council, seq, code, message[:500],
        )

    async def rejections(self, conn: asyncpg.Connection, council: str) -> list[tuple[int, str]]:
        rows = await conn.fetch(
            "SELECT seq, code FROM rejected_batches WHERE council_code = $1 ORDER BY id", council
        )
        return [(r["seq"], r["code"]) for r in rows]
