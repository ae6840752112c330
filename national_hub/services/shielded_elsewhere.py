"""Telling a council's node which of its children another council shields (docs/design.md §6).

Shielding belongs to the child at the hub *and at every node*: when council A shields
a child and council B holds an unshielded record of the same child (linked, in review
with it, separated from it, sharing its NHS number or UPN: the hub's shield marks),
B's own practitioners must not find B's record by where the child lives either. B's
node asks for these local ids after every heartbeat (``GET
/v1/councils/{code}/shielded``, docs/PROTOCOL.md §16) and marks them in its own index.

Only B's own local ids are answered, never which council shields them: the shielding
council's area is itself what must not leak.

``national-hub links shield`` makes every shield mark again from the shielded records
(:meth:`ShieldedElsewhere.mark_all`), once after upgrading to shield marks.
"""

from __future__ import annotations

import asyncpg

from national_hub.storage.resolution_queue import ResolutionQueueStore
from national_hub.storage.shielding import ShieldingStore
from protocol.errors import ValidationError
from protocol.records import is_local_id

PAGE = 5_000


class ShieldedElsewhere:
    def __init__(self, pool: asyncpg.Pool, store: ShieldingStore, *,
                 queue: ResolutionQueueStore) -> None:
        self.pool = pool
        self.store = store
        self.queue = queue

    async def mark_all(self) -> int:
        """Carry every shielded record's shielding to each record it is linked to, in
        review with, separated from or shares an NHS number or UPN with; the number of
        marks made. Holds the resolution queue's lock, so no resolver chunk runs beside."""
        async with self.pool.acquire() as conn, conn.transaction():
            await self.queue.lock(conn, wait=True)
            return await self.store.refresh_all(conn)

    async def page(self, council: str, after: str) -> tuple[list[str], str | None]:
        """One page of ``council``'s local ids shielded by another council, and the
        ``after`` of the next page (None when this was the last)."""
        if after and not is_local_id(after):
            raise ValidationError("after", "must be a local id (the last one of a page)")
        async with self.pool.acquire() as conn:
            local_ids = await self.store.shielded_elsewhere(conn, council, after, PAGE)
        return local_ids, (local_ids[-1] if len(local_ids) == PAGE else None)
