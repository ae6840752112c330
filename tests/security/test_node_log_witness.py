"""The hub keeps each node's own audit log honest (docs/PROTOCOL.md §18).

A node's log of who searched for and looked at which children is checkpointed with the
council key, so a rewrite under a checkpoint fails ``local-node audit verify``. But a
superuser of the node's database who removed the newest entries *and* the checkpoints
over them, and rewound the head, left nothing at the node to notice. Now the node
offers the hub each new checkpoint with a consistency proof from the one the hub kept:
after such a truncation (or a rewrite with recomputed hashes) the node's next
checkpoint no longer extends the hub's copy; the hub refuses it, federation health
says BAD with the reason (metric and alert), ``local-node audit verify`` (the real
console script) fails against the hub's copy, and only an audited ``national-hub audit
accept-node`` makes a new baseline. Real hub and nodes over HTTP, real PostgreSQL,
real Ed25519; the attacks in SQL as the superuser would make them.
"""

from __future__ import annotations

import getpass

from protocol import encoding, keys
from protocol.errors import SignpostError
from server_common.audit import merkle
from server_common.audit.entry import AuditEntry
from server_common.audit.service import AuditLog
from tests.federation import Node
from tests.scrape import scrape
from tests.security.test_audit_witness import (  # noqa: F401 (federation: a fixture)
    ESX,
    WSX,
    Federation,
    federation,
    hub_cli,
    node_cli,
)


def own_log(node: Node) -> AuditLog:
    """The node's own log, signing checkpoints with the council key as ``serve`` does."""
    return AuditLog(node.pool, keys.load_private_key(node.config.key_file),
                    origin=node.config.audit_origin)


def look_up(n: int) -> AuditEntry:
    return AuditEntry(who="pat", role="practitioner", organisation=ESX,
                      purpose="s47 enquiry", action="view_child",
                      parameters={"local_id": f"L{n}"}, child_ids=(f"L{n}",))


async def grow(node: Node, count: int) -> None:
    log = own_log(node)
    for _ in range(count):
        await log.record(look_up(await log.size()))
    await log.checkpoint()


async def node_superuser(node: Node, *sql: str) -> None:
    async with node.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        for statement in sql:
            await conn.execute(statement)


async def node_log_health(fed: Federation) -> dict[str, tuple[str, str]]:
    return {code: (c["node_audit_log"], " | ".join(c["reasons"]))
            for code, c in (await fed.health()).items()}


async def test_a_truncated_node_log_is_caught_by_the_hub(federation: Federation) -> None:  # noqa: F811
    fed = federation
    esx, wsx = fed.nodes
    # Witnessed twice: 6 entries (trusted on first use), then 10 (a consistency proof).
    for node, count in ((esx, 6), (wsx, 3)):
        await grow(node, count)
        outcome = await fed.witnesses[node.code].report_own_log(own_log(node))
        assert (outcome.cosigned, outcome.tree_size) == (True, count)
    await grow(esx, 4)
    outcome = await fed.witnesses[ESX].report_own_log(own_log(esx))
    assert (outcome.cosigned, outcome.tree_size) == (True, 10)
    # offered again unchanged: nothing new is kept
    assert (await fed.witnesses[ESX].report_own_log(own_log(esx))).cosigned
    kept = await fed.hub.fetchval("SELECT count(*) FROM witnessed_checkpoints"
                                  " WHERE origin = $1", esx.config.audit_origin)
    assert kept == 2
    assert {code: s for code, (s, _) in (await node_log_health(fed)).items()} == {
        ESX: "GOOD", WSX: "GOOD"}
    verified = await node_cli(fed, esx, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert "consistent with the checkpoint of 10 entries the hub kept" in verified.stdout

    # The attack: the newest four look-ups and every checkpoint gone, the head rewound.
    await node_superuser(esx, "DELETE FROM audit_log WHERE seq >= 6",
                         "DELETE FROM audit_checkpoints", "UPDATE audit_head SET next_seq = 6")
    # Nothing at the node alone notices: its log and checkpoints agree with each other.
    assert (await own_log(esx).verify_all()).ok
    # ... but its next checkpoint (serve signs one as the log grows) is refused.
    await grow(esx, 2)
    outcome = await fed.witnesses[ESX].report_own_log(own_log(esx))
    assert not outcome.cosigned and outcome.tree_size == 8
    assert "truncation" in str(outcome.reason) or "rewrite or fork" in str(outcome.reason)

    health = await node_log_health(fed)
    assert health[ESX][0] == "BAD" and "the node's own audit log: " in health[ESX][1]
    assert health[WSX][0] == "GOOD"
    status = {c["code"]: c["status"] for c in (await fed.health()).values()}
    assert status[ESX] == "BAD"
    metrics = await scrape(fed.hub.url, await fed.hub.operator())
    assert metrics.value("signpost_node_audit_log_status", council=ESX) == 2
    assert metrics.value("signpost_node_audit_log_status", council=WSX) == 0

    failed = await node_cli(fed, esx, "audit", "verify")
    assert failed.returncode == 1
    assert "FAIL against the hub's copy: truncation: the hub kept a checkpoint of 10 " \
           "entries of this log, which now holds 8" in failed.stderr

    # A new baseline is a person's decision, audited at the hub.
    short = await hub_cli(fed, "audit", "accept-node", ESX, "--reason", "short")
    assert short.returncode != 0 and "10 characters" in short.stderr
    accepted = await hub_cli(fed, "audit", "accept-node", ESX, "--reason",
                             "INC-7: node restored from backup, 4 entries lost")
    assert accepted.returncode == 0, accepted.stderr
    assert "checkpoint of 8 entries" in accepted.stdout
    assert (await node_log_health(fed))[ESX][0] == "GOOD"
    (audited,) = [e for e in await fed.audit.entries_by_user(f"cli:{getpass.getuser()}")
                  if e.entry.action == "audit.node_log_accept"]
    assert audited.entry.parameters["kept_size"] == 10
    assert audited.entry.parameters["accepted_size"] == 8
    assert (await node_cli(fed, esx, "audit", "verify")).returncode == 0
    nothing = await hub_cli(fed, "audit", "accept-node", WSX, "--reason",
                            "nothing was refused for this council")
    assert nothing.returncode != 0 and "no refused checkpoint" in nothing.stderr


async def test_a_rewritten_node_log_is_caught_by_the_hub(federation: Federation) -> None:  # noqa: F811
    fed = federation
    esx = fed.nodes[0]
    await grow(esx, 5)
    assert (await fed.witnesses[ESX].report_own_log(own_log(esx))).cosigned

    # The attack: entry 2 rewritten with its leaf hash recomputed, the checkpoints gone,
    # so the node's log verifies on its own; then the log grows and is checkpointed.
    forged = AuditEntry(who="pat", role="practitioner", organisation=ESX,
                        purpose="s47 enquiry", action="view_child",
                        parameters={"local_id": "L999"}, child_ids=("L999",),
                        at=(await own_log(esx).entries_by_user("pat"))[2].entry.at)
    data = forged.to_bytes()
    async with esx.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute("UPDATE audit_log SET entry = $1, leaf_hash = $2, child_ids = $3"
                           " WHERE seq = 2", data, merkle.leaf_hash(data), ["L999"])
        await conn.execute("DELETE FROM audit_checkpoints")
    await grow(esx, 3)
    assert (await own_log(esx).verify_all()).ok

    outcome = await fed.witnesses[ESX].report_own_log(own_log(esx))
    assert not outcome.cosigned and "rewrite or fork" in str(outcome.reason)
    assert (await node_log_health(fed))[ESX][0] == "BAD"
    failed = await node_cli(fed, esx, "audit", "verify")
    assert failed.returncode == 1 and "rewrite or fork: the first 5 entries" in failed.stderr


async def test_bad_node_log_requests_get_a_clear_4xx(federation: Federation) -> None:  # noqa: F811
    fed = federation
    client = fed.witnesses[ESX].client
    assert await client.get_node_log() is None  # nothing kept yet: 404, said as None
    for body, field in (({"note": 5, "first": 0, "proof": []}, "note"),
                        ({"note": "x", "first": -1, "proof": []}, "first"),
                        ({"note": "x", "first": 0, "proof": [b"short"]}, "proof"),
                        ({"note": "x", "first": 0, "proof": "all"}, "proof")):
        try:
            await client._send("POST", client._path("audit/node-log"), encoding.pack(body))
        except SignpostError as exc:
            assert exc.code == "invalid_field" and field in str(exc), exc
        else:
            raise AssertionError(f"accepted {body}")
    # a note that is not the council's checkpoint is judged and refused, not a 500
    answer = await client.post_node_log("not a checkpoint", 0, [])
    assert answer["accepted"] is False and "not validly signed" in answer["reason"]
