"""ChildStore's upsert writes every field of ChildRow the projection does not own: a
field added to ChildRow and not listed is caught here, not dropped without a word."""

from __future__ import annotations

from dataclasses import asdict, fields
from datetime import date

import asyncpg

from local_node.app import PACKAGE
from local_node.storage.children import (
    CHILD_COLUMNS,
    INVOLVEMENT_COLUMNS,
    PROJECTION_COLUMNS,
    WRITE_COLUMNS,
    ChildRow,
    ChildStore,
)
from protocol.records import Involvement
from tests.conftest import DatabaseFactory
from tests.hub_harness import upgrade


def test_an_involvement_row_is_its_pointer_after_source_ref_and_child() -> None:
    # Ingest builds an InvolvementRow from an Involvement's fields by position.
    assert tuple(INVOLVEMENT_COLUMNS[3:]) == Involvement.__slots__
    assert INVOLVEMENT_COLUMNS[:3] == ["source", "source_ref", "local_id"]


def test_every_field_is_written_or_owned_by_the_projection() -> None:
    assert sorted(WRITE_COLUMNS + PROJECTION_COLUMNS) == sorted(CHILD_COLUMNS)
    assert not set(WRITE_COLUMNS) & set(PROJECTION_COLUMNS)


async def test_an_upsert_round_trips_every_written_field(
        make_database: DatabaseFactory) -> None:
    url = await make_database()
    await upgrade(url, PACKAGE)
    store = ChildStore()
    # every field away from its default, so a field left out reads back different
    child = ChildRow(
        local_id="L000000001", given_name="Amara", family_name="Okafor",
        dob=date(2015, 3, 14), sex=2, other_given_names="Ngozi",
        former_family_names=["Mensah"], address_line="1 High Street", postcode="LS1 4AB",
        nhs_number="9434765919", upn="A123456789012", parent_carer_name="Chi Okafor",
        parent_carer_phone="0113 496 0000", shielded=True, date_of_death=date(2020, 1, 1),
        merged_into="L000000002", incomplete="dob: blank")
    defaults = ChildRow("x", "x", "x", date(2000, 1, 1))
    assert all(getattr(child, f.name) != getattr(defaults, f.name) for f in fields(ChildRow)
               if f.name not in PROJECTION_COLUMNS)
    conn = await asyncpg.connect(url)
    try:
        # the child it was merged into, first: merged_into is a foreign key
        await store.upsert(conn, [ChildRow("L000000002", "Amara", "Okafor", child.dob)])
        await store.upsert(conn, [child])
        [back] = await store.get_many(conn, [child.local_id])
    finally:
        await conn.close()
    written = {k: v for k, v in asdict(back).items() if k not in PROJECTION_COLUMNS}
    assert written == {k: v for k, v in asdict(child).items() if k not in PROJECTION_COLUMNS}
