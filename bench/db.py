"""One-shot reads of a benchmark's databases: the harness looks at what the servers
wrote (queue depth, batches applied, audit entries) between its measurements, on a
connection of its own that it closes at once."""

from __future__ import annotations

from typing import Any

import asyncpg


async def fetchval(url: str, sql: str, *args: object) -> Any:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()
