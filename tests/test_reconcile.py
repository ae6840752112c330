"""Anti-entropy end to end: a council publishes, the hub's copy is then damaged in
PostgreSQL (rows deleted, bytes, digests, columns and versions changed) and the node
loses a child; ``local-node reconcile`` finds exactly those records through bucket
digests and republishes only them through the signed batch path."""

from __future__ import annotations

import asyncio
import dataclasses
import doctest
import math
import os
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from local_node.app import create_app, open_publisher, reconciler
from local_node.config import ReconcileSection
from local_node.services import reconcile as reconcile_module
from local_node.services.reconcile import plan_repair
from protocol import encoding
from protocol.anti_entropy import DAMAGED, DELETED, LIVE, HeldEntry
from protocol.errors import ErrorCode
from server_common.config import Duration
from server_common.web import error_response
from tests.conftest import DatabaseFactory
from tests.federation import Hub, Node, running_hub, running_node
from tests.national_hub.test_health import Refusal, refusing_proxy
from tests.processes import script

ESX = "E10000011"


# the `feeds` fixture (tests/conftest.py) writes this population once
pytestmark = pytest.mark.feeds([ESX], 120, seed=11)


async def _published(node: Node, feeds: Path) -> list[str]:
    for feed in ("education", "health", "services"):
        assert (await node.ingest(feed, feeds / ESX / f"{feed}.csv")).errors == []
    report = await node.publish()
    assert report.records_rejected == 0
    return sorted(await node.projection())


async def _hub_state(hub: Hub) -> dict[str, tuple[int, str]]:
    """local_id → (version, digest) of every live row the hub holds *intact*."""
    async with hub.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT local_id, version, digest FROM records r"
            " WHERE council_code = $1 AND record IS NOT NULL AND record_intact(r)", ESX)
    return {r["local_id"]: (r["version"], r["digest"]) for r in rows}


async def _node_state(node: Node) -> dict[str, tuple[int, str]]:
    async with node.pool.acquire() as conn:
        rows = await conn.fetch("SELECT local_id, published_version, published_digest"
                                " FROM children WHERE published_digest IS NOT NULL")
    return {r["local_id"]: (r["published_version"], r["published_digest"]) for r in rows}


async def _cli(node: Node, hub: Hub, *args: str,
               **settings: str) -> tuple[int | None, str, str]:
    """The console script in a child process, so this loop keeps serving the hub (at
    the node's hub.url: a proxy, maybe), with ``LOCAL_NODE__…`` ``settings`` besides."""
    env = dict(os.environ) | {
        "LOCAL_NODE__DATABASE__URL": str(node.config.database.url),
        "LOCAL_NODE__COUNCIL__CODE": ESX,
        "LOCAL_NODE__COUNCIL__KEY_FILE": str(node.config.key_file),
        "LOCAL_NODE__HUB__URL": node.config.hub.url,
        "LOCAL_NODE__HUB__PUBLIC_KEY_FILE": str(hub.public_key_file),
    } | {f"LOCAL_NODE__{name.upper()}": value for name, value in settings.items()}
    proc = await asyncio.create_subprocess_exec(
        script("local-node"), *args, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


async def _run_cli(node: Node, hub: Hub, *args: str) -> str:
    code, out, err = await _cli(node, hub, *args)
    assert code == 0, err + out
    return out


async def test_reconcile_republishes_exactly_what_the_hub_lost_or_damaged(
        make_database: DatabaseFactory, tmp_path: Path, feeds: Path) -> None:
    async with running_hub(await make_database(), tmp_path) as hub, \
            running_node(ESX, await make_database(), tmp_path, hub) as node:
        ids = await _published(node, feeds)
        assert len(ids) > 40
        assert await _hub_state(hub) == await _node_state(node)

        # Nothing wrong yet: every bucket agrees, nothing is sent.
        first = await _run_cli(node, hub, "reconcile")
        assert "0 differ" in first and "republished 0 record(s)" in first

        before = await _node_state(node)
        gone, bytes_, digest, name, dob, ahead, tomb, lost = (
            ids[0:3], ids[3:5], ids[5], ids[6], ids[7], ids[8], ids[9], ids[10])
        async with hub.pool.acquire() as conn:
            await conn.execute("DELETE FROM records WHERE local_id = ANY($1::text[])", gone)
            await conn.execute("UPDATE records SET record = record || '\\x00'::bytea"
                               " WHERE local_id = ANY($1::text[])", bytes_)
            await conn.execute("UPDATE records SET digest = repeat('0', 64)"
                               " WHERE local_id = $1", digest)
            await conn.execute("UPDATE records SET given_name = 'Mallory' WHERE local_id = $1",
                               name)
            await conn.execute("UPDATE records SET dob = dob + 1 WHERE local_id = $1", dob)
            await conn.execute("UPDATE records SET version = version + 5 WHERE local_id = $1",
                               ahead)
            await conn.execute("UPDATE records SET record = NULL, digest = NULL"
                               " WHERE local_id = $1", tomb)
            true_name = await conn.fetchval(
                "SELECT family_name FROM records WHERE local_id = $1", name)
        # The node loses a child the hub still holds (deleted there outside the outbox).
        async with node.pool.acquire() as conn, conn.transaction():
            for table in ("child_blocking_keys", "source_records", "involvements"):
                await conn.execute(f"DELETE FROM {table} WHERE local_id = $1", lost)
            await conn.execute("DELETE FROM review_items WHERE $1 IN (local_id, candidate_id)",
                               lost)
            await conn.execute("DELETE FROM children WHERE local_id = $1", lost)
        head_before = await node.fetchval("SELECT max(seq) FROM sent_batches")

        out = await _run_cli(node, hub, "reconcile")

        version = {lid: v for lid, (v, _) in before.items()}
        expected = {  # the version the node published, unless the hub holds it already
            **{lid: ("upsert", version[lid], "missing") for lid in gone},
            **{lid: ("upsert", version[lid], "damaged")
               for lid in [*bytes_, digest, name, dob]},
            ahead: ("upsert", version[ahead] + 6, "ahead"),  # the hub holds version + 5
            tomb: ("upsert", version[tomb] + 1, "deleted"),  # a tombstone at the version
            lost: ("delete", version[lost] + 1, "extra"),
        }
        for lid, (op, sent, reason) in expected.items():
            assert f"{op} {lid} version {sent} ({reason})" in out, out
        assert f"republished {len(expected)} record(s)" in out

        # Only the differing records travelled, in new signed batches.
        sent = await node.fetchval(
            "SELECT sum(op_count) FROM sent_batches WHERE seq > $1", head_before)
        assert sent == len(expected)
        assert await node.fetchval(
            "SELECT count(*) FROM sent_batches WHERE receipt IS NULL OR applied <> op_count") == 0

        # The hub equals the node's projection again, by digest, every row intact.
        node_state = await _node_state(node)
        assert lost not in node_state
        assert await _hub_state(hub) == node_state
        assert await hub.fetchval("SELECT count(*) FROM records r WHERE record IS NOT NULL"
                                  " AND NOT record_intact(r)") == 0
        assert await hub.fetchval("SELECT record IS NULL FROM records WHERE local_id = $1",
                                  lost)
        assert await hub.fetchval("SELECT family_name FROM records WHERE local_id = $1",
                                  name) == true_name
        # Versions moved only where the hub's version forced it.
        moved = {lid for lid in node_state if node_state[lid] != before[lid]}
        assert moved == {ahead, tomb}

        again = await _run_cli(node, hub, "reconcile")
        assert "0 differ" in again and "republished 0 record(s)" in again


async def test_a_child_changed_while_reconciling_is_left_to_the_publisher(
        make_database: DatabaseFactory, tmp_path: Path, feeds: Path) -> None:
    """An op on its way (pending in the outbox) is never second-guessed by a repair."""
    async with running_hub(await make_database(), tmp_path) as hub, \
            running_node(ESX, await make_database(), tmp_path, hub) as node:
        ids = await _published(node, feeds)
        async with hub.pool.acquire() as conn:
            await conn.execute("DELETE FROM records WHERE local_id = ANY($1::text[])", ids[:2])
        async with node.publisher() as publisher:
            service = reconciler(node.pool, publisher)
            # a pending op for ids[0] appears after the node took its snapshot
            original = service.store.lock_published

            async def racing(conn: asyncpg.Connection, local_ids: list[str]
                             ) -> dict[str, tuple[int, str | None]]:
                await conn.execute(
                    "INSERT INTO outbox (local_id, version, op) VALUES ($1, 2, 'delete')", ids[0])
                return await original(conn, local_ids)

            service.store.lock_published = racing  # type: ignore[method-assign]
            report = await service.reconcile()
        assert report.skipped == [ids[0]]
        assert [(r.local_id, r.reason) for r in report.repairs] == [(ids[1], "missing")]


async def test_a_record_the_hub_rejected_is_not_sent_again(
        make_database: DatabaseFactory, tmp_path: Path, feeds: Path) -> None:
    async with running_hub(await make_database(), tmp_path) as hub, \
            running_node(ESX, await make_database(), tmp_path, hub) as node:
        ids = await _published(node, feeds)
        # A node bug publishes bytes the hub refuses (an NHS number failing its check).
        async with node.pool.acquire() as conn, conn.transaction():
            version, data = await conn.fetchrow(
                "SELECT version, record FROM outbox WHERE local_id = $1 AND op = 'upsert'"
                " ORDER BY id DESC LIMIT 1", ids[0])
            bad = encoding.pack(encoding.unpack(data) | {"nhs_number": "9434765918"})
            await conn.execute("INSERT INTO outbox (local_id, version, op, record, digest)"
                               " VALUES ($1, $2, 'upsert', $3, $4)", ids[0], version + 1, bad,
                               encoding.sha256_hex(bad))
            await conn.execute("UPDATE children SET published_version = $2,"
                               " published_digest = $3 WHERE local_id = $1", ids[0],
                               version + 1, encoding.sha256_hex(bad))
        assert (await node.publish()).records_rejected == 1
        for _ in range(2):
            async with node.publisher() as publisher:
                report = await reconciler(node.pool, publisher).reconcile()
            assert report.refused == [ids[0]] and report.repairs == []


async def test_reconcile_beside_a_running_publisher_of_another_process(
        make_database: DatabaseFactory, tmp_path: Path, feeds: Path) -> None:
    """Two processes building batches from one outbox (``local-node reconcile`` next to
    ``serve``) take turns: contiguous seqs, every op sent once, the hub in step."""
    async with running_hub(await make_database(), tmp_path) as hub, \
            running_node(ESX, await make_database(), tmp_path, hub, batch_size=20) as node:
        for feed in ("education", "health", "services"):
            assert (await node.ingest(feed, feeds / ESX / f"{feed}.csv")).errors == []
        other_pool = await asyncpg.create_pool(str(node.config.database.url), min_size=1,
                                               max_size=4)
        assert other_pool is not None
        try:
            async with node.publisher() as serving, \
                    open_publisher(node.config, other_pool, max_attempts=5) as separate:
                await asyncio.gather(serving.publish_all(),
                                     reconciler(other_pool, separate).reconcile())
        finally:
            await other_pool.close()
        seqs = [r["seq"] for r in await node.pool.fetch("SELECT seq FROM sent_batches"
                                                        " ORDER BY seq")]
        assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) > 3
        assert await node.fetchval("SELECT count(*) FROM outbox WHERE batch_seq IS NULL") == 0
        assert await _hub_state(hub) == await _node_state(node)


async def test_serve_reconciles_on_its_schedule(make_database: DatabaseFactory, tmp_path: Path,
                                               feeds: Path) -> None:
    async with running_hub(await make_database(), tmp_path) as hub, \
            running_node(ESX, await make_database(), tmp_path, hub) as node:
        ids = await _published(node, feeds)
        async with hub.pool.acquire() as conn:
            await conn.execute("DELETE FROM records WHERE local_id = $1", ids[0])
            await conn.execute("UPDATE records SET postcode = 'ZZ1 1ZZ' WHERE local_id = $1",
                               ids[1])
        config = dataclasses.replace(node.config,
                                     reconcile=ReconcileSection(interval=Duration(0.2)))
        server = TestServer(create_app(config), host="127.0.0.1")
        await server.start_server()
        try:
            for _ in range(300):  # until the schedule has run (bounded: fails, not hangs)
                if await _hub_state(hub) == await _node_state(node):
                    break
                await asyncio.sleep(0.1)
        finally:
            await server.close()
        assert await _hub_state(hub) == await _node_state(node)
        assert await hub.fetchval("SELECT count(*) FROM records WHERE council_code = $1"
                                  " AND record IS NOT NULL", ESX) == len(ids)


@pytest.mark.parametrize(("mine", "theirs", "used", "expected"), [
    ((3, "d"), None, 3, ("upsert", 3, "missing")),
    ((3, "d"), HeldEntry("X", 3, LIVE, "d"), 3, None),
    ((3, "d"), HeldEntry("X", 2, LIVE, "o"), 3, ("upsert", 3, "stale")),
    ((3, "d"), HeldEntry("X", 3, DAMAGED), 3, ("upsert", 3, "damaged")),
    ((3, "d"), HeldEntry("X", 3, LIVE, "o"), 3, ("upsert", 4, "differs")),
    ((3, "d"), HeldEntry("X", 9, LIVE, "d"), 3, ("upsert", 10, "ahead")),
    ((3, "d"), HeldEntry("X", 3, DELETED), 3, ("upsert", 4, "deleted")),
    ((3, "d"), HeldEntry("X", 1, DELETED), 3, ("upsert", 3, "deleted")),
    (None, HeldEntry("X", 3, LIVE, "d"), 4, ("delete", 5, "extra")),
    (None, HeldEntry("X", 3, DAMAGED), 0, ("delete", 4, "extra")),
    (None, HeldEntry("X", 3, DELETED), 4, None),
    (None, None, 4, None),
])
def test_plan_repair(mine: tuple[int, str] | None, theirs: HeldEntry | None, used: int,
                     expected: tuple[str, int, str] | None) -> None:
    repair = plan_repair(mine, theirs, used)
    assert (None if repair is None else (repair.op, repair.version, repair.reason)) == expected


async def test_a_node_holding_far_fewer_records_asks_in_enough_buckets(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """A node that lost its records (0 of them: ``bits = 0``) reconciling with a hub that
    holds thousands: the hub refuses so few bits, the node asks again in the hub's
    ``min_bits`` and then in buckets of ~32 of the hub's records, and removes them."""
    async with running_hub(await make_database(), tmp_path) as hub, \
            running_node(ESX, await make_database(), tmp_path, hub) as node:
        async with hub.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO records (council_code, local_id, version, record, digest,"
                " batch_seq, fingerprint) SELECT $1, 'R' || g, 1, '\\x00'::bytea,"
                " repeat('a', 64), 1, record_fingerprint(NULL, NULL, NULL, NULL, NULL, NULL,"
                " NULL, false, NULL, NULL, NULL) FROM generate_series(1, 3000) g", ESX)
        async with node.publisher() as publisher:
            report = await reconciler(node.pool, publisher).reconcile()
        assert (report.node_records, report.hub_records, report.bits) == (0, 3000, 7)
        assert report.counts() == {"extra": 3000}
        assert await hub.fetchval("SELECT count(*) FROM records WHERE council_code = $1"
                                  " AND record IS NOT NULL", ESX) == 0


def drill_downs_refused(times: float) -> Refusal:
    """The first ``times`` drill-downs answered as a hub whose allowance for them is
    spent answers (429 ``rate_limited`` with Retry-After: 1 s, in the header and the
    body); every other request passes."""
    left = [times]

    def refusal(request: web.Request) -> web.Response | None:
        if not request.path.endswith("/digests/records") or left[0] <= 0:
            return None
        left[0] -= 1
        response = error_response(429, ErrorCode.RATE_LIMITED, "rate limit exceeded; wait 1 s",
                                  retryable=True, detail={"retry_after": 1})
        response.headers["Retry-After"] = "1"
        return response

    return refusal


async def _lose_three(node: Node, hub: Hub, feeds: Path) -> list[str]:
    """The hub loses three of the node's records: a reconcile must drill down."""
    gone = (await _published(node, feeds))[:3]
    async with hub.pool.acquire() as conn:
        await conn.execute("DELETE FROM records WHERE local_id = ANY($1::text[])", gone)
    return gone


async def test_a_reconcile_told_to_wait_waits_and_completes(
        make_database: DatabaseFactory, tmp_path: Path, feeds: Path) -> None:
    """The hub's drill-down allowance is sized to one reconcile, so a node may meet its
    429: the reconcile waits as Retry-After says, asks again and finishes the job."""
    async with running_hub(await make_database(), tmp_path) as hub, \
            refusing_proxy(hub.url, drill_downs_refused(1)) as proxy, \
            running_node(ESX, await make_database(), tmp_path, hub,
                         hub_url=proxy.url) as node:
        gone = await _lose_three(node, hub, feeds)
        out = await _run_cli(node, hub, "reconcile")
        assert proxy.refused == 1
        assert "waited 1 s for the hub's anti-entropy allowance" in out
        assert "republished 3 record(s): 3 missing" in out, out
        assert set(gone) <= set(await _hub_state(hub))
        assert await _hub_state(hub) == await _node_state(node)


async def test_a_hub_that_keeps_refusing_ends_the_reconcile_with_a_clear_error(
        make_database: DatabaseFactory, tmp_path: Path, feeds: Path) -> None:
    """Waiting is bounded (``reconcile.max_wait``): past it the reconcile stops with
    ``rate_limited`` and says what to do, exit 1, nothing half sent."""
    async with running_hub(await make_database(), tmp_path) as hub, \
            refusing_proxy(hub.url, drill_downs_refused(math.inf)) as proxy, \
            running_node(ESX, await make_database(), tmp_path, hub,
                         hub_url=proxy.url) as node:
        gone = await _lose_three(node, hub, feeds)
        head = await node.fetchval("SELECT max(seq) FROM sent_batches")
        code, _, err = await _cli(node, hub, "reconcile", reconcile__max_wait="3s")
        assert code == 1 and "Traceback" not in err, err
        assert ("rate_limited: the hub still refuses this council's anti-entropy requests "
                "as over its allowance after 3 s of waiting (reconcile.max_wait 3 s)") in err
        assert "reconcile again later" in err
        assert proxy.refused == 4  # asked again after 1, 2 and 3 s of waiting, then no more
        assert not set(gone) & set(await _hub_state(hub))
        assert await node.fetchval("SELECT max(seq) FROM sent_batches") == head


def test_retry_after_doctests() -> None:
    result = doctest.testmod(reconcile_module)
    assert result.failed == 0 and result.attempted > 0
