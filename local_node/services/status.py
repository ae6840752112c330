"""What ``local-node status`` and ``local-node index export`` report: the index, the
outbox, the key as the hub last saw it and the witnessing of the hub's audit log, read
from the stores for the command (which never touches storage itself)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from local_node.storage.children import ChildStore
from local_node.storage.key_status import KeyStatus, KeyStatusStore
from local_node.storage.outbox import OutboxStore
from local_node.storage.witness import Kept, WitnessState, WitnessStore


@dataclass(frozen=True, slots=True)
class Summary:
    children: int
    outbox: Any  # OutboxStore.summary's row: depth, head/receipted seq, last receipt…
    key: KeyStatus | None  # the key's expiry as the hub last reported it
    witness: WitnessState
    incomplete: tuple[int, dict[str, int]]  # children lacking a field, and per field


class NodeStatus:
    def __init__(self, pool: asyncpg.Pool, children: ChildStore, outbox: OutboxStore,
                 key_status: KeyStatusStore, witness: WitnessStore) -> None:
        self.pool = pool
        self.children = children
        self.outbox = outbox
        self.key_status = key_status
        self.witness = witness

    async def summary(self, kid: str | None) -> Summary:
        """The node's state; ``kid``: the council key in use (None: no key file)."""
        async with self.pool.acquire() as conn:
            key = await self.key_status.get(conn, kid) if kid else None
            witness = await self.witness.state(conn)
            return Summary(await self.children.count(conn), await self.outbox.summary(conn),
                           key, witness, await self.children.count_incomplete(conn))

    async def source_rows(self) -> list[asyncpg.Record]:
        """Every source row: local_id, source, source_ref, incomplete."""
        async with self.pool.acquire() as conn:
            return await self.children.export_sources(conn)

    async def cosigned(self) -> Kept | None:
        """The hub checkpoint this council last cosigned (None: none yet)."""
        async with self.pool.acquire() as conn:
            return await self.witness.latest(conn)
