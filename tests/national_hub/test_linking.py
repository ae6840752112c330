"""National ids at the foundation: the same valid NHS number links records across
councils; a change that breaks the match splits them; a delete releases a partner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import aiohttp
import pytest

from national_hub.services.linking import MAX_PRIOR, across_councils, with_prior
from protocol import keys
from protocol.batch import GENESIS, DeleteOp, Op, UpsertOp
from protocol.matching import DEFAULT_MODEL, IdentityFields, score
from protocol.matching.scoring import Decision
from server_common.accounts import Role
from tests.conftest import DatabaseFactory
from tests.hub_harness import Hub, running_hub
from tests.national_hub.helpers import Client, batch_bytes, record

ESX, WSX = "E10000011", "E10000032"
GIVEN = ("Amelia", "Noah", "Zara", "Oliver", "Freya", "Arlo", "Isla", "Kofi", "Maya", "Theo")
FAMILY = ("Okafor", "Nowak", "Patel", "Jones", "Murphy")


class Council:
    def __init__(self, hub: Hub, code: str) -> None:
        self.key = keys.generate()
        self.client = Client(hub, code, self.key)
        self.code, self.prev, self.seq = code, GENESIS, 0

    async def send(self, *ops: Op) -> None:
        self.seq += 1
        body, self.prev = batch_bytes(self.code, self.seq, self.prev, list(ops), self.key)
        status, data, _ = await self.client.send(body)
        assert status == 200, data
        await self.client.hub.resolved()


async def links(hub: Hub) -> dict[tuple[str, str], tuple[str, str]]:
    async with hub.pool.acquire() as conn:
        rows = await conn.fetch("SELECT council_code, local_id, national_id, link_status"
                                " FROM records WHERE record IS NOT NULL")
    return {(r[0], r[1]): (r[2], r[3]) for r in rows}


Federation = tuple[Hub, Council, Council]  # a hub and two councils publishing to it


@pytest.fixture
async def federation(make_database: DatabaseFactory, tmp_path: Path
                     ) -> AsyncIterator[Federation]:
    async with running_hub(await make_database(), tmp_path) as hub:
        esx, wsx = Council(hub, ESX), Council(hub, WSX)
        for council in (esx, wsx):
            await hub.enrol(council.code, keys.public_pem(council.key.public_key()))
        yield hub, esx, wsx


async def test_same_nhs_links_then_change_splits_then_delete_releases(
        federation: Federation) -> None:
    hub, esx, wsx = federation
    await esx.send(UpsertOp.of(record("A1", nhs="9434765919"), 1),
                   UpsertOp.of(replace(record("A2", nhs=None), given_name="Noah",
                                       dob=date(2012, 7, 1)), 1))  # another child
    await wsx.send(UpsertOp.of(record("B1", nhs="9434765919"), 1))
    state = await links(hub)
    assert state[(ESX, "A1")][0] == state[(WSX, "B1")][0]
    assert state[(ESX, "A1")][1] == state[(WSX, "B1")][1] == "linked"
    assert state[(ESX, "A2")][1] == "single"
    shared_id = state[(ESX, "A1")][0]

    # a corrected NHS number no longer matches: the record splits off, ids stay stable
    await wsx.send(UpsertOp.of(record("B1", nhs="4010232137"), 2))
    state = await links(hub)
    assert state[(ESX, "A1")] == (shared_id, "single")
    assert state[(WSX, "B1")][0] != shared_id and state[(WSX, "B1")][1] == "single"

    # and corrected back, it merges again into the surviving id
    await wsx.send(UpsertOp.of(record("B1", nhs="9434765919"), 3))
    state = await links(hub)
    assert state[(WSX, "B1")] == (shared_id, "linked")

    # deleting one side leaves the other single
    await esx.send(DeleteOp("A1", 2))
    state = await links(hub)
    assert (ESX, "A1") not in state
    assert state[(WSX, "B1")] == (shared_id, "single")


async def test_a_namesake_with_another_upn_does_not_join_a_child_through_a_bridge(
        federation: Federation) -> None:
    """East Sussex holds Amelia Okafor with one UPN; West Sussex, the same child without
    it (she moved): one child. Then East Sussex sends another Amelia Okafor born the same
    day with a UPN of her own, living where West Sussex's record does. She matches that
    record as well as it matches the first, but the child holds a record with another
    UPN: she is a child of her own, and the match waits for a person."""
    hub, esx, wsx = federation
    first = replace(record("A1", nhs=None), upn="Z846203417010", address_line="1 Sea Lane")
    await esx.send(UpsertOp.of(first, 1))
    await wsx.send(UpsertOp.of(replace(first, local_id="B1", upn=None, postcode="RH13 5TY",
                                       address_line="137 Bridge Way"), 1))
    state = await links(hub)
    assert state[(ESX, "A1")][0] == state[(WSX, "B1")][0]
    child = state[(ESX, "A1")][0]
    await esx.send(UpsertOp.of(replace(first, local_id="A2", upn="L846201817013",
                                       postcode="RH13 5TY", address_line="137 Bridge Way"), 1))
    state = await links(hub)
    assert state[(ESX, "A1")][0] == state[(WSX, "B1")][0] == child
    assert state[(ESX, "A2")][0] != child and state[(ESX, "A2")][1] == "review"
    async with hub.pool.acquire() as conn:
        queued = await conn.fetch("SELECT council_a, local_id_a, council_b, local_id_b FROM"
                                  " review_queue WHERE status = 'open'")
    assert {tuple(r) for r in queued} == {(ESX, "A2", WSX, "B1")}
    # and the index team reads why the strong match waits for them
    async with aiohttp.ClientSession(headers=await hub.as_role(Role.INDEX_TEAM, ESX)) as http:
        async with http.get(hub.url + "/review") as resp:
            assert resp.status == 200
            page = await resp.text()
    assert "also has a record with a different NHS number or pupil number" in page


async def test_a_record_matching_two_children_alike_joins_neither(
        federation: Federation) -> None:
    """Two Libby Taylors born the same day in one postcode at East Sussex, each with a
    UPN of her own: two children. West Sussex's record of one of them has no UPN and
    matches both alike: joining the older child would be a coin toss, so it joins
    neither, both matches wait for a person, and the index team reads why."""
    hub, esx, wsx = federation
    libby = replace(record("A1", nhs=None), given_name="Libby", family_name="Taylor",
                    dob=date(2013, 6, 26), upn="Z846203417010", address_line="1 Sea Lane")
    await esx.send(UpsertOp.of(libby, 1))
    await esx.send(UpsertOp.of(replace(libby, local_id="A2", upn="L846201817013",
                                       address_line="9 Hill Road"), 1))
    state = await links(hub)
    children = {state[(ESX, "A1")][0], state[(ESX, "A2")][0]}
    assert len(children) == 2
    await wsx.send(UpsertOp.of(replace(libby, local_id="B1", upn=None, address_line=None), 1))
    state = await links(hub)
    assert state[(WSX, "B1")][0] not in children and state[(WSX, "B1")][1] == "review"
    async with hub.pool.acquire() as conn:
        queued = await conn.fetch("SELECT council_a, local_id_a, council_b, local_id_b FROM"
                                  " review_queue WHERE status = 'open'")
    assert {tuple(r) for r in queued} == {(ESX, "A1", WSX, "B1"), (ESX, "A2", WSX, "B1")}
    async with aiohttp.ClientSession(headers=await hub.as_role(Role.INDEX_TEAM, WSX)) as http:
        async with http.get(hub.url + "/review") as resp:
            assert resp.status == 200
            page = await resp.text()
    assert page.count("This record matches another child as well") == 2


async def test_national_ids_are_never_reused(federation: Federation) -> None:
    hub, esx, _ = federation
    # fifty different children: before probabilistic resolution these were fifty copies
    # of one child without an NHS number, which the resolver now (rightly) links
    await esx.send(*[UpsertOp.of(replace(
        record(f"C{i}", nhs=None), given_name=GIVEN[i % 10], family_name=FAMILY[i // 10],
        dob=date(2008 + i % 10, 1 + i // 10, 1 + i % 28)), 1) for i in range(50)])
    ids = {nid for nid, _ in (await links(hub)).values()}
    assert len(ids) == 50
    assert await hub.fetchval("SELECT count(*) FROM national_children") == 50


async def test_a_second_council_sent_at_once_is_judged_on_the_partners_it_brings(
        federation: Federation) -> None:
    """Feeds without NHS numbers: the prior is measured on exact names and date of
    birth. A second council sending all its children in one batch brings their partners
    with it; its pairs are judged on that rate, not on the national default (at which a
    typo in a given name, beside a new home, could not link)."""
    hub, esx, wsx = federation
    children = [(f"{GIVEN[i % 10]}", f"{FAMILY[i % 5]}{'ab'[i % 2]}{i}",
                 date(2010, 1, 1) + timedelta(days=7 * i)) for i in range(300)]

    def child(prefix: str, i: int, postcode: str) -> UpsertOp:
        given, family, dob = children[i]
        return UpsertOp.of(replace(record(f"{prefix}{i}", nhs=None), given_name=given,
                                   family_name=family, dob=dob, sex=0,
                                   postcode=postcode), 1)

    await esx.send(*[child("A", i, "BN1 1AA") for i in range(300)])
    moved = [child("B", i, "SO15 2BB") for i in range(1, 300)]
    given, family, dob = children[0]
    typo = UpsertOp.of(replace(record("B0", nhs=None), given_name="Ameila",
                               family_name=family, dob=dob, sex=0, postcode="SO15 2BB"), 1)
    assert given == "Amelia"
    at_default = score(IdentityFields("Ameila", family, dob, postcode="SO15 2BB"),
                       IdentityFields(given, family, dob, postcode="BN1 1AA"),
                       across_councils(DEFAULT_MODEL))
    assert at_default.decision() is not Decision.LINK  # what the test is about
    await wsx.send(typo, *moved)

    state = await links(hub)
    assert state[(WSX, "B0")] == (state[(ESX, "A0")][0], "linked")
    assert all(state[(WSX, f"B{i}")][0] == state[(ESX, f"A{i}")][0] for i in range(300))
    async with hub.pool.acquire() as conn:
        versions = {r[0] for r in await conn.fetch(
            "SELECT model_version FROM records WHERE council_code = $1", WSX)}
    assert versions and all("+prior-" in v for v in versions), versions


def test_a_trained_prior_shrinks_as_the_hub_grows() -> None:
    """Training keeps its EM prior as a share of the records it saw (the prior times
    their number): a model trained on a pilot's 10,000 records, prior 2e-5, judges a hub
    of 100,000 at 2e-6, not at the pilot's prior. The measured share wins where it is
    larger; the model's own prior is a floor, MAX_PRIOR a ceiling."""
    trained = replace(DEFAULT_MODEL, partner_share=0.2)
    assert with_prior(trained, (10_000, 0, 0)).prior == pytest.approx(2e-5)
    assert with_prior(trained, (100_000, 0, 0)).prior == pytest.approx(2e-6)
    # three in ten records share an NHS number with another: 0.3 / 100,000
    assert with_prior(trained, (100_000, 50_000, 15_000)).prior == pytest.approx(3e-6)
    assert with_prior(trained, (1_000_000, 0, 0)) is trained   # 2e-7 < the default's 1e-6
    assert with_prior(trained, (100, 0, 0)) is trained         # too few records to say
    assert with_prior(replace(trained, partner_share=5.0), (1_000, 0, 0)).prior == MAX_PRIOR


async def test_each_record_s_status_is_what_counting_its_child_s_holders_gives(
        federation: Federation) -> None:
    """A chunk refreshes only the children whose status can be other than 'single'; a
    fresh child held by one new record is left as the write of its id made it. Every
    status must still be what a full recount gives: linked when two records hold the
    child, review when a pair of it is open, else single."""
    hub, esx, wsx = federation

    async def recounted() -> dict[tuple[str, str], str]:
        async with hub.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT r.council_code, r.local_id, CASE"
                " WHEN count(*) OVER (PARTITION BY r.national_id) > 1 THEN 'linked'"
                " WHEN EXISTS (SELECT 1 FROM review_queue q WHERE q.status = 'open' AND"
                "  ((q.council_a, q.local_id_a) = (r.council_code, r.local_id) OR"
                "   (q.council_b, q.local_id_b) = (r.council_code, r.local_id)))"
                " THEN 'review' ELSE 'single' END FROM records r WHERE r.record IS NOT NULL")
        return {(r[0], r[1]): r[2] for r in rows}

    lily = replace(record("G", nhs=None), given_name="Lily", dob=date(2016, 2, 9))
    await esx.send(UpsertOp.of(replace(record("S1", nhs=None), given_name="Zofia",
                                       family_name="Nowak", dob=date(2011, 5, 2)), 1),
                   UpsertOp.of(record("A1"), 1), UpsertOp.of(record("A2"), 1),
                   UpsertOp.of(replace(lily, local_id="G1", family_name="Hart"), 1))
    await wsx.send(UpsertOp.of(replace(lily, local_id="G2", family_name="Oduya",
                                       postcode="TF1 2AB"), 1),
                   UpsertOp.of(replace(record("W1", nhs=None), given_name="Theo",
                                       dob=date(2019, 9, 9), postcode="TF2 9XY"), 1))
    state = {rk: status for rk, (_, status) in (await links(hub)).items()}
    assert state == await recounted()
    assert state[(ESX, "S1")] == state[(WSX, "W1")] == "single"
    assert state[(ESX, "A1")] == state[(ESX, "A2")] == "linked"
    assert state[(ESX, "G1")] == state[(WSX, "G2")] == "review"
