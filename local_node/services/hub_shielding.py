"""Children another council shields, learnt from the hub (docs/design.md §6: shielding belongs to
the child, at the hub *and at every node*).

The node's own relations (merges, review pairs, NHS numbers and UPNs in its index) are
walked by :class:`ShieldStore`; what it cannot see is that council A shields the same
child whose unshielded record this council holds — the ContactPoint 2009 leak, a child
shielded in one source and not in another. The hub knows (its shield marks), and after
every heartbeat the node asks which of its local ids those are
(``GET /v1/councils/{code}/shielded``), marks them (``via`` = ``hub``) and carries the
marks to their local relations. Marks are never removed here, as everywhere else.
"""

from __future__ import annotations

import logging

import asyncpg

from local_node.services.projection import Projector
from local_node.storage.children import ChildStore
from local_node.storage.shielding import ShieldStore
from local_node.transport import HubClient
from protocol.errors import ErrorCode, SignpostError

log = logging.getLogger(__name__)


class HubShielding:
    def __init__(self, pool: asyncpg.Pool, client: HubClient, store: ShieldStore, *,
                 children: ChildStore, projector: Projector) -> None:
        self.pool = pool
        self.client = client
        self.store = store
        self.children = children
        self.projector = projector

    async def learn(self) -> int:
        """Fetch every page, mark what is new; returns how many children were newly
        marked (their relations included)."""
        local_ids: list[str] = []
        after: str | None = ""
        while after is not None:
            try:
                page, after = await self.client.get_shielded(after)
            except SignpostError as exc:
                if exc.code != ErrorCode.NOT_FOUND:
                    raise
                # a hub from before this endpoint: nothing to learn from it yet
                log.warning("the hub does not say which children other councils shield")
                return 0
            local_ids += page
        if not local_ids:
            return 0
        async with self.pool.acquire() as conn:
            # the marks first, on their own (holding no lock an ingest may wait for);
            # then their relations, walked under the index lock as every ingest does
            marked = await self.store.mark_from_hub(conn, local_ids)
            if marked:
                async with conn.transaction():
                    await self.children.lock_index(conn)
                    marked += await self.store.refresh(conn)
                    # their records go to the hub again, shielded (docs/security.md)
                    await self.projector.publish_changes(conn, marked)
        if marked:
            log.info("children shielded by another council marked",
                     extra={"marked": len(marked)})
        return len(marked)
