"""What the hub last reported about the council's signing keys (their expiry)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True, slots=True)
class KeyStatus:
    kid: str
    not_after: datetime | None  # None: the hub knows no expiry for this key
    reported_at: datetime


class KeyStatusStore:
    async def record(self, conn: asyncpg.Connection, kid: str,
                     not_after: datetime | None) -> None:
        await conn.execute(
            "INSERT INTO key_status (kid, not_after) VALUES ($1, $2)"
            " ON CONFLICT (kid) DO UPDATE SET not_after = EXCLUDED.not_after,"
            " reported_at = now()", kid, not_after,
        )

    async def get(self, conn: asyncpg.Connection, kid: str) -> KeyStatus | None:
        row = await conn.fetchrow(
            "SELECT kid, not_after, reported_at FROM key_status WHERE kid = $1", kid)
        return KeyStatus(**dict(row)) if row else None
