"""Every child's blocking keys made again when the code makes other keys.

The node holds each child's blocking keys (``child_blocking_keys``), derived from who
the child is. When ``protocol.matching.blocking`` changes them (``KEY_SCHEME``
raised), a child keyed by the old scheme would never meet a new row through the keys
that changed, so ``local-node db upgrade`` makes them all again, and the node refuses
to serve or load until it has (``server_common.key_scheme_store``). A council's index
is small enough (a few million keys) to be keyed again in one transaction.
"""

from __future__ import annotations

import asyncpg

from local_node.services.ingest import child_fields, keys_for
from local_node.storage.children import ChildStore
from server_common import key_scheme_store


async def rekey(pool: asyncpg.Pool, children: ChildStore) -> int | None:
    """Make every keyed child's blocking keys again if they were made by another scheme
    than the code's: how many children were keyed, or None when their keys were already
    the code's. Under the index lock, so no feed, merge or retention run writes keys
    beside it."""
    async with pool.acquire() as conn, conn.transaction():
        await children.lock_index(conn)
        if not await key_scheme_store.stale(conn):
            return None
        keyed = await children.holding_keys(conn)
        await children.replace_all_blocking_keys(conn, [
            (key, child.local_id) for child in keyed
            for key in sorted(keys_for(child_fields(child)))])
        await key_scheme_store.record(conn)
    return len(keyed)
