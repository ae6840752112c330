"""Finding 9b: five anonymous wrong passwords locked a real account out, and the
locked answer told which names exist. Now failures are throttled per (client address,
name) and per address, and every refusal reads the same for known and unknown names.

Tried through the hub's real login page, the attacker and the user on different
loopback addresses (127.0.0.2 and 127.0.0.1).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import pytest
from argon2 import PasswordHasher

from server_common.accounts import Role, credentials
from server_common.accounts.service import AccountService
from tests.conftest import DatabaseFactory
from tests.security.logins_helpers import Served, browser_from, hub_serving
from tests.server_common.accounts_helpers import PASSWORD, code_at, error_code_in, login

ATTACKER, USER = "127.0.0.2", "127.0.0.1"


@pytest.fixture
async def hub(make_database: DatabaseFactory, tmp_path: Path) -> AsyncIterator[Served]:
    async with hub_serving(await make_database(), tmp_path) as served:
        yield served


async def attempts(hub: Served, name: str, count: int, address: str,
                   password: str = "wrong but long enough") -> list[tuple[int, str | None, str]]:
    """(status, code, the error message shown) of ``count`` sign-ins from ``address``."""
    out = []
    async with browser_from(address) as http:
        for _ in range(count):
            response = await login(http, hub.base, name, password, "000000")
            page = await response.text()
            message = re.search(r'role="alert"[^>]*>([^<]*)<', page)
            out.append((response.status, error_code_in(page), message.group(1) if message
                        else ""))
    return out


async def test_an_attacker_cannot_lock_the_real_user_out(hub: Served) -> None:
    seed = (await AccountService(hub.pool, hub.accounts).add_user(
        "fay", Role.PRACTITIONER, password=PASSWORD)).totp_secret
    tried = await attempts(hub, "fay", 8, ATTACKER)
    assert [t[:2] for t in tried] == [(401, "login_failed")] * 5 + [(429, "login_throttled")] * 3
    async with browser_from(ATTACKER) as http:  # throttled even with the right secrets
        right = await login(http, hub.base, "fay", PASSWORD, code_at(seed))
        assert right.status == 429
    async with browser_from(USER) as http:  # fay, from her own machine, signs in
        mine = await login(http, hub.base, "fay", PASSWORD, code_at(seed, 1))
        assert mine.status == 303, await mine.text()
    assert await hub.fetchval("SELECT locked_until FROM users") is None


async def test_known_and_unknown_names_get_the_same_answers(hub: Served) -> None:
    await AccountService(hub.pool, hub.accounts).add_user("gil", Role.PRACTITIONER,
                                                          password=PASSWORD)
    known = await attempts(hub, "gil", 7, "127.0.0.3")
    unknown = await attempts(hub, "nobody-here", 7, "127.0.0.4")
    assert known == unknown
    assert [k[0] for k in known] == [401] * 5 + [429] * 2


async def test_one_address_trying_many_names_is_throttled(hub: Served) -> None:
    await AccountService(hub.pool, hub.accounts).add_user("hal", Role.PRACTITIONER,
                                                          password=PASSWORD)
    for i in range(5):  # 4 names × 5 = the per-address limit of 20
        assert {t[0] for t in await attempts(hub, f"guess{i}", 4, "127.0.0.5")} == {401}
    tried = await attempts(hub, "hal", 1, "127.0.0.5")
    assert tried[0][:2] == (429, "login_throttled")
    assert {t[0] for t in await attempts(hub, "hal", 1, "127.0.0.6")} == {401}


async def test_unknown_names_cost_one_real_hash_like_known_ones(
        hub: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """Similar timing without timing the test: an unknown name is verified against a
    dummy argon2id hash, exactly one verification per attempt either way."""
    calls: list[str] = []

    class Counting(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
            calls.append(str(hash)[:10])
            return super().verify(hash, password)

    monkeypatch.setattr(credentials, "_hasher", Counting())
    await AccountService(hub.pool, hub.accounts).add_user("ivy", Role.PRACTITIONER,
                                                          password=PASSWORD)
    await attempts(hub, "ivy", 2, "127.0.0.7")
    await attempts(hub, "not-a-user", 2, "127.0.0.8")
    assert calls == ["$argon2id$"] * 4


async def test_users_unlock_lifts_the_throttle_for_that_name(hub: Served) -> None:
    seed = (await AccountService(hub.pool, hub.accounts).add_user(
        "jon", Role.PRACTITIONER, password=PASSWORD)).totp_secret
    await attempts(hub, "jon", 5, USER)
    async with browser_from(USER) as http:
        assert (await login(http, hub.base, "jon", PASSWORD, code_at(seed))).status == 429
        await AccountService(hub.pool, hub.accounts).unlock("jon")
        assert (await login(http, hub.base, "jon", PASSWORD, code_at(seed, 1))).status == 303
