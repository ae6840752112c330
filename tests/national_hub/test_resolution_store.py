"""The resolver's candidate read: every holder of a key, a key held too often skipped,
each holder once with the keys it shares, in a stable order, the asking chunk's own
records left out."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import asyncpg

from national_hub.app import PACKAGE
from national_hub.services.linking import identity_of
from national_hub.storage import key_sets
from national_hub.storage.resolution import CANDIDATES_SQL, RETIRE_SQL, ResolutionStore
from national_hub.storage.search import SEARCH_CANDIDATES_SQL
from protocol import keys
from protocol.batch import GENESIS, UpsertOp
from protocol.disclosure import LOCATION_KEY_PREFIXES
from protocol.matching import IdentityFields, blocking_keys
from server_common import database
from tests.conftest import DatabaseFactory
from tests.hub_harness import running_hub
from tests.national_hub.helpers import Client, batch_bytes, record
from tests.plans import generic_plan

ESX = "E10000011"


async def test_candidates_bounded_per_key_and_grouped_by_holder(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    async with running_hub(await make_database(), tmp_path) as hub:
        key = keys.generate()
        await hub.enrol(ESX, keys.public_pem(key.public_key()))
        twins = [record(f"A{i}", nhs=None) for i in range(3)]
        other = replace(record("B1", nhs=None), given_name="Zofia", postcode="TF1 2AB")
        body, _ = batch_bytes(ESX, 1, GENESIS, [UpsertOp.of(r, 1) for r in
                                                [*twins, other]], key)
        assert (await Client(hub, ESX, key).send(body))[0] == 200
        await hub.resolved()
        shared = sorted(blocking_keys(IdentityFields.from_record(twins[0])))
        store = ResolutionStore()
        async with hub.pool.acquire() as conn:
            every = await store.candidates(conn, shared, 4)
            crowded = await store.candidates(conn, shared, 2)
            # a chunk holding A0 asks: A0 is not its candidate, but still fills blocks
            apart = await store.candidates(conn, shared, 4, besides=ESX, besides_ids=["A0"])
            full = await store.candidates(conn, shared, 3, besides=ESX, besides_ids=["A0"])
            elsewhere = await store.candidates(conn, shared, 4, besides="E06000020",
                                               besides_ids=["A0"])
        # the three alike hold every key; the other record shares only some (family
        # name and date of birth), and no key is held by more than four
        holders = [(r["council_code"], r["local_id"]) for r in every]
        assert holders == [(ESX, "A0"), (ESX, "A1"), (ESX, "A2"), (ESX, "B1")]
        assert all(sorted(r["keys"]) == shared for r in every[:3])
        assert set(every[3]["keys"]) < set(shared) and every[3]["keys"]
        # at two holders a key is no evidence: keys the three share are skipped, and
        # with them every candidate (B1's shared keys are held by all four)
        assert crowded == []
        assert [r["local_id"] for r in apart] == ["A1", "A2", "B1"]
        # B1's keys are held by all four, A0 among them: over a limit of three
        assert [r["local_id"] for r in full] == ["A1", "A2"]
        assert [r["local_id"] for r in elsewhere] == ["A0", "A1", "A2", "B1"]


WSX = "E10000032"
TWR = "E06000020"


def _index_entries_read(plan: object) -> int:
    """Entries of ``record_keys`` an EXPLAIN (ANALYZE, FORMAT JSON) plan read."""
    if isinstance(plan, list):
        return sum(_index_entries_read(p) for p in plan)
    if not isinstance(plan, dict):
        return 0
    own = (plan["Actual Rows"] * plan["Actual Loops"]
           if plan.get("Relation Name") == "record_keys" else 0)
    return own + sum(_index_entries_read(p) for p in plan.get("Plans", ()))


async def test_a_council_flooding_a_key_skips_its_own_holders_not_the_others(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """East Sussex holds 400 records alike, West Sussex two and Telford one: at a block
    limit of 4 the key is held too often in all, but East Sussex's holders are the
    excess, and the others' still count. Before, the key was skipped whoever held it
    (the others' records out of reach of the resolver and of search). Each key still
    reads a few times the limit of index entries, not the 403 holders."""
    async with running_hub(await make_database(), tmp_path) as hub:
        signers = {code: keys.generate() for code in (ESX, WSX, TWR)}
        for code, key in signers.items():
            await hub.enrol(code, keys.public_pem(key.public_key()))
        held = {ESX: [f"E{i}" for i in range(400)], WSX: ["W1", "W2"], TWR: ["T1"]}
        for code, local_ids in held.items():
            body, _ = batch_bytes(code, 1, GENESIS, [UpsertOp.of(record(lid, nhs=None), 1)
                                                     for lid in local_ids], signers[code])
            assert (await Client(hub, code, signers[code]).send(body))[0] == 200
        await hub.resolved()
        shared = sorted(blocking_keys(IdentityFields.from_record(record("W1", nhs=None))))
        store = ResolutionStore()
        async with hub.pool.acquire() as conn:
            found = [(r["council_code"], r["local_id"])
                     for r in await store.candidates(conn, shared, 4)]
            assert found == [(TWR, "T1"), (WSX, "W1"), (WSX, "W2")]
            assert all(sorted(r["keys"]) == shared
                       for r in await store.candidates(conn, shared, 4))
            # Telford asking: its own record left out, still counted
            assert [r["local_id"] for r in await store.candidates(
                conn, shared, 4, besides=TWR, besides_ids=["T1"])] == ["W1", "W2"]
            # three outside East Sussex: over a limit of two, a key common everywhere
            assert await store.candidates(conn, shared, 2) == []
            # East Sussex's own chunk meets the others only
            assert {r["council_code"] for r in await store.candidates(
                conn, shared, 200, besides=ESX, besides_ids=held[ESX][:10])} == {WSX, TWR}
            for sql, args in ((CANDIDATES_SQL, (shared, 4, ESX, ["E0"])),
                              (SEARCH_CANDIDATES_SQL, (shared, 4))):
                plan = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, *args)
                read = _index_entries_read(json.loads(plan))
                assert read <= len(shared) * (6 * 4 + 6), (read, sql)


async def test_partner_rate_is_measured_on_names_where_no_record_has_an_nhs_number(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """Feeds without NHS numbers (a benchmark's, a council's early loads) still tell the
    resolver how often a record has a partner: by exact names and date of birth."""
    async with running_hub(await make_database(), tmp_path) as hub:
        key = keys.generate()
        await hub.enrol(ESX, keys.public_pem(key.public_key()))
        # A1/A2: one child twice (the name's case differs); T1/T2 twins (a given name
        # apart); N1 no date of birth, so it is not measured
        records = [record("A1", nhs=None), replace(record("A2", nhs=None), given_name="AMELIA"),
                   replace(record("T1", nhs=None), given_name="Bea"),
                   replace(record("T2", nhs=None), given_name="Cara"),
                   replace(record("N1", nhs=None), dob=None)]
        body, head = batch_bytes(ESX, 1, GENESIS, [UpsertOp.of(r, 1) for r in records], key)
        assert (await Client(hub, ESX, key).send(body))[0] == 200
        await hub.resolved()
        store = ResolutionStore()
        async with hub.pool.acquire() as conn:
            assert await store.partner_rate(conn) == (5, 4, 2)
        # once records carry NHS numbers, those are what is measured
        body, _ = batch_bytes(ESX, 2, head, [UpsertOp.of(record("S1"), 1),
                                             UpsertOp.of(record("S2"), 1)], key)
        assert (await Client(hub, ESX, key).send(body))[0] == 200
        await hub.resolved()
        async with hub.pool.acquire() as conn:
            assert await store.partner_rate(conn) == (7, 2, 2)


async def test_candidate_reads_look_each_holder_up_by_its_key_whatever_the_statistics_say(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """While a council's first load is resolved, the planner's statistics still say no
    record has a national id. The resolver's candidate read and a search's must still
    look each holder up by its primary key: walking every resolved record instead made
    a chunk's read take 15-88 s rather than 0.4 at 45,000 records."""
    async with running_hub(await make_database(), tmp_path) as hub:
        key = keys.generate()
        await hub.enrol(ESX, keys.public_pem(key.public_key()))
        children = [replace(record(f"C{i:04}", nhs=None), given_name=f"Amelia{i:04}",
                            family_name=f"Okafor{i % 97}",
                            dob=date(2010 + i % 8, 1 + i % 12, 1 + i % 28),
                            postcode=f"BN{1 + i % 40} {i % 9}AA") for i in range(1500)]
        body, _ = batch_bytes(ESX, 1, GENESIS, [UpsertOp.of(r, 1) for r in children], key)
        assert (await Client(hub, ESX, key).send(body))[0] == 200
        await hub.resolved()
        asked = sorted({k for r in children[:300]
                        for k in blocking_keys(IdentityFields.from_record(r))})
        async with hub.pool.acquire() as conn, conn.transaction():
            # the statistics of a table whose records were not resolved yet
            await conn.execute("CREATE TEMP TABLE held AS"
                               " SELECT council_code, local_id, national_id FROM records")
            await conn.execute("UPDATE records SET national_id = NULL")
            await conn.execute("ANALYZE records")
            await conn.execute("UPDATE records r SET national_id = h.national_id FROM held h"
                               " WHERE h.council_code = r.council_code"
                               " AND h.local_id = r.local_id")
            plan = "\n".join(r[0] for r in await conn.fetch(
                "EXPLAIN " + CANDIDATES_SQL, asked, 200, ESX, ["C0000"]))
            found = await ResolutionStore().candidates(conn, asked, 200)
            # a practitioner's search, on the same statistics, reads its hits the same way
            searched = sorted(blocking_keys(IdentityFields.from_record(children[7])))
            search_plan = "\n".join(r[0] for r in await conn.fetch(
                "EXPLAIN " + SEARCH_CANDIDATES_SQL, searched, 100))
        assert "records_pkey" in plan and "records_national" not in plan, plan
        # the chunk's own records are left out through one hash of their ids, built
        # once, whatever their number: an anti-join planned for the ten ids a generic
        # plan assumes was redone for every key (a 50,000-record chunk: over 12 minutes)
        assert "hashed SubPlan" in plan, plan
        async with hub.pool.acquire() as conn:
            assert "hashed SubPlan" in await generic_plan(
                conn, "text[], int, text, text[]", CANDIDATES_SQL, "'{k}', 200, 'E1', '{l}'")
        assert "Seq Scan on records" not in plan, plan
        assert {r["local_id"] for r in found} >= {r.local_id for r in children[:300]}
        walk = "Index Cond: (national_id IS NOT NULL)"  # every resolved record
        assert "records_pkey" in search_plan and walk not in search_plan, search_plan
        assert "Seq Scan on records" not in search_plan, search_plan


async def test_a_chunk_reads_with_each_record_the_keys_its_masked_identity_gives(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """The resolver takes a chunk's keys as held rather than deriving them again: they
    are exactly what each record's identity, as matching reads it, gives, a shielded
    record's and a related one's without where they live."""
    async with running_hub(await make_database(), tmp_path) as hub:
        key = keys.generate()
        await hub.enrol(ESX, keys.public_pem(key.public_key()))
        children = [record("S1", shielded=True),  # shielded, NHS number 9434765919
                    replace(record("R1"), given_name="Amy"),  # the same NHS number: marked
                    replace(record("P1", nhs=None), given_name="Zofia", family_name="Nowak",
                            dob=date(2012, 7, 1), postcode="TF1 2AB")]  # a stranger
        body, _ = batch_bytes(ESX, 1, GENESIS, [UpsertOp.of(r, 1) for r in children], key)
        assert (await Client(hub, ESX, key).send(body))[0] == 200
        await hub.resolved()
        async with hub.pool.acquire() as conn:
            rows = await ResolutionStore().chunk_identities(conn, ESX,
                                                            ["S1", "R1", "P1", "GONE"])
            held = await key_sets.read(conn, [(ESX, r.local_id) for r in children])
        by_id = {r["local_id"]: r for r in rows}
        assert sorted(by_id) == ["P1", "R1", "S1"]  # no row for a record the hub lacks
        for local_id, row in by_id.items():
            assert set(row["keys"]) == held[(ESX, local_id)]
            assert set(row["keys"]) == blocking_keys(identity_of(row)), local_id
        located = {lid for lid, row in by_id.items()
                   if any(k.startswith(LOCATION_KEY_PREFIXES) for k in row["keys"])}
        assert located == {"P1"}


async def test_a_retired_id_redirects_with_every_id_that_pointed_to_it(
        make_database: DatabaseFactory) -> None:
    """An id left with no live record redirects to its survivor, and so does every id
    that redirected to it; an id a live record still holds, or one "retired" into
    itself, is left. Each is found by an index: a join on "national_id = retired OR
    redirect_to = retired" can use neither and compared every national child with every
    retired id (17 s for 2,000 of them among 200,000 children)."""
    conn = await asyncpg.connect(await make_database())
    try:
        await database.upgrade(conn, PACKAGE)
        await conn.execute("INSERT INTO councils (code, name) VALUES ($1, 'East Sussex')", ESX)
        await conn.execute("INSERT INTO national_children (national_id)"
                           " SELECT unnest($1::text[])", ["A", "B", "C", "HELD", "S", "T"])
        await conn.execute("UPDATE national_children SET redirect_to = 'A' WHERE national_id = 'B'")
        await conn.execute("UPDATE national_children SET redirect_to = 'B' WHERE national_id = 'C'")
        await conn.execute(
            "INSERT INTO records (council_code, batch_seq, local_id, version, record, digest,"
            " national_id) VALUES ($1, 1, 'L1', 1, '\\x00', 'd', 'HELD')", ESX)

        await ResolutionStore().retire_if_empty(conn, [("A", "S"), ("HELD", "S"), ("T", "T")])

        redirects = dict(await conn.fetch("SELECT national_id, redirect_to FROM national_children"))
        # C pointed at B, not at A: it still reaches S through B, one hop further
        assert redirects == {"A": "S", "B": "S", "C": "B", "HELD": None, "S": None, "T": None}
        plan = await generic_plan(conn, "text[], text[]", RETIRE_SQL, "'{A}', '{S}'")
        assert "national_children_redirected" in plan and " OR " not in plan, plan
    finally:
        await conn.close()


async def test_pairs_for_training_are_drawn_on_fresh_statistics(
        make_database: DatabaseFactory) -> None:
    """A model is first trained right after a council's initial load, when autovacuum may
    not have counted ``record_keys`` yet: the draw of candidate pairs counts it first.
    Planned for the near-empty table the statistics described, its self-join rescanned a
    spilled tuplestore for every row (over 6 minutes at 228,771 records, not 25 s)."""
    conn = await asyncpg.connect(await make_database())
    try:
        await database.upgrade(conn, PACKAGE)
        await conn.execute("ALTER TABLE record_keys SET (autovacuum_enabled = false)")
        await conn.execute("ANALYZE record_keys")  # counted empty
        await conn.execute(
            "INSERT INTO record_keys (council_code, local_id, key)"
            " SELECT $1, 'L' || (n / 3), 'k:' || (n % 2000) FROM generate_series(0, 5999) n",
            ESX)
        pairs, every = await ResolutionStore().random_candidate_pairs(conn, 200, 10, seed=1)
        assert len(pairs) == 10 and every >= 2000  # at least a pair for each key
        assert await conn.fetchval("SELECT reltuples FROM pg_class"
                                   " WHERE relname = 'record_keys'") == 6000
    finally:
        await conn.close()
