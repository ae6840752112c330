"""Migration 017 on a hub that already holds keys: each record's row of
``record_key_sets`` lists exactly its ``record_keys`` rows, and ``record_keys`` is
indexed once, by its primary key (key, council_code, local_id)."""

from __future__ import annotations

import asyncpg

from national_hub.app import PACKAGE
from national_hub.storage import key_sets
from server_common import database
from tests.conftest import DatabaseFactory
from tests.hub_harness import upgrade_until
from tests.national_hub.helpers import key_tables_disagree

BEFORE = 16  # the last migration with record_keys' two indexes


async def test_a_hub_s_keys_are_carried_into_one_row_a_record(
        make_database: DatabaseFactory) -> None:
    conn = await asyncpg.connect(await make_database())
    try:
        # the hub as it was before 017 (what ``upgrade`` would apply, stopped there)
        await upgrade_until(conn, PACKAGE, BEFORE)
        await conn.executemany(
            "INSERT INTO record_keys (council_code, local_id, key) VALUES ($1, $2, $3)",
            [("E1", "A", "d:2015-03-04:JNS"), ("E1", "A", "n:9434765919"),
             ("E1", "B", "d:2015-03-04:JNS"), ("E2", "A", "u:B801200005001")])

        assert [m.version for m in await database.upgrade(conn, PACKAGE)][:1] == [BEFORE + 1]

        assert await key_sets.read(conn, [("E1", "A"), ("E1", "B"), ("E2", "A"), ("E2", "B")]) == {
            ("E1", "A"): {"d:2015-03-04:JNS", "n:9434765919"},
            ("E1", "B"): {"d:2015-03-04:JNS"}, ("E2", "A"): {"u:B801200005001"}}
        assert await key_tables_disagree(conn) == []
        indexes = await conn.fetch("SELECT indexdef FROM pg_indexes"
                                   " WHERE tablename = 'record_keys'")
        assert [r[0].split(" USING ")[1] for r in indexes] == [
            "btree (key, council_code, local_id)"]
    finally:
        await conn.close()
