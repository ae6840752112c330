"""What the hub's retention (docs/design.md §3) hides and removes: an archived record is no
longer for practitioners' eyes on any path, notices included."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import aiohttp

from local_node.app import retention_service
from national_hub.app import NOTICE_JOB
from national_hub.services.container import HubServices
from server_common.accounts import Role
from tests.conftest import DatabaseFactory
from tests.federation import Hub, Node, running_hub, running_node
from tests.processes import script
from tests.server_common.accounts_helpers import bearer_headers
from tests.test_notices_end_to_end import ESX_FEED, SERVICES, WSX_FEED

ESX, WSX = "E10000011", "E10000032"
# West Sussex's leaving-care team (with consent): a care leaver there, live to 25
WSX_CARE_LEAVER = SERVICES + (
    "W1,9434765919,Mia,Okafor,2014-05-02,F,RH10 1AA,leaving_care,Leaving Care,"
    "Pat Jones,Personal adviser,01293 000009,pat.jones@wsx.gov.uk,Y,N,Y,N\n")


async def _feed(node: Node, tmp_path: Path, text: str) -> None:
    path = tmp_path / f"{node.code}-services.csv"
    path.write_text(text, encoding="utf-8")
    assert (await node.ingest("services", path)).errors == []


async def _published(hub: Hub, node: Node, tmp_path: Path, text: str) -> None:
    """The node loads ``text`` as its services feed and publishes it; the hub resolves
    it and makes its notices."""
    await _feed(node, tmp_path, text)
    await node.publish()
    await hub.resolved()
    await hub.server.app[NOTICE_JOB].drain()


async def test_an_archived_record_makes_no_notices(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """East Sussex's record of Mia is archived at the hub on her 18th birthday (she is
    out of practitioner search and the child view there). West Sussex then publishes
    her as a care leaver. Its practitioners may not see East Sussex's record, so no
    notice tells them East Sussex knows her, its services or its lead professional; and
    East Sussex's archived record is told nothing either."""
    async with running_hub(await make_database(), tmp_path,
                           notices={"interval": "0s"}) as hub, \
            running_node(ESX, await make_database(), tmp_path, hub) as esx, \
            running_node(WSX, await make_database(), tmp_path, hub) as wsx:
        await _published(hub, esx, tmp_path, ESX_FEED)
        report = await HubServices(hub.config, hub.pool).retention.run(date(2032, 5, 2))
        mia = await esx.fetchval("SELECT local_id FROM children WHERE given_name = 'Mia'")
        assert mia in report.councils[ESX].archived

        await _published(hub, wsx, tmp_path, WSX_CARE_LEAVER)
        assert await hub.fetchval(
            "SELECT count(DISTINCT national_id) FROM records WHERE nhs_number = '9434765919'"
        ) == 1  # one child: the records are linked
        told = await hub.fetchval(
            "SELECT array_agg(council_code || ': ' || events::text) FROM notices")
        assert told is None, told


async def test_a_record_past_its_archive_date_makes_no_notices_before_the_job_runs(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """Omar turned 18 at East Sussex since the hub's retention job last ran (his archive
    mark is cleared to stand for that). West Sussex then publishes him as a care leaver
    (live to 25). The notice job judges East Sussex's record by the policy, as search
    does: nobody is told East Sussex knows him, and East Sussex is told nothing."""
    today = datetime.now(UTC).date()
    omar = date(today.year - 18, 1, 1)
    async with running_hub(await make_database(), tmp_path,
                           notices={"interval": "0s"}) as hub, \
            running_node(ESX, await make_database(), tmp_path, hub) as esx, \
            running_node(WSX, await make_database(), tmp_path, hub) as wsx:
        await _published(hub, esx, tmp_path, SERVICES + (
            f"S1,9434765919,Omar,Haddad,{omar},M,BN1 1AA,social_care,Team A,"
            "Dana Smith,Social worker,01273 000001,dana.smith@esx.gov.uk,Y,N,N,N\n"))
        await hub.pool.execute("UPDATE records SET archived_on = NULL")

        await _published(hub, wsx, tmp_path, SERVICES + (
            f"W1,9434765919,Omar,Haddad,{omar},M,RH10 1AA,leaving_care,Leaving Care,"
            "Pat Jones,Personal adviser,01293 000009,pat.jones@wsx.gov.uk,Y,N,Y,N\n"))
        assert await hub.fetchval(
            "SELECT count(DISTINCT national_id) FROM records WHERE nhs_number = '9434765919'"
        ) == 1  # one child: the records are linked
        assert await hub.fetchval("SELECT count(*) FROM records WHERE archived_on IS NULL"
                                  " AND council_code = $1", WSX) == 1
        told = await hub.fetchval(
            "SELECT array_agg(council_code || ': ' || events::text) FROM notices")
        assert told is None, told


def _haddads(omar: date, amy: date, cara: date) -> str:
    """East Sussex's services feed: Omar and his sister Amy, and Cara, a care leaver
    who consented to being kept on (live to 25)."""
    return SERVICES + (
        f"S1,,Omar,Haddad,{omar},M,BN1 1AA,social_care,Team A,,,,,N,N,N,N\n"
        f"S2,,Amy,Haddad,{amy},F,BN1 1AA,social_care,Team A,,,,,N,N,N,N\n"
        f"S3,,Cara,Haddad,{cara},F,BN1 1AA,leaving_care,Leaving Care,,,,,N,N,Y,N\n")


@contextlib.asynccontextmanager
async def _haddads_at_hub(make_database: DatabaseFactory, tmp_path: Path, *, omar_age: int
                          ) -> AsyncIterator[tuple[Hub, dict[str, date]]]:
    """A hub holding East Sussex's Haddads, published and resolved: Omar, ``omar_age``
    this year, his sister Amy, 9, and Cara, a care leaver of 20; with their dates of
    birth by given name."""
    today = datetime.now(UTC).date()
    born = {name: date(today.year - age, 1, 1)
            for name, age in (("Omar", omar_age), ("Amy", 9), ("Cara", 20))}
    async with running_hub(await make_database(), tmp_path) as hub, \
            running_node(ESX, await make_database(), tmp_path, hub) as esx:
        await _feed(esx, tmp_path, _haddads(born["Omar"], born["Amy"], born["Cara"]))
        await esx.publish()
        await hub.resolved()
        yield hub, born


async def _found_by_practitioner(hub: Hub, born: dict[str, date]) -> dict[str, list[str]]:
    """Each Haddad searched for by name and date of birth at the hub: the given names of
    the children found. Omar's child view must be refused as well (404, nothing shown)."""
    olu = await bearer_headers(hub.pool, "olu", Role.PRACTITIONER)
    found: dict[str, list[str]] = {}
    async with aiohttp.ClientSession() as http:
        for name, dob in born.items():
            async with http.get(f"{hub.url}/v1/search", headers=olu, params={
                    "given_name": name, "family_name": "Haddad", "dob": dob.isoformat(),
                    "purpose": "s47 enquiry"}) as resp:
                assert resp.status == 200
                found[name] = [r["given_name"] for r in (await resp.json())["results"]]
        national_id = await hub.fetchval(
            "SELECT national_id FROM records WHERE given_name = 'Omar'")
        async with http.get(f"{hub.url}/v1/children/{national_id}", headers=olu,
                            params={"purpose": "s47 enquiry"}) as resp:
            assert resp.status == 404
            assert "Haddad" not in await resp.text()
    return found


async def test_a_record_arriving_past_its_archive_date_is_never_searchable(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """A council's feed still carries Omar, 26 now (a health feed lists everyone
    registered), or its node sends a record again after the hub purged it. The hub
    stores it archived as it arrives: no practitioner finds it or opens it, not even
    until the retention job's next run. A child of the same feed is found as ever; a
    care leaver of 20 with consent stays live."""
    async with _haddads_at_hub(make_database, tmp_path, omar_age=26) as (hub, born):
        assert await _found_by_practitioner(hub, born) == {
            "Omar": [], "Amy": ["Amy"], "Cara": ["Cara"]}
        held = {r["given_name"]: r["archived_on"] for r in await hub.pool.fetch(
            "SELECT given_name, archived_on FROM records WHERE record IS NOT NULL")}
        assert held == {"Omar": date(born["Omar"].year + 18, 1, 1), "Amy": None, "Cara": None}


async def test_one_councils_failure_does_not_stop_retention_for_the_others(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """Something in East Sussex's records makes its purge fail (here a trigger stands
    in for it). Its run is rolled back, West Sussex's (after it in code order) still
    purges, and the command names the council that failed and exits 1, every day until
    it is fixed, without holding the other councils' purges hostage."""
    async with running_hub(await make_database(), tmp_path,
                           notices={"interval": "0s"}) as hub, \
            running_node(ESX, await make_database(), tmp_path, hub) as esx, \
            running_node(WSX, await make_database(), tmp_path, hub) as wsx:
        for node, name in ((esx, "Ada"), (wsx, "Bea")):
            await _feed(node, tmp_path, SERVICES + (
                f"S1,,{name},Haddad,2015-01-01,F,BN1 1AA,social_care,Team A,,,,,N,N,N,N\n"))
            await node.publish()
        await hub.resolved()
        await hub.pool.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN RAISE EXCEPTION 'a record this run cannot take'; END $$;"
            f" CREATE TRIGGER refuse BEFORE UPDATE ON records FOR EACH ROW"
            f" WHEN (NEW.council_code = '{ESX}') EXECUTE FUNCTION refuse()")
        env = dict(os.environ) | {
            "NATIONAL_HUB__DATABASE__URL": str(hub.config.database.url),
            "NATIONAL_HUB__HUB__KEY_FILE": str(hub.config.hub.key_file)}
        proc = await asyncio.create_subprocess_exec(
            script("national-hub"), "retention", "run", "--today", "2040-01-01",
            "--allow-future", env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        assert proc.returncode == 1, (out, err)
        assert f"{WSX}: 0 archived, 1 purged" in out.decode()
        assert ESX in err.decode() and "a record this run cannot take" in err.decode()
        live = {r["council_code"]: r["live"] for r in await hub.pool.fetch(
            "SELECT council_code, record IS NOT NULL AS live FROM records")}
        assert live == {ESX: True, WSX: False}


async def test_a_record_past_its_archive_date_is_out_of_search_before_the_job_runs(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """Omar's record reached the hub before his 18th birthday; the job runs once a day
    and has not run since (here: his record's archive mark is cleared to stand for
    that). Hub search and the child view leave him out already; his sister Amy, and a
    care leaver of 20 with consent, are found as ever."""
    async with _haddads_at_hub(make_database, tmp_path, omar_age=18) as (hub, born):
        await hub.pool.execute("UPDATE records SET archived_on = NULL")
        assert await _found_by_practitioner(hub, born) == {
            "Omar": [], "Amy": ["Amy"], "Cara": ["Cara"]}


async def test_a_deleted_records_notices_to_its_council_go_with_it(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """East Sussex was told Mia went to West Sussex (and who leads there). Then East
    Sussex purges her and withdraws its record. The hub drops the notices to East
    Sussex about her: fetched or not, they are about a child it no longer holds, and a
    node that asks again from an earlier cursor would get them back. West Sussex, which
    still holds her, keeps its own."""
    async with running_hub(await make_database(), tmp_path,
                           notices={"interval": "0s"}) as hub, \
            running_node(ESX, await make_database(), tmp_path, hub) as esx, \
            running_node(WSX, await make_database(), tmp_path, hub) as wsx:
        await _feed(esx, tmp_path, ESX_FEED)
        await esx.publish()
        await _feed(wsx, tmp_path, WSX_FEED)
        await wsx.publish()
        await hub.resolved()
        await hub.server.app[NOTICE_JOB].drain()
        told = {r["council_code"]: r["n"] for r in await hub.pool.fetch(
            "SELECT council_code, count(*) AS n FROM notices GROUP BY council_code")}
        assert told == {ESX: 2, WSX: 2}
        report = await retention_service(esx.pool, esx.config).run(date(2040, 1, 1))
        assert len(report.withdrawn) == 2  # Mia and Zara
        await esx.publish()
        await hub.resolved()
        await hub.server.app[NOTICE_JOB].drain()
        told = {r["council_code"]: r["n"] for r in await hub.pool.fetch(
            "SELECT council_code, count(*) AS n FROM notices GROUP BY council_code")}
        assert told == {WSX: 2}
