"""A stolen password does not buy unlimited guesses at the second factor.

Failed sign-ins were throttled only per client address (five a name, twenty in all,
each fifteen minutes), never per account, so that nobody can lock a real user out. But
whoever has the password can guess TOTP codes from as many addresses as they hold:
three codes are good at any moment, so a few thousand addresses find one within hours.
Now wrong codes given with the right password count against the account from every
address (``accounts.totp_guesses_per_account`` in ``throttle_window``); past that, every
sign-in of the account is refused with the same 401 ``login_failed`` — the right code
too — so the guesser learns nothing, and only someone who has the password can set it
off. ``users unlock`` lifts it.

Tried through the hub's real login page from different loopback addresses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server_common.accounts import Role
from server_common.accounts.service import AccountService
from tests.conftest import DatabaseFactory
from tests.security.logins_helpers import Served, browser_from, hub_serving
from tests.server_common.accounts_helpers import (
    PASSWORD,
    code_at,
    early_in_a_step,
    error_code_in,
    login,
)


@pytest.fixture
async def hub(make_database: DatabaseFactory, tmp_path: Path) -> AsyncIterator[Served]:
    async with hub_serving(await make_database(), tmp_path) as served:
        yield served


def wrong_codes(seed: str, count: int) -> list[str]:
    """``count`` codes none of which is good now (nor in the step either side)."""
    good = {code_at(seed, step) for step in (-1, 0, 1, 2)}
    return [c for c in (f"{n:06d}" for n in range(1, 100)) if c not in good][:count]


async def sign_in(hub: Served, address: str, code: str,
                  password: str = PASSWORD) -> tuple[int, str | None]:
    async with browser_from(address) as http:
        response = await login(http, hub.base, "lia", password, code)
        return response.status, error_code_in(await response.text())


async def test_totp_guesses_from_many_addresses_are_capped_per_account(hub: Served) -> None:
    await early_in_a_step()
    accounts = AccountService(hub.pool, hub.accounts)
    seed = (await accounts.add_user("lia", Role.PRACTITIONER, password=PASSWORD)).totp_secret
    guesses = iter(wrong_codes(seed, 12))
    refused = (401, "login_failed")
    # four addresses, three guesses each: under every per-address limit
    for host in range(10, 14):
        for _ in range(3):
            assert await sign_in(hub, f"127.0.0.{host}", next(guesses)) == refused
    # the right code, from yet another address, is refused alike: the guesser cannot
    # tell it was right
    assert await sign_in(hub, "127.0.0.20", code_at(seed)) == refused
    # without the password nothing changes: it answers as it did
    assert await sign_in(hub, "127.0.0.21", "123456", "not the password at all") == refused
    assert await hub.fetchval("SELECT reason FROM login_failures WHERE remote = '127.0.0.20'"
                              ) == "totp_guessed"
    # an operator who has dealt with it lets lia in again
    await accounts.unlock("lia")
    assert (await sign_in(hub, "127.0.0.1", code_at(seed, 1)))[0] == 303


async def test_a_few_slips_of_the_owner_do_not_stop_her(hub: Served) -> None:
    await early_in_a_step()
    accounts = AccountService(hub.pool, hub.accounts)
    seed = (await accounts.add_user("lia", Role.PRACTITIONER, password=PASSWORD)).totp_secret
    for code in wrong_codes(seed, 4):
        assert (await sign_in(hub, "127.0.0.1", code))[0] == 401
    assert (await sign_in(hub, "127.0.0.2", code_at(seed)))[0] == 303
