"""The fault run's resolution check (``bench.chaos.reference``) finds a hub whose
grouping of records differs from a fault-free resolution of the same batches, and
finds nothing when there is no difference.

Two councils publish the same three children (two with NHS numbers); the check
replays their batches into a fresh hub and agrees. Then one record is moved out of
its national child behind the hub's back: the check names that pair (sharing an NHS
number, so it fails the run). A batch whose recorded counts were altered is named too.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

from bench.chaos.reference import compare_resolution, in_chain_order
from protocol import keys
from protocol.batch import GENESIS, UpsertOp
from tests.conftest import DatabaseFactory
from tests.hub_harness import running_hub
from tests.national_hub.helpers import Client, batch_bytes, record

COUNCILS = ("E10000011", "E06000020")
CHILDREN = [("Amelia", "Okafor", date(2015, 3, 14), "9434765919"),
            ("Mohammed", "Khan", date(2010, 1, 5), "9434765870"),
            ("Jack", "Smith", date(2012, 7, 1), None)]


async def test_a_grouping_changed_behind_the_hubs_back_is_found(make_database: DatabaseFactory,
                                                                tmp_path: Path) -> None:
    hub_db = await make_database()
    key_files = {}
    async with running_hub(hub_db, tmp_path / "hub") as hub:
        for n, code in enumerate(COUNCILS):
            key = keys.generate()
            key_files[code] = tmp_path / f"{code}.pem"
            keys.write_private_key(key, key_files[code])
            await hub.enrol(code, keys.public_pem(key.public_key()))
            ops = [UpsertOp.of(dataclasses.replace(
                record(f"{code}-{i}", nhs=nhs), given_name=given, family_name=family,
                dob=dob, postcode="BN1 1AA" if n == 0 else "TF1 1AA"), 1)
                for i, (given, family, dob, nhs) in enumerate(CHILDREN)]
            body, _ = batch_bytes(code, 1, GENESIS, ops, key)
            status, data, _ = await Client(hub, code, key).send(body)
            assert status == 200, data
            await hub.resolved()

        same = await compare_resolution(hub_db, await make_database(), key_files,
                                        tmp_path / "1")
        assert same.problems == [] and same.differences == 0
        assert (same.records, same.nhs_pairs) == (6, 2)

        # one record of a pair sharing an NHS number moved to a child of its own
        await hub.fetchval("INSERT INTO national_children (national_id) VALUES ('NCMOVED')")
        await hub.fetchval("UPDATE records SET national_id = 'NCMOVED'"
                           " WHERE council_code = $1 AND local_id = $2",
                           COUNCILS[1], f"{COUNCILS[1]}-0")
        await hub.fetchval("UPDATE batches SET applied_count = 2 WHERE council_code = $1",
                           COUNCILS[0])
        moved = await compare_resolution(hub_db, await make_database(), key_files,
                                         tmp_path / "2")
    assert moved.nhs_differences == 1
    assert any("sharing an NHS number: E06000020/E06000020-0 and E10000011/E10000011-0"
               " together fault-free only" in p for p in moved.problems), moved.problems
    assert any("E10000011 batch 1: applied/rejected 2/0 under faults, 3/0 fault-free" in p
               for p in moved.problems), moved.problems
    assert not moved.ok


def test_replay_keeps_each_councils_chain_in_seq_order() -> None:
    """Batches are replayed in the hub's applied_at order, but a batch's transaction may
    start before the one ahead of it in its council's chain commits: each council's
    batches take its places in seq order, so the reference never sees a gap."""
    applied = [{"council_code": "A", "seq": 1}, {"council_code": "B", "seq": 1},
               {"council_code": "A", "seq": 3}, {"council_code": "A", "seq": 2},
               {"council_code": "B", "seq": 2}]
    assert [(b["council_code"], b["seq"]) for b in in_chain_order(applied)] == [
        ("A", 1), ("B", 1), ("A", 2), ("A", 3), ("B", 2)]
