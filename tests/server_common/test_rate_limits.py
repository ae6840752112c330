"""Rate limits on every endpoint, counted in PostgreSQL: two hub processes' worth of
apps on one database share each caller's allowance; over it, 429 ``rate_limited``
with Retry-After; a signed-in user counts as themselves, anyone else per address
(whatever the path); probes are never limited."""

from __future__ import annotations

import contextlib
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp.test_utils import TestServer

from national_hub.app import create_app
from server_common.accounts import Role
from tests.conftest import DatabaseFactory
from tests.hub_harness import hub_config, running_hub

LIMITS = {"per_user": 5, "per_council": 3, "per_address": 4}


async def status_of(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    async with aiohttp.ClientSession(headers=headers or {}) as http, http.get(url) as resp:
        body = await resp.json() if resp.content_type == "application/json" else {}
        return resp.status, {"body": body, "retry_after": resp.headers.get("Retry-After")}


async def test_limits_are_shared_by_replicas_and_per_caller(make_database: DatabaseFactory,
                                                            tmp_path: Path) -> None:
    url = await make_database()
    async with contextlib.AsyncExitStack() as stack:
        hub = await stack.enter_async_context(
            running_hub(url, tmp_path, rate_limits=LIMITS))
        # a second replica of the hub on the same database
        other = TestServer(create_app(hub_config(url, tmp_path, rate_limits=LIMITS)),
                           host="127.0.0.1")
        await other.start_server()
        stack.push_async_callback(other.close)
        replicas = [hub.url, str(other.make_url("")).rstrip("/")]

        amy = await hub.as_role(Role.PRACTITIONER)
        for i in range(5):  # alternating replicas: one allowance between them
            assert (await status_of(replicas[i % 2] + "/v1/me", amy))[0] == 200
        status, refused = await status_of(replicas[1] + "/v1/me", amy)
        assert status == 429
        assert refused["body"]["error"]["code"] == "rate_limited"
        assert refused["body"]["error"]["retryable"] is True
        assert 1 <= int(refused["retry_after"]) <= 60
        # another user has their own allowance
        assert (await status_of(replicas[0] + "/v1/me", await hub.operator()))[0] == 200

        # anyone not signed in: per address
        for i in range(4):
            assert (await status_of(replicas[i % 2] + "/v1/me"))[0] == 401
        assert (await status_of(replicas[0] + "/v1/me"))[0] == 429

        # ... whatever the path: unsigned node calls naming any council spend the same
        # allowance (a verified node's own allowance: tests/security/test_surface_limits.py)
        for code in ("E10000011", "E10000032"):
            assert (await status_of(replicas[1] + f"/v1/councils/{code}/cursor"))[0] == 429

        # probes are never limited
        for _ in range(10):
            assert (await status_of(replicas[0] + "/healthz"))[0] == 200


async def counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        return {r["key"].split(":", 1)[0]: r["hits"]
                for r in await conn.fetch("SELECT key, hits FROM rate_limit_hits")}
    finally:
        await conn.close()


async def test_one_write_a_signed_in_request_and_none_a_spent_address_refused(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    url = await make_database()
    async with running_hub(url, tmp_path, rate_limits=LIMITS) as hub:
        amy = await hub.as_role(Role.PRACTITIONER)
        async with hub.pool.acquire() as conn:
            await conn.execute("DELETE FROM rate_limit_hits")
        for _ in range(3):
            assert (await status_of(hub.url + "/v1/me", amy))[0] == 200
        # a signed-in user is counted as themselves only: their address is not counted
        # and given back (a second write, and a row every request of an office touches)
        assert await counts(url) == {"user": 3}

        # an outsider at the same address spends its allowance, with bad tokens and none
        for headers in ({}, {"Authorization": "Bearer guess"}, {}, {}):
            assert (await status_of(hub.url + "/v1/me", headers))[0] == 401
        assert (await status_of(hub.url + "/v1/me"))[0] == 429
        assert await counts(url) == {"user": 3, "address": 5}
        # once it is spent, whatever comes from there is refused before its credentials
        # are looked at, and not counted: a bad token, and even a good one
        for headers in ({"Authorization": "Bearer guess"}, amy, await hub.operator()):
            assert (await status_of(hub.url + "/v1/me", headers))[0] == 429
        assert await counts(url) == {"user": 3, "address": 5}
