"""The node's /metrics: outbox gauges read at each scrape, rejected records counted
from stored receipts, and failed hub calls by error code."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from aiohttp.test_utils import TestServer

from local_node.app import PACKAGE as NODE_PACKAGE
from local_node.app import create_app
from protocol import keys
from server_common.accounts import Role
from server_common.metrics import REQUEST_DURATION
from tests.conftest import DatabaseFactory
from tests.federation import node_config, running_hub
from tests.hub_harness import upgrade
from tests.scrape import scrape
from tests.server_common.accounts_helpers import bearer_headers

ESX = "E10000011"


async def test_unreachable_hub_counts_publish_errors(make_database: DatabaseFactory,
        tmp_path: Path) -> None:
    async with running_hub(await make_database(), tmp_path) as hub:
        url = await make_database()
        await upgrade(url, NODE_PACKAGE)
        prometheus = await bearer_headers(url, "prom", Role.OPERATOR)
        # nothing listens on port 9: every call to the hub fails as ``unavailable``
        config = node_config(ESX, url, tmp_path, hub, hub_url="http://127.0.0.1:9",
                             interval="0.05s", max_backoff="0.05s")
        keys.write_private_key(keys.generate(), config.key_file)
        server = TestServer(create_app(config), host="127.0.0.1")
        await server.start_server()
        try:
            base = str(server.make_url("")).rstrip("/")
            for _ in range(200):
                m = await scrape(base, prometheus)
                if (m.value("signpost_node_publish_errors_total", code="unavailable") or 0) >= 2:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"no publish errors counted:\n{m.text}")
            assert m.value("signpost_node_outbox_depth") == 0
            assert m.value("signpost_node_head_seq") == 0
            assert m.value("signpost_node_receipted_seq") == 0
            assert m.value("signpost_node_rejected_records_total") == 0
            # a scrape is timed once answered: the next one shows it
            timed = await scrape(base, prometheus)
            assert timed.value(REQUEST_DURATION + "_count", service="local_node",
                               method="GET", route="/metrics", status="200")

            # the counter is read from the rejections stored with receipts, at each scrape
            conn = await asyncpg.connect(url)
            try:
                await conn.execute("INSERT INTO publish_rejections (seq, local_id, code)"
                                   " VALUES (1, 'L1', 'invalid_record')")
            finally:
                await conn.close()
            rejected = await scrape(base, prometheus)
            assert rejected.value("signpost_node_rejected_records_total") == 1
        finally:
            await server.close()
