"""The node's own audit log (docs/audit.md "The node's own log"): checkpoints signed
with the council key, ``local-node audit verify`` catching a rewrite, and the reader for
the council's auditor (API and page), only for auditors and itself audited; through real
HTTP on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path
from subprocess import PIPE

import aiohttp
import asyncpg
from aiohttp.test_utils import TestServer

from local_node.app import PACKAGE, create_app, ingest_service
from local_node.handlers.audit import AUDIT_LOG
from protocol import keys
from server_common.accounts.principal import Role
from server_common.audit import merkle
from server_common.audit.checkpoint import open_note
from server_common.audit.service import AuditLog
from tests.conftest import DatabaseFactory
from tests.federation import node_config
from tests.hub_harness import upgrade
from tests.local_node.test_practitioner_api import ESX, FEED
from tests.processes import script
from tests.server_common.accounts_helpers import bearer_headers


async def cli(url: str, key_file: Path, *args: str) -> tuple[int, str, str]:
    env = dict(os.environ) | {"LOCAL_NODE__DATABASE__URL": url, "LOCAL_NODE__COUNCIL__CODE": ESX,
                              "LOCAL_NODE__COUNCIL__KEY_FILE": str(key_file)}
    proc = await asyncio.create_subprocess_exec(script("local-node"), *args, env=env,
                                                stdout=PIPE, stderr=PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_node_audit_log_is_signed_verified_and_read_only_by_auditors(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    url = await make_database()
    await upgrade(url, PACKAGE)
    config = node_config(ESX, url, tmp_path, None)
    council_key = keys.generate()
    keys.write_private_key(council_key, config.key_file)
    feed = tmp_path / "services.csv"
    feed.write_text(FEED, encoding="utf-8")
    server = TestServer(create_app(config, publish=False), host="127.0.0.1")
    await server.start_server()
    try:
        audit: AuditLog = server.app[AUDIT_LOG]
        pool = audit.pool
        await ingest_service(pool).ingest_file("services", feed)
        heads = {role: await bearer_headers(pool, f"t-{role}", role,
                                            ESX if role == Role.INDEX_TEAM else None)
                 for role in Role}
        base = str(server.make_url("")).rstrip("/")
        async with aiohttp.ClientSession(base) as http:
            async def get(path: str, role: Role | None, **params: str) -> tuple[int, dict]:
                async with http.get(path, params=params, allow_redirects=False,
                                    headers=heads[role] if role else {}) as resp:
                    body = (await resp.json() if resp.content_type == "application/json"
                            else {"html": await resp.text()})
                    return resp.status, body

            status, found = await get("/v1/search", Role.PRACTITIONER, purpose="s17",
                                      family_name="Okonkwo-Reilly", dob="2015-03-14")
            assert status == 200
            child = found["results"][0]["local_id"]

            # Only auditors read the log: every other role, and no one, is refused.
            for path in ("/v1/audit/entries", "/audit", "/v1/audit/checkpoint",
                         "/v1/audit/proof/inclusion"):
                # (a page sends a browser to sign in; the API answers 401)
                assert (await get(path, None, child_id=child))[0] in (
                    (302, 303) if path == "/audit" else (401,))
                for role in (Role.PRACTITIONER, Role.INDEX_TEAM, Role.OPERATOR):
                    assert (await get(path, role, child_id=child))[0] == 403, (path, role)

            status, entries = await get("/v1/audit/entries", Role.AUDITOR, child_id=child)
            assert status == 200
            seen = [(e["who"], e["action"]) for e in entries["entries"]]
            # the practitioner's search, then the auditor's own look-up, audited first
            assert seen == [("t-practitioner", "search"), ("t-auditor", "audit.entries")]
            status, page = await get("/audit", Role.AUDITOR, user="t-practitioner")
            assert status == 200 and 'id="entries"' in page["html"]
            assert "No checkpoint signed yet" in page["html"]

            # A checkpoint signed with the council key, which a reader checks itself.
            signed = await audit.checkpoint()
            status, cp = await get("/v1/audit/checkpoint", Role.AUDITOR)
            assert status == 200 and cp["tree_size"] == signed.size
            opened = open_note(cp["note"], [council_key.public_key()])
            assert opened.origin == f"signpost-node-{ESX}/audit"

            # An inclusion proof returns a whole entry: its reading is audited too, with
            # the entry's child ids.
            status, inc = await get("/v1/audit/proof/inclusion", Role.AUDITOR, seq="0",
                                    tree_size=str(signed.size))
            assert status == 200
            assert merkle.verify_inclusion(
                0, signed.size, merkle.leaf_hash(inc["entry"].encode()),
                [base64.b64decode(p) for p in inc["proof"]], opened.root)
            status, entries = await get("/v1/audit/entries", Role.AUDITOR, child_id=child)
            assert [e["action"] for e in entries["entries"]][-2:] == [
                "audit.inclusion_proof", "audit.entries"]
            status, bad = await get("/v1/audit/proof/inclusion", Role.AUDITOR, seq="x",
                                    tree_size="1")
            assert (status, bad["error"]["code"]) == (400, "invalid_field")
    finally:
        await server.close()

    assert (await cli(url, config.key_file, "audit", "checkpoint"))[0] == 0
    code, out, err = await cli(url, config.key_file, "audit", "verify")
    assert code == 0, err
    assert "audit log verified" in out

    # A superuser rewrites who searched and recomputes the leaf hash: caught by the
    # checkpoints the council key signed.
    conn = await asyncpg.connect(url)
    try:
        entry = bytes(await conn.fetchval("SELECT entry FROM audit_log WHERE seq = 0"))
        forged = entry.replace(b'"who":"t-practitioner"', b'"who":"nobody"')
        assert forged != entry
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute("UPDATE audit_log SET entry = $1, leaf_hash = $2, who = 'nobody'"
                               " WHERE seq = 0", forged, merkle.leaf_hash(forged))
    finally:
        await conn.close()
    code, _, err = await cli(url, config.key_file, "audit", "verify")
    assert code == 1
    assert "the root of the entries differs from the signed one" in err
