"""A small in-test federation: the hub (see hub_harness) and council nodes with
their own databases, keys and publishers. Nothing of ours is mocked."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from local_node.app import PACKAGE as NODE_PACKAGE
from local_node.app import ingest_service, open_publisher
from local_node.config import NodeConfig
from local_node.services.ingest import IngestReport
from local_node.services.publisher import Publisher, PublishReport
from local_node.storage.outbox import OutboxStore
from protocol import keys
from server_common import config as config_module
from tests.hub_harness import COUNCILS, Hub, running_hub, upgrade

__all__ = ["COUNCILS", "Hub", "Node", "node_config", "running_hub", "running_node"]


@dataclass
class Node:
    code: str
    config: NodeConfig
    pool: asyncpg.Pool
    kid: str

    async def ingest(self, feed: str, path: Path) -> IngestReport:
        return await ingest_service(self.pool).ingest_file(feed, path)

    @contextlib.asynccontextmanager
    async def publisher(self, max_attempts: int | None = 3) -> AsyncIterator[Publisher]:
        async with open_publisher(self.config, self.pool, max_attempts=max_attempts) as pub:
            yield pub

    async def publish(self) -> PublishReport:
        async with self.publisher() as pub:
            report = await pub.publish_all()
            await pub.heartbeat()
            return report

    async def projection(self) -> dict[str, str]:
        async with self.pool.acquire() as conn:
            return await OutboxStore().published_projection(conn)

    async def fetchval(self, sql: str, *args: object) -> Any:
        async with self.pool.acquire() as conn:
            return await conn.fetchval(sql, *args)


def node_config(code: str, url: str, data_dir: Path, hub: Hub | None, hub_url: str | None = None,
                **publisher: object) -> NodeConfig:
    return config_module.load(NodeConfig, "TEST_NODE", None, {
        "council": {"code": code, "name": COUNCILS.get(code, code),
                    "key_file": str(data_dir / f"node-{code}" / "council_key.pem")},
        "database": {"url": url, "pool_max": 5},
        "hub": {"url": hub_url or (hub.url if hub else "http://127.0.0.1:9"),
                "public_key_file": str(hub.public_key_file) if hub else None, "timeout": "10s"},
        "publisher": {"batch_size": 200, "max_backoff": "0.5s", **publisher},
        "retention": {"interval": "0s"},  # tests drive retention with a date of their choosing
    }, environ={})


@contextlib.asynccontextmanager
async def running_node(code: str, url: str, data_dir: Path, hub: Hub,
                       hub_url: str | None = None, **publisher: object) -> AsyncIterator[Node]:
    """A node enrolled at ``hub``; it talks to ``hub_url`` if given (a proxy, say)."""
    await upgrade(url, NODE_PACKAGE)
    config = node_config(code, url, data_dir, hub, hub_url, **publisher)
    key = keys.generate()
    keys.write_private_key(key, config.key_file)
    kid = await hub.enrol(code, keys.public_pem(key.public_key()))
    pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
    assert pool is not None
    try:
        yield Node(code, config, pool, kid)
    finally:
        await pool.close()
