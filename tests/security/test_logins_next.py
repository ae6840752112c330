"""Finding 9a: after signing in, ``next`` only ever leads to a path on this site.

``next=/\\t/evil.example/`` was an open redirect: the server checked the string, then
the browser dropped the tab and read ``//evil.example/``, another site. Each payload
is sent as an attacker would (a link to ``/login?next=…``, or a forged form field),
through the hub's real login page with a real password and TOTP code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from yarl import URL

from server_common.accounts import Role
from server_common.accounts.service import AccountService
from tests.conftest import DatabaseFactory
from tests.security.logins_helpers import Served, browser_from, hub_serving
from tests.server_common.accounts_helpers import PASSWORD, code_at, login

EVIL = [
    "/\t/evil.example/", "/\t\t/evil.example", "/\n/evil.example", "/\r\n/evil.example",
    "/\\evil.example", "\\\\evil.example", "/\\/evil.example", "//evil.example",
    "///evil.example", "/%2F/evil.example", "/%2f%2fevil.example", "/%5Cevil.example",
    "/%5c/evil.example", "/%09/evil.example", "/%0d%0a/evil.example", "/%252F%252Fevil.example",
    "/%25252F%25252Fevil.example", "https://evil.example/", "http:/evil.example",
    "javascript:alert(1)", "evil.example", " /evil.example", "/\x00/evil.example",
    "/\u3000/evil.example", "/search?next=//evil.example", "/login",
]
GOOD = ["/", "/search?postcode=BN1%201AA&purpose=section_47", "/children/E10000011%3AESX-1",
        "/review/12"]


@pytest.fixture
async def hub(make_database: DatabaseFactory, tmp_path: Path) -> AsyncIterator[Served]:
    async with hub_serving(await make_database(), tmp_path) as served:
        yield served


async def sign_in_to(hub: Served, next_path: str) -> str:
    """Sign in with ``next``; the Location the browser is sent to."""
    accounts = AccountService(hub.pool, hub.accounts)
    if not await hub.fetchval("SELECT count(*) FROM users"):
        await accounts.add_user("nia", Role.PRACTITIONER, password=PASSWORD)
    seed = accounts.totp_seed((await accounts.list_users())[0])
    await hub.execute("UPDATE users SET last_totp_step = NULL")  # a code per sign-in here
    async with browser_from() as http:
        response = await login(http, hub.base, "nia", PASSWORD, code_at(seed),
                               next_path=next_path)
    assert response.status == 303, next_path
    return response.headers["Location"]


async def test_a_next_that_leaves_the_site_lands_on_the_home_page(hub: Served) -> None:
    landed = {payload: await sign_in_to(hub, payload) for payload in EVIL}
    assert landed == dict.fromkeys(EVIL, "/")
    # the login form a link with such a ``next`` opens carries only "/" onwards
    async with browser_from() as http:
        for payload in EVIL:
            page = await (await http.get(URL(hub.base + "/login").with_query(next=payload))
                          ).text()
            assert 'name="next" value="/"' in page, payload


async def test_a_path_on_the_site_is_kept(hub: Served) -> None:
    for path in GOOD:
        location = await sign_in_to(hub, path)
        assert location == path
        assert URL(hub.base).join(URL(location)).host == URL(hub.base).host
