"""Key announcements as received: the exact signed envelope that enrolled each key."""

from __future__ import annotations

import asyncpg


class KeyAnnouncementStore:
    async def add(self, conn: asyncpg.Connection, new_kid: str, council: str, old_kid: str,
                  envelope: bytes) -> bool:
        """Keep the first announcement of a key; False if one was already kept."""
        result = await conn.execute(
            "INSERT INTO key_announcements (new_kid, council_code, old_kid, envelope)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (new_kid) DO NOTHING",
            new_kid, council, old_kid, envelope,
        )
        return bool(result.endswith(" 1"))

    async def get(self, conn: asyncpg.Connection, new_kid: str) -> asyncpg.Record | None:
        return await conn.fetchrow(
            "SELECT new_kid, council_code, old_kid, envelope, received_at"
            " FROM key_announcements WHERE new_kid = $1", new_kid,
        )
