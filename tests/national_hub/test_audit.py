"""The hub's tamper-evident audit log (server_common.audit, docs/design.md §6): appends,
checkpoints, proofs, `audit verify`, fail-closed writes, gapless concurrent seqs,
the CLI and the HTTP endpoints, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from national_hub.app import PACKAGE as HUB_PACKAGE
from protocol import keys
from server_common.audit import merkle
from server_common.audit.checkpoint import CheckpointError, open_note, sign
from server_common.audit.entry import AuditEntry
from server_common.audit.service import AuditIntegrityError, AuditLog, AuditWriteError
from tests.conftest import DatabaseFactory
from tests.hub_harness import running_hub, upgrade
from tests.polling import until
from tests.processes import script
from tests.server_common.accounts_helpers import bearer_headers


def entry(n: int, child: str = "N1", who: str = "amelia") -> AuditEntry:
    return AuditEntry(who=who, role="practitioner", organisation="E10000011",
                      purpose="section 47 enquiry", action="search",
                      parameters={"family_name": "Okafor", "n": n}, child_ids=(child, "N9"))


@pytest.fixture
async def pool(make_database: DatabaseFactory) -> AsyncIterator[asyncpg.Pool]:
    url = await make_database()
    await upgrade(url, HUB_PACKAGE)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=6)
    assert pool is not None
    yield pool
    await pool.close()


@pytest.fixture
def hub_key() -> Ed25519PrivateKey:
    return keys.generate()


@pytest.fixture
def audit(pool: asyncpg.Pool, hub_key: Ed25519PrivateKey) -> AuditLog:
    return AuditLog(pool, hub_key)


async def append_many(audit: AuditLog, count: int, **kw: str) -> list[int]:
    seqs = []
    for n in range(count):
        async with audit.pool.acquire() as conn, conn.transaction():
            seqs.append(await audit.append(conn, entry(n, **kw)))
    return seqs


async def tamper(pool: asyncpg.Pool, sql: str, *args: object) -> None:
    """Change audit rows behind the log's back. The append-only trigger would refuse, so
    the test disables it for this one statement, as a database superuser could."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        await conn.execute(sql, *args)
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")


# --- the service -------------------------------------------------------------------


async def test_append_checkpoint_prove_verify(audit: AuditLog, hub_key: Ed25519PrivateKey) -> None:
    assert await append_many(audit, 5) == [0, 1, 2, 3, 4]
    first = await audit.checkpoint()
    assert first.size == 5
    await append_many(audit, 6, child="N2", who="ben")
    second = await audit.checkpoint()
    assert second.size == 11
    assert (await audit.checkpoint()).note == second.note  # same head: same checkpoint
    assert (await audit.latest_checkpoint()) == second

    # the signed note opens with the hub's public key only
    assert open_note(second.note, [hub_key.public_key()]).root == second.root
    with pytest.raises(CheckpointError):
        open_note(second.note, [keys.generate().public_key()])

    proof = await audit.inclusion_proof(7, second.size)
    assert merkle.leaf_hash(proof.entry) == proof.leaf_hash
    assert merkle.verify_inclusion(7, second.size, proof.leaf_hash, proof.proof, second.root)
    assert json.loads(proof.entry)["who"] == "ben"

    consistency = await audit.consistency_proof(first.size, second.size)
    assert merkle.verify_consistency(first.size, second.size, first.root, second.root,
                                     consistency.proof)

    report = await audit.verify_all()
    assert report.ok, report.problems
    assert (report.entries, report.checkpoints) == (11, 2)

    assert [r.seq for r in await audit.entries_for_child("N2")] == list(range(5, 11))
    assert [r.seq for r in await audit.entries_for_child("N9")] == list(range(11))
    assert [r.seq for r in await audit.entries_by_user("amelia")] == list(range(5))
    assert (await audit.entries_by_user("amelia"))[0].entry.parameters["n"] == 0


async def test_entry_bytes_are_canonical_json(audit: AuditLog) -> None:
    at = datetime(2026, 11, 26, 9, 30, 1, 5, tzinfo=UTC)
    e = AuditEntry("amelia", "practitioner", "Brighton", "CP enquiry", "view",
                   {"z": 1, "a": "é"}, ("N1",), at)
    async with audit.pool.acquire() as conn, conn.transaction():
        seq = await audit.append(conn, e)
    stored = (await audit.inclusion_proof(seq, seq + 1)).entry
    assert stored == ('{"action":"view","at":"2026-11-26T09:30:01.000005Z",'
                      '"child_ids":["N1"],"organisation":"Brighton","parameters":'
                      '{"a":"é","z":1},"purpose":"CP enquiry","role":"practitioner",'
                      '"who":"amelia"}').encode()
    assert AuditEntry.from_bytes(stored) == e


async def test_rows_cannot_be_updated_or_deleted(audit: AuditLog, pool: asyncpg.Pool) -> None:
    await append_many(audit, 2)
    await audit.checkpoint()
    async with pool.acquire() as conn:
        for sql in ("UPDATE audit_log SET who = 'mallory'", "DELETE FROM audit_log",
                    "TRUNCATE audit_log CASCADE", "UPDATE audit_checkpoints SET kid = 'x'",
                    "DELETE FROM audit_checkpoints", "DELETE FROM audit_head",
                    "UPDATE audit_head SET next_seq = 0"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(sql)
    assert (await audit.verify_all()).ok


async def test_changing_an_entry_is_named_by_verify(audit: AuditLog, pool: asyncpg.Pool) -> None:
    await append_many(audit, 8)
    await audit.checkpoint()
    await tamper(pool, "UPDATE audit_log SET entry = convert_to(replace(convert_from("
                       "entry, 'UTF8'), 'Okafor', 'Smith'), 'UTF8') WHERE seq = 3")
    report = await audit.verify_all()
    assert not report.ok
    assert [p.seq for p in report.problems if p.seq is not None] == [3]
    assert any(p.tree_size == 8 for p in report.problems)  # the signed root no longer matches
    # Signing again is harmless: a checkpoint commits to the stored leaf hashes, which
    # still are those of the original entry, so verify keeps naming seq 3.
    await append_many(audit, 1)
    await audit.checkpoint()
    assert [p.seq for p in (await audit.verify_all()).problems if p.seq is not None] == [3]


async def test_rewriting_entry_and_hash_together_is_caught_by_the_checkpoint(
        audit: AuditLog, pool: asyncpg.Pool) -> None:
    await append_many(audit, 4)
    await audit.checkpoint()
    await append_many(audit, 4)
    await audit.checkpoint()
    forged = entry(99).stamped(datetime.now(UTC)).to_bytes()
    await tamper(pool, "UPDATE audit_log SET entry = $1, leaf_hash = $2, at = $3 WHERE seq = 5",
                 forged, merkle.leaf_hash(forged), AuditEntry.from_bytes(forged).at)
    problems = (await audit.verify_all()).problems
    assert [str(p) for p in problems] == [
        "checkpoint 8: the root of the entries differs from the signed one: an entry with "
        "seq from 4 to 7 was changed"]
    with pytest.raises(AuditIntegrityError):
        await audit.checkpoint()  # the hub never signs over a rewritten history


async def test_a_deleted_entry_and_a_forged_checkpoint_are_reported(
        audit: AuditLog, pool: asyncpg.Pool, hub_key: Ed25519PrivateKey) -> None:
    await append_many(audit, 3)
    await audit.checkpoint()
    await tamper(pool, "DELETE FROM audit_log WHERE seq = 1")
    async with pool.acquire() as conn:  # a checkpoint signed by someone else's key
        bad = sign(keys.generate(), "signpost-hub/audit", 1, bytes(32), datetime.now(UTC))
        await conn.execute("INSERT INTO audit_checkpoints VALUES (1, $1, now(), 'x', $2)",
                           bytes(32), bad.note)
    messages = [str(p) for p in (await audit.verify_all()).problems]
    assert any(m.startswith("seq 1: missing") for m in messages), messages
    assert "checkpoint 1: no signature by a trusted hub key" in messages
    with pytest.raises(AuditIntegrityError):
        await audit.checkpoint()


async def test_a_failed_audit_write_fails_the_whole_transaction(audit: AuditLog,
                                                                pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE work_done (what text)")
        # Simulate a broken audit log: every insert now violates a constraint.
        await conn.execute("ALTER TABLE audit_log ADD CONSTRAINT broken CHECK (false) NOT VALID")
        with pytest.raises(AuditWriteError):
            async with conn.transaction():
                await conn.execute("INSERT INTO work_done VALUES ('search')")
                await audit.append(conn, entry(0))
        assert await conn.fetchval("SELECT count(*) FROM work_done") == 0
        await conn.execute("ALTER TABLE audit_log DROP CONSTRAINT broken")
        async with conn.transaction():
            assert await audit.append(conn, entry(1)) == 0  # the failed one left no gap
        with pytest.raises(RuntimeError):
            await audit.append(conn, entry(2))  # only ever inside the caller's transaction


async def test_concurrent_appends_are_gapless(audit: AuditLog, pool: asyncpg.Pool) -> None:
    async def one(n: int, commit: bool) -> int | None:
        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            seq = await audit.append(conn, entry(n))
            await asyncio.sleep(0.001 * (n % 3))
            if commit:
                await tx.commit()
                return seq
            await tx.rollback()
            return None

    results = await asyncio.gather(*(one(n, commit=n % 5 != 0) for n in range(40)))
    committed = sorted(s for s in results if s is not None)
    assert committed == list(range(32))  # rolled-back appends gave their seq back
    assert (await audit.checkpoint()).size == 32
    assert (await audit.verify_all()).ok


async def test_concurrent_records_share_commits_and_stay_gapless(audit: AuditLog,
                                                                 pool: asyncpg.Pool) -> None:
    other_replica = AuditLog(pool, None)
    async with pool.acquire() as conn, conn.transaction():  # interleave with plain appends
        await audit.append(conn, entry(-1))
    seqs = await asyncio.gather(*(log.record(entry(n, child=f"C{n}"))
                                  for n in range(60) for log in (audit, other_replica)))
    assert sorted(seqs) == list(range(1, 121))
    for i, seq in enumerate(seqs):  # each caller got the seq of its own entry
        assert seq in [r.seq for r in await audit.entries_for_child(f"C{i // 2}")]
    assert (await audit.checkpoint()).size == 121
    assert (await audit.verify_all()).ok


async def test_a_failed_group_write_fails_every_caller(audit: AuditLog, pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.execute("ALTER TABLE audit_log ADD CONSTRAINT broken CHECK (false) NOT VALID")
    results = await asyncio.gather(*(audit.record(entry(n)) for n in range(10)),
                                   return_exceptions=True)
    assert all(isinstance(r, AuditWriteError) for r in results), results
    async with pool.acquire() as conn:
        await conn.execute("ALTER TABLE audit_log DROP CONSTRAINT broken")
    assert await audit.record(entry(0)) == 0


async def test_concurrent_checkpoints_of_one_head_agree(audit: AuditLog,
        pool: asyncpg.Pool) -> None:
    await append_many(audit, 5)
    other_replica = AuditLog(pool, audit.signing_key)
    signed = await asyncio.gather(*(log.checkpoint() for log in [audit, other_replica] * 3))
    assert {c.note for c in signed} == {signed[0].note} and signed[0].size == 5
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM audit_checkpoints") == 1


async def test_background_task_checkpoints_when_the_log_grew(audit: AuditLog) -> None:
    async def signed(size: int) -> bool:
        latest = await audit.latest_checkpoint()
        return latest is not None and latest.size == size

    task = asyncio.create_task(audit.checkpoint_periodically(0.05))
    try:
        await until(lambda: signed(0), "the empty head's checkpoint", limit=30)
        await append_many(audit, 2)
        await until(lambda: signed(2), "a checkpoint of the grown log", limit=30)
        # only heads the log had were signed (a tick may fall between the two appends)
        async with audit.pool.acquire() as conn:
            sizes = {r["tree_size"] for r in await conn.fetch(
                "SELECT tree_size FROM audit_checkpoints")}
        assert {0, 2} <= sizes <= {0, 1, 2}
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_readiness_probe_leaves_no_trace(audit: AuditLog, pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await audit.check_writable(conn)
        await audit.check_writable(conn)
    assert await audit.size() == 0
    async with pool.acquire() as conn, conn.transaction():
        assert await audit.append(conn, entry(0)) == 0


# --- the CLI -------------------------------------------------------------------------


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([script("national-hub"), *args], env=env, text=True,
                          capture_output=True, timeout=120)


async def test_cli_audits_admin_actions_and_verify_exit_codes(make_database: DatabaseFactory,
                                                              tmp_path: Path) -> None:
    url = await make_database()
    env = dict(os.environ) | {"NATIONAL_HUB__DATABASE__URL": url,
                              "NATIONAL_HUB__HUB__KEY_FILE": str(tmp_path / "hub" / "k.pem")}
    assert run(["db", "upgrade"], env).returncode == 0
    council_key = keys.generate()
    pem = tmp_path / "council.pub.pem"
    pem.write_bytes(keys.public_pem(council_key.public_key()))
    kid = keys.key_id(council_key.public_key())
    for args in (["councils", "add", "E10000011", "--name", "East Sussex",
                  "--public-key", str(pem)],
                 ["councils", "unflag", "E10000011"], ["keys", "revoke", kid],
                 ["links", "export", "--out", str(tmp_path / "links.csv")]):
        assert run(args, env).returncode == 0

    verified = run(["audit", "verify"], env)  # no checkpoint yet: no key file either
    assert verified.returncode != 0 and "no hub key" in verified.stderr
    signed = run(["audit", "checkpoint"], env)
    assert signed.returncode == 0, signed.stderr
    assert signed.stdout.splitlines()[:2] == ["signpost-hub/audit", "4"]
    verified = run(["audit", "verify"], env)
    assert verified.returncode == 0, verified.stderr
    assert "4 entries, 1 signed checkpoints" in verified.stdout

    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT entry FROM audit_log ORDER BY seq")
        actions = [json.loads(bytes(r["entry"])) for r in rows]
        assert [a["action"] for a in actions] == ["council.enrol", "council.unflag",
                                                  "key.revoke", "links.export"]
        assert all(a["who"].startswith("cli:") and a["role"] == "operator" for a in actions)
        assert actions[2]["parameters"] == {"council": "E10000011", "kid": kid}
        async with conn.transaction():
            await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
            await conn.execute("UPDATE audit_log SET entry = convert_to(replace(convert_from("
                               "entry, 'UTF8'), 'East', 'West'), 'UTF8') WHERE seq = 0")
            await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
    finally:
        await conn.close()
    failed = run(["audit", "verify"], env)
    assert failed.returncode == 1
    assert "FAIL seq 0: the entry does not hash to its stored leaf hash" in failed.stderr
    assert "does NOT verify" in failed.stderr


# --- HTTP ----------------------------------------------------------------------------




def b64(text: str) -> bytes:
    return base64.b64decode(text)


async def test_endpoints_give_proofs_that_verify_client_side(make_database: DatabaseFactory,
                                                             tmp_path: Path) -> None:
    async with running_hub(await make_database(), tmp_path) as hub:
        auditor = await bearer_headers(hub.pool, "olu", "auditor")
        practitioner = await bearer_headers(hub.pool, "amelia", "practitioner")
        audit = AuditLog(hub.pool, keys.load_private_key(hub.config.hub.key_file))
        hub_public = keys.load_public_key(hub.public_key_file.read_bytes())
        async with aiohttp.ClientSession(hub.url) as http:
            async def get(path: str, headers: dict[str, str] = auditor) -> tuple[int, dict]:
                async with http.get(path, headers=headers) as resp:
                    return resp.status, await resp.json()

            assert (await get("/v1/audit/checkpoint"))[0] == 404
            assert (await get("/v1/audit/checkpoint", {}))[0] == 401
            assert (await get("/v1/audit/checkpoint", practitioner))[0] == 403
            # those three refused attempts are on record (seq 0-2; server_common.refusals)
            refused = 3

            await append_many(audit, 3)
            await audit.checkpoint()
            status, old = await get("/v1/audit/checkpoint")
            assert status == 200 and old["tree_size"] == refused + 3
            await append_many(audit, 4, child="N7")
            await audit.checkpoint()
            _, new = await get("/v1/audit/checkpoint")
            signed = open_note(new["note"], [hub_public])  # trust the key, not the server
            assert signed.size == refused + 7 == new["tree_size"]

            status, inc = await get(f"/v1/audit/proof/inclusion?seq=5&tree_size={signed.size}")
            assert status == 200
            leaf = merkle.leaf_hash(inc["entry"].encode())
            assert merkle.verify_inclusion(5, signed.size, leaf, [b64(p) for p in inc["proof"]],
                                           signed.root)

            old_root = open_note(old["note"], [hub_public]).root
            status, con = await get(f"/v1/audit/proof/consistency?first={old['tree_size']}"
                                    f"&second={signed.size}")
            assert status == 200
            assert merkle.verify_consistency(old["tree_size"], signed.size, old_root, signed.root,
                                             [b64(p) for p in con["proof"]])

            assert (await get(f"/v1/audit/proof/inclusion?seq={signed.size}"
                              f"&tree_size={signed.size}"))[0] == 400
            assert (await get("/v1/audit/proof/inclusion?seq=0&tree_size=99"))[0] == 400
            assert (await get("/v1/audit/proof/consistency?first=x&second=7"))[0] == 400

            status, found = await get("/v1/audit/entries?child_id=N7")
            assert status == 200
            # the four entries about N7, then the auditor's own look-up, audited first
            assert [e["seq"] for e in found["entries"]][:4] == [6, 7, 8, 9]
            assert (found["entries"][-1]["who"], found["entries"][-1]["action"]) == (
                "olu", "audit.entries")
            # reading entry 5 through its inclusion proof was audited too
            _, reads = await get("/v1/audit/entries?user=olu")
            proof_reads = [e for e in reads["entries"] if e["action"] == "audit.inclusion_proof"]
            assert [e["parameters"] for e in proof_reads][:1] == [
                {"seq": 5, "tree_size": signed.size}]
            status, by_user = await get("/v1/audit/entries?user=amelia")
            # seven entries, and the refused attempt (403) at the start
            assert status == 200 and len(by_user["entries"]) == 8

            status, ready = await get("/readyz", {})
            assert status == 200 and ready["checks"]["writable"] == "ok"

            # fail closed: with the audit log broken, the look-up shows nothing
            async with hub.pool.acquire() as conn:
                await conn.execute("ALTER TABLE audit_log ADD CONSTRAINT broken "
                                   "CHECK (false) NOT VALID")
            status, body = await get("/v1/audit/entries?child_id=N7")
            assert status == 503 and "entries" not in body
            assert body["error"]["code"] == "unavailable"
            status, ready = await get("/readyz", {})
            assert status == 503 and ready["status"] == "not_ready"


# --- a tampered log, read by the auditor's tools --------------------------------------

DAMAGED_ENTRIES = {
    "nested too deeply": b"[" * 200_000,
    "not UTF-8": b"\xff\xfe not json",
    "wrong keys": b'{"who": "amelia"}',
}


@pytest.mark.parametrize("how", sorted(DAMAGED_ENTRIES))
async def test_a_rewritten_entry_is_named_by_verify_and_subject_access(
        make_database: DatabaseFactory, tmp_path: Path, how: str) -> None:
    """A superuser rewrites one entry about child N7 into bytes that are no audit entry.
    ``audit verify`` reported a deeply nested one with a RecursionError traceback, and
    subject access (API and page) failed as a whole (500) for every such entry, so the
    auditor saw none of the child's other accesses. Now verify names it (exit 1), and
    subject access lists every access, the damaged one marked as such."""
    async with running_hub(await make_database(), tmp_path) as hub:
        auditor = await bearer_headers(hub.pool, "olu", "auditor")
        audit = AuditLog(hub.pool, keys.load_private_key(hub.config.hub.key_file))
        seqs = await append_many(audit, 4, child="N7")
        await audit.checkpoint()
        await tamper(hub.pool, "UPDATE audit_log SET entry = $1 WHERE seq = $2",
                     DAMAGED_ENTRIES[how], seqs[2])
        async with aiohttp.ClientSession(hub.url) as http:
            async with http.get("/v1/audit/entries?child_id=N7", headers=auditor) as resp:
                assert resp.status == 200, await resp.text()
                listed = (await resp.json())["entries"]
            assert [e["seq"] for e in listed][:4] == seqs
            assert [e.get("damaged", False) for e in listed][:4] == [False, False, True, False]
            assert listed[2]["who"] == "amelia" and listed[2]["child_ids"] == ["N7", "N9"]
            async with http.get("/audit?child_id=N7", headers=auditor) as resp:
                assert resp.status == 200
                assert "damaged_entry" in await resp.text()

    env = dict(os.environ) | {"NATIONAL_HUB__DATABASE__URL": str(hub.config.database.url),
                              "NATIONAL_HUB__HUB__KEY_FILE": str(hub.config.hub.key_file)}
    verified = run(["audit", "verify"], env)
    assert verified.returncode == 1 and "Traceback" not in verified.stderr, verified.stderr
    assert f"FAIL seq {seqs[2]}: the entry does not hash to its stored leaf hash" \
        in verified.stderr
    assert f"FAIL seq {seqs[2]}: the entry is not a valid audit entry" in verified.stderr
