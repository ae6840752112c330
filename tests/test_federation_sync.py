"""Three councils ingest synthetic feeds and publish over real HTTP; the hub ends up
holding exactly each node's published projection, and links movers by NHS number."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from protocol import encoding
from protocol.records import ChildRecord
from tests.conftest import DatabaseFactory
from tests.federation import COUNCILS, running_hub, running_node

# the `feeds` fixture (tests/conftest.py) writes this population once
pytestmark = pytest.mark.feeds(list(COUNCILS), 150, seed=7)


async def test_three_councils_publish_and_hub_matches_each_projection(
        make_database: DatabaseFactory, tmp_path: Path, feeds: Path) -> None:
    async with contextlib.AsyncExitStack() as stack:
        hub = await stack.enter_async_context(running_hub(await make_database(), tmp_path))
        nodes = [await stack.enter_async_context(
            running_node(code, await make_database(), tmp_path, hub, batch_size=50))
            for code in COUNCILS]
        for node in nodes:
            for feed in ("education", "health", "services"):
                report = await node.ingest(feed, feeds / node.code / f"{feed}.csv")
                assert report.errors == []
            published = await node.publish()
            assert published.records_rejected == 0
            assert published.batches_sent >= 2  # batch_size 200: several batches chained

        await hub.resolved()
        for node in nodes:
            projection = await node.projection()
            assert projection, "the node published something"
            assert await hub.digests(node.code) == projection
            # cursor and heartbeat agree with the node
            head = await node.fetchval("SELECT max(seq) FROM sent_batches")
            assert await hub.fetchval("SELECT cursor_seq FROM councils WHERE code = $1",
                                      node.code) == head
            assert await hub.fetchval(
                "SELECT head_seq FROM heartbeats WHERE council_code = $1", node.code) == head

        # a mover published by two councils with one NHS number is one national child
        shared = await hub.fetchval(
            "SELECT count(DISTINCT nhs_number) FROM records WHERE link_status = 'linked'")
        assert shared and shared > 0
        split = await hub.fetchval(
            "SELECT count(*) FROM (SELECT nhs_number FROM records WHERE nhs_number IS NOT NULL"
            " GROUP BY nhs_number HAVING count(DISTINCT national_id) > 1) s")
        assert split == 0

        # publishing again with nothing new sends nothing
        again = await nodes[0].publish()
        assert (again.batches_sent, again.records_sent) == (0, 0)


async def test_sensitive_service_without_consent_never_leaves_the_node(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    feed = tmp_path / "services.csv"
    feed.write_text(
        "source_ref,nhs_number,given_name,family_name,dob,sex,postcode,service_type,"
        "service_name,sensitive,consent,shielded\n"
        "S1,9434765919,Amelia,Okafor,2012-03-14,F,BN1 1AA,sexual_health,Clinic A,Y,N,N\n"
        "S2,4010232137,Ben,Okafor,2011-01-02,M,BN1 1AA,sexual_health,Clinic A,Y,Y,N\n"
        "S3,9876543210,Cara,Okafor,2010-05-06,F,BN1 1AA,social_care,Team B,N,,Y\n",
        encoding="utf-8")
    async with running_hub(await make_database(), tmp_path) as hub, \
            running_node("E10000011", await make_database(), tmp_path, hub) as node:
        report = await node.ingest("services", feed)
        assert report.errors == [] and report.rows_loaded == 3
        await node.publish()
        async with hub.pool.acquire() as conn:
            rows = await conn.fetch("SELECT record FROM records WHERE record IS NOT NULL")
        published = {r.given_name: r for r in
                     (ChildRecord.from_wire(encoding.unpack(row["record"])) for row in rows)}
        assert published["Amelia"].involvements == ()  # no consent: held locally only
        assert [i.service_type for i in published["Ben"].involvements] == ["sexual_health"]
        assert published["Cara"].shielded is True
        # the node still holds Amelia's involvement for its own practitioners
        assert await node.fetchval(
            "SELECT count(*) FROM involvements WHERE service_type = 'sexual_health'") == 2
