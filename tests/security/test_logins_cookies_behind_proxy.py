"""Session cookies stay Secure behind the TLS-terminating proxy the deployment puts in
front (``[server] trusted_proxies``).

With ``accounts.cookie_secure = "auto"`` (the default) a cookie was Secure only when
the hub itself spoke TLS: behind a proxy that terminates TLS and says so
(``X-Forwarded-Proto: https``), the session cookie went out without Secure, so a
browser would send it over any plain-HTTP request to the host (a downgrade, a link to
``http://``) for an onlooker to take. A listed proxy's word is believed now, as its
``X-Forwarded-For`` is; nobody else's.

Tried through the hub's real login page, with loopback as the proxy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from server_common.accounts import Role
from server_common.accounts.service import AccountService
from tests.conftest import DatabaseFactory
from tests.security.logins_helpers import hub_serving
from tests.server_common.accounts_helpers import PASSWORD, code_at, csrf_in, early_in_a_step

LOGIN_CSRF, SESSION = "signpost_login_csrf", "signpost_session"


async def signed_in_cookies(base: str, seed: str, steps_ahead: int,
                            headers: dict[str, str]) -> dict[str, bool]:
    """Whether each cookie the login form and the sign-in set is Secure."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/login", headers=headers) as form:
            token = csrf_in(await form.text())
            secure = {LOGIN_CSRF: bool(form.cookies[LOGIN_CSRF]["secure"])}
        async with http.post(f"{base}/login", allow_redirects=False,
                             headers=headers | {"Cookie": f"{LOGIN_CSRF}={token}"},
                             data={"csrf_token": token, "name": "cy", "password": PASSWORD,
                                   "totp": code_at(seed, steps_ahead)}) as response:
            assert response.status == 303, await response.text()
            return secure | {SESSION: bool(response.cookies[SESSION]["secure"])}


@pytest.fixture
async def seed_and_base(make_database: DatabaseFactory,
                        tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    async with hub_serving(await make_database(), tmp_path,
                           trusted_proxies="127.0.0.1/32") as hub:
        seed = (await AccountService(hub.pool, hub.accounts).add_user(
            "cy", Role.PRACTITIONER, password=PASSWORD)).totp_secret
        yield seed, hub.base


async def test_cookies_are_secure_when_the_trusted_proxy_spoke_tls(
        seed_and_base: tuple[str, str]) -> None:
    seed, base = seed_and_base
    await early_in_a_step()
    behind_tls = {"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https"}
    assert await signed_in_cookies(base, seed, 0, behind_tls) == {LOGIN_CSRF: True,
                                                                  SESSION: True}
    # plain HTTP all the way (the proxy says so): a Secure cookie would never come back
    plain = {"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "http"}
    assert await signed_in_cookies(base, seed, 1, plain) == {LOGIN_CSRF: False,
                                                             SESSION: False}


async def test_nobody_else_says_the_request_came_over_tls(make_database: DatabaseFactory,
                                                          tmp_path: Path) -> None:
    async with hub_serving(await make_database(), tmp_path) as hub:  # no proxy listed
        seed = (await AccountService(hub.pool, hub.accounts).add_user(
            "cy", Role.PRACTITIONER, password=PASSWORD)).totp_secret
        await early_in_a_step()
        claimed = {"X-Forwarded-Proto": "https"}
        assert await signed_in_cookies(hub.base, seed, 0, claimed) == {LOGIN_CSRF: False,
                                                                       SESSION: False}
