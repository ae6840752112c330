"""Connecting to PostgreSQL and keeping its schema current.

Migrations are numbered SQL files (``001_initial.sql``, ``002_….sql``) in a
server's ``storage/schema`` folder. ``db upgrade`` applies the missing ones in
order, each in its own transaction, under an advisory lock so two processes
never race; ``serve`` refuses to start while any is missing.

Schema that every server needs alike (accounts and logins) lives beside the shared
code that uses it and is applied as a *shared track*: its own numbered files and its
own tracking table, so a server's numbering never has to make room for it and both
servers run the same files. ``upgrade`` applies the shared tracks first (they depend on
no server table), then the server's own; ``check_current`` checks all of them.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import asyncpg

from protocol.matching.blocking import KEY_SCHEME
from server_common import embedded_pg, key_scheme_store
from server_common.config import DatabaseConfig

# Errors meaning "the database is not there right now" (restarting, crashed, cut off):
# worth trying again later, never a bug of ours. InternalClientError is asyncpg's own
# protocol state going wrong, which in practice is a pooled connection whose server
# died mid-operation (the fault runs of bench/chaos meet it; MagicStack/asyncpg#1069).
UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    ConnectionError,
    OSError,
)


def unavailable(exc: BaseException) -> bool:
    """Is ``exc`` the database being gone (closed connection or pool included), rather
    than a bug? asyncpg's client-side DataError is an InterfaceError too, and a bug."""
    if isinstance(exc, asyncpg.InterfaceError):
        return not isinstance(exc, ValueError)
    return isinstance(exc, UNAVAILABLE)


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


@dataclass(frozen=True, slots=True)
class SharedTrack:
    """Migrations every server applies: numbered files in ``resource`` (a package),
    recorded in ``table``."""

    resource: str
    table: str


SHARED_TRACKS: tuple[SharedTrack, ...] = (
    SharedTrack("server_common.accounts.schema", "schema_migrations_accounts"),
    SharedTrack("server_common.audit.schema", "schema_migrations_audit"),
    SharedTrack("server_common.ratelimit.schema", "schema_migrations_ratelimit"),
)


def migrations(package: str, resource: str | None = None) -> list[Migration]:
    """Every migration shipped in ``{package}.storage.schema`` (or in ``resource``), in order."""
    folder = resources.files(resource or f"{package}.storage.schema")
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


async def current_version(conn: asyncpg.Connection, table: str = "schema_migrations") -> int:
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table)
    if not exists:
        return 0
    # table names come from this module's constants, never from input
    return int(await conn.fetchval(f"SELECT coalesce(max(version), 0) FROM {table}"))


async def _apply(conn: asyncpg.Connection, table: str,
                 found: list[Migration]) -> list[Migration]:
    await conn.execute(
        f"CREATE TABLE IF NOT EXISTS {table} ("
        " version integer PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    have = await current_version(conn, table)
    applied = []
    for m in found:
        if m.version <= have:
            continue
        async with conn.transaction():
            await conn.execute(m.sql)
            await conn.execute(f"INSERT INTO {table} (version, name) VALUES ($1, $2)",
                               m.version, m.name)
        applied.append(m)
    return applied


async def upgrade(conn: asyncpg.Connection, package: str) -> list[Migration]:
    """Apply the missing migrations (shared tracks first); return those applied."""
    applied = []
    await conn.execute("SELECT pg_advisory_lock($1)", _UPGRADE_LOCK)
    try:
        for track in SHARED_TRACKS:
            applied += await _apply(conn, track.table, migrations(package, track.resource))
        applied += await _apply(conn, "schema_migrations", migrations(package))
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _UPGRADE_LOCK)
    return applied


def _compare(have: int, want: int, what: str) -> None:
    if have < want:
        raise SchemaError(
            f"{what} is at version {have}, the code needs {want}: run 'db upgrade'"
        )
    if have > want:
        raise SchemaError(f"{what} {have} is newer than this code ({want})")


async def check_current(conn: asyncpg.Connection, package: str) -> None:
    """Raise SchemaError unless the database is at exactly the code's version,
    for the server's own migrations and every shared track, and its blocking keys
    were made by the code's scheme (``server_common.key_scheme_store``)."""
    _compare(await current_version(conn), len(migrations(package)), "database schema")
    for track in SHARED_TRACKS:
        _compare(await current_version(conn, track.table),
                 len(migrations(package, track.resource)), f"shared schema {track.table}")
    if (scheme := await key_scheme_store.held(conn)) not in (None, KEY_SCHEME):
        raise SchemaError(
            f"the blocking keys held were made by scheme {scheme},"
            f" this code makes scheme {KEY_SCHEME}: run 'db upgrade' to make them again")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool release without asyncpg's default reset query (``RESET ALL``, ``UNLISTEN *``,
    ``CLOSE ALL``, advisory unlock): one more round trip on every release, a third of a
    practitioner search's trips to PostgreSQL. Nothing here keeps session state on a
    pooled connection (settings are ``SET LOCAL``, no LISTEN, no cursors outside a
    transaction, the upgrade's advisory lock is released explicitly); an open
    transaction is still rolled back by the pool itself."""


async def create_pool(url: str, config: DatabaseConfig) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(url, min_size=config.pool_min, max_size=config.pool_max,
                                     reset=_keep_session)
    assert pool is not None
    return pool


@contextlib.asynccontextmanager
async def open_pool(config: DatabaseConfig, default_name: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the configured database (or ``default_name`` in the embedded server),
    closed on leaving: what ``serve`` and every command open, on both servers."""
    pool = await create_pool(await resolve_url(config, default_name), config)
    try:
        yield pool
    finally:
        await pool.close()


async def check_pool(pool: asyncpg.Pool, package: str) -> None:
    """``check_current`` on one of ``pool``'s connections: before a command writes."""
    async with pool.acquire() as conn:
        await check_current(conn, package)
