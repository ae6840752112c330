"""Heartbeats: the last one of each node (its head seq and outbox depth), and every
one of the last 48 h with the hub's cursor at the time, for the lag chart."""

from __future__ import annotations

from datetime import datetime

import asyncpg

# /v1/federation/history reaches back at most this far.
HISTORY_KEEP_SECONDS = 48 * 3600.0


class HeartbeatStore:
    async def put(self, conn: asyncpg.Connection, council: str, head_seq: int,
                  outbox_depth: int, sent_at: datetime | None) -> None:
        """Keep the heartbeat as the council's latest, append it to the history, and
        drop the council's history older than HISTORY_KEEP_SECONDS, in one statement.
        One the node sent before the heartbeat kept (both saying when they were sent)
        arrived late, overtaken on the way: it is not kept, and its older head and
        outbox depth do not replace the newer ones."""
        await conn.execute(
            """
            WITH beat AS (
                INSERT INTO heartbeats (council_code, head_seq, outbox_depth, sent_at)
                VALUES ($1, $2, $3, $4)
                ON CONFLICT (council_code) DO UPDATE
                    SET head_seq = EXCLUDED.head_seq, outbox_depth = EXCLUDED.outbox_depth,
                        sent_at = EXCLUDED.sent_at, received_at = now()
                    WHERE heartbeats.sent_at IS NULL OR EXCLUDED.sent_at IS NULL
                       OR EXCLUDED.sent_at >= heartbeats.sent_at
                RETURNING council_code, head_seq, outbox_depth, received_at
            ), logged AS (
                INSERT INTO heartbeat_history
                    (council_code, received_at, head_seq, outbox_depth, hub_seq)
                SELECT b.council_code, b.received_at, b.head_seq, b.outbox_depth, c.cursor_seq
                FROM beat b JOIN councils c ON c.code = b.council_code
            )
            DELETE FROM heartbeat_history
            WHERE council_code = $1 AND received_at < now() - make_interval(secs => $5)
            """,
            council, head_seq, outbox_depth, sent_at, HISTORY_KEEP_SECONDS,
        )

    async def get(self, conn: asyncpg.Connection, council: str) -> asyncpg.Record | None:
        return await conn.fetchrow(
            "SELECT head_seq, outbox_depth, sent_at, received_at FROM heartbeats"
            " WHERE council_code = $1", council,
        )
