"""What the attack-surface tests share: a hub holding one child, a node holding one,
anonymous requests sent exactly as an outsider would, and reading the audit log."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestServer

from local_node.app import PACKAGE as NODE_PACKAGE
from local_node.app import create_app as create_node
from local_node.app import ingest_service
from national_hub.app import PACKAGE as HUB_PACKAGE
from national_hub.app import create_app as create_hub
from protocol import keys
from protocol.batch import GENESIS, UpsertOp
from server_common.accounts import Role
from server_common.accounts.config import AccountsConfig
from server_common.accounts.service import AccountService
from server_common.config import ServerConfig
from server_common.ratelimit.config import RateLimitConfig
from tests.federation import node_config
from tests.hub_harness import (
    Hub,
    hub_config,
    running_hub,
    upgrade,
    with_a_minute_to_spare,
)
from tests.local_node.test_practitioner_api import FEED
from tests.national_hub.helpers import Client, batch_bytes, record

ESX = "E10000011"
PURPOSE = "s17 assessment"
# Amelia Okafor, the child tests.national_hub.helpers.record describes
HUB_QUERY = {"given_name": "Amelia", "family_name": "Okafor", "dob": "2015-03-14"}
# Isabella Okonkwo-Reilly, the child of tests.local_node.test_practitioner_api.FEED
NODE_QUERY = {"given_name": "Isabella", "family_name": "Okonkwo-Reilly", "dob": "2015-03-14"}


@contextlib.asynccontextmanager
async def hub_with_child(url: str, tmp_path: Path,
                         **kwargs: Any) -> AsyncIterator[tuple[Hub, Client, str]]:
    """A hub over real HTTP holding one child from East Sussex: (hub, ESX's signed
    client, the child's national id)."""
    async with running_hub(url, tmp_path, **kwargs) as hub:
        key = keys.generate()
        await hub.enrol(ESX, keys.public_pem(key.public_key()))
        client = Client(hub, ESX, key)
        body, _ = batch_bytes(ESX, 1, GENESIS, [UpsertOp.of(record("A1"), 1)], key)
        assert (await client.send(body))[0] == 200
        await hub.resolved()
        status, found, _ = await send(hub.url, "GET", "/v1/search",
                                      headers=await hub.as_role(Role.PRACTITIONER),
                                      params={**HUB_QUERY, "purpose": PURPOSE})
        assert status == 200, found
        yield hub, client, found["results"][0]["national_id"]


@dataclass
class ServedNode:
    base: str
    app: web.Application
    pool: asyncpg.Pool
    token: str  # a practitioner's bearer token


@contextlib.asynccontextmanager
async def node_with_child(url: str, tmp_path: Path, *, rate_limits: RateLimitConfig | None = None,
                          server: ServerConfig | None = None) -> AsyncIterator[ServedNode]:
    """A node (no publisher) over real HTTP holding one child, with a practitioner."""
    await with_a_minute_to_spare(rate_limits)
    await upgrade(url, NODE_PACKAGE)
    config = node_config(ESX, url, tmp_path, None)
    config = dataclasses.replace(config, rate_limits=rate_limits or config.rate_limits,
                                 server=server or config.server)
    app = create_node(config, publish=False)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    pool = await asyncpg.create_pool(url, min_size=1, max_size=3)
    assert pool is not None
    try:
        feed = tmp_path / "services.csv"
        feed.write_text(FEED, encoding="utf-8")
        await ingest_service(pool).ingest_file("services", feed)
        accounts = AccountService(pool, AccountsConfig())
        await accounts.add_user("pat", Role.PRACTITIONER, organisation="ESCC")
        token = (await accounts.create_token("pat"))[0]
        yield ServedNode(str(test_server.make_url("")).rstrip("/"), app, pool, token)
    finally:
        await pool.close()
        await test_server.close()


@contextlib.asynccontextmanager
async def served_hub(url: str, tmp_path: Path, *, trusted_proxies: str = "",
                     rate_limits: Mapping[str, object] | None = None) -> AsyncIterator[Hub]:
    """A hub on its own database with ``[server] trusted_proxies`` set (running_hub's
    harness has no [server] section)."""
    await with_a_minute_to_spare(rate_limits)
    await upgrade(url, HUB_PACKAGE)
    config = hub_config(url, tmp_path, rate_limits=rate_limits)
    config = dataclasses.replace(config, server=dataclasses.replace(
        config.server, trusted_proxies=trusted_proxies))
    test_server = TestServer(create_hub(config), host="127.0.0.1")
    await test_server.start_server()
    pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
    assert pool is not None
    try:
        yield Hub(config, test_server, pool)
    finally:
        await pool.close()
        await test_server.close()


async def send(base: str, method: str, path: str, *, headers: dict[str, str] | None = None,
               data: bytes | None = None, params: dict[str, str] | None = None,
               ) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    """One request, no cookies, no redirects followed: (status, JSON body or {}, response)."""
    async with aiohttp.ClientSession() as http, http.request(
            method, base + path, headers=headers or {}, data=data, params=params,
            allow_redirects=False) as resp:
        body = await resp.read()
        parsed = json.loads(body) if resp.content_type == "application/json" and body else {}
        return resp.status, parsed, resp


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def audit_entries(pool: asyncpg.Pool, action: str | None = None) -> list[dict[str, Any]]:
    """Every entry of the server's audit log (optionally of one action), oldest first."""
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT entry FROM audit_log ORDER BY seq")
    entries = [json.loads(bytes(row["entry"])) for row in rows]
    return [e for e in entries if action is None or e["action"] == action]
