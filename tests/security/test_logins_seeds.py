"""Finding 9d: TOTP seeds were stored in plain text, so anyone who read the database
(a backup, a replica, a superuser) held every user's second factor. Now they are
sealed with AES-256-GCM under a key kept in a file (``accounts.secret_key_file``),
made owner-only at first start; plain seeds left from before are sealed at start.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
import subprocess
from pathlib import Path

from server_common.accounts import credentials
from tests.conftest import DatabaseFactory
from tests.processes import script
from tests.security.logins_helpers import Served, browser_from, hub_serving
from tests.server_common.accounts_helpers import PASSWORD, code_at, login


async def everything_stored_about_users(hub: Served) -> str:
    rows = await hub.fetch("SELECT u::text AS row FROM users u")
    return "\n".join(r["row"] for r in rows)


async def test_a_user_added_by_the_cli_has_no_plain_seed_in_the_database(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    url = await make_database()
    async with hub_serving(url, tmp_path) as hub:
        key_file = hub.accounts.secret_key_file
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        env = dict(os.environ) | {
            "NATIONAL_HUB__DATABASE__URL": url,
            "NATIONAL_HUB__HUB__KEY_FILE": str(tmp_path / "hub" / "hub_key.pem"),
            "NATIONAL_HUB__ACCOUNTS__SECRET_KEY_FILE": str(key_file)}
        done = await asyncio.to_thread(
            subprocess.run, [script("national-hub"), "users", "add", "kai", "--role",
                             "practitioner", "--generate-password"],
            env=env, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        seed = re.search(r"totp secret: (\S+)", done.stdout).group(1)  # type: ignore[union-attr]
        password = re.search(r"password: (\S+)", done.stdout).group(1)  # type: ignore[union-attr]

        stored = await everything_stored_about_users(hub)
        assert seed not in stored and seed.lower() not in stored.lower()
        assert await hub.fetchval("SELECT count(*) FROM users WHERE totp_secret IS NOT NULL"
                                  " OR totp_sealed IS NULL") == 0
        sealed = await hub.fetchval("SELECT totp_sealed FROM users")
        assert seed.encode() not in sealed
        # the sealed seed still works where it should: signing in over HTTP
        async with browser_from() as http:
            assert (await login(http, hub.base, "kai", password, code_at(seed))).status == 303


async def test_plain_seeds_from_before_are_sealed_when_the_server_starts(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    url = await make_database()
    seed = credentials.new_totp_secret()
    async with hub_serving(url, tmp_path) as hub:  # the schema, as an older hub left it:
        await hub.execute(  # a plain seed (the 002 migration keeps it until a start)
            "INSERT INTO users (name, role, organisation, password_hash, totp_secret)"
            " VALUES ('lee', 'auditor', '', $1, $2)", credentials.hash_password(PASSWORD), seed)
        assert seed in await everything_stored_about_users(hub)
    async with hub_serving(url, tmp_path) as hub:  # the next start seals it
        assert seed not in await everything_stored_about_users(hub)
        assert await hub.fetchval("SELECT totp_secret FROM users") is None
        async with browser_from() as http:
            assert (await login(http, hub.base, "lee", PASSWORD, code_at(seed))).status == 303


async def test_a_sealed_seed_moved_to_another_user_does_not_open(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """The user's name is bound into the seal: an insider who copies their own sealed
    seed onto a colleague's row cannot then pass the colleague's second factor."""
    from server_common.accounts import Role
    from server_common.accounts.service import AccountService

    async with hub_serving(await make_database(), tmp_path) as hub:
        accounts = AccountService(hub.pool, hub.accounts)
        mine = await accounts.add_user("mal", Role.PRACTITIONER, password=PASSWORD)
        await accounts.add_user("ned", Role.AUDITOR, password=PASSWORD)
        await hub.execute("UPDATE users SET totp_sealed = (SELECT totp_sealed FROM users"
                          " WHERE name = 'mal') WHERE name = 'ned'")
        async with browser_from() as http:
            response = await login(http, hub.base, "ned", PASSWORD, code_at(mine.totp_secret))
            assert response.status == 503
