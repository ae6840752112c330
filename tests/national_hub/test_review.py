"""Resolution across updates: the review queue and human decisions that stick, a
split and a merge with a redirect, the explain endpoint, and the review CLI."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from national_hub.handlers import appkeys as k
from national_hub.services.links import export_links
from national_hub.services.review import ReviewService
from national_hub.storage.records import RecordStore
from protocol import keys
from protocol.batch import GENESIS, UpsertOp
from protocol.disclosure import Viewer
from protocol.errors import ConflictError
from protocol.records import ChildRecord, Involvement
from server_common.audit.entry import Actor
from tests.conftest import DatabaseFactory
from tests.hub_harness import Hub, running_hub
from tests.national_hub.helpers import Client, batch_bytes
from tests.processes import script
from tests.server_common.accounts_helpers import bearer_headers

ESX, TFW = "E10000011", "E06000020"
PERSON = Actor("ann", "index_team", "East Sussex")
TEAM = Viewer("index_team", "E10000011")  # ann's: East Sussex holds a record of each pair


def child(local_id: str, given: str = "Lily", family: str = "Hart", dob: date = date(2016, 2, 9),
          postcode: str = "BN1 1AA", nhs: str | None = None, **extra: Any) -> ChildRecord:
    return ChildRecord(local_id=local_id, given_name=given, family_name=family, dob=dob, sex=2,
                       postcode=postcode, nhs_number=nhs,
                       involvements=(Involvement(service_type="school",
                                                 organisation_code="114580"),), **extra)


# A grey-zone pair: the same given name and DOB, a different surname, a move.
GREY_A = child("A1", family="Hart", postcode="BN1 1AA")
GREY_B = child("B1", family="Oduya", postcode="TF1 2AB")


class Council:
    def __init__(self, hub: Hub, code: str) -> None:
        self.key = keys.generate()
        self.client = Client(hub, code, self.key)
        self.code, self.prev, self.seq = code, GENESIS, 0
        self.versions: dict[str, int] = {}

    async def send(self, *records: ChildRecord) -> None:
        ops = []
        for r in records:
            self.versions[r.local_id] = self.versions.get(r.local_id, 0) + 1
            ops.append(UpsertOp.of(r, self.versions[r.local_id]))
        self.seq += 1
        body, self.prev = batch_bytes(self.code, self.seq, self.prev, ops, self.key)
        status, data, _ = await self.client.send(body)
        assert status == 200, data
        await self.client.hub.resolved()


async def state(hub: Hub) -> dict[tuple[str, str], tuple[str, str]]:
    async with hub.pool.acquire() as conn:
        rows = await conn.fetch("SELECT council_code, local_id, national_id, link_status"
                                " FROM records WHERE record IS NOT NULL")
    return {(r[0], r[1]): (r[2], r[3]) for r in rows}


async def open_reviews(hub: Hub) -> list[asyncpg.Record]:
    async with hub.pool.acquire() as conn:
        return await conn.fetch("SELECT * FROM review_queue WHERE status = 'open' ORDER BY id")


async def redirect(hub: Hub, national_id: str) -> object:
    return await hub.fetchval("SELECT redirect_to FROM national_children WHERE national_id = $1",
                              national_id)


# the federation fixture: a hub and two councils publishing to it
Federation = tuple[Hub, Council, Council]

@pytest.fixture
async def federation(make_database: DatabaseFactory, tmp_path: Path) -> AsyncIterator[Federation]:
    async with running_hub(await make_database(), tmp_path) as hub:
        esx, tfw = Council(hub, ESX), Council(hub, TFW)
        for council in (esx, tfw):
            await hub.enrol(council.code, keys.public_pem(council.key.public_key()))
        yield hub, esx, tfw


def reviews(hub: Hub) -> ReviewService:
    return hub.server.app[k.REVIEW]


async def test_grey_pair_is_queued_and_separate_survives_updates(federation: Federation,
                                                                 tmp_path: Path) -> None:
    hub, esx, tfw = federation
    await esx.send(GREY_A)
    await tfw.send(GREY_B)
    now = await state(hub)
    assert now[(ESX, "A1")][0] != now[(TFW, "B1")][0]
    assert now[(ESX, "A1")][1] == now[(TFW, "B1")][1] == "review"
    await export_links(hub.pool, RecordStore(), tmp_path / "links.csv")
    assert [line.split(",")[3] for line in
            (tmp_path / "links.csv").read_text().splitlines()[1:]] == ["review", "review"]
    (queued,) = await open_reviews(hub)
    assert json.loads(queued["explanation"])["decision"] == "review"
    health = await hub.server.app[k.HEALTH].snapshot()
    assert {c.code: c.review_queue for c in health.councils} == {ESX: 1, TFW: 1}

    decided = await reviews(hub).separate(queued["id"], PERSON, TEAM)
    assert decided.review.status == "separated" and decided.review.decided_by == "ann"
    now = await state(hub)
    assert now[(ESX, "A1")][1] == now[(TFW, "B1")][1] == "single"
    with pytest.raises(ConflictError):  # the same decision again (the other reverses it)
        await reviews(hub).separate(queued["id"], PERSON, TEAM)

    # an update that would now link them (the old surname recorded, the same NHS number)
    # leaves them apart: a person said they are two children
    await tfw.send(replace(GREY_B, former_family_names=("Hart",), nhs_number="9434765919"))
    await esx.send(replace(GREY_A, nhs_number="9434765919", postcode="TF1 2AB"))
    now = await state(hub)
    assert now[(ESX, "A1")][0] != now[(TFW, "B1")][0]
    assert not await open_reviews(hub)
    # nor through a third record that matches both
    await esx.send(child("A2", family="Hart", postcode="TF1 2AB", nhs="9434765919",
                         former_family_names=("Oduya",)))
    now = await state(hub)
    assert now[(ESX, "A1")][0] != now[(TFW, "B1")][0]
    # A2 joins one of them; the pair it makes with the other waits for a person, who
    # cannot link it: that would merge the two separated records' children
    assert now[(ESX, "A2")][0] in (now[(ESX, "A1")][0], now[(TFW, "B1")][0])
    (bridge,) = await open_reviews(hub)
    with pytest.raises(ConflictError, match="decision stands"):
        await reviews(hub).link(bridge["id"], PERSON, TEAM)
    # nor does re-resolving every record undo the separation
    for code in (TFW, ESX):
        await hub.server.app[k.RESOLVER].re_resolve(code)
    again = await state(hub)
    assert again[(ESX, "A1")][0] != again[(TFW, "B1")][0]
    assert again == now


async def test_link_decision_merges_and_the_retired_id_redirects(federation: Federation) -> None:
    hub, esx, tfw = federation
    await esx.send(GREY_A)
    await tfw.send(GREY_B)
    before = await state(hub)
    (queued,) = await open_reviews(hub)
    decided = await reviews(hub).link(queued["id"], PERSON, TEAM)
    older, newer = before[(ESX, "A1")][0], before[(TFW, "B1")][0]
    assert decided.national_ids == (older, older)
    now = await state(hub)
    assert now[(ESX, "A1")] == now[(TFW, "B1")] == (older, "linked")
    assert await redirect(hub, newer) == older
    # the decision sticks through a later update that alone would only queue the pair
    await tfw.send(replace(GREY_B, postcode="TF2 9ZZ"))
    assert (await state(hub))[(TFW, "B1")] == (older, "linked")


async def test_update_splits_a_wrong_link_then_merges_back_with_a_redirect(
        federation: Federation) -> None:
    hub, esx, tfw = federation
    await esx.send(child("A1", nhs="9434765919"))
    await tfw.send(child("B1", given="Lilly", postcode="TF1 2AB"))  # typo, moved, no NHS
    now = await state(hub)
    shared = now[(ESX, "A1")][0]
    assert now[(TFW, "B1")] == (shared, "linked")

    # B1's NHS number turns up and is another child's: the link was wrong, B1 splits off
    await tfw.send(child("B1", given="Lilly", postcode="TF1 2AB", nhs="4010232137"))
    now = await state(hub)
    assert now[(ESX, "A1")] == (shared, "single")
    split = now[(TFW, "B1")][0]
    assert split != shared and now[(TFW, "B1")][1] == "single"

    # corrected: it joins the child again, and the id it held alone redirects there
    await tfw.send(child("B1", given="Lilly", postcode="TF1 2AB", nhs="9434765919"))
    now = await state(hub)
    assert now[(TFW, "B1")] == (shared, "linked") == now[(ESX, "A1")]
    assert await redirect(hub, split) == shared
    assert await redirect(hub, shared) is None


async def test_twins_are_never_linked_within_a_batch_or_across(federation: Federation) -> None:
    hub, esx, tfw = federation
    await esx.send(child("T1", given="Amara"), child("T2", given="Zuri"),
                   child("D1", given="Ada", family="Nwosu", dob=date(2019, 5, 1)),
                   child("D2", given="Ada", family="Nwosu", dob=date(2019, 5, 1)))
    await tfw.send(child("T3", given="Zuri", postcode="BN1 1AA"))
    now = await state(hub)
    assert now[(ESX, "D1")] == now[(ESX, "D2")]  # one batch's records link to each other
    assert now[(ESX, "D1")][1] == "linked"
    assert now[(ESX, "T1")][0] != now[(ESX, "T2")][0]
    assert now[(ESX, "T2")][0] == now[(TFW, "T3")][0]
    assert now[(ESX, "T1")][0] != now[(TFW, "T3")][0]




async def test_explain_shows_each_field_and_the_thresholds(federation: Federation) -> None:
    hub, esx, tfw = federation
    await esx.send(child("A1", nhs="9434765919"), child("A9", given="Nia", dob=date(2012, 1, 1)))
    await tfw.send(child("B1", given="Lilly", postcode="TF1 2AB"))
    url = f"{hub.url}/v1/links/{TFW}/B1/explain"
    operator = await bearer_headers(hub.pool, "olu", "operator")
    index_esx = await bearer_headers(hub.pool, "ivy", "index_team", council=ESX)
    practitioner = await bearer_headers(hub.pool, "pat", "practitioner")
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as resp:
            assert resp.status == 401
        async with http.get(url, headers=practitioner) as resp:
            assert resp.status == 403
        async with http.get(url, headers=index_esx) as resp:
            assert resp.status == 403
        async with http.get(url, headers=operator) as resp:
            assert resp.status == 200
            body = await resp.json()
    assert body["status"] == "linked"
    (partner,) = body["partners"]
    assert partner["partner"]["council"] == ESX and partner["partner"]["local_id"] == "A1"
    assert partner["relation"] == "linked" and partner["decision"] == "link"
    levels = {f["field"]: f["level"] for f in partner["fields"]}
    assert levels["given_name"] == "NICKNAME" and levels["dob"] == "EXACT"
    assert partner["total"] >= partner["thresholds"]["link"]
    assert partner["total"] == pytest.approx(partner["prior_weight"]
                                             + sum(f["weight"] for f in partner["fields"]))


Run = Callable[..., subprocess.CompletedProcess[str]]


@asynccontextmanager
async def cli_hub(make_database: DatabaseFactory, tmp_path: Path
                  ) -> AsyncIterator[tuple[Run, asyncpg.Connection]]:
    """A hub's database, upgraded, with East Sussex and Telford enrolled: how to run
    ``national-hub`` against it, and a connection to it."""
    url = await make_database()
    env = dict(os.environ) | {"NATIONAL_HUB__DATABASE__URL": url,
                              "NATIONAL_HUB__HUB__KEY_FILE": str(tmp_path / "hub" / "k.pem")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([script("national-hub"), *args], env=env, text=True,
                              capture_output=True, timeout=120, check=False)

    assert run("db", "upgrade").returncode == 0
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("INSERT INTO councils (code, name) VALUES"
                           " ('E10000011', 'East Sussex'), ('E06000020', 'Telford')")
        yield run, conn
    finally:
        await conn.close()


async def test_review_cli_lists_links_and_separates(make_database: DatabaseFactory,
        tmp_path: Path) -> None:
    async with cli_hub(make_database, tmp_path) as (run, conn):
        await conn.execute(
            "INSERT INTO national_children (national_id, created_at) VALUES"
            " ('NCOLD', now() - interval '1 day'), ('NCNEW', now()), ('NCX', now()),"
            " ('NCY', now());"
            "INSERT INTO records (council_code, local_id, version, record, batch_seq,"
            " national_id, link_status) VALUES"
            " ('E10000011', 'A1', 1, '\\x00', 1, 'NCOLD', 'review'),"
            " ('E06000020', 'B1', 1, '\\x00', 1, 'NCNEW', 'review'),"
            " ('E10000011', 'A2', 1, '\\x00', 1, 'NCX', 'review'),"
            " ('E06000020', 'B2', 1, '\\x00', 1, 'NCY', 'review');"
            "INSERT INTO review_queue (council_a, local_id_a, council_b, local_id_b, score,"
            " explanation) VALUES ('E06000020', 'B1', 'E10000011', 'A1', 2.5,"
            " '{\"fields\": [{\"field\": \"dob\", \"level\": \"EXACT\"}]}'),"
            " ('E06000020', 'B2', 'E10000011', 'A2', 1.0, '{}')")
        listed = run("review", "list")
        assert listed.returncode == 0, listed.stderr
        lines = listed.stdout.strip().splitlines()
        assert len(lines) == 2 and "dob=EXACT" in lines[0]
        first, second = (line.split("\t")[0] for line in lines)
        # the operator records a council's decision: never a third council's
        third = run("review", "link", first, "--for-council", "E10000032")
        assert third.returncode == 1 and "forbidden" in third.stderr
        linked = run("review", "link", first, "--for-council", "E10000011")
        assert linked.returncode == 0, linked.stderr
        assert "E06000020/B1 -> NCOLD" in linked.stdout
        assert "E10000011/A1 -> NCOLD" in linked.stdout
        separated = run("review", "separate", second, "--for-council", "E06000020")
        assert separated.returncode == 0 and "separated" in separated.stdout
        again = run("review", "separate", second, "--for-council", "E06000020")
        assert again.returncode == 1 and "review_decided" in again.stderr
        assert run("review", "list").stdout.strip() == ""
        decided = json.loads(run("review", "list", "--status", "all", "--json").stdout)
        assert [d["status"] for d in decided] == ["linked", "separated"]
        assert all(d["decided_by"].startswith("cli:") for d in decided)
        assert await conn.fetchval("SELECT redirect_to FROM national_children"
                                   " WHERE national_id = 'NCNEW'") == "NCOLD"
        assert {r[0]: r[1] for r in await conn.fetch(
            "SELECT local_id, link_status FROM records")} == {
            "A1": "linked", "B1": "linked", "A2": "single", "B2": "single"}
        rows = await conn.fetch("SELECT entry FROM audit_log ORDER BY seq")
        actions = [json.loads(bytes(r["entry"]))["action"] for r in rows]
        assert actions == ["review.link", "review.separate"]
        entries = [json.loads(bytes(r["entry"])) for r in rows]
        assert [(e["role"], e["parameters"]["for_council"]) for e in entries] == [
            ("operator", "E10000011"), ("operator", "E06000020")]
        # both records' national ids, before and after the merge
        assert set(entries[0]["child_ids"]) == {"NCOLD", "NCNEW"}


async def test_review_cli_links_children_with_different_nhs_numbers_only_confirmed(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    async with cli_hub(make_database, tmp_path) as (run, conn):
        # NCOLD holds A1 (NHS number 943 476 5919, spaced) and A3 (none); NCNEW holds B1
        # (another NHS number, and the same UPN in lower case): the pair is B1 and A3
        await conn.execute(
            "INSERT INTO national_children (national_id, created_at) VALUES"
            " ('NCOLD', now() - interval '1 day'), ('NCNEW', now());"
            "INSERT INTO records (council_code, local_id, version, record, batch_seq,"
            " national_id, link_status, given_name, family_name, dob, nhs_number, upn)"
            " VALUES ('E10000011', 'A1', 1, '\\x00', 1, 'NCOLD', 'linked', 'Lily', 'Hart',"
            "  '2016-02-09', '943 476 5919', 'Z846203417010'),"
            " ('E10000011', 'A3', 1, '\\x00', 1, 'NCOLD', 'review', 'Lily', 'Hart',"
            "  '2016-02-09', NULL, NULL),"
            " ('E06000020', 'B1', 1, '\\x00', 1, 'NCNEW', 'review', 'Lily', 'Hart',"
            "  '2016-02-09', '4010232137', 'z846203417010');"
            "INSERT INTO review_queue (council_a, local_id_a, council_b, local_id_b, score,"
            " explanation) VALUES ('E06000020', 'B1', 'E10000011', 'A3', 2.5, '{}')")
        review_id = str(await conn.fetchval("SELECT id FROM review_queue"))
        refused = run("review", "link", review_id, "--for-council", "E10000011")
        assert refused.returncode == 1 and "identifier_conflict" in refused.stderr
        assert "NHS numbers" in refused.stderr and "pupil" not in refused.stderr
        assert await conn.fetchval("SELECT status FROM review_queue") == "open"
        assert await conn.fetchval("SELECT national_id FROM records"
                                   " WHERE local_id = 'B1'") == "NCNEW"
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == 0
        linked = run("review", "link", review_id, "--for-council", "E10000011",
                     "--confirm-identifier-conflict")
        assert linked.returncode == 0, linked.stderr
        assert "E06000020/B1 -> NCOLD" in linked.stdout
        (entry,) = [json.loads(bytes(r["entry"]))
                    for r in await conn.fetch("SELECT entry FROM audit_log")]
        assert entry["action"] == "review.link"
        assert entry["parameters"]["identifier_conflict_confirmed"] == ["nhs_number"]
