"""Connecting to PostgreSQL and keeping its schema current.

Migrations are numbered SQL files (``001_initial.sql``, ``002_….sql``) in a
server's ``storage/schema`` folder. ``db upgrade`` applies the missing ones in
order, each in its own transaction, under an advisory lock so two processes
never race; ``serve`` refuses to start while any is missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import asyncpg

from server_common import embedded_pg
from server_common.config import DatabaseConfig

_MIGRATION = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
# Arbitrary constant: the advisory lock key that serialises schema upgrades.
_UPGRADE_LOCK = 0x5167_0001


class SchemaError(Exception):
    """The database schema is behind (or ahead of) the code."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations(package: str) -> list[Migration]:
    """Every migration shipped in ``{package}.storage.schema``, in order."""
    folder = resources.files(f"{package}.storage.schema")
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, m in enumerate(found, start=1):
        if m.version != expected:
            raise SchemaError(f"{package}: migration {expected:03d} is missing")
    return found


async def resolve_url(config: DatabaseConfig, default_name: str) -> str:
    """The URL to use: the configured one, or a database in the embedded server."""
    if config.url:
        return config.url
    base = embedded_pg.start(Path(config.embedded_dir))
    return await embedded_pg.ensure_database(base, config.name or default_name)


async def current_version(conn: asyncpg.Connection) -> int:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))


async def upgrade(conn: asyncpg.Connection, package: str) -> list[Migration]:
    """Apply the missing migrations; return those applied."""
    applied = []
    await conn.execute("SELECT pg_advisory_lock($1)", _UPGRADE_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        have = await current_version(conn)
        for m in migrations(package):
            if m.version <= have:
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    m.version, m.name,
                )
            applied.append(m)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _UPGRADE_LOCK)
    return applied


async def check_current(conn: asyncpg.Connection, package: str) -> None:
    """Raise SchemaError unless the database is at exactly the code's version."""
    want = len(migrations(package))
    have = await current_version(conn)
    if have < want:
        raise SchemaError(
            f"database schema is at version {have}, the code needs {want}: run 'db upgrade'"
        )
    if have > want:
        raise SchemaError(f"database schema {have} is newer than this code ({want})")


async def create_pool(url: str, config: DatabaseConfig) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(url, min_size=config.pool_min, max_size=config.pool_max)
    assert pool is not None
    return pool
