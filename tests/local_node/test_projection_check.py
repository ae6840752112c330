"""The projection publishes only what the hub's record checks accept
(``ChildRecord.from_wire``): a child the hub would refuse stays out of the outbox, and
the others of the same call go in."""

from __future__ import annotations

from datetime import date, timedelta

import asyncpg

from local_node.app import PACKAGE
from local_node.services.projection import Projector, project
from local_node.storage.children import ChildRow, ChildStore
from local_node.storage.outbox import OutboxStore
from protocol import encoding
from protocol.records import ChildRecord
from tests.conftest import DatabaseFactory
from tests.hub_harness import upgrade


async def test_a_record_the_hub_refuses_is_not_published(
        make_database: DatabaseFactory) -> None:
    url = await make_database()
    await upgrade(url, PACKAGE)
    store = ChildStore()
    sound = ChildRow("L000000001", "Amara", "Okafor", date(2015, 3, 14), sex=2,
                     nhs_number="9434765919", postcode="LS1 4AB")
    # born tomorrow: the feed never lets this through, the hub refuses it
    unborn = ChildRow("L000000002", "Ben", "Okafor", date.today() + timedelta(days=1))
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await store.upsert(conn, [sound, unborn])
            written = await Projector(store, OutboxStore()).publish_children(
                conn, [sound, unborn])
        rows = await conn.fetch("SELECT local_id, record, digest FROM outbox")
    finally:
        await conn.close()
    assert written == 1
    [row] = rows
    assert row["local_id"] == "L000000001"
    assert ChildRecord.from_wire(encoding.unpack(row["record"])) == project(sound, [])
    assert row["digest"] == encoding.sha256_hex(row["record"])
