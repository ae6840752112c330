"""``users`` commands an operator mistypes are refused with a message, on record.

``users revoke-tokens`` of a name that does not exist said ``revoked 0 token(s)`` and
exited 0, so an operator revoking a compromised account's tokens under a misspelt
name was told it was done (every other ``users`` command refuses an unknown name).
``users token NAME --lifetime`` too long for a timestamp crashed with asyncpg's
traceback, and the audit log had the attempt but not its refusal. Both are now
refused (exit 1, the code and why), and the refusal is audited.

Tried through the hub's real CLI (in process).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg
from click.testing import CliRunner, Result

from national_hub.cli import main as hub_cli
from server_common.audit.entry import AuditEntry
from tests.conftest import DatabaseFactory


async def test_mistyped_users_commands_are_refused_and_audited(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    url = await make_database()
    env = dict(os.environ) | {
        "NATIONAL_HUB__DATABASE__URL": url,
        "NATIONAL_HUB__HUB__KEY_FILE": str(tmp_path / "hub" / "hub_key.pem"),
        "NATIONAL_HUB__ACCOUNTS__SECRET_KEY_FILE": str(tmp_path / "accounts_secret.key")}

    async def run(*args: str) -> Result:  # click in a thread: the command runs its own loop
        return await asyncio.to_thread(CliRunner().invoke, hub_cli, list(args), env=env)

    assert (await run("db", "upgrade")).exit_code == 0
    assert (await run("users", "add", "amy", "--role", "practitioner",
                      "--generate-password")).exit_code == 0
    typo = await run("users", "revoke-tokens", "amu")
    assert typo.exit_code == 1 and "unknown_user" in typo.output, typo.output
    too_long = await run("users", "token", "amy", "--lifetime", "99999999999d")
    assert too_long.exit_code == 1, (too_long.output, too_long.exception)
    assert "invalid_field" in too_long.output and "lifetime" in too_long.output
    async with asyncpg.create_pool(url, min_size=1, max_size=1) as pool:
        entries = [AuditEntry.from_bytes(bytes(r["entry"])) for r in await pool.fetch(
            "SELECT entry FROM audit_log ORDER BY seq")]
        tokens = await pool.fetchval("SELECT count(*) FROM api_tokens")
    assert [(e.action, e.parameters.get("code")) for e in entries[1:]] == [
        ("users.revoke-tokens", None), ("users.revoke-tokens.refused", "unknown_user"),
        ("users.token", None), ("users.token.refused", "invalid_field")]
    assert tokens == 0
