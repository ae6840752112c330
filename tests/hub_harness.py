"""A hub served over real HTTP on loopback, on its own fresh database."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestServer

from national_hub.app import PACKAGE as HUB_PACKAGE
from national_hub.app import create_app
from national_hub.config import HubConfig
from national_hub.handlers import appkeys as app_keys
from national_hub.services.container import HubServices
from protocol import keys
from server_common import config as config_module
from server_common import database
from server_common.accounts import Role
from server_common.tls import server_context
from tests.server_common.accounts_helpers import bearer_headers

COUNCILS = {
    "E10000011": "East Sussex",
    "E10000032": "West Sussex",
    "E06000020": "Telford and Wrekin",
}


def hub_config(url: str, data_dir: Path, health: Mapping[str, object] | None = None,
               tls: Mapping[str, object] | None = None, *, read_url: str | None = None,
               rate_limits: Mapping[str, object] | None = None,
               resolver: Mapping[str, object] | None = None,
               notices: Mapping[str, object] | None = None, **hub: object) -> HubConfig:
    return config_module.load(HubConfig, "TEST_HUB", None, {
        "database": {"url": url, "pool_max": 10, "read_url": read_url},
        "hub": {"key_file": str(data_dir / "hub" / "hub_key.pem"), "predecessor_wait": "0.5s",
                **hub},
        "health": dict(health or {}),
        # tests drive retention with a date of their choosing, never the real clock
        "retention": {"interval": "0s"},
        "tls": dict(tls or {}),
        "rate_limits": dict(rate_limits or {}),
        "resolver": dict(resolver or {}),
        "notices": dict(notices or {}),
    }, environ={})


async def upgrade_until(conn: asyncpg.Connection, package: str, last: int) -> None:
    """The database as a server stood after its migration ``last``: what ``upgrade``
    would apply, stopped there (to test what a later migration does to held data)."""
    for track in database.SHARED_TRACKS:
        await database._apply(conn, track.table, database.migrations(package, track.resource))
    await database._apply(conn, "schema_migrations", database.migrations(package)[:last])


async def upgrade(url: str, package: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await database.upgrade(conn, package)
    finally:
        await conn.close()


@dataclass
class Hub:
    config: HubConfig
    server: TestServer
    pool: asyncpg.Pool
    _tokens: dict[str, dict[str, str]] = field(default_factory=dict)

    async def as_role(self, role: Role, council: str | None = None) -> dict[str, str]:
        """Bearer headers of a test account with ``role`` (made once per role/council)."""
        name = f"test-{role}-{council or 'all'}".lower()
        if name not in self._tokens:
            self._tokens[name] = await bearer_headers(self.pool, name, role, council)
        return self._tokens[name]

    async def operator(self) -> dict[str, str]:
        return await self.as_role(Role.OPERATOR)

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    @property
    def public_key_file(self) -> Path:
        return keys.public_path_for(self.config.hub.key_file)

    async def enrol(self, code: str, public_key_pem: bytes) -> str:
        # over the harness's own pool, as an operator's command: the server may be closed
        # (tests that serve from hub processes use this one only to migrate and enrol)
        service = HubServices(self.config, self.pool).councils
        return await service.enrol(code, COUNCILS.get(code, code), public_key_pem)

    async def digests(self, code: str) -> dict[str, str]:
        async with self.pool.acquire() as conn:
            return await self.server.app[app_keys.SERVICES].stores.records.digests(conn, code)

    async def fetchval(self, sql: str, *args: object) -> Any:
        async with self.pool.acquire() as conn:
            return await conn.fetchval(sql, *args)

    async def resolved(self) -> int:
        """Return once every record batch intake queued is resolved (resolving what the
        hub's background resolver has not reached yet, as ``links drain`` does)."""
        return await self.server.app[app_keys.RESOLVER].drain()


async def with_a_minute_to_spare(rate_limits: object, seconds: float = 20.0) -> None:
    """Rate limits count per calendar minute (server_common.ratelimit): a test that
    spends an allowance and crosses into the next minute finds it renewed, and its
    429 never comes. With limits set, start early enough in a minute to finish in it."""
    if not rate_limits:
        return
    left = 60.0 - time.time() % 60.0
    if left < seconds:
        await asyncio.sleep(left + 0.05)


@contextlib.asynccontextmanager
async def running_hub(url: str, data_dir: Path, health: Mapping[str, object] | None = None,
                      tls: Mapping[str, object] | None = None, *, read_url: str | None = None,
                      rate_limits: Mapping[str, object] | None = None,
                      resolver: Mapping[str, object] | None = None,
                      notices: Mapping[str, object] | None = None,
                      **hub: object) -> AsyncIterator[Hub]:
    """``tls`` ({"cert_file", "key_file"}) serves it over HTTPS, as ``serve`` would;
    ``read_url`` sends searches and child views to that (replica) database."""
    await with_a_minute_to_spare(rate_limits)
    await upgrade(url, HUB_PACKAGE)
    config = hub_config(url, data_dir, health, tls, read_url=read_url,
                        rate_limits=rate_limits, resolver=resolver, notices=notices, **hub)
    server = TestServer(create_app(config), host="127.0.0.1")
    await server.start_server(ssl=server_context(config.tls))
    pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
    assert pool is not None
    try:
        yield Hub(config, server, pool)
    finally:
        await pool.close()
        await server.close()
