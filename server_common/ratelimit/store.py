"""The SQL of rate limiting: one counter row per caller per minute."""

from __future__ import annotations

import asyncpg


class RateLimitStore:
    async def hit(self, conn: asyncpg.Connection, key: str) -> tuple[int, float]:
        """Count one request of ``key`` in the current minute: (hits so far, seconds
        until the minute ends). One statement, atomic across replicas."""
        row = await conn.fetchrow(
            "INSERT INTO rate_limit_hits (key, window_start, hits)"
            " VALUES ($1, date_trunc('minute', now()), 1)"
            " ON CONFLICT (key, window_start)"
            " DO UPDATE SET hits = rate_limit_hits.hits + 1"
            " RETURNING hits, extract(epoch FROM date_trunc('minute', now())"
            "   + interval '1 minute' - now())::float8 AS remaining", key)
        return int(row["hits"]), float(row["remaining"])

    async def purge(self, conn: asyncpg.Connection) -> int:
        """Forget finished minutes."""
        status = await conn.execute(
            "DELETE FROM rate_limit_hits WHERE window_start < date_trunc('minute', now())")
        return int(status.split()[-1])
