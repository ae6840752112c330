"""Disabling an account ends it; enabling it again does not bring back what it had.

``users disable`` only hid the account's sessions and bearer tokens while it was
disabled: ``users enable`` brought every one of them back, so a session or token
stolen before an operator disabled a compromised account worked again the moment the
account was enabled (a token for the rest of its 30 days). Now disabling ends every
session and revokes every token, in the same transaction; after ``users enable`` the
owner signs in again and asks for a new token.

Tried through the hub's real CLI (in process) and its real login page and API.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from national_hub.cli import main as hub_cli
from national_hub.handlers.appkeys import CONFIG
from server_common.accounts import Role, credentials
from server_common.accounts.service import AccountService
from tests.conftest import DatabaseFactory
from tests.security.logins_helpers import Served, browser_from, hub_serving
from tests.server_common.accounts_helpers import PASSWORD, code_at, early_in_a_step, login


@pytest.fixture
async def hub(make_database: DatabaseFactory, tmp_path: Path) -> AsyncIterator[Served]:
    async with hub_serving(await make_database(), tmp_path) as served:
        yield served


async def users(hub: Served, *args: str) -> str:
    """``national-hub users ARGS`` on the hub's database (click in a thread: the command
    runs its own event loop); its output."""
    config = hub.app[CONFIG]
    env = dict(os.environ) | {
        "NATIONAL_HUB__DATABASE__URL": config.database.url,
        "NATIONAL_HUB__HUB__KEY_FILE": str(config.hub.key_file),
        "NATIONAL_HUB__ACCOUNTS__SECRET_KEY_FILE": str(hub.accounts.secret_key_file)}
    result = await asyncio.to_thread(CliRunner().invoke, hub_cli, ["users", *args], env=env)
    assert result.exit_code == 0, result.output
    return result.output


async def me_status(http: aiohttp.ClientSession, base: str,
                    headers: dict[str, str] | None = None) -> tuple[int, str | None]:
    """``GET /v1/me``: its status and error code."""
    async with http.get(f"{base}/v1/me", headers=headers or {}) as me:
        body = await me.json()
        return me.status, body.get("error", {}).get("code")


async def test_enabling_an_account_again_brings_back_no_session_or_token(hub: Served) -> None:
    await early_in_a_step()
    seed = (await AccountService(hub.pool, hub.accounts).add_user(
        "kim", Role.PRACTITIONER, password=PASSWORD)).totp_secret
    token = (await users(hub, "token", "kim")).strip().splitlines()[-1]
    bearer = {"Authorization": f"Bearer {token}"}
    refused = (401, "not_authenticated")
    async with browser_from() as stolen, aiohttp.ClientSession() as http:
        # a session and a token someone else got hold of
        assert (await login(stolen, hub.base, "kim", PASSWORD, code_at(seed))).status == 303
        assert (await me_status(stolen, hub.base))[0] == 200
        assert (await me_status(http, hub.base, bearer))[0] == 200
        assert "disabled kim" in await users(hub, "disable", "kim")
        assert await me_status(stolen, hub.base) == refused
        assert await me_status(http, hub.base, bearer) == refused
        assert "enabled kim" in await users(hub, "enable", "kim")
        # what kim had before she was disabled is over
        assert await me_status(stolen, hub.base) == refused
        assert await me_status(http, hub.base, bearer) == refused
    # kim herself signs in again and gets a new token
    async with browser_from() as mine:
        assert (await login(mine, hub.base, "kim", PASSWORD, code_at(seed, 1))).status == 303
        assert (await me_status(mine, hub.base))[0] == 200
    fresh = (await users(hub, "token", "kim")).strip().splitlines()[-1]
    async with aiohttp.ClientSession() as http:
        assert (await me_status(http, hub.base, {"Authorization": f"Bearer {fresh}"}))[0] \
            == 200


async def test_a_sign_in_under_way_when_the_account_is_disabled_opens_no_session(
        hub: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator disables the account while its password is being checked (the
    ~50 ms the hash takes, made as long as the test needs): the sign-in must not open a
    session after the disable has ended the others, for ``users enable`` to revive."""
    await early_in_a_step()
    seed = (await AccountService(hub.pool, hub.accounts).add_user(
        "lev", Role.PRACTITIONER, password=PASSWORD)).totp_secret
    hashing, go_on = threading.Event(), threading.Event()
    real = credentials.verify_password

    def held(password_hash: str | None, password: str) -> bool:  # in a worker thread
        hashing.set()
        go_on.wait(30)
        return real(password_hash, password)

    monkeypatch.setattr(credentials, "verify_password", held)
    async with browser_from() as http:
        signing_in = asyncio.create_task(login(http, hub.base, "lev", PASSWORD,
                                               code_at(seed)))
        assert await asyncio.to_thread(hashing.wait, 30)
        assert "disabled lev" in await users(hub, "disable", "lev")
        go_on.set()
        assert (await signing_in).status == 401
        assert "enabled lev" in await users(hub, "enable", "lev")
        assert await me_status(http, hub.base) == (401, "not_authenticated")
    assert await hub.fetchval("SELECT count(*) FROM sessions") == 0
