"""The hub's term counts (migration 014), kept as records change, equal a full recount
of the resolved live records after publishes, updates, deletes and retention; and
the frequencies read from them for a chunk's values weigh as the full counts do."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from national_hub.services.container import HubServices
from national_hub.services.linking import (
    TERM_KEYS,
    HeldFrequencies,
    Linker,
    identity_of,
    partner_rate,
)
from national_hub.storage.records import RecordStore
from national_hub.storage.resolution import ResolutionStore
from national_hub.storage.resolution_terms import TermCountStore, Totals
from protocol import keys
from protocol.batch import GENESIS, DeleteOp, Op, UpsertOp
from protocol.matching import IdentityFields, TermFrequencies
from protocol.matching.frequencies import TF_FIELDS
from protocol.records import ChildRecord, Involvement
from tests.conftest import DatabaseFactory
from tests.hub_harness import Hub, running_hub
from tests.national_hub.helpers import Client, batch_bytes

ESX, WSX = "E10000011", "E10000032"
PAUSED = {"enabled": False}
SCHOOL = (Involvement(service_type="school", organisation_code="114580"),)


def nhs(n: int) -> str:
    """A valid NHS number (mod 11) from a nine-digit stem, the first stems that have one."""
    while True:
        stem = f"{n:09d}"
        check = 11 - sum(int(d) * (10 - i) for i, d in enumerate(stem)) % 11
        if check == 11:
            check = 0
        if check != 10:
            return stem + str(check)
        n += 1


def child(local_id: str, given: str | None, family: str | None, dob: date | None,
          postcode: str | None = None, address: str | None = None,
          nhs_number: str | None = None) -> ChildRecord:
    return ChildRecord(local_id=local_id, given_name=given, family_name=family, dob=dob,
                       sex=2, postcode=postcode, address_line=address,
                       nhs_number=nhs_number, involvements=SCHOOL)


FIRST = {
    ESX: [
        child("E1", "Amelia", "Smith", date(2015, 3, 14), "BN1 1AA", "12 Church Rd",
              nhs(943476591)),
        child("E2", "AMELIA", "smith", date(2015, 3, 14), "bn11aa", "12 church road"),
        child("E3", "Zofia", "Okonkwo-Reilly", date(2014, 1, 2), "BN2 2BB", "Flat 3",
              nhs(401023213)),
        child("E4", "Noah", "Smith", date(2000, 1, 1), "BN1 1AA", "12 Church Rd"),
        child("E5", "Ava", None, date(2016, 5, 5), None, None),
        child("E6", "Ava", "Jones", date(2016, 5, 5), "TN22 1AD", "1 Oak Close"),
    ],
    WSX: [
        # a mover: the same NHS number as E1 at the other council
        child("W1", "Amelia", "Smith", date(2015, 3, 14), "RH10 1AA", "3 Elm Way",
              nhs(943476591)),
        child("W2", "Émile", "O'Brien", date(2013, 7, 8), "RH10 1AA", "3 Elm Way"),
        child("W3", "Ava", "Jones", date(2016, 5, 5), "TN22 1AD", "1 Oak Close"),
    ],
}


async def send(hub: Hub, council: str, client: Client, seq: int, prev: str,
               ops: list[Op]) -> str:
    body, h = batch_bytes(council, seq, prev, ops, client.key)
    status, data, _ = await client.send(body)
    assert status == 200, data
    return h


def _counted(values: dict[str, int], key: Callable[[str], str]) -> Counter[str]:
    out: Counter[str] = Counter()
    for value, n in values.items():
        out[key(value)] += n
    out.pop("", None)
    return out


async def recount(hub: Hub) -> tuple[dict[tuple[str, str], int], tuple[int, int, int]]:
    """Every count as the resolver's old full read made it, and the partner rate."""
    store = ResolutionStore()
    async with hub.pool.acquire() as conn:
        given, family = await store.name_counts(conn)
        postcodes, addresses = await store.location_counts(conn)
        rate = await store.partner_rate(conn)
        nhs_rows = await conn.fetch(
            "SELECT nhs_number, count(*) FROM records WHERE record IS NOT NULL"
            " AND national_id IS NOT NULL AND nhs_number IS NOT NULL GROUP BY 1")
        person_rows = await conn.fetch(
            "SELECT term_person(given_name, family_name, dob), count(*) FROM records"
            " WHERE record IS NOT NULL AND national_id IS NOT NULL"
            " AND term_person(given_name, family_name, dob) IS NOT NULL GROUP BY 1")
    counts: dict[tuple[str, str], int] = {}
    for term_field, values, name in (("given", given, "given_name"),
                                     ("family", family, "family_name"),
                                     ("postcode", postcodes, "postcode"),
                                     ("address", addresses, "address_line")):
        counts.update(((term_field, k), n) for k, n in
                      _counted(values, TERM_KEYS[name]).items())
    counts.update((("nhs", r[0]), r[1]) for r in nhs_rows)
    counts.update((("person", r[0]), r[1]) for r in person_rows)
    return counts, rate


def totals_of(counts: dict[tuple[str, str], int], records: int) -> dict[str, Totals]:
    out = {"records": Totals(records, 0, 0)}
    for term_field in ("given", "family", "postcode", "address", "nhs", "person"):
        ns = [n for (f, _), n in counts.items() if f == term_field]
        out[term_field] = Totals(sum(ns), sum(n * n for n in ns), sum(n for n in ns if n > 1))
    return out


async def assert_counts_equal_a_recount(hub: Hub) -> dict[tuple[str, str], int]:
    terms = TermCountStore()
    async with hub.pool.acquire() as conn, conn.transaction():
        await terms.fold(conn, TERM_KEYS)  # the last chunk's own writes
        kept, totals = await terms.all_counts(conn), await terms.totals(conn)
    expected, rate = await recount(hub)
    assert kept == expected
    records = int(await hub.fetchval("SELECT count(*) FROM records WHERE record IS NOT NULL"
                                     " AND national_id IS NOT NULL"))
    assert totals == totals_of(expected, records)
    assert partner_rate(totals) == rate
    return kept


async def test_counts_follow_publishes_updates_deletes_and_retention(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    async with running_hub(await make_database(), tmp_path, resolver=PAUSED) as hub:
        clients: dict[str, Client] = {}
        heads: dict[str, str] = {}
        for council, records in FIRST.items():
            key = keys.generate()
            await hub.enrol(council, keys.public_pem(key.public_key()))
            clients[council] = Client(hub, council, key)
            heads[council] = await send(hub, council, clients[council], 1, GENESIS,
                                        [UpsertOp.of(r, 1) for r in records])
        # queued records are not counted until resolved
        async with hub.pool.acquire() as conn:
            assert await TermCountStore().fold(conn, TERM_KEYS) == 0
        assert (await recount(hub))[0] == {}
        await hub.resolved()
        kept = await assert_counts_equal_a_recount(hub)
        assert kept[("family", "smith")] == 4 and kept[("given", "amelia")] == 3
        assert kept[("postcode", "BN11AA")] == 3 and kept[("address", "12 church road")] == 3
        assert kept[("nhs", nhs(943476591))] == 2

        # Updates: a move (postcode and address), a new surname, a spelling of a name,
        # an NHS number learnt; and a delete. Counted at intake, before resolution.
        heads[ESX] = await send(hub, ESX, clients[ESX], 2, heads[ESX], [
            UpsertOp.of(child("E1", "Amelia", "Smith", date(2015, 3, 14), "TF1 2AB",
                              "4 Dale Road", nhs(943476591)), 2),
            UpsertOp.of(child("E2", "Amélia", "Smith-Jones", date(2015, 3, 14), "bn11aa",
                              "12 church road", nhs(401023213)), 2),
            DeleteOp("E3", 2),
            UpsertOp.of(child("E7", "Ava", "Jones", date(2016, 5, 5), "TN22 1AD",
                              "1 Oak Close"), 1),
        ])
        await assert_counts_equal_a_recount(hub)  # E1, E2 (resolved) and E3 already
        await hub.resolved()
        kept = await assert_counts_equal_a_recount(hub)
        assert ("family", "okonkwo reilly") not in kept  # none left: the row goes
        assert kept[("nhs", nhs(401023213))] == 1

        # A shielded child and its copy at another council, linked (so marked): neither
        # location is counted, whatever the names do (an explanation's weights must not
        # say how many shielded children live at a postcode)
        # (West Sussex's copy first: counted, then marked when the shielded one comes)
        heads[WSX] = await send(hub, WSX, clients[WSX], 2, heads[WSX], [UpsertOp.of(
            child("W4", "Lily", "Okoye", date(2017, 2, 2), "RH1 9ZZ", "2 Hill Rise",
                  nhs(500000000)), 1)])
        await hub.resolved()
        assert (await assert_counts_equal_a_recount(hub))[("postcode", "RH19ZZ")] == 1
        heads[ESX] = await send(hub, ESX, clients[ESX], 3, heads[ESX], [UpsertOp.of(replace(
            child("E8", "Lily", "Okoye", date(2017, 2, 2), "BN3 3CC", "9 Quiet Road",
                  nhs(500000000)), shielded=True), 1)])
        await hub.resolved()
        assert await hub.fetchval("SELECT count(*) FROM shield_marks WHERE local_id = 'W4'")
        kept = await assert_counts_equal_a_recount(hub)
        assert kept[("given", "lily")] == 2
        assert ("postcode", "BN33CC") not in kept and ("postcode", "RH19ZZ") not in kept
        assert ("address", "2 hill rise") not in kept

        # Both move, the shielded child and its marked copy: an update of a masked
        # record counts neither its old location nor its new one
        heads[ESX] = await send(hub, ESX, clients[ESX], 4, heads[ESX], [UpsertOp.of(replace(
            child("E8", "Lily", "Okoye", date(2017, 2, 2), "BN4 4DD", "7 New Lane",
                  nhs(500000000)), shielded=True), 2)])
        heads[WSX] = await send(hub, WSX, clients[WSX], 3, heads[WSX], [UpsertOp.of(
            child("W4", "Lily", "Okoye", date(2017, 2, 2), "RH2 8YY", "5 Low Road",
                  nhs(500000000)), 2)])
        await hub.resolved()
        kept = await assert_counts_equal_a_recount(hub)
        assert not {("postcode", "BN44DD"), ("postcode", "RH28YY"), ("address", "7 new lane"),
                    ("address", "5 low road")} & set(kept)

        # Retention: Noah (born 2000) is long past 18 + 6 years, purged; archiving the
        # others on the way changes no count.
        report = await HubServices(hub.config, hub.pool).retention.run(date(2035, 1, 1))
        assert report.councils[ESX].purged
        kept = await assert_counts_equal_a_recount(hub)
        assert ("given", "noah") not in kept


async def test_the_resolver_weighs_a_chunk_with_the_counts_of_a_full_read(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """The frequencies the linker reads for a set of records adjust every value of
    those records as TermFrequencies over all the hub's resolved records does."""
    async with running_hub(await make_database(), tmp_path, resolver=PAUSED) as hub:
        for council, records in FIRST.items():
            key = keys.generate()
            await hub.enrol(council, keys.public_pem(key.public_key()))
            await send(hub, council, Client(hub, council, key), 1, GENESIS,
                       [UpsertOp.of(r, 1) for r in records])
        await hub.resolved()
        store = ResolutionStore()
        linker = Linker(RecordStore(), store)
        async with hub.pool.acquire() as conn, conn.transaction():
            await linker.refresh_model(conn, fold=True)
            rows = await conn.fetch("SELECT council_code, local_id FROM records")
            held = await store.identities(conn, [(r[0], r[1]) for r in rows])
            fields = [identity_of(r) for r in held]
            chunk = fields[:3]
            tf = await linker.load_frequencies(conn, chunk)
        full = TermFrequencies.from_records(fields)
        assert isinstance(tf, HeldFrequencies)
        for record in chunk:
            for name in TF_FIELDS:
                value = getattr(record, name)
                assert tf.adjustment(name, value) == pytest.approx(
                    full.adjustment(name, value), rel=1e-12, abs=1e-12), (name, value)


def test_held_frequencies_need_only_the_values_asked() -> None:
    every: Iterable[IdentityFields] = [
        IdentityFields(given_name=g, family_name="Smith", dob=date(2015, 1, 1), sex=1,
                       postcode=p)
        for g, p in [("Amelia", "BN1 1AA")] * 5 + [("Zofia", "BN2 2BB"), ("Noah", None)]]
    full = TermFrequencies.from_records(list(every))
    held = HeldFrequencies({"zofia": 1}, {}, {}, {}, totals={
        "given_name": (7, (25 + 1 + 1) / 49), "family_name": (7, 1.0)})
    assert held.adjustment("given_name", "Zofia") == pytest.approx(
        full.adjustment("given_name", "Zofia"))
    assert held.adjustment("given_name", "Zofia") > 0
    assert held.adjustment("postcode", "BN2 2BB") == 0.0  # no totals: not adjusted
