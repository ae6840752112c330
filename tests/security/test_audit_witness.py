"""Witnesses (docs/audit.md): without them the hub's audit log had no witness but itself. A database
superuser who removed the newest entries and checkpoints and rewound the head, or
rewrote entries with recomputed leaf hashes and removed the checkpoints, passed
``national-hub audit verify`` and the hub then signed a checkpoint over the forged log.

Here councils' nodes witness the log over real HTTP (the hub served by the in-process
harness, real nodes with their own databases and keys, real PostgreSQL, real
Ed25519), and the attacks are done as the superuser would: in SQL, triggers disabled.
Each is caught by ``national-hub audit verify`` and ``local-node audit verify-hub``
(the real console scripts), the hub refuses to sign over it, the witnesses refuse to
cosign, and federation health says BAD with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import getpass
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import PIPE

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from local_node.app import create_app as create_node_app
from local_node.app import hub_witness
from local_node.config import AuditSection
from local_node.services.witness import Outcome, Witness
from national_hub.handlers import appkeys as hub_keys
from protocol import encoding, keys
from protocol.errors import SignpostError
from server_common.accounts.principal import Role
from server_common.audit import merkle
from server_common.audit.cosignature import cosign
from server_common.audit.entry import AuditEntry
from server_common.audit.service import AuditIntegrityError, AuditLog
from server_common.config import Duration
from tests.conftest import DatabaseFactory
from tests.federation import Hub, Node, running_hub, running_node
from tests.processes import node_env, script
from tests.scrape import scrape
from tests.server_common.accounts_helpers import bearer_headers

ESX, WSX = "E10000011", "E10000032"


def entry(n: int) -> AuditEntry:
    return AuditEntry(who="amelia", role="practitioner", organisation=ESX,
                      purpose="section 47 enquiry", action="search",
                      parameters={"family_name": "Okafor", "n": n}, child_ids=(f"N{n}",))


@dataclass
class Federation:
    hub: Hub
    nodes: list[Node]
    witnesses: dict[str, Witness]

    @property
    def audit(self) -> AuditLog:
        return self.hub.server.app[hub_keys.AUDIT]

    async def log(self, count: int) -> None:
        """``count`` audited practitioner look-ups, then the hub's checkpoint of them."""
        for n in range(count):
            await self.audit.record(entry(n))
        await self.audit.checkpoint()

    async def witness_all(self) -> dict[str, Outcome]:
        return {code: await w.run_once() for code, w in self.witnesses.items()}

    async def superuser(self, *sql: str) -> None:
        """As a database superuser: the append-only triggers off, the SQL, back on."""
        async with self.hub.pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            for statement in sql:
                await conn.execute(statement)

    async def health(self) -> dict[str, dict]:
        async with aiohttp.ClientSession(self.hub.url) as http, http.get(
                "/v1/federation/health", headers=await self.hub.operator()) as resp:
            assert resp.status == 200
            body = await resp.json()
        return {c["code"]: c for c in body["councils"]}


@pytest.fixture
async def federation(make_database: DatabaseFactory, tmp_path: Path) -> AsyncIterator[Federation]:
    async with contextlib.AsyncExitStack() as stack:
        hub = await stack.enter_async_context(running_hub(await make_database(), tmp_path))
        nodes, witnesses = [], {}
        for code in (ESX, WSX):
            node = await stack.enter_async_context(
                running_node(code, await make_database(), tmp_path, hub))
            publisher = await stack.enter_async_context(node.publisher())
            nodes.append(node)
            witnesses[code] = hub_witness(node.config, node.pool, publisher)
        yield Federation(hub, nodes, witnesses)


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


async def _run(args: list[str], env: dict[str, str]) -> Ran:
    # Not subprocess.run: the hub answers from this test's event loop, which must run.
    proc = await asyncio.create_subprocess_exec(*args, env=env, stdout=PIPE, stderr=PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(), err.decode())


async def hub_cli(fed: Federation, *args: str) -> Ran:
    env = dict(os.environ) | {
        "NATIONAL_HUB__DATABASE__URL": fed.hub.config.database.url or "",
        "NATIONAL_HUB__HUB__KEY_FILE": str(fed.hub.config.hub.key_file)}
    return await _run([script("national-hub"), *args], env)


async def node_cli(fed: Federation, node: Node, *args: str) -> Ran:
    env = node_env(node.code, node.config.database.url or "", node.config.key_file,
                   fed.hub.url, fed.hub.public_key_file)
    return await _run([script("local-node"), *args], env)


async def witnessed(fed: Federation) -> None:
    """Ten entries, witnessed in two steps (6, then 10), all checks green."""
    await fed.log(6)
    assert all(o.cosigned for o in (await fed.witness_all()).values())
    await fed.log(4)
    outcomes = await fed.witness_all()
    assert {code: (o.cosigned, o.tree_size) for code, o in outcomes.items()} == {
        ESX: (True, 10), WSX: (True, 10)}
    assert await fed.hub.fetchval("SELECT count(*) FROM audit_cosignatures") == 4
    verified = await hub_cli(fed, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert "consistent with 2 witnesses" in verified.stdout
    assert (await node_cli(fed, fed.nodes[0], "audit", "verify-hub")).returncode == 0
    assert {c["audit_witness"] for c in (await fed.health()).values()} == {"GOOD"}


async def test_superuser_truncation_is_caught_by_the_witnesses(
        federation: Federation) -> None:
    fed = federation
    await witnessed(fed)

    # The attack: remove the newest three entries and the last checkpoint, rewind the head.
    await fed.superuser("DELETE FROM audit_log WHERE seq >= 7",
                        "DELETE FROM audit_checkpoints WHERE tree_size = 10",
                        "UPDATE audit_head SET next_seq = 7")
    assert await fed.hub.fetchval("SELECT next_seq FROM audit_head") == 7

    verified = await hub_cli(fed, "audit", "verify")
    assert verified.returncode == 1
    assert "witness E10000011 cosigned 10 entries but the log holds 7" in verified.stderr
    assert "truncation" in verified.stderr

    # The hub will not sign over it, not even once the log has grown past the cut.
    with pytest.raises(AuditIntegrityError, match="truncation"):
        await fed.audit.checkpoint()
    for n in range(5):
        await fed.audit.record(entry(100 + n))
    with pytest.raises(AuditIntegrityError, match="rewritten or forked"):
        await fed.audit.checkpoint()
    assert await fed.hub.fetchval("SELECT max(tree_size) FROM audit_checkpoints") == 6

    # The witnesses refuse, say so to the hub, and keep their own copy.
    outcomes = await fed.witness_all()
    assert not any(o.cosigned for o in outcomes.values())
    assert "truncation" in str(outcomes[ESX].reason)
    assert await fed.nodes[0].fetchval(
        "SELECT max(tree_size) FROM witnessed_checkpoints") == 10

    failed = await node_cli(fed, fed.nodes[0], "audit", "verify-hub")
    assert failed.returncode == 1
    assert "truncation" in failed.stderr and "10 this council cosigned" in failed.stderr

    health = await fed.health()
    for code in (ESX, WSX):
        assert health[code]["status"] == "BAD" and health[code]["audit_witness"] == "BAD"
        reasons = " | ".join(health[code]["reasons"])
        assert "audit witness refused to cosign: truncation" in reasons
        assert "audit log inconsistent with the council's cosigned checkpoint" in reasons \
            or "audit log truncated" in reasons

    # Recovery is a decision people take, audited at each node: once every council has
    # accepted the incident, the hub signs again and witnessing resumes.
    short = await node_cli(fed, fed.nodes[0], "audit", "accept-hub", "--reason", "short")
    assert short.returncode != 0 and "10 characters" in short.stderr
    for node in fed.nodes:
        accepted = await node_cli(fed, node, "audit", "accept-hub", "--reason",
                                  "INC-42: hub restored, 3 entries lost")
        assert accepted.returncode == 0, accepted.stderr
        assert "checkpoint of 6 entries" in accepted.stdout
        found = await AuditLog(node.pool, None).entries_by_user(
            f"cli:{getpass.getuser()}")
        assert [(r.entry.action, r.entry.purpose, r.entry.parameters["kept_size"],
                 r.entry.parameters["accepted_size"]) for r in found] == [
            ("audit.witness_accept", "INC-42: hub restored, 3 entries lost", 10, 6)]
    assert (await fed.audit.checkpoint()).size == 12
    assert all(o.cosigned and o.tree_size == 12 for o in (await fed.witness_all()).values())
    assert {c["audit_witness"] for c in (await fed.health()).values()} == {"GOOD"}
    assert (await hub_cli(fed, "audit", "verify")).returncode == 0


async def test_superuser_rewrite_with_recomputed_hashes_is_caught(
        federation: Federation) -> None:
    fed = federation
    await witnessed(fed)

    # The attack: rewrite entry 2 (who looked), recompute its leaf hash so every row is
    # self-consistent, and remove every checkpoint that would betray it.
    async with fed.hub.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT entry FROM audit_log WHERE seq = 2")
    forged = bytes(row["entry"]).replace(b'"who":"amelia"', b'"who":"nobody"')
    assert forged != bytes(row["entry"])
    async with fed.hub.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute("UPDATE audit_log SET entry = $1, leaf_hash = $2, who = 'nobody'"
                           " WHERE seq = 2", forged, merkle.leaf_hash(forged))
        await conn.execute("DELETE FROM audit_checkpoints")

    verified = await hub_cli(fed, "audit", "verify")
    assert verified.returncode == 1
    assert "differs from the one witness E10000011 cosigned" in verified.stderr

    with pytest.raises(AuditIntegrityError, match="rewritten or forked"):
        await fed.audit.checkpoint()
    assert await fed.hub.fetchval("SELECT count(*) FROM audit_checkpoints") == 0
    # With no checkpoint left to offer, the witnesses still refuse: they had one.
    outcomes = await fed.witness_all()
    assert all("the hub holds no signed checkpoint, but this council cosigned 10" in
               str(o.reason) for o in outcomes.values())

    # A thorough superuser removes the cosignatures too: now the hub signs the forged
    # log, but the witnesses kept their own copies and refuse it.
    await fed.superuser("DELETE FROM audit_cosignatures")
    forged_checkpoint = await fed.audit.checkpoint()
    # (the witnesses' refused requests since are on record too: server_common.refusals)
    assert forged_checkpoint.size >= 10
    outcomes = await fed.witness_all()
    assert all("rewrite or fork" in str(o.reason) for o in outcomes.values())

    failed = await node_cli(fed, fed.nodes[1], "audit", "verify-hub")
    assert failed.returncode == 1 and "rewrite or fork" in failed.stderr

    health = await fed.health()
    assert health[ESX]["status"] == "BAD"
    assert any(r.startswith("audit witness refused to cosign: rewrite or fork")
               for r in health[ESX]["reasons"])

    # Cosigning the same size again does not clear the alarm: only a checkpoint the
    # witness accepts would, and it accepts none over this log.
    await fed.witness_all()
    assert (await fed.health())[WSX]["audit_witness"] == "BAD"


async def test_a_cosignature_can_only_come_from_the_council(federation: Federation) -> None:
    """The hub keeps only cosignatures that verify with the council's enrolled key, for a
    checkpoint it signed; a node cannot cosign as another council."""
    fed = federation
    await fed.log(3)
    esx, wsx = fed.witnesses[ESX], fed.witnesses[WSX]
    checkpoint = await fed.audit.latest_checkpoint()
    assert checkpoint is not None
    bad = cosign(keys.generate(), ESX, checkpoint, checkpoint.time)
    with pytest.raises(SignpostError) as refused:
        await esx.client.post_cosignature(checkpoint.size, bad)
    assert refused.value.code == "cosignature_invalid" and refused.value.status == 400
    # WSX's node signs as ESX: the request is WSX's, so the name does not match.
    as_other = cosign(wsx.key(), ESX, checkpoint, checkpoint.time)
    with pytest.raises(SignpostError) as refused:
        await wsx.client.post_cosignature(checkpoint.size, as_other)
    assert refused.value.code == "cosignature_invalid"
    good = cosign(esx.key(), ESX, checkpoint, checkpoint.time)
    with pytest.raises(SignpostError) as refused:
        await esx.client.post_cosignature(checkpoint.size + 1, good)
    assert refused.value.code == "unknown_checkpoint" and refused.value.status == 404
    assert await fed.hub.fetchval("SELECT count(*) FROM audit_cosignatures") == 0

    # Unsigned requests are refused before anything is read.
    async with aiohttp.ClientSession(fed.hub.url) as http:
        for method, path in (("GET", f"/v1/councils/{ESX}/audit/checkpoint?from=0"),
                             ("POST", f"/v1/councils/{ESX}/audit/cosignatures"),
                             ("POST", f"/v1/councils/{ESX}/audit/refusals")):
            async with http.request(method, path, data=b"\x80") as resp:
                assert resp.status == 401, (method, path)
                assert (await resp.json())["error"]["code"] == "auth_missing"


async def test_witness_goes_uncosigned_is_a_warning(make_database: DatabaseFactory,
        tmp_path: Path) -> None:
    """A council whose node stops witnessing turns WARN once the hub's checkpoints have
    gone uncosigned by it for ``health.witness_warn``."""
    async with running_hub(await make_database(), tmp_path,
                           health={"witness_warn": "1s"}) as hub, \
            running_node(ESX, await make_database(), tmp_path, hub) as node, \
            node.publisher() as publisher:
        audit: AuditLog = hub.server.app[hub_keys.AUDIT]
        await audit.record(entry(1))
        await audit.checkpoint()
        await hub_witness(node.config, node.pool, publisher).run_once()
        await audit.record(entry(2))
        await audit.checkpoint()
        async with hub.pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute("UPDATE audit_checkpoints SET signed_at = now() - interval "
                               "'1 hour' WHERE tree_size = 2")
        async with aiohttp.ClientSession(hub.url) as http, http.get(
                "/v1/federation/health", headers=await hub.operator()) as resp:
            council = (await resp.json())["councils"][0]
        assert council["audit_witness"] == "WARN"
        assert "has not cosigned the audit log for 60 min" in council["reasons"]


async def test_a_serving_node_witnesses_on_its_own(make_database: DatabaseFactory,
        tmp_path: Path) -> None:
    """``local-node serve`` (its app, publishing) cosigns on its ``[audit]`` schedule and
    shows the state on its /metrics."""
    async with running_hub(await make_database(), tmp_path) as hub, \
            running_node(ESX, await make_database(), tmp_path, hub) as node:
        audit: AuditLog = hub.server.app[hub_keys.AUDIT]
        for n in range(3):
            await audit.record(entry(n))
        await audit.checkpoint()
        config = dataclasses.replace(node.config, audit=AuditSection(
            witness_interval=Duration(0.2)))
        server = TestServer(create_node_app(config), host="127.0.0.1")
        await server.start_server()
        try:
            for _ in range(100):
                if await hub.fetchval("SELECT count(*) FROM audit_cosignatures") == 1:
                    break
                await asyncio.sleep(0.1)
            assert await hub.fetchval("SELECT witness FROM audit_cosignatures") == ESX
            metrics = await scrape(str(server.make_url("")).rstrip("/"),
                                   await bearer_headers(node.pool, "prom", Role.OPERATOR))
            assert metrics.value("signpost_node_audit_witness_ok") == 1
            assert metrics.value("signpost_node_audit_witness_cosigned_size") == 3
        finally:
            await server.close()


async def test_bad_witness_requests_get_a_clear_4xx(federation: Federation) -> None:
    """Signed but malformed witness requests are refused with a stable code, never a 500,
    and leave nothing behind."""
    fed = federation
    client = fed.witnesses[ESX].client
    base = f"/v1/councils/{ESX}/audit"

    async def refused(method: str, path: str, body: object = None) -> tuple[int, str]:
        data = b"" if body is None else body if isinstance(body, bytes) else encoding.pack(body)
        with pytest.raises(SignpostError) as caught:
            await client._send(method, path, data)
        return caught.value.status, str(caught.value.code)

    assert await refused("GET", f"{base}/checkpoint?from=0") == (404, "not_found")
    await fed.log(2)
    assert await refused("GET", f"{base}/checkpoint?from=-1") == (400, "invalid_field")
    assert await refused("GET", f"{base}/checkpoint?from=1e3") == (400, "invalid_field")
    cosignatures, refusals = f"{base}/cosignatures", f"{base}/refusals"
    assert await refused("POST", cosignatures, b"\xc1") == (400, "malformed_msgpack")
    assert await refused("POST", cosignatures, [1, 2]) == (400, "malformed_request")
    for body in ({"tree_size": "2", "cosignature": "x"}, {"tree_size": True},
                 {"tree_size": 2, "cosignature": 7}, {"tree_size": 2, "cosignature": "x" * 500},
                 {"tree_size": -1, "cosignature": "x"}):
        assert await refused("POST", cosignatures, body) == (400, "invalid_field"), body
    # a checkpoint the hub did sign (the refusals above are on record, so it is past 2)
    signed = await fed.hub.fetchval("SELECT max(tree_size) FROM audit_checkpoints")
    assert await refused("POST", cosignatures, {"tree_size": signed, "cosignature": "x"}) == (
        400, "cosignature_invalid")
    for body in ({"reason": ""}, {"reason": "x" * 1001}, {"reason": 3},
                 {"reason": "truncation", "cosigned_size": "9"}):
        assert await refused("POST", refusals, body) == (400, "invalid_field"), body
    assert await fed.hub.fetchval("SELECT count(*) FROM audit_cosignatures") == 0
    assert await fed.hub.fetchval("SELECT count(*) FROM audit_witness_alarms") == 0


async def test_truncation_under_the_hubs_own_checkpoint_is_refused_not_an_error(
        federation: Federation) -> None:
    """The superuser removes entries but leaves the checkpoints: the hub can no longer
    prove anything from the witnesses' size, and they refuse (and raise the alarm)
    rather than failing with an error."""
    fed = federation
    await witnessed(fed)
    await fed.superuser("DELETE FROM audit_log WHERE seq >= 8",
                        "UPDATE audit_head SET next_seq = 8")
    outcomes = await fed.witness_all()
    assert all(not o.cosigned and "cannot prove its checkpoint of 10 entries" in str(o.reason)
               for o in outcomes.values())
    verified = await hub_cli(fed, "audit", "verify")
    assert verified.returncode == 1 and "cosigned 10 entries but the log holds 8" in \
        verified.stderr
    assert (await fed.health())[ESX]["status"] == "BAD"


async def _truncate_to_six(fed: Federation) -> None:
    """The superuser's cut: the newest four entries and their checkpoint removed."""
    await fed.superuser("DELETE FROM audit_log WHERE seq >= 6",
                        "DELETE FROM audit_checkpoints WHERE tree_size = 10",
                        "UPDATE audit_head SET next_seq = 6")
    verified = await hub_cli(fed, "audit", "verify")
    assert verified.returncode == 1 and "truncation" in verified.stderr


async def test_a_cosignature_row_forged_over_a_truncation_is_caught(
        federation: Federation) -> None:
    """Having cut the log, the superuser adds for each witness a row saying it cosigned
    the shorter log (its root, the council's kid), signed with a key of their own: the
    newest row then agreed with the log, and ``audit verify`` passed."""
    fed = federation
    await witnessed(fed)
    await _truncate_to_six(fed)
    six = await fed.audit.checkpoint_at(6)
    assert six is not None
    forger = keys.generate()
    for code in (ESX, WSX):
        kid = await fed.hub.fetchval(
            "SELECT kid FROM council_keys WHERE council_code = $1", code)
        line = cosign(forger, code, six, six.time)
        await fed.superuser(
            "INSERT INTO audit_cosignatures (witness, tree_size, root_hash, kid, cosignature,"
            f" cosigned_at) VALUES ('{code}', 6, decode('{six.root.hex()}', 'hex'), '{kid}',"
            f" '{line}', now())")
    verified = await hub_cli(fed, "audit", "verify")
    assert verified.returncode == 1, verified.stdout
    for code in (ESX, WSX):
        assert (f"witness {code}'s cosignature does not verify (the cosignature is by "
                "another key): the council did not make it") in verified.stderr
    assert "truncation" not in verified.stderr  # the forged rows did hide that much


async def test_an_old_cosignature_copied_forward_over_a_truncation_is_caught(
        federation: Federation) -> None:
    """The same cut, hidden with material the superuser holds: each witness's genuine
    cosignature of the first six entries, copied as its newest row."""
    fed = federation
    await witnessed(fed)
    await _truncate_to_six(fed)
    await fed.superuser(
        "INSERT INTO audit_cosignatures (witness, tree_size, root_hash, kid, cosignature,"
        " cosigned_at) SELECT witness, tree_size, root_hash, kid, cosignature, cosigned_at"
        " FROM audit_cosignatures WHERE tree_size = 6 ORDER BY id")
    verified = await hub_cli(fed, "audit", "verify")
    assert verified.returncode == 1, verified.stdout
    for code in (ESX, WSX):
        assert (f"checkpoint 6: witness {code}'s cosignature repeats an earlier one: an old "
                "cosignature copied forward") in verified.stderr


async def test_cosignatures_by_a_rotated_key_still_verify(federation: Federation) -> None:
    """A council that rotated its key cosigned earlier checkpoints with the old one:
    every row verifies by the key it names, and the log verifies."""
    fed = federation
    await witnessed(fed)
    rotated = await node_cli(fed, fed.nodes[0], "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    await fed.log(2)
    assert all(o.cosigned for o in (await fed.witness_all()).values())
    kids = await fed.hub.fetchval(
        "SELECT count(DISTINCT kid) FROM audit_cosignatures WHERE witness = $1", ESX)
    assert kids == 2
    verified = await hub_cli(fed, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
