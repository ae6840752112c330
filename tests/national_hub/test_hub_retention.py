"""What the hub's retention (docs/design.md §3) hides and removes: an archived record is no
longer for practitioners' eyes on any path, notices included."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from national_hub.app import NOTICE_JOB
from national_hub.services.container import HubServices
from tests.conftest import DatabaseFactory
from tests.federation import Node, running_hub, running_node
from tests.test_notices_end_to_end import ESX_FEED, SERVICES

ESX, WSX = "E10000011", "E10000032"
# West Sussex's leaving-care team (with consent): a care leaver there, live to 25
WSX_CARE_LEAVER = SERVICES + (
    "W1,9434765919,Mia,Okafor,2014-05-02,F,RH10 1AA,leaving_care,Leaving Care,"
    "Pat Jones,Personal adviser,01293 000009,pat.jones@wsx.gov.uk,Y,N,Y,N\n")


async def _feed(node: Node, tmp_path: Path, text: str) -> None:
    path = tmp_path / f"{node.code}-services.csv"
    path.write_text(text, encoding="utf-8")
    assert (await node.ingest("services", path)).errors == []


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
        await _feed(esx, tmp_path, ESX_FEED)
        await esx.publish()
        await hub.resolved()
        await hub.server.app[NOTICE_JOB].drain()
        report = await HubServices(hub.config, hub.pool).retention.run(date(2032, 5, 2))
        mia = await esx.fetchval("SELECT local_id FROM children WHERE given_name = 'Mia'")
        assert mia in report.councils[ESX].archived

        await _feed(wsx, tmp_path, WSX_CARE_LEAVER)
        await wsx.publish()
        await hub.resolved()
        await hub.server.app[NOTICE_JOB].drain()
        assert await hub.fetchval(
            "SELECT count(DISTINCT national_id) FROM records WHERE nhs_number = '9434765919'"
        ) == 1  # one child: the records are linked
        told = await hub.fetchval(
            "SELECT array_agg(council_code || ': ' || events::text) FROM notices")
        assert told is None, told
