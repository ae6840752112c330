"""``national_hub.storage.key_sets``: a record's keys stay alike in both tables when two
transactions change them at once (a council's batch updating a record while another
council's shielding drops its location keys, which does not take that council's lock)."""

from __future__ import annotations

import asyncio

import asyncpg

from national_hub.app import PACKAGE
from national_hub.storage import key_sets
from server_common import database
from tests.conftest import DatabaseFactory
from tests.national_hub.helpers import key_tables_disagree

R = ("E1", "A")
BEFORE = {"d:2015-03-04:JNS", "dp:2015-03-04:BN1", "n:9434765919"}
UPDATED = {"d:2015-03-04:SMT", "dp:2015-03-04:TF1", "n:9434765919"}  # a new name, a move


async def test_a_change_made_meanwhile_is_read_before_another_is_written(
        make_database: DatabaseFactory) -> None:
    url = await make_database()
    first, second = await asyncpg.connect(url), await asyncpg.connect(url)
    try:
        await database.upgrade(first, PACKAGE)
        await key_sets.copy(first, R[0], {R[1]: BEFORE})

        # the council's batch: its new keys written, not yet committed
        batch = first.transaction()
        await batch.start()
        await key_sets.change(first, await key_sets.read(first, [R], lock=True),
                              {R: UPDATED})

        async def drop_location_keys() -> None:  # as shielding does, in its own transaction
            async with second.transaction():
                have = await key_sets.read(second, [R], lock=True)
                await key_sets.change(second, have, {
                    rk: {k for k in held if not k.startswith("dp:")}
                    for rk, held in have.items()})
        shielding = asyncio.create_task(drop_location_keys())
        await asyncio.sleep(0.3)
        assert not shielding.done()  # it waits for the batch's record
        await batch.commit()
        await shielding

        assert await key_sets.read(first, [R]) == {R: {"d:2015-03-04:SMT", "n:9434765919"}}
        assert await key_tables_disagree(first) == []
    finally:
        await first.close()
        await second.close()


async def test_a_record_with_no_keys_has_no_row_and_gains_and_loses_them(
        make_database: DatabaseFactory) -> None:
    """Names that give no key (punctuation only, no date of birth) and keys in any script."""
    conn = await asyncpg.connect(await make_database())
    try:
        await database.upgrade(conn, PACKAGE)
        await key_sets.copy(conn, "E1", {"A": set(), "B": {"dg:2015-03-04:李"}})
        assert await key_sets.read(conn, [("E1", "A"), ("E1", "B")]) == {
            ("E1", "B"): {"dg:2015-03-04:李"}}

        async with conn.transaction():
            have = await key_sets.read(conn, [("E1", "A"), ("E1", "B")], lock=True)
            await key_sets.change(conn, have, {("E1", "A"): {"nf:zoe:OBRN"}})
        assert await key_sets.read(conn, [("E1", "A"), ("E1", "B")]) == {
            ("E1", "A"): {"nf:zoe:OBRN"}}
        assert await key_tables_disagree(conn) == []
    finally:
        await conn.close()


async def test_copied_keys_are_found_by_key_as_by_record(make_database: DatabaseFactory) -> None:
    """``copy`` writes each record's row and PostgreSQL unnests it into ``record_keys``:
    every key of every record copied, in each council, is found by the key (the candidate
    reads) as by the record, and a record removed and copied again holds its new keys."""
    conn = await asyncpg.connect(await make_database())
    try:
        await database.upgrade(conn, PACKAGE)
        wanted = {("E1", "A"): BEFORE, ("E1", "B"): UPDATED, ("E2", "A"): {"u:A123456789012"}}
        await key_sets.copy(conn, "E1", {"A": BEFORE, "B": UPDATED, "C": set()})
        await key_sets.copy(conn, "E2", {"A": {"u:A123456789012"}})
        await key_sets.remove(conn, "E1", ["B"])
        await key_sets.copy(conn, "E1", {"B": {"dg:2015-03-04:zoe"}})
        wanted[("E1", "B")] = {"dg:2015-03-04:zoe"}

        by_key: dict[tuple[str, str], set[str]] = {}
        for r in await conn.fetch("SELECT council_code, local_id, key FROM record_keys"):
            by_key.setdefault((r["council_code"], r["local_id"]), set()).add(r["key"])
        assert by_key == wanted
        assert await key_sets.read(conn, list(wanted)) == wanted
        assert await key_tables_disagree(conn) == []
    finally:
        await conn.close()
