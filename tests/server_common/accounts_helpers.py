"""Logging in over real HTTP as a browser would: GET the form, POST it with its token."""

from __future__ import annotations

import re
import time

import aiohttp

from server_common.accounts import credentials

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_in(page: str) -> str:
    match = _CSRF.search(page)
    assert match, page
    return match.group(1)


def code_at(secret: str, steps_ahead: int = 0) -> str:
    """The TOTP code of the current step, or of a neighbouring one (the window is ±1)."""
    return credentials.totp_now(secret, time.time() + steps_ahead * credentials.TOTP_PERIOD)


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
