"""Serving a real hub or node app over loopback HTTP with chosen ``[accounts]`` settings,
and browsing it from a chosen client address (127.0.0.0/8 is all loopback on Linux)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestServer

from local_node.app import PACKAGE as NODE_PACKAGE
from local_node.app import create_app as create_node_app
from national_hub.app import PACKAGE as HUB_PACKAGE
from national_hub.app import create_app as create_hub_app
from server_common.accounts import AccountsConfig
from tests.federation import node_config
from tests.hub_harness import hub_config, upgrade


@dataclasses.dataclass
class Served:
    base: str
    pool: asyncpg.Pool
    accounts: AccountsConfig
    app: web.Application

    async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        async with self.pool.acquire() as conn:
            return await conn.fetch(sql, *args)

    async def fetchval(self, sql: str, *args: object) -> Any:
        async with self.pool.acquire() as conn:
            return await conn.fetchval(sql, *args)

    async def execute(self, sql: str, *args: object) -> str:
        async with self.pool.acquire() as conn:
            return await conn.execute(sql, *args)


@contextlib.asynccontextmanager
async def _serve(app: web.Application, url: str,
                 accounts: AccountsConfig) -> AsyncIterator[Served]:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    pool = await asyncpg.create_pool(url, min_size=1, max_size=3)
    assert pool is not None
    try:
        yield Served(str(server.make_url("")).rstrip("/"), pool, accounts, app)
    finally:
        await pool.close()
        await server.close()


def _accounts(base: AccountsConfig, tmp_path: Path, settings: dict[str, Any]) -> AccountsConfig:
    settings.setdefault("secret_key_file", tmp_path / "secrets" / "accounts_secret.key")
    return dataclasses.replace(base, **settings)


@contextlib.asynccontextmanager
async def hub_serving(url: str, tmp_path: Path, *, trusted_proxies: str = "",
                      **accounts: Any) -> AsyncIterator[Served]:
    """The national hub's real app; ``accounts`` overrides its [accounts] settings (the
    secret key file defaults to one under ``tmp_path``), ``trusted_proxies`` its
    ``[server] trusted_proxies``."""
    await upgrade(url, HUB_PACKAGE)
    config = hub_config(url, tmp_path)
    config = dataclasses.replace(
        config, accounts=_accounts(config.accounts, tmp_path, accounts),
        server=dataclasses.replace(config.server, trusted_proxies=trusted_proxies))
    async with _serve(create_hub_app(config), url, config.accounts) as served:
        yield served


@contextlib.asynccontextmanager
async def node_serving(code: str, url: str, tmp_path: Path,
                       **accounts: Any) -> AsyncIterator[Served]:
    """A council node's real app (no publisher), as :func:`hub_serving`."""
    await upgrade(url, NODE_PACKAGE)
    config = node_config(code, url, tmp_path, None)
    config = dataclasses.replace(config, accounts=_accounts(config.accounts, tmp_path,
                                                            accounts))
    async with _serve(create_node_app(config, publish=False), url, config.accounts) as served:
        yield served


def browser_from(address: str = "127.0.0.1") -> aiohttp.ClientSession:
    """A cookie-keeping client whose requests come from ``address``."""
    return aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True),
        connector=aiohttp.TCPConnector(local_addr=(address, 0)))
