"""After a run: the hub against every node, record by record and batch by batch.

- **Records**: the hub's live records of a council are exactly the node's published
  projection (same local ids, same digests), each at the node's newest version and
  from the batch that carried that version. A record missing or different is *lost*.
- **Batches**: the same seqs on both sides, gapless from 1, with the same hash and the
  same envelope bytes; every batch's counts agree with the receipt the node kept, and
  every op of a batch the hub holds is reflected at the hub (none half-applied).
- **Resolution**: nothing waits in the resolution queue; every live record holds a
  national id that is not a redirect; ``linked`` exactly when the id is shared.
- **Audit**: ``national-hub audit verify`` exits 0.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field

import asyncpg

from tests.processes import script


@dataclass
class Verification:
    records_compared: int = 0
    batches_verified: int = 0
    lost: int = 0
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if len(self.problems) < 50:
            self.problems.append(text)

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify(hub_db: str, nodes: dict[str, str], hub_key_file: str) -> Verification:
    out = Verification()
    hub = await asyncpg.connect(hub_db)
    try:
        for code, node_db in nodes.items():
            node = await asyncpg.connect(node_db)
            try:
                await _records(out, hub, node, code)
                await _batches(out, hub, node, code)
            finally:
                await node.close()
        await _resolution(out, hub)
    finally:
        await hub.close()
    _audit(out, hub_db, hub_key_file)
    return out


async def _records(out: Verification, hub: asyncpg.Connection, node: asyncpg.Connection,
                   code: str) -> None:
    # the node's newest op per child, and the batch that carried it
    newest = {r["local_id"]: r for r in await node.fetch(
        "SELECT DISTINCT ON (local_id) local_id, op, version, digest, batch_seq FROM outbox"
        " ORDER BY local_id, id DESC")}
    held = {r["local_id"]: r for r in await hub.fetch(
        "SELECT local_id, version, digest, batch_seq, record IS NOT NULL AS live"
        " FROM records WHERE council_code = $1", code)}
    for local_id, want in newest.items():
        out.records_compared += 1
        got = held.get(local_id)
        if want["op"] == "upsert":
            if got is None or not got["live"] or got["digest"] != want["digest"]:
                out.lost += 1
                out.problem(f"{code}/{local_id}: node published v{want['version']}, hub holds "
                            f"{dict(got) if got else 'nothing'}")
                continue
        elif got is not None and got["live"]:
            out.problem(f"{code}/{local_id}: deleted at the node, live at the hub")
            continue
        if got is not None and (got["version"], got["batch_seq"]) != (want["version"],
                                                                     want["batch_seq"]):
            out.problem(f"{code}/{local_id}: hub has v{got['version']} from batch "
                        f"{got['batch_seq']}, node sent v{want['version']} in "
                        f"{want['batch_seq']}")
    for local_id, got in held.items():
        if got["live"] and local_id not in newest:
            out.problem(f"{code}/{local_id}: live at the hub, never published by the node")


async def _batches(out: Verification, hub: asyncpg.Connection, node: asyncpg.Connection,
                   code: str) -> None:
    hub_rows = await hub.fetch(
        "SELECT seq, hash, envelope, op_count, applied_count, rejected_count FROM batches"
        " WHERE council_code = $1 ORDER BY seq", code)
    node_rows = await node.fetch(
        "SELECT seq, hash, envelope, op_count, applied, rejected, stale,"
        " receipt IS NOT NULL AS receipted FROM sent_batches ORDER BY seq")
    seqs = [r["seq"] for r in hub_rows]
    if seqs != list(range(1, len(seqs) + 1)):
        out.problem(f"{code}: hub batch seqs are not gapless from 1: {seqs[:20]}…")
    if [r["seq"] for r in node_rows] != seqs:
        out.problem(f"{code}: node sent seqs {len(node_rows)}, hub holds {len(seqs)}")
    for h, n in zip(hub_rows, node_rows, strict=False):
        out.batches_verified += 1
        if (h["hash"], bytes(h["envelope"])) != (n["hash"], bytes(n["envelope"])):
            out.problem(f"{code} batch {h['seq']}: bytes differ between hub and node")
        if not n["receipted"]:
            out.problem(f"{code} batch {n['seq']}: no receipt at the node")
        elif (h["applied_count"], h["rejected_count"]) != (n["applied"], n["rejected"]):
            out.problem(f"{code} batch {h['seq']}: hub applied/rejected "
                        f"{h['applied_count']}/{h['rejected_count']}, receipt says "
                        f"{n['applied']}/{n['rejected']}")
        if n["receipted"] and n["applied"] + n["rejected"] + n["stale"] != n["op_count"]:
            out.problem(f"{code} batch {n['seq']}: {n['op_count']} ops but "
                        f"{n['applied']}+{n['rejected']}+{n['stale']} results")
    # none half-applied: every op of every batch the hub holds is at the hub, at that
    # version or a newer one
    ops = await node.fetch("SELECT local_id, version, batch_seq FROM outbox"
                           " WHERE batch_seq IS NOT NULL")
    versions = dict(await hub.fetch(
        "SELECT local_id, version FROM records WHERE council_code = $1", code))
    held = set(seqs)
    for op in ops:
        if op["batch_seq"] in held and versions.get(op["local_id"], -1) < op["version"]:
            out.problem(f"{code} batch {op['batch_seq']}: {op['local_id']} v{op['version']}"
                        " was not applied (batch half-applied)")


async def _resolution(out: Verification, hub: asyncpg.Connection) -> None:
    if await hub.fetchval("SELECT to_regclass('resolution_queue') IS NOT NULL"):
        queued = await hub.fetchval("SELECT count(*) FROM resolution_queue")
        if queued:
            out.problem(f"resolution: {queued} records still queued")
    unresolved = await hub.fetch(
        "SELECT r.council_code, r.local_id, r.national_id, n.redirect_to FROM records r"
        " LEFT JOIN national_children n USING (national_id)"
        " WHERE r.record IS NOT NULL AND (n.national_id IS NULL OR n.redirect_to IS NOT NULL)")
    for r in unresolved:
        out.problem(f"resolution: {r['council_code']}/{r['local_id']} holds "
                    f"{r['national_id']!r} (redirects to {r['redirect_to']!r})")
    wrong = await hub.fetch(
        "SELECT r.council_code, r.local_id, r.link_status, s.n FROM records r"
        " JOIN (SELECT national_id, count(*) AS n FROM records WHERE record IS NOT NULL"
        "       GROUP BY national_id) s USING (national_id)"
        " WHERE r.record IS NOT NULL AND (r.link_status = 'linked') <> (s.n > 1)")
    for r in wrong:
        out.problem(f"resolution: {r['council_code']}/{r['local_id']} is "
                    f"{r['link_status']} but its id is held by {r['n']} records")


def _audit(out: Verification, hub_db: str, hub_key_file: str) -> None:
    env = dict(os.environ) | {"NATIONAL_HUB__DATABASE__URL": hub_db,
                              "NATIONAL_HUB__HUB__KEY_FILE": hub_key_file}
    result = subprocess.run([script("national-hub"), "audit", "verify"], env=env,
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        out.problem(f"audit verify failed: {result.stderr[-2000:]}{result.stdout[-500:]}")
