"""Logging in over real HTTP as a browser would: GET the form, POST it with its token."""

from __future__ import annotations

import asyncio
import re
import time

import aiohttp
import asyncpg
from playwright.async_api import Page, expect

from server_common.accounts import AccountsConfig, Role, credentials
from server_common.accounts.service import AccountService

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_in(page: str) -> str:
    match = _CSRF.search(page)
    assert match, page
    return match.group(1)


def code_at(secret: str, steps_ahead: int = 0) -> str:
    """The TOTP code of the current step, or of a neighbouring one (the window is ±1)."""
    return credentials.totp_now(secret, time.time() + steps_ahead * credentials.TOTP_PERIOD)


async def early_in_a_step(room: float = 20.0) -> None:
    """Wait, if need be, until ``room`` seconds of the current TOTP step are left: a
    test that uses the steps either side of "now" must not see the step turn over
    between making a code and the server checking it (a loaded machine takes seconds)."""
    left = credentials.TOTP_PERIOD - time.time() % credentials.TOTP_PERIOD
    if left < room:
        await asyncio.sleep(left + 0.05)


async def login(http: aiohttp.ClientSession, base: str, name: str, password: str,
                totp: str, *, next_path: str | None = None) -> aiohttp.ClientResponse:
    form_page = await http.get(f"{base}/login")
    assert form_page.status == 200
    data = {"csrf_token": csrf_in(await form_page.text()), "name": name,
            "password": password, "totp": totp}
    if next_path:
        data["next"] = next_path
    response = await http.post(f"{base}/login", data=data, allow_redirects=False)
    await response.read()
    return response


def browser_session() -> aiohttp.ClientSession:
    # unsafe=True: keep cookies for 127.0.0.1 (aiohttp drops cookies of IP hosts otherwise)
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


def error_code_in(page: str) -> str | None:
    match = re.search(r'data-code="([a-z_]*)"', page)
    return match.group(1) if match else None


PASSWORD = "correct horse battery staple"


async def bearer_headers(database: asyncpg.Pool | str, name: str, role: Role | str,
                         council: str | None = None,
                         organisation: str = "Test Org") -> dict[str, str]:
    """A new account of ``role`` and the ``Authorization`` header of an API token for it,
    in the server's database (its pool, or its URL)."""
    if isinstance(database, str):
        async with asyncpg.create_pool(database, min_size=1, max_size=1) as pool:
            return await bearer_headers(pool, name, role, council, organisation)
    accounts = AccountService(database, AccountsConfig())
    await accounts.add_user(name, role, council=council, organisation=organisation)
    token, _ = await accounts.create_token(name)
    return {"Authorization": f"Bearer {token}"}


async def sign_in(page: Page, base: str, path: str, name: str, role: Role | str,
                  pool: asyncpg.Pool, council: str | None = None) -> None:
    """Add an account, open ``path`` in the browser, sign in at the login form it is sent
    to (password and TOTP), and wait to be back at ``path``."""
    user = await AccountService(pool, AccountsConfig()).add_user(
        name, role, council=council, organisation="Test Org", password=PASSWORD)
    await page.goto(base + path)
    await page.fill("#name", name)
    await page.fill("#password", PASSWORD)
    await page.fill("#totp", code_at(user.totp_secret))
    await page.click("button[type=submit]")
    # the way back after signing in carries the path only, never a query (which may hold
    # a search's names and dates of birth): open the query once signed in
    bare = path.split("?", 1)[0]
    await expect(page).to_have_url(base + bare)
    if bare != path:
        await page.goto(base + path)
        await expect(page).to_have_url(base + path)
