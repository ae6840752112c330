"""A NUL in the name typed at the login form was a 500: PostgreSQL text cannot hold
one, and the name is looked up and recorded as typed (for throttling and
investigation). Now such a name is an unknown one like any other: the same 401
``login_failed``, counted towards the throttle.

Tried through the hub's real login page, as an outsider.
"""

from __future__ import annotations

from pathlib import Path

from server_common.accounts import Role
from server_common.accounts.service import AccountService
from tests.conftest import DatabaseFactory
from tests.security.logins_helpers import browser_from, hub_serving
from tests.server_common.accounts_helpers import PASSWORD, code_at, error_code_in, login


async def test_a_nul_in_the_name_is_an_unknown_name_not_a_500(make_database: DatabaseFactory,
                                                              tmp_path: Path) -> None:
    async with hub_serving(await make_database(), tmp_path) as hub:
        seed = (await AccountService(hub.pool, hub.accounts).add_user(
            "fay", Role.PRACTITIONER, password=PASSWORD)).totp_secret
        answers = []
        async with browser_from("127.0.0.9") as http:
            for _ in range(6):
                response = await login(http, hub.base, "fay\x00", PASSWORD, code_at(seed))
                answers.append((response.status, error_code_in(await response.text())))
        assert answers == [(401, "login_failed")] * 5 + [(429, "login_throttled")]
        assert await hub.fetchval("SELECT count(*) FROM login_failures WHERE reason ="
                                  " 'unknown_user'") == 5
        async with browser_from() as http:  # fay herself is not held up by it
            assert (await login(http, hub.base, "fay", PASSWORD, code_at(seed))).status == 303
