"""A node publishes to the hub through its own background publisher; both /metrics
then agree with each other and with the databases."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from aiohttp.test_utils import TestServer

import synthetic
from local_node.app import create_app
from server_common.accounts import Role
from tests.conftest import DatabaseFactory
from tests.federation import running_hub, running_node
from tests.scrape import Scrape, scrape
from tests.server_common.accounts_helpers import bearer_headers

ESX = "E10000011"


async def test_hub_and_node_metrics_after_a_publish(make_database: DatabaseFactory,
        tmp_path: Path) -> None:
    feeds = tmp_path / "feeds"
    synthetic.write_feeds(synthetic.generate_population([ESX], 120, seed=3), feeds)
    async with contextlib.AsyncExitStack() as stack:
        hub = await stack.enter_async_context(running_hub(await make_database(), tmp_path))
        node = await stack.enter_async_context(running_node(
            ESX, await make_database(), tmp_path, hub, batch_size=50, interval="0.05s",
            heartbeat_interval="0.05s"))
        for feed in ("education", "health", "services"):
            assert (await node.ingest(feed, feeds / ESX / f"{feed}.csv")).errors == []
        # one op per child is sent: entries superseded before sending are folded
        outbox = int(await node.fetchval("SELECT count(DISTINCT local_id) FROM outbox"))
        assert outbox > 100  # several batches of 50

        server = TestServer(create_app(node.config), host="127.0.0.1")
        await server.start_server()
        stack.push_async_callback(server.close)
        node_url = str(server.make_url("")).rstrip("/")
        prometheus = await bearer_headers(node.config.database.url, "prom", Role.OPERATOR)

        # the node publishes by itself; wait until everything is receipted and the
        # hub has heard a heartbeat saying so
        hub_m: Scrape | None = None
        for _ in range(400):
            node_m = await scrape(node_url, prometheus)
            head = node_m.value("signpost_node_head_seq")
            if (node_m.value("signpost_node_outbox_depth") == 0 and head
                    and node_m.value("signpost_node_receipted_seq") == head):
                hub_m = await scrape(hub.url, await hub.operator())
                if hub_m.value("signpost_council_lag_batches", council=ESX) == 0:
                    break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"never caught up:\n{node_m.text}")
        assert hub_m is not None

        head = await node.fetchval("SELECT max(seq) FROM sent_batches")
        assert node_m.value("signpost_node_head_seq") == head
        assert node_m.value("signpost_node_rejected_records_total") == 0
        assert node_m.series("signpost_node_publish_errors_total") == []

        assert hub_m.value("signpost_batches_total", council=ESX, outcome="applied") == head
        assert hub_m.value("signpost_records_total", council=ESX, result="applied") == outbox
        assert hub_m.value("signpost_records_total", council=ESX, result="rejected") == 0
        assert hub_m.series("signpost_batch_refusals_total") == []
        assert hub_m.value("signpost_council_status", council=ESX) == 0
        assert hub_m.value("signpost_council_outbox_depth", council=ESX) == 0
        assert hub_m.value("signpost_council_records", council=ESX) == len(
            await node.projection())
        age = hub_m.value("signpost_council_heartbeat_age_seconds", council=ESX)
        assert age is not None and age < 30
