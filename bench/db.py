"""One-shot reads of a benchmark's databases: the harness looks at what the servers
wrote (queue depth, batches applied, audit entries) between its measurements, on a
connection of its own that it closes at once. And the one way a benchmark sets how
its servers' connections plan (``--plan-cache-mode``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import asyncpg
import click

F = TypeVar("F", bound=Callable[..., Any])

PLAN_CACHE_MODES = ("auto", "force_generic_plan", "force_custom_plan")


async def fetchval(url: str, sql: str, *args: object) -> Any:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


def plan_cache_mode_option(database: str) -> Callable[[F], F]:
    """``--plan-cache-mode`` for a benchmark whose servers use ``database``."""
    return click.option(
        "--plan-cache-mode", default="auto", show_default=True,
        type=click.Choice(PLAN_CACHE_MODES),
        help=f"PostgreSQL's plan_cache_mode for {database}: force_generic_plan finds a "
             "statement whose generic plan is slow.")


async def set_plan_cache_mode(url: str, mode: str) -> None:
    """Every connection opened to ``url``'s database from now on plans this way:
    force_generic_plan shows what a statement costs once a connection has switched to
    the plan it keeps after five runs (docs/scaling.md). Connections already open keep
    the mode they started with."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(await conn.fetchval(
            "SELECT format('ALTER DATABASE %I SET plan_cache_mode = %L',"
            " current_database(), $1::text)", mode))
    finally:
        await conn.close()


async def reported_plan_cache_mode(conn: asyncpg.Connection) -> str:
    """The plan_cache_mode ``conn`` reports: how the benchmark's connections planned."""
    return str(await conn.fetchval("SHOW plan_cache_mode"))
