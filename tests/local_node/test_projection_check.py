"""The projection publishes only what the hub's record checks accept
(``ChildRecord.from_wire``): a child the hub would refuse stays out of the outbox, and
the others of the same call go in."""

from __future__ import annotations

import operator
from dataclasses import replace
from datetime import date, timedelta

import asyncpg
from hypothesis import given
from hypothesis import strategies as st

from local_node.app import PACKAGE
from local_node.services.projection import Projector, project, projected_wire
from local_node.storage.children import ChildRow, ChildStore, InvolvementRow
from local_node.storage.outbox import OutboxStore
from protocol import encoding
from protocol.records import ChildRecord, Involvement
from tests.conftest import DatabaseFactory
from tests.hub_harness import upgrade
from tests.strategies import child_records, involvements

_POINTER = operator.attrgetter(*Involvement.__slots__)


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


@given(record=child_records(), marked=st.booleans(), withheld=st.lists(involvements(),
                                                                      max_size=2))
def test_the_projected_map_is_the_records_own(record: ChildRecord, marked: bool,
                                              withheld: list[Involvement]) -> None:
    """The projection builds the wire map it packs, digests and checks straight from the
    child (``projected_wire``), not from a record built first: the bytes are the record's
    own, byte for byte, a sensitive pointer without consent left out as before."""
    rows = [InvolvementRow("health", f"R{i}", record.local_id, *_POINTER(inv))
            for i, inv in enumerate((*record.involvements,
                                     *(replace(w, sensitive=True, consent=False)
                                       for w in withheld)))]
    child = ChildRow(
        record.local_id, record.given_name, record.family_name, record.dob, sex=record.sex,
        other_given_names=record.other_given_names,
        former_family_names=list(record.former_family_names) or None,
        address_line=record.address_line, postcode=record.postcode,
        nhs_number=record.nhs_number, upn=record.upn,
        parent_carer_name=record.parent_carer_name,
        parent_carer_phone=record.parent_carer_phone, shielded=record.shielded,
        date_of_death=record.date_of_death)
    wire = projected_wire(child, rows, marked=marked)
    assert encoding.pack(wire) == encoding.pack(project(child, rows, marked=marked).to_wire())
    expected = replace(record, shielded=record.shielded or marked)
    assert encoding.pack(wire) == encoding.pack(expected.to_wire())
    assert ChildRecord.from_wire(wire) == ChildRecord.from_wire(expected.to_wire())
