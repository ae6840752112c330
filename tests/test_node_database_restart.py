"""A running publisher outlives its own database restarting.

Found by the fault runs: SIGKILL of PostgreSQL under ``local-node publish`` ended the
process with ``ConnectionDoesNotExistError`` (or a refused connection while it was
down); inside ``serve`` the publishing task would have died silently and the node
stopped publishing for good. Now the publisher logs that the database is
unavailable and carries on once it is back: the process stays up and the hub ends
with exactly the node's projection, changes made after the restart included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

import synthetic
from bench.chaos.postgres import KillablePostgres
from tests.conftest import DatabaseFactory
from tests.federation import running_hub, running_node
from tests.polling import until
from tests.processes import Process, node_env, script

ESX = "E10000011"


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_publisher_survives_its_database_being_killed(make_database: DatabaseFactory,
                                                            tmp_path: Path) -> None:
    synthetic.write_feeds(synthetic.generate_population([ESX], 400, seed=3), tmp_path / "feeds")
    feeds = tmp_path / "feeds" / ESX
    pg = await asyncio.to_thread(KillablePostgres)  # the node's own, killable server
    try:
        node_db = await pg.database("node")
        async with running_hub(await make_database(), tmp_path) as hub, \
                running_node(ESX, node_db, tmp_path, hub) as node:
            await node.ingest("education", feeds / "education.csv")
            env = node_env(ESX, node_db, node.config.key_file, hub.url, hub.public_key_file)
            publisher = Process([script("local-node"), "publish"], env,
                                tmp_path / "publisher.log").start()
            try:
                async def hub_seq() -> int:
                    return int(await hub.fetchval(
                        "SELECT cursor_seq FROM councils WHERE code = $1", ESX) or 0)

                await until(lambda: _positive(hub_seq), "publishing to start",
                            limit=60, interval=0.1)
                await asyncio.to_thread(pg.kill)
                await asyncio.sleep(1.5)  # the publisher polls its outbox meanwhile
                await asyncio.to_thread(pg.start)
                await node.ingest("health", feeds / "health.csv")  # (the pool reconnects)

                async def synced() -> bool:
                    return await hub.digests(ESX) == await node.projection()

                await until(synced, "the hub to hold the node's projection", limit=90, interval=0.1)
                assert publisher.alive(), (tmp_path / "publisher.log").read_text()[-3000:]
            finally:
                publisher.kill()
        log = (tmp_path / "publisher.log").read_text()
        assert "database unavailable; publishing resumes when it is back" in log
    finally:
        await asyncio.to_thread(pg.close)


async def _positive(fn: Callable[[], Awaitable[int]]) -> bool:
    return bool(await fn() > 0)
