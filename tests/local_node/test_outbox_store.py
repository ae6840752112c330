"""The outbox store against a real PostgreSQL: which pending entries a batch carries,
and marking them sent with the entries they supersede."""

from __future__ import annotations

import asyncpg

from local_node.app import PACKAGE
from local_node.storage.outbox import ASSIGN_SQL, PENDING_SQL, OutboxStore
from tests.conftest import DatabaseFactory
from tests.hub_harness import upgrade
from tests.plans import generic_plan


async def _published_then_loaded(conn: asyncpg.Connection) -> None:
    """300 children's entries sent and analysed (what the statistics say: nothing
    pending), then four entries of a new load pending."""
    store = OutboxStore()
    sent: list[tuple[str, int, str, bytes | None, str | None]] = [
        (f"L{i:09}", 1, "upsert", b"r", "d") for i in range(300)]
    await store.add(conn, sent)
    await conn.execute("UPDATE outbox SET batch_seq = 1")
    await conn.execute("ANALYZE outbox")
    await store.add(conn, [("L000000001", 2, "upsert", b"r", "d"),
                           ("L000000002", 2, "upsert", b"r", "d"),
                           ("L000000001", 3, "delete", None, None),
                           ("L000000003", 2, "upsert", b"r", "d")])


async def _pending(conn: asyncpg.Connection) -> list[tuple[str, int]]:
    return [(r["local_id"], r["version"]) for r in await conn.fetch(
        "SELECT local_id, version FROM outbox WHERE batch_seq IS NULL ORDER BY id")]


async def test_a_batch_carries_each_child_s_newest_pending_entry_whatever_the_statistics(
        make_database: DatabaseFactory) -> None:
    """The entries a batch carries are the oldest pending ones that are their child's
    newest, and whether a newer one is pending is asked of the child's own entries in
    either plan, however stale the statistics. As a plain NOT EXISTS, with statistics
    showing nothing pending, both plans compared every pending entry with every other (a
    5,000-entry batch out of 36,369 pending had not been read after four minutes)."""
    url = await make_database()
    await upgrade(url, PACKAGE)
    conn = await asyncpg.connect(url)
    try:
        await _published_then_loaded(conn)
        entries = await OutboxStore().pending(conn, 10)
        custom = "\n".join(r[0] for r in await conn.fetch(
            "EXPLAIN " + PENDING_SQL.replace("$1", "10")))
        generic = await generic_plan(conn, "bigint", PENDING_SQL, "10")
    finally:
        await conn.close()
    # L1's version 2 is superseded by its version 3
    assert [(e.local_id, e.version, e.op) for e in entries] == [
        ("L000000002", 2, "upsert"), ("L000000001", 3, "delete"), ("L000000003", 2, "upsert")]
    for plan in (custom, generic):
        assert "Anti Join" not in plan, plan
        assert "Index Cond: ((local_id = o.local_id) AND (id > o.id))" in plan, plan


async def test_a_batch_marks_its_entries_and_the_ones_they_supersede_whatever_plan_is_kept(
        make_database: DatabaseFactory) -> None:
    """A batch's entries are marked sent with their children's older pending entries, and
    looked up by the list, in the plan a connection keeps after five batches too. As
    ``id = ANY($1)`` and a join, a plan made while the statistics showed nothing pending
    walked every pending entry and searched the list for each (2.3 s instead of 0.2 for
    a 5,000-entry batch with 36,369 entries pending)."""
    url = await make_database()
    await upgrade(url, PACKAGE)
    store = OutboxStore()
    conn = await asyncpg.connect(url)
    try:
        await _published_then_loaded(conn)
        entries = await store.pending(conn, 2)
        assert [(e.local_id, e.version) for e in entries] == [("L000000002", 2),
                                                               ("L000000001", 3)]
        await store.assign(conn, [e.id for e in entries], 2)
        # L1's version 2 went with its version 3, which supersedes it; L3 waits
        assert await _pending(conn) == [("L000000003", 2)]
        assert [tuple(r) for r in await conn.fetch(
            "SELECT local_id, version FROM outbox WHERE batch_seq = 2 ORDER BY id")] == [
            ("L000000001", 2), ("L000000002", 2), ("L000000001", 3)]
        plan = await generic_plan(conn, "bigint[], bigint", ASSIGN_SQL, "'{301,303}', 2")
    finally:
        await conn.close()
    assert "Function Scan on unnest w" in plan and "ANY" not in plan, plan
    assert "Index Cond: (id = w.id)" in plan, plan
    assert "outbox_pending" not in plan, plan  # the child's entries, not every pending one
