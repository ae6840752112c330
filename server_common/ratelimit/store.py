"""The SQL of rate limiting: one counter row per caller per minute."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True, slots=True)
class Hit:
    """One request counted: the caller's hits so far this minute, the seconds until the
    minute ends, and which counter row it went to (so it can be given back)."""

    key: str
    hits: int
    remaining: float
    window_start: datetime


_COUNT = (
    "INSERT INTO rate_limit_hits (key, window_start, hits)"
    " VALUES ($1, date_trunc('minute', now()), 1)"
    " ON CONFLICT (key, window_start)"
    " DO UPDATE SET hits = rate_limit_hits.hits + 1"
    " RETURNING key, hits, window_start, extract(epoch FROM date_trunc('minute', now())"
    "   + interval '1 minute' - now())::float8 AS remaining")


class RateLimitStore:
    async def hit(self, conn: asyncpg.Connection, key: str) -> Hit:
        """Count one request of ``key`` in the current minute. One statement, atomic
        across replicas."""
        return _hit(await conn.fetchrow(_COUNT, key))

    async def peek(self, conn: asyncpg.Connection, key: str) -> Hit:
        """``key``'s requests so far this minute, without counting one (a read)."""
        return _hit(await conn.fetchrow(
            "SELECT $1::text AS key, coalesce(h.hits, 0) AS hits, m.start AS window_start,"
            " extract(epoch FROM m.start + interval '1 minute' - now())::float8 AS remaining"
            " FROM (SELECT date_trunc('minute', now()) AS start) m"
            " LEFT JOIN rate_limit_hits h ON h.key = $1 AND h.window_start = m.start", key))

    async def move(self, conn: asyncpg.Connection, counted: Hit, key: str) -> Hit:
        """Give back the request ``counted`` counted, and count it against ``key``
        instead: one statement, so a crash between the two cannot lose or double it."""
        return _hit(await conn.fetchrow(
            "WITH given_back AS (UPDATE rate_limit_hits SET hits = hits - 1"
            "   WHERE key = $2 AND window_start = $3 AND hits > 0) " + _COUNT,
            key, counted.key, counted.window_start))

    async def purge(self, conn: asyncpg.Connection) -> int:
        """Forget finished minutes."""
        status = await conn.execute(
            "DELETE FROM rate_limit_hits WHERE window_start < date_trunc('minute', now())")
        return int(status.split()[-1])


def _hit(row: asyncpg.Record) -> Hit:
    return Hit(row["key"], int(row["hits"]), float(row["remaining"]), row["window_start"])
