"""After a fault run: the hub's resolution against a fault-free one of the same batches.

The reference is a fresh hub (``tests.hub_harness``: the real batch endpoint and
resolver, in this process) on an empty database. Every batch the
hub holds (the bytes the nodes signed, which ``checks.verify`` has found identical on
both sides) is sent to it again, signed by its council's key, in the order the hub
applied them, and resolved before the next is sent. Nothing is killed, dropped or
replayed. Then both hubs' live records are grouped by national child and the
groupings are compared as sets of pairs (two records in one child); the national ids
themselves are random and are not compared. Each batch's applied and rejected counts
must also be the same on both.

What is guaranteed, and so judged:

- **pairs sharing an NHS number** are grouped the same way. A valid NHS number on two
  records decides the link by itself (it outweighs everything else; a hard rule's
  veto is a property of the pair), whatever else arrived first;
- **every batch gives the same per-op results** (applied, rejected) fault-free.

What is not, and so is only counted: the other pairs. Resolution is incremental:
the fault-run resolver, behind after PostgreSQL or a hub was killed, takes a
council's queued records several batches at a time, and may take a council's small
queue ahead of another's that arrived earlier (``resolution_queue.claim``), while the
reference resolves batch by batch in the order the batches were applied; a record
that could join either of two children joins the older; name frequencies are those
of the records present at the time. A grey-zone pair may then be linked in one and
sent to review in the other. Those differences are printed (with examples) so a long
run shows how many there are; ``OTHER_LIMIT`` bounds them as a share of the records
compared. The runs measured so far had none (seed 20261126, 524 records; seeds 777
and 4242, about 4,180 records each, with a PostgreSQL kill and a cut of a minute),
so the bound is slack for chance and still far below what a resolver that lost or
mis-wrote a chunk would give (each record of the chunk would stand alone, or join the
wrong child).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg

from bench.chaos.fuzz_batch import send_batch
from protocol import keys
from tests.hub_harness import running_hub

OTHER_LIMIT = 0.01  # other pairs grouped differently, as a share of the records compared
Key = tuple[str, str]  # council, local id


@dataclass
class ResolutionComparison:
    records: int = 0
    nhs_pairs: int = 0               # pairs sharing an NHS number, in either grouping
    nhs_differences: int = 0
    other_differences: int = 0
    problems: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    @property
    def differences(self) -> int:
        return self.nhs_differences + self.other_differences

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        return (f"resolution compared: {self.records} records, {self.differences} "
                f"differences ({self.nhs_differences} of {self.nhs_pairs} pairs sharing "
                f"an NHS number, must be 0; {self.other_differences} other pairs, at most "
                f"{int(self.records * OTHER_LIMIT)})")


def in_chain_order(batches: list[asyncpg.Record]) -> list[asyncpg.Record]:
    """The batches in ``applied_at`` order, except that each council's come in seq
    order in the places its batches took. ``applied_at`` is its transaction's start,
    and a transaction may start, then wait for the council's row lock while the
    batch before it (begun later, on another replica or after a retry) commits:
    seen in a long soak run, where replaying seq 35 before 34 was refused as a gap."""
    chains = {code: iter(sorted((b for b in batches if b["council_code"] == code),
                                key=lambda b: b["seq"]))
              for code in {b["council_code"] for b in batches}}
    return [next(chains[b["council_code"]]) for b in batches]


async def compare_resolution(hub_db: str, reference_db: str, council_keys: dict[str, Path],
                             workdir: Path) -> ResolutionComparison:
    """Replay the hub's batches into a fresh hub on ``reference_db`` (an empty
    database) fault-free and compare groupings. ``council_keys``: each council's
    private key file (the node's)."""
    out = ResolutionComparison()
    hub = await asyncpg.connect(hub_db)
    try:
        batches = in_chain_order(await hub.fetch(
            "SELECT council_code, seq, envelope, applied_count, rejected_count FROM batches"
            " ORDER BY applied_at, council_code, seq"))
        ours = await _grouping(hub)
    finally:
        await hub.close()
    private = {code: keys.load_private_key(path) for code, path in council_keys.items()}
    async with running_hub(reference_db, workdir / "reference") as ref, \
            aiohttp.ClientSession() as http:
        for code, key in private.items():
            await ref.enrol(code, keys.public_pem(key.public_key()))
        for b in batches:
            status, data = await send_batch(http, ref.url, b["council_code"],
                                            private[b["council_code"]], bytes(b["envelope"]))
            if status != 200:
                out.problems.append(f"{b['council_code']} batch {b['seq']}: refused "
                                    f"fault-free: {status} {data[:200]!r}")
                return out
            await ref.resolved()
            counts = await ref.pool.fetchrow(
                "SELECT applied_count, rejected_count FROM batches"
                " WHERE council_code = $1 AND seq = $2", b["council_code"], b["seq"])
            if tuple(counts) != (b["applied_count"], b["rejected_count"]):
                out.problems.append(
                    f"{b['council_code']} batch {b['seq']}: applied/rejected "
                    f"{b['applied_count']}/{b['rejected_count']} under faults, "
                    f"{counts[0]}/{counts[1]} fault-free")
        async with ref.pool.acquire() as conn:
            theirs = await _grouping(conn)
    _compare(out, ours, theirs)
    return out


Grouping = tuple[dict[Key, str], dict[Key, str | None]]  # national id, NHS number


async def _grouping(conn: asyncpg.Connection) -> Grouping:
    rows = await conn.fetch("SELECT council_code, local_id, national_id, nhs_number"
                            " FROM records WHERE record IS NOT NULL")
    return ({(r["council_code"], r["local_id"]): r["national_id"] for r in rows},
            {(r["council_code"], r["local_id"]): r["nhs_number"] for r in rows})


def _pairs(ids: dict[Key, str]) -> set[tuple[Key, Key]]:
    children: dict[str, list[Key]] = {}
    for key, national_id in sorted(ids.items()):
        children.setdefault(national_id, []).append(key)
    return {pair for members in children.values()
            for pair in itertools.combinations(members, 2)}


def _compare(out: ResolutionComparison, ours: Grouping, theirs: Grouping) -> None:
    (our_ids, nhs), (their_ids, _) = ours, theirs
    if set(our_ids) != set(their_ids):
        out.problems.append(f"live records differ: {len(set(our_ids) ^ set(their_ids))}")
        return
    out.records = len(our_ids)
    our_pairs, their_pairs = _pairs(our_ids), _pairs(their_ids)

    def by_nhs(pairs: Iterable[tuple[Key, Key]]) -> set[tuple[Key, Key]]:
        return {(a, b) for a, b in pairs if nhs[a] and nhs[a] == nhs[b]}

    out.nhs_pairs = len(by_nhs(our_pairs | their_pairs))
    for pair in sorted(our_pairs ^ their_pairs):
        a, b = pair
        where = "under faults only" if pair in our_pairs else "fault-free only"
        text = f"{a[0]}/{a[1]} and {b[0]}/{b[1]} together {where}"
        if nhs[a] and nhs[a] == nhs[b]:
            out.nhs_differences += 1
            out.problems.append(f"sharing an NHS number: {text}")
        else:
            out.other_differences += 1
            if len(out.examples) < 10:
                out.examples.append(text)
    if out.other_differences > out.records * OTHER_LIMIT:
        out.problems.append(f"{out.other_differences} other pairs grouped differently, "
                            f"more than {OTHER_LIMIT:.0%} of {out.records} records")
    del out.problems[50:]
