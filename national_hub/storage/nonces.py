"""Request nonces, remembered in PostgreSQL so every hub replica refuses a replay."""

from __future__ import annotations

import asyncpg


class NonceStore:
    async def seen(self, conn: asyncpg.Connection, origin: str, nonce: str) -> bool:
        return bool(await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM request_nonces WHERE origin = $1 AND nonce = $2)",
            origin, nonce))

    async def remember(self, conn: asyncpg.Connection, origin: str, nonce: str) -> bool:
        """Record the nonce; False if it was already seen (a replay)."""
        inserted = await conn.fetchval(
            "INSERT INTO request_nonces (origin, nonce) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING RETURNING true", origin, nonce,
        )
        return bool(inserted)

    async def purge_older_than(self, conn: asyncpg.Connection, seconds: float) -> int:
        result = await conn.execute(
            "DELETE FROM request_nonces WHERE seen_at < now() - make_interval(secs => $1)",
            seconds,
        )
        return int(result.split()[-1])
