"""Accounts as both servers carry them: the shared migration track, the login pages
and landing page on the hub and on a node, and ``users …`` on both CLIs."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from local_node.app import create_app as create_node_app
from national_hub.config import HubConfig
from server_common import database
from server_common.accounts import AccountsConfig, Role
from server_common.accounts.service import AccountService
from server_common.audit.entry import AuditEntry
from tests.conftest import DatabaseFactory
from tests.federation import node_config
from tests.hub_harness import running_hub
from tests.processes import script
from tests.server_common.accounts_helpers import browser_session, code_at, login

ESX = "E10000011"
PASSWORD = "correct horse battery"
ACCOUNT_TABLES = ["api_tokens", "login_failures", "sessions", "users"]


async def _tables(conn: asyncpg.Connection) -> list[str]:
    return [r["tablename"] for r in await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE tablename = ANY($1::text[]) ORDER BY 1",
        ACCOUNT_TABLES)]


@pytest.mark.parametrize("package", ["national_hub", "local_node"])
async def test_shared_track_is_applied_and_checked_for_each_server(make_database: DatabaseFactory,
                                                                   package: str) -> None:
    conn = await asyncpg.connect(await make_database())
    try:
        applied = await database.upgrade(conn, package)
        assert applied[0].name == "accounts"  # the shared tracks first
        assert len(applied) == len(database.migrations(package)) + sum(
            len(database.migrations(package, t.resource)) for t in database.SHARED_TRACKS)
        assert await _tables(conn) == ACCOUNT_TABLES
        await database.check_current(conn, package)
        assert await database.upgrade(conn, package) == []

        # a database upgraded before the accounts track existed: refused, then upgraded
        await conn.execute("DROP TABLE users, sessions, api_tokens, login_failures, "
                           "schema_migrations_accounts CASCADE")
        with pytest.raises(database.SchemaError, match="schema_migrations_accounts"):
            await database.check_current(conn, package)
        assert [m.name for m in await database.upgrade(conn, package)] == [
            "accounts", "sealed_seeds_and_throttling"]
        await database.check_current(conn, package)
    finally:
        await conn.close()


async def test_hub_serves_login_and_a_landing_page(make_database: DatabaseFactory,
        tmp_path: Path) -> None:
    async with running_hub(await make_database(), tmp_path) as hub:
        accounts = AccountService(hub.pool, AccountsConfig())
        user = await accounts.add_user("olga", Role.OPERATOR, organisation="NHS England",
                                       password=PASSWORD)
        async with browser_session() as http:
            anonymous = await http.get(f"{hub.url}/", allow_redirects=False)
            assert anonymous.status == 303 and anonymous.headers["Location"] == "/login?next=/"
            assert (await http.get(f"{hub.url}/v1/me")).status == 401
            response = await login(http, hub.url, "olga", PASSWORD, code_at(user.totp_secret))
            assert response.status == 303
            page = await (await http.get(f"{hub.url}/")).text()
            assert "Signpost national hub" in page and "<strong>olga</strong>" in page
            assert (await http.get(f"{hub.url}/healthz")).status == 200  # still open


async def test_node_serves_login_and_a_landing_page(make_database: DatabaseFactory,
        tmp_path: Path) -> None:
    url = await make_database()
    conn = await asyncpg.connect(url)
    try:
        await database.upgrade(conn, "local_node")
    finally:
        await conn.close()
    server = TestServer(create_node_app(node_config(ESX, url, tmp_path, None), publish=False),
                        host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    try:
        async with asyncpg.create_pool(url, min_size=1, max_size=2) as pool:
            accounts = AccountService(pool, AccountsConfig())
            user = await accounts.add_user("ivy", Role.INDEX_TEAM, council=ESX,
                                           organisation="East Sussex CC", password=PASSWORD)
            async with browser_session() as http:
                assert (await login(http, base, "ivy", PASSWORD,
                                    code_at(user.totp_secret))).status == 303
                page = await (await http.get(f"{base}/")).text()
                assert "Signpost East Sussex" in page and ESX in page
                me = await (await http.get(f"{base}/v1/me")).json()
                assert me["role"] == "index_team" and me["council"] == ESX
    finally:
        await server.close()


def _run(args: list[str], env: dict[str, str], ok: bool = True,
         stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, env=env, text=True, capture_output=True, timeout=120,
                            input=stdin)
    if ok:
        assert result.returncode == 0, result.stderr + result.stdout
    return result


@pytest.fixture
async def envs(make_database: DatabaseFactory, tmp_path: Path) -> dict[str, dict[str, str]]:
    return {
        "national-hub": dict(os.environ) | {
            "NATIONAL_HUB__DATABASE__URL": await make_database(),
            "NATIONAL_HUB__HUB__KEY_FILE": str(tmp_path / "hub" / "hub_key.pem")},
        "local-node": dict(os.environ) | {
            "LOCAL_NODE__DATABASE__URL": await make_database(), "LOCAL_NODE__COUNCIL__CODE": ESX,
            "LOCAL_NODE__COUNCIL__KEY_FILE": str(tmp_path / "node" / "key.pem")},
    }


@pytest.mark.parametrize("tool", ["national-hub", "local-node"])
async def test_users_add_token_and_list_on_both_clis(envs: dict[str, dict[str, str]],
                                                    tool: str) -> None:
    env, cli = envs[tool], script(tool)
    url = env["NATIONAL_HUB__DATABASE__URL" if tool == "national-hub"
              else "LOCAL_NODE__DATABASE__URL"]
    refused = _run([cli, "users", "add", "amy", "--role", "practitioner",
                    "--generate-password"], env, ok=False)
    assert refused.returncode != 0 and "db upgrade" in refused.stderr
    _run([cli, "db", "upgrade"], env)

    added = _run([cli, "users", "add", "amy", "--role", "practitioner", "--organisation",
                  "Brighton GP", "--generate-password"], env).stdout
    password = re.search(r"^password: (\S+)$", added, re.M).group(1)  # type: ignore[union-attr]
    secret = re.search(r"^totp secret: ([A-Z2-7]+)$", added, re.M).group(1)  # type: ignore[union-attr]
    assert f"secret={secret}" in re.search(r"^totp uri: (otpauth://totp/\S+)$", added,
                                           re.M).group(1)  # type: ignore[union-attr]
    # a prompted password (typed twice), and an index_team account with its council
    prompted = _run([cli, "users", "add", "tom", "--role", "index_team", "--council", ESX],
                    env, stdin=f"{PASSWORD}\n{PASSWORD}\n").stdout
    assert "password:" not in prompted and "totp secret:" in prompted
    duplicate = _run([cli, "users", "add", "amy", "--role", "auditor",
                      "--generate-password"], env, ok=False)
    assert duplicate.returncode != 0 and "user_exists" in duplicate.stderr
    no_council = _run([cli, "users", "add", "kay", "--role", "index_team",
                       "--generate-password"], env, ok=False)
    assert no_council.returncode != 0 and "council" in no_council.stderr

    issued = _run([cli, "users", "token", "amy", "--lifetime", "30d"], env).stdout
    token = issued.strip().splitlines()[-1]
    listing = _run([cli, "users", "list"], env).stdout
    assert re.search(r"^amy\s+practitioner\s+-\s+active / Brighton GP$", listing, re.M)
    assert re.search(rf"^tom\s+index_team\s+{ESX}\s+active", listing, re.M)

    async with asyncpg.create_pool(url, min_size=1, max_size=2) as pool:
        accounts = AccountService(pool, AccountsConfig())
        session = await accounts.login("amy", password, code_at(secret))
        assert session.principal.organisation == "Brighton GP"
        who = await accounts.principal_for_token(token)
        assert who is not None and who.user == "amy"
        days = await pool.fetchval("SELECT extract(epoch FROM expires_at - now()) / 86400"
                                   " FROM api_tokens")
        assert 29.9 < days <= 30

        # every account change is an admin action in the server's audit log, refusals too
        entries = [AuditEntry.from_bytes(bytes(row["entry"])) for row in await pool.fetch(
            "SELECT entry FROM audit_log ORDER BY seq")]
        assert [(e.action, e.parameters.get("name")) for e in entries] == [
            ("users.add", "amy"), ("users.add", "tom"), ("users.add", "amy"),
            ("users.add.refused", "amy"), ("users.add", "kay"), ("users.add.refused", "kay"),
            ("users.token", "amy")]
        assert entries[0].who.startswith("cli:") and entries[0].role == "operator"
        assert entries[0].parameters["role"] == "practitioner"
        assert entries[3].parameters["code"] == "user_exists"
        assert all(e.purpose == "administration" for e in entries)


def test_users_commands_have_help() -> None:
    for tool in ("national-hub", "local-node"):
        for command in (["users"], ["users", "add"], ["users", "token"], ["users", "list"]):
            result = _run([script(tool), *command, "--help"], dict(os.environ))
            assert "Usage:" in result.stdout


def test_accounts_section_is_read_from_config() -> None:
    from server_common import config as config_module

    config = config_module.load(HubConfig, "NATIONAL_HUB", None, {}, environ={
        "NATIONAL_HUB__ACCOUNTS__SESSION_LIFETIME": "2h",
        "NATIONAL_HUB__ACCOUNTS__THROTTLE_PER_NAME": "3"})
    assert config.accounts.session_lifetime == 7200 and config.accounts.throttle_per_name == 3
    with pytest.raises(config_module.ConfigError, match="cookie_secure"):
        config_module.load(HubConfig, "NATIONAL_HUB", None, {},
                           environ={"NATIONAL_HUB__ACCOUNTS__COOKIE_SECURE": "maybe"})


