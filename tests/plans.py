"""The plan PostgreSQL keeps for a statement once a connection has run it five times."""

from __future__ import annotations

import asyncpg


async def generic_plan(conn: asyncpg.Connection, types: str, sql: str, args: str) -> str:
    """The plan ``sql`` gets made without the values, each array guessed at ten
    elements: what a connection keeps after five runs when it looks no worse. ``types``
    are its parameters' types and ``args`` literal values for them, as SQL."""
    async with conn.transaction():
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE generic_plan({types}) AS {sql}")
        try:
            return "\n".join(r[0] for r in await conn.fetch(
                f"EXPLAIN EXECUTE generic_plan({args})"))
        finally:
            await conn.execute("DEALLOCATE generic_plan")
