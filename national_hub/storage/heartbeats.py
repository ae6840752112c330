"""The last heartbeat of each node: its head seq and outbox depth."""

from __future__ import annotations

from datetime import datetime

import asyncpg


class HeartbeatStore:
    async def put(self, conn: asyncpg.Connection, council: str, head_seq: int,
                  outbox_depth: int, sent_at: datetime | None) -> None:
        await conn.execute(
            "INSERT INTO heartbeats (council_code, head_seq, outbox_depth, sent_at)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (council_code) DO UPDATE"
            " SET head_seq = EXCLUDED.head_seq, outbox_depth = EXCLUDED.outbox_depth,"
            " sent_at = EXCLUDED.sent_at, received_at = now()",
            council, head_seq, outbox_depth, sent_at,
        )

    async def get(self, conn: asyncpg.Connection, council: str) -> asyncpg.Record | None:
        return await conn.fetchrow(
            "SELECT head_seq, outbox_depth, sent_at, received_at FROM heartbeats"
            " WHERE council_code = $1", council,
        )
