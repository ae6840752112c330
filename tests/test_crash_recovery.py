"""SIGKILL the hub, or a node, in the middle of publishing; restart it; the node
resumes by itself and the hub ends with exactly the node's projection: nothing
lost, nothing applied twice, no batch half-applied."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from protocol import keys
from tests.conftest import DatabaseFactory
from tests.federation import running_hub, running_node
from tests.polling import until
from tests.processes import Process, free_port, hub_process, node_env, script, wait_ready

ESX = "E10000011"


# the `feeds` fixture (tests/conftest.py) writes this population once
pytestmark = pytest.mark.feeds([ESX], 2500, seed=11)


@pytest.mark.parametrize("victim", ["hub", "node"])
async def test_kill_mid_publish_then_resume(make_database: DatabaseFactory, tmp_path: Path,
        feeds: Path,
                                            victim: str) -> None:
    hub_db, node_db = await make_database(), await make_database()
    # In-process hub only to migrate and enrol; the real hub runs as a process below.
    async with running_hub(hub_db, tmp_path) as setup_hub, \
            running_node(ESX, node_db, tmp_path, setup_hub) as node:
        for feed in ("education", "health"):
            await node.ingest(feed, feeds / ESX / f"{feed}.csv")
        # one op per child: entries superseded before sending are folded, not sent
        pending = await node.fetchval("SELECT count(DISTINCT local_id) FROM outbox")
        assert pending and pending > 1000
        await setup_hub.server.close()  # free its port; the process hub takes over

        port = free_port()
        hub_url = f"http://127.0.0.1:{port}"
        hub = hub_process(hub_db, port, tmp_path).start()
        env = node_env(ESX, node_db, node.config.key_file, hub_url,
                       keys.public_path_for(setup_hub.config.hub.key_file))
        publisher = Process([script("local-node"), "publish"], env, tmp_path / "node.log")
        try:
            wait_ready(hub_url)
            publisher.start()

            async def hub_seq() -> int:
                return int(await setup_hub.fetchval(
                    "SELECT cursor_seq FROM councils WHERE code = $1", ESX) or 0)

            await until(lambda: _ge(hub_seq, 3), "publishing to start")
            (hub if victim == "hub" else publisher).kill()
            killed_at = await hub_seq()
            await asyncio.sleep(1.0)
            if victim == "hub":
                hub.start()
                wait_ready(hub_url)
            else:
                publisher.start()

            async def synced() -> bool:
                depth = await node.fetchval("SELECT count(*) FROM outbox WHERE batch_seq IS NULL")
                head = await node.fetchval("SELECT coalesce(max(seq), 0) FROM sent_batches")
                waiting = await node.fetchval(
                    "SELECT count(*) FROM sent_batches WHERE receipt IS NULL")
                return (depth == 0 and waiting == 0 and head == await hub_seq()
                        and head > killed_at)

            await until(synced, "the node to catch up", limit=90)
        finally:
            publisher.kill()
            hub.kill()

        assert await setup_hub.digests(ESX) == await node.projection()
        async with setup_hub.pool.acquire() as conn:
            hub_batches = await conn.fetch("SELECT seq, hash, op_count, applied_count"
                                           " FROM batches ORDER BY seq")
        async with node.pool.acquire() as conn:
            node_batches = await conn.fetch("SELECT seq, hash, op_count FROM sent_batches"
                                            " ORDER BY seq")
            unreceipted = await conn.fetchval(
                "SELECT count(*) FROM sent_batches WHERE receipt IS NULL")
        # every batch exactly once, the same bytes on both sides, every op applied
        assert [(b["seq"], b["hash"]) for b in hub_batches] == \
            [(b["seq"], b["hash"]) for b in node_batches]
        assert [b["seq"] for b in hub_batches] == list(range(1, len(hub_batches) + 1))
        assert all(b["op_count"] == b["applied_count"] for b in hub_batches)
        assert sum(b["op_count"] for b in hub_batches) == pending
        assert unreceipted == 0


async def _ge(fn: Callable[[], Awaitable[int]], n: int) -> bool:
    with contextlib.suppress(Exception):
        return bool(await fn() >= n)
    return False
