"""Which set of blocking keys a database's keys were made by, on the hub and the node.

Blocking keys (``protocol.matching.blocking``) are derived from each record's identity
and held: the node's ``child_blocking_keys``, the hub's ``record_keys``. When the code
makes other keys (``KEY_SCHEME`` raised), the keys held must all be made again, or a
record keyed by the old scheme would never meet a new record through the keys that
changed. ``db upgrade`` does that after the migrations; until it has, the database
counts as not upgraded (``server_common.database.check_current``), so ``serve`` refuses
to start, as it does while a migration is missing.
"""

from __future__ import annotations

import asyncpg

from protocol.matching.blocking import KEY_SCHEME


async def held(conn: asyncpg.Connection) -> int | None:
    """The scheme the held keys were made by (None before the migration that records it)."""
    if not await conn.fetchval("SELECT to_regclass('blocking_key_scheme') IS NOT NULL"):
        return None
    return int(await conn.fetchval("SELECT scheme FROM blocking_key_scheme"))


async def stale(conn: asyncpg.Connection) -> bool:
    """Whether the held keys must be made again by this code's scheme."""
    scheme = await held(conn)
    return scheme is not None and scheme != KEY_SCHEME


async def record(conn: asyncpg.Connection) -> None:
    """Every held key is now this code's: call in the transaction that made them."""
    await conn.execute("UPDATE blocking_key_scheme SET scheme = $1", KEY_SCHEME)
