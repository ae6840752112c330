"""Whose address a failed sign-in counts against: the client's, as for rate limits.

Two ways the login throttle missed the client. Behind a proxy listed in ``[server]
trusted_proxies`` it counted the proxy's address, so one outsider's wrong passwords
shut every user behind the proxy out (429 for the right password). And it counted the
exact address, so an IPv6 client, who may use any of its /64's 2**64 addresses, got a
fresh five tries at a password (or, with a stolen password, at a TOTP code) on each
one. Now both use the address the rate limits use: ``client_address`` bucketed to an
IPv6 /64.

Tried through the hub's real login page behind a "proxy" on loopback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server_common.accounts import Role
from server_common.accounts.service import AccountService
from tests.conftest import DatabaseFactory
from tests.security.logins_helpers import Served, browser_from, hub_serving
from tests.server_common.accounts_helpers import PASSWORD, code_at, csrf_in, early_in_a_step


@pytest.fixture
async def hub(make_database: DatabaseFactory, tmp_path: Path) -> AsyncIterator[Served]:
    async with hub_serving(await make_database(), tmp_path,
                           trusted_proxies="127.0.0.1/32") as served:
        yield served


async def sign_in_as(hub: Served, client: str, name: str, password: str, code: str) -> int:
    """The status of one sign-in by ``client`` (as the proxy names it)."""
    headers = {"X-Forwarded-For": client}
    async with browser_from() as http:
        form = await http.get(f"{hub.base}/login", headers=headers)
        data = {"csrf_token": csrf_in(await form.text()), "name": name,
                "password": password, "totp": code}
        async with http.post(f"{hub.base}/login", data=data, headers=headers,
                             allow_redirects=False) as response:
            return response.status


async def test_one_client_behind_the_proxy_cannot_shut_the_others_out(hub: Served) -> None:
    await early_in_a_step()
    seed = (await AccountService(hub.pool, hub.accounts).add_user(
        "fay", Role.PRACTITIONER, password=PASSWORD)).totp_secret
    tried = [await sign_in_as(hub, "203.0.113.9", "fay", "wrong but long enough", "000000")
             for _ in range(7)]
    assert tried == [401] * 5 + [429] * 2
    # fay, from her own machine behind the same proxy, signs in
    assert await sign_in_as(hub, "198.51.100.7", "fay", PASSWORD, code_at(seed)) == 303
    remotes = {r["remote"] for r in await hub.fetch("SELECT remote FROM login_failures")}
    assert remotes == {"203.0.113.9"}


async def test_an_ipv6_client_gets_no_fresh_tries_from_each_of_its_addresses(
        hub: Served) -> None:
    await early_in_a_step()
    seed = (await AccountService(hub.pool, hub.accounts).add_user(
        "gil", Role.PRACTITIONER, password=PASSWORD)).totp_secret
    # a stolen password, and a TOTP code guessed from a new address of one /64 each time
    tried = [await sign_in_as(hub, f"2001:db8:1:2::{n:x}", "gil", PASSWORD, f"{n:06d}")
             for n in range(1, 8)]
    assert tried == [401] * 5 + [429] * 2
    right = code_at(seed)
    assert await sign_in_as(hub, "2001:db8:1:2:ffff::1", "gil", PASSWORD, right) == 429
    # gil, from another network, is not held up by it
    assert await sign_in_as(hub, "2001:db8:7::1", "gil", PASSWORD, right) == 303
