"""What a purge at a council's node leaves behind (docs/design.md §3): nothing about the
purged child, through the practitioner API, the inbox, or the tables (the audit log's
ids and the outbox's versions apart)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

from local_node.app import create_app as create_node_app
from local_node.app import retention_service, review_service
from local_node.config import NoticesSection
from local_node.services.projection import Projector
from local_node.storage.children import ChildStore
from local_node.storage.outbox import OutboxStore
from local_node.transport import connect
from protocol import keys
from server_common.accounts import Role
from tests.conftest import DatabaseFactory
from tests.federation import running_hub, running_node
from tests.local_node.test_node_notices import ESX, ESX_FEED, _feed, mia_watched, movers, service
from tests.server_common.accounts_helpers import bearer_headers


async def test_a_child_merged_into_a_purged_one_is_purged_with_it(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """Izzy's education record was merged into Isabella's health record (one child).
    Isabella died at five; seven years on her record is purged. The absorbed record is
    the same child: it goes too, not back into the index as a child of its own with her
    name, birthday and old address, shown to whoever opens its local id."""
    async with running_hub(await make_database(), tmp_path) as hub, \
            running_node(ESX, await make_database(), tmp_path, hub) as node:
        await _feed(node, tmp_path, "education",
                    "source_ref,upn,given_name,family_name,dob,sex,postcode,address_line\n"
                    "E1,,Izzy,Okafor,2015-03-14,F,BN1 1AA,1 Sea Road\n")
        await _feed(node, tmp_path, "health",
                    "source_ref,nhs_number,given_name,family_name,dob,sex,postcode,"
                    "address_line\n"
                    "H1,9434765919,Isabella,Okafor,2015-03-14,F,TN2 2BB,9 Hill Street\n")
        (item,) = await review_service(node.pool).open_items()
        survivor = await review_service(node.pool).accept(item["id"], "tester")
        absorbed = ({item["local_id"], item["candidate_id"]} - {survivor}).pop()
        async with node.pool.acquire() as conn, conn.transaction():
            await conn.execute("UPDATE children SET date_of_death = '2020-06-30'"
                               " WHERE local_id = $1", survivor)
            await Projector(ChildStore(), OutboxStore()).publish_changes(conn, [survivor])
        await node.publish()

        async with node.pool.acquire() as conn:  # as a receipt that refused a version
            await conn.execute("INSERT INTO publish_rejections (seq, local_id, code, message)"
                               " VALUES (1, $1, 'invalid_record', 'dob: 2015-03-14')", survivor)
        report = await retention_service(node.pool, node.config).run(date(2027, 6, 30))
        assert survivor in report.purged and absorbed in report.purged
        assert await node.fetchval("SELECT count(*) FROM publish_rejections") == 0
        for local_id in (survivor, absorbed):
            for table in ("children", "source_records", "involvements",
                          "child_blocking_keys", "review_items"):
                column = "local_id" if table != "review_items" else "candidate_id"
                assert await node.fetchval(
                    f"SELECT count(*) FROM {table} WHERE local_id = $1 OR {column} = $1",
                    local_id) == 0, (table, local_id)
        server = TestServer(create_node_app(node.config, publish=False), host="127.0.0.1")
        await server.start_server()
        try:
            olu = await bearer_headers(node.pool, "olu", Role.PRACTITIONER)
            async with aiohttp.ClientSession() as http, http.get(
                    str(server.make_url(f"/v1/children/{absorbed}")), headers=olu,
                    params={"purpose": "s47 enquiry"}) as resp:
                assert resp.status == 404
                assert "Okafor" not in await resp.text()
        finally:
            await server.close()
        await node.publish()
        assert await hub.fetchval("SELECT count(*) FROM records WHERE record IS NOT NULL") == 0


async def test_a_purged_childs_notices_and_watches_go_with_it(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """A watcher and the lead professional were told Mia went to West Sussex; then East
    Sussex shielded her, and the notice left their inboxes. Purging her record must not
    bring it back (her own flag and mark go with her), and nothing the node was told
    about her (the notice, who it went to, who watched her) stays once she is gone."""
    async with mia_watched(make_database, tmp_path) as w:
        esx, mia = w.esx, w.mia
        await _feed(esx, tmp_path, "services", ESX_FEED.replace(
            "dana.smith@esx.gov.uk,Y,N,N,N", "dana.smith@esx.gov.uk,Y,N,N,Y"))
        assert await w.inbox(w.tom) == [] and await w.inbox(w.dana) == []

        # born 2014-05-02: archived at 18, purged six years later
        report = await retention_service(esx.pool, esx.config).run(date(2038, 5, 2))
        assert mia in report.purged
        for who in (w.tom, w.dana, w.team):
            assert await w.inbox(who) == []
        assert await esx.fetchval(
            "SELECT count(*) FROM notices WHERE $1 = ANY(local_ids)", mia) == 0
        assert await esx.fetchval(
            "SELECT count(*) FROM child_watches WHERE local_id = $1", mia) == 0


async def test_a_notice_about_a_child_purged_before_it_arrived_is_not_kept(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """The hub wrote East Sussex a notice about Mia while its node was not fetching; by
    the time the node asks, it has purged her. The notice names West Sussex and its
    lead professional: nothing about her is kept, in any inbox."""
    async with movers(make_database, tmp_path) as (_hub, esx, _wsx), connect(
            esx.config.hub, ESX, keys.load_private_key(esx.config.key_file)) as client:
        notices = service(esx, NoticesSection(), client)
        mia = await esx.fetchval("SELECT local_id FROM children WHERE given_name = 'Mia'")
        report = await retention_service(esx.pool, esx.config).run(date(2038, 5, 2))
        assert mia in report.purged
        await notices.fetch()
        assert await esx.fetchval(
            "SELECT count(*) FROM notices WHERE $1 = ANY(local_ids)", mia) == 0
        assert await esx.fetchval("SELECT count(*) FROM notice_deliveries") == 0


async def test_a_child_past_its_archive_date_is_out_of_search_before_the_job_runs(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """A health feed still lists Omar, 26 now; the job runs once a day. Practitioners
    do not find him in the meantime (nor a child who turned 18 since the last run); a
    child of the same feed is found, and a care leaver of 20 with consent too."""
    today = datetime.now(UTC).date()
    omar, amy, cara = (date(today.year - age, 1, 1) for age in (26, 9, 20))
    async with running_hub(await make_database(), tmp_path) as hub, \
            running_node(ESX, await make_database(), tmp_path, hub) as node:
        await _feed(node, tmp_path, "services",
                    "source_ref,given_name,family_name,dob,sex,postcode,service_type,"
                    "service_name,sensitive,consent,shielded\n"
                    f"S1,Omar,Haddad,{omar},M,BN1 1AA,social_care,Team A,N,N,N\n"
                    f"S2,Amy,Haddad,{amy},F,BN1 1AA,social_care,Team A,N,N,N\n"
                    f"S3,Cara,Haddad,{cara},F,BN1 1AA,leaving_care,Leaving Care,N,Y,N\n")
        server = TestServer(create_node_app(node.config, publish=False), host="127.0.0.1")
        await server.start_server()
        try:
            olu = await bearer_headers(node.pool, "olu", Role.PRACTITIONER)
            found = {}
            async with aiohttp.ClientSession() as http:
                for name, dob in (("Omar", omar), ("Amy", amy), ("Cara", cara)):
                    async with http.get(str(server.make_url("/v1/search")), headers=olu,
                                        params={"given_name": name, "family_name": "Haddad",
                                                "dob": dob.isoformat(),
                                                "purpose": "s47 enquiry"}) as resp:
                        assert resp.status == 200
                        found[name] = [h["given_name"] for h in (await resp.json())["results"]]
            assert found == {"Omar": [], "Amy": ["Amy"], "Cara": ["Cara"]}
        finally:
            await server.close()
