"""Publishing through a faulty link (bench/chaos FaultProxy between node and hub).

Found by the fault runs: when a copy of a node's signed request reaches the hub
before the request itself (a duplicating middlebox, a retrying proxy), the hub
rightly refuses the original as a replayed nonce, and the publisher took that as
final: ``local-node publish --once`` failed although nothing was wrong with the
batch. Each attempt is signed afresh with a new nonce and batches are idempotent,
so the publisher retries it; the hub ends with every record once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.chaos.proxy import FaultProxy
from tests.conftest import DatabaseFactory
from tests.federation import Hub, Node, running_hub, running_node

ESX = "E10000011"


# the `feeds` fixture (tests/conftest.py) writes this population once
pytestmark = pytest.mark.feeds([ESX], 120, seed=5)


@contextlib.asynccontextmanager
async def node_behind_proxy(make_database: DatabaseFactory, tmp_path: Path,
                            feeds: Path) -> AsyncIterator[tuple[Hub, FaultProxy, Node]]:
    """A hub, a fault proxy in front of it, and a node that talks to the hub through
    it with its education feed loaded (small batches: a chain to publish)."""
    async with running_hub(await make_database(), tmp_path) as hub:
        port = hub.server.port
        assert port is not None
        proxy = await FaultProxy([("127.0.0.1", port)]).start()
        try:
            async with running_node(ESX, await make_database(), tmp_path, hub,
                                    hub_url=proxy.url, batch_size=40) as node:
                await node.ingest("education", feeds / ESX / "education.csv")
                yield hub, proxy, node
        finally:
            await proxy.close()


@pytest.mark.parametrize("overtaken", [0, 1], ids=["cursor-read", "first-batch"])
async def test_a_request_overtaken_by_its_copy_is_sent_again(
        make_database: DatabaseFactory, tmp_path: Path, feeds: Path, overtaken: int) -> None:
    async with node_behind_proxy(make_database, tmp_path, feeds) as (hub, proxy, node):
        proxy.script = [None] * overtaken + ["overtake"]
        report = await node.publish()
        assert report.batches_sent >= 2  # a chain, the overtaken one included
        assert proxy.faults["overtake"] == 1
        assert proxy.statuses[401] == 1  # the original, refused as a replay
        assert await hub.digests(ESX) == await node.projection()
        assert await hub.fetchval(
            "SELECT sum(applied_count) FROM batches WHERE council_code = $1",
            ESX) == len(await node.projection())


async def test_a_cut_link_is_waited_out_and_logged_as_an_outage(
        make_database: DatabaseFactory, tmp_path: Path, feeds: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """The publishing loop with the link to the hub cut: retries used up, it says the
    hub is unreachable (a warning, not the error a refusal gets: nothing needs a
    person), keeps going, and delivers everything once the link is back."""
    async with node_behind_proxy(make_database, tmp_path, feeds) as (hub, proxy, node):
        proxy.cut(3.0)
        with caplog.at_level(logging.WARNING, logger="local_node.services.publisher"):
            async with node.publisher(max_attempts=2) as pub:
                loop = asyncio.create_task(pub.run_forever(0.2, 0.2))
                try:
                    for _ in range(300):
                        if await hub.digests(ESX) == await node.projection():
                            break
                        await asyncio.sleep(0.1)
                finally:
                    loop.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await loop
        assert await hub.digests(ESX) == await node.projection()
        messages = [r.getMessage() for r in caplog.records]
        assert any("hub unreachable" in m for m in messages), messages
        assert not any("refused publishing" in m for m in messages), messages
