"""ChildStore's upsert writes every field of ChildRow the projection does not own: a
field added to ChildRow and not listed is caught here, not dropped without a word."""

from __future__ import annotations

from dataclasses import asdict, fields
from datetime import date

import asyncpg

from local_node.app import PACKAGE
from local_node.storage.children import (
    CHILD_COLUMNS,
    FIND_SQL,
    INVOLVEMENT_COLUMNS,
    PROJECTION_COLUMNS,
    WRITE_COLUMNS,
    ChildRow,
    ChildStore,
)
from protocol.records import Involvement
from tests.conftest import DatabaseFactory
from tests.hub_harness import upgrade
from tests.plans import generic_plan


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


async def test_a_chunk_s_certain_children_are_found_by_their_index_whatever_plan_is_kept(
        make_database: DatabaseFactory) -> None:
    """The children a chunk can be placed with for certain (NHS number, UPN, exact names
    and date of birth) are looked up by index, in the plan a connection keeps after five
    chunks too. With ``= ANY($1)`` and a join that plan compared every child with every
    value of the chunk: 29 s instead of 0.3 over a 20,000-child load."""
    url = await make_database()
    await upgrade(url, PACKAGE)
    store = ChildStore()
    born = date(2016, 5, 6)
    children = [ChildRow(f"L{i:09}", f"Given{i}", f"Family{i}", born) for i in range(300)]
    children += [
        ChildRow("L100000001", "Amara", "Okafor", date(2015, 3, 14), nhs_number="9434765919"),
        ChildRow("L100000002", "Kofi", "Mensah", date(2014, 1, 2), upn="A123456789012"),
        ChildRow("L100000003", "Ama", "Boateng", born),
        ChildRow("L100000004", "Ama", "Boateng", born, merged_into="L100000003")]
    conn = await asyncpg.connect(url)
    try:
        await store.upsert(conn, children)
        await conn.execute("ANALYZE children")
        found = await store.find(conn, nhs=["9434765919", "9434765870"], upn=["A123456789012"],
                                 name_dob=[("ama", "boateng", born)])
        plan = await generic_plan(
            conn, "text[], text[], text[], text[], date[], text[], int", FIND_SQL,
            "'{9434765919}', '{A123456789012}', '{ama}', '{boateng}', '{2016-05-06}', '{}', 50")
    finally:
        await conn.close()
    # a merged child is not found by its name: the child it was merged into is
    assert sorted(c.local_id for c in found) == ["L100000001", "L100000002", "L100000003"]
    for cond in ("Index Cond: (nhs_number = n.v)", "Index Cond: (upn = u.v)",
                 "Index Cond: ((lower(family_name) = k.f)"):  # one lookup a value
        assert cond in plan, (cond, plan)
