"""The background resolver: national identity resolution off the batch path.

Batch intake writes a batch's records and their blocking keys, queues the records in
``resolution_queue`` in the same transaction, and answers the node at once. This
service drains the queue: each transaction claims one council's next chunk of
entries (one batch's records, typically), plans their national ids with
:class:`~national_hub.services.linking.Linker` (set-based, as it did per batch), writes
them and deletes the entries, so a crash loses nothing and resolves nothing twice.

Several hub processes may run it on one database. One transaction-scoped advisory
lock decides who resolves: national ids are only decided by one transaction at a
time, chunks are taken in the same order whoever takes them (``ResolutionQueueStore.claim``
decides which council goes next), and so two workers give
exactly the national children one would. Review decisions take that lock too. The
resolver writes a council's records only under the council's row lock, taken in code
order, which batch intake holds while it writes them: the two never deadlock.

A batch this process applies wakes the loop at once; another process's is seen
within ``resolver.interval``. ``drain()`` resolves until the queue is empty, which
is how tests, ``national-hub links drain`` and re-resolution wait for links.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import asyncpg

from national_hub.config import ResolverSection
from national_hub.services.linking import Candidate, Linker, identity_of
from national_hub.storage.councils import CouncilStore
from national_hub.storage.resolution_queue import ResolutionQueueStore
from national_hub.storage.shielding import ShieldingStore
from protocol.errors import NotFoundError
from protocol.matching import blocking_keys
from server_common import key_scheme_store
from server_common.gc_pause import paused_gc
from server_common.tasks import run_every, run_once

log = logging.getLogger(__name__)

REQUEUE_CHUNK = 5000  # records re-queued (and their keys rewritten) per transaction
MIN_CHUNK = 100  # below this a chunk's fixed costs (transaction, locks, queries) dominate
SMOOTHING = 0.3  # weight of the last chunk in the cost per record the next is sized by


def next_chunk_size(config: ResolverSection, seconds_per_record: float | None) -> int:
    """The next chunk's size: what the cost per record (smoothed over the last chunks)
    resolves in ``config.chunk_seconds``, between MIN_CHUNK and ``config.chunk``."""
    if config.chunk_seconds <= 0 or not seconds_per_record:
        return config.chunk
    return max(min(MIN_CHUNK, config.chunk),
               min(config.chunk, int(config.chunk_seconds / seconds_per_record)))


class Resolver:
    def __init__(self, pool: asyncpg.Pool, linker: Linker,
                 config: ResolverSection | None = None, *,
                 queue: ResolutionQueueStore | None = None,
                 councils: CouncilStore | None = None) -> None:
        self.pool = pool
        self.linker = linker
        self.config = config or ResolverSection()
        self.queue = queue or ResolutionQueueStore()
        self.councils = councils or CouncilStore()
        self.shielding = ShieldingStore()
        self._wake = asyncio.Event()
        self.chunk_size = self.config.chunk  # adapted after every chunk (chunk_seconds)
        self._cost: float | None = None  # seconds per record, smoothed

    def wake(self) -> None:
        """Batch intake queued records: look now rather than at the next interval."""
        self._wake.set()

    async def resolve_chunk(self, *, wait: bool = True, bulk: bool = False) -> int | None:
        """Resolve the next chunk of the queue in one transaction. Returns the records
        resolved (0: the queue is empty), or None when another process holds the
        resolver's lock and ``wait`` is false. In ``bulk`` a chunk is up to
        ``bulk_chunk`` entries of one council, not sized by time: the blocks its records
        share are read once for all of them."""
        size = self.config.bulk_chunk if bulk else self.chunk_size
        # A chunk's pairs, columns and plans are freed by reference counting; the
        # cyclic collector would rescan every object the chunk holds, over and over.
        # (Only the commands wait for the lock; a server's loop never does, so its
        # requests do not run long with the collector paused.)
        with paused_gc():
            return await self._resolve_chunk(size, wait=wait, bulk=bulk)

    async def _resolve_chunk(self, size: int, *, wait: bool, bulk: bool) -> int | None:
        async with self.pool.acquire() as conn, conn.transaction():
            if not await self.queue.lock(conn, wait=wait):
                return None
            claimed = await self.queue.claim(conn, size, small=self.config.chunk)
            if claimed is None:
                return 0
            council = claimed.council
            started = time.perf_counter()
            store = self.linker.resolution
            live = {r["local_id"]: r for r in await store.chunk_identities(
                conn, council, claimed.local_ids)}
            candidates = [Candidate(lid, identity_of(live[lid]), live[lid]["national_id"])
                          for lid in claimed.local_ids if lid in live]
            deleted = [lid for lid in claimed.local_ids if lid not in live]
            plan = await self.linker.plan(conn, council, candidates, deleted=deleted,
                                          held_keys={lid: r["keys"] for lid, r in live.items()})
            written = sorted(set(plan.touched) | set(claimed.released))
            await self.councils.lock(conn, [council, *await store.councils_holding(
                conn, written)])
            await store.set_national_ids(conn, council, plan.national_ids,
                                         plan.model_versions)
            await self.linker.refresh(conn, plan, claimed.released)
            # new links, splits and review pairs carry shielding to every related record
            await self.shielding.refresh(
                conn, [(council, lid) for lid in claimed.local_ids], written)
        seconds = time.perf_counter() - started
        log.info("records resolved", extra={
            "council": council, "records": len(claimed.local_ids), "deleted": len(deleted),
            "seconds": round(seconds, 3), "chunk_size": size})
        if not bulk and (claimed.entries >= size or seconds > self.config.chunk_seconds):
            # a full chunk measures the cost; so does one that took too long. Smoothed:
            # one chunk's time is noisy (intake's council lock, a busy machine)
            cost = seconds / max(1, len(claimed.local_ids))
            self._cost = cost if self._cost is None else (
                SMOOTHING * cost + (1 - SMOOTHING) * self._cost)
            self.chunk_size = next_chunk_size(self.config, self._cost)
        return len(claimed.local_ids)

    async def drain(self, *, bulk: bool = False) -> int:
        """Resolve until the queue is empty (waiting for another process's chunk if it
        holds the lock), in ``bulk`` chunks if asked. Returns how many records this call
        resolved."""
        total = 0
        while (done := await self.resolve_chunk(wait=True, bulk=bulk)):
            total += done
        return total

    async def follow(self, until: Callable[[float], bool], *, bulk: bool = False) -> int:
        """Resolve records as they are queued, for an initial load: started before the
        councils publish, it resolves each council's batches while the next arrive
        (intake and resolution on different cores, instead of one after the other).
        Whenever it finds the queue empty it asks ``until`` with the seconds since it
        last found work, returns if told to, else looks again after
        ``resolver.interval``. ``until`` is asked before the look, so a caller that
        knows the load is over (it returns true once the last batch is in) gets every
        record resolved. A chunk that fails is tried again after ``resolver.interval``
        under ``run_once``'s policy (a restarted database, a deadlock): a load of hours
        must not stop at one error, and only a look that found the queue empty ends
        it. Returns how many records this call resolved."""
        total = 0
        last_work = time.monotonic()
        resolved: list[int] = []  # what the last look resolved; empty if it failed

        async def chunk() -> None:
            resolved.append(await self.resolve_chunk(wait=True, bulk=bulk) or 0)

        while True:
            finished = until(time.monotonic() - last_work)
            resolved.clear()
            if await run_once("resolution", chunk) and resolved[0]:
                total += resolved[0]
                last_work = time.monotonic()
            elif resolved and finished:
                return total
            else:
                await asyncio.sleep(self.config.interval)

    async def run(self) -> None:
        """The background loop (started and stopped by the app's cleanup_ctx): resolve
        until the queue is empty, then wait for intake's wake-up or the interval. A
        chunk that fails is tried again next time under ``run_every``'s policy; one
        that keeps failing shows in the queue's age alert."""
        await run_every("resolution", self._resolve_queued, self.config.interval,
                        wake=self._wake)

    async def _resolve_queued(self) -> None:
        while await self.resolve_chunk(wait=False):
            pass

    async def re_resolve(self, council: str, *, bulk: bool = False) -> int:
        """Resolve every live record of a council again with the current model (after
        the model changed, or to pick up links its batches could not see yet), as if
        the council had sent them again: their blocking keys are brought up to date
        (only those that changed are written) and they are queued, in chunks under the
        council's row lock, then the queue is drained (in ``bulk`` chunks if asked).
        Human decisions hold as they do for a batch. Returns how many records changed
        national child."""
        before = await self._key_again(council, queue=True)
        await self.drain(bulk=bulk)
        async with self.pool.acquire() as conn:
            now = {r["local_id"]: r["national_id"] for r in await self.linker.resolution.identities(
                conn, [(council, lid) for lid in before])}
        return sum(1 for lid, nid in now.items() if before[lid] != nid)

    async def rekey_all(self, progress: Callable[[str], None] = lambda _: None
                        ) -> int | None:
        """Make every council's live records' blocking keys again when they were made by
        another scheme than the code's (``server_common.key_scheme_store``; ``db
        upgrade`` calls this): how many records were keyed, or None when the keys were
        already the code's. Links stay as they are: a record meets the others through
        the new keys when it is next resolved, and every new record does. Stopped half
        way, it is run again: a key already made is not written twice. ``progress`` is
        told of each council as it is done (a national hub's take most of an hour)."""
        async with self.pool.acquire() as conn:
            if not await key_scheme_store.stale(conn):
                return None
            councils = [c.code for c in await self.councils.list_all(conn)]
        keyed = 0
        for n, council in enumerate(councils, 1):
            done = len(await self._key_again(council, queue=False))
            keyed += done
            progress(f"keyed {done} record(s) of {council} ({n} of {len(councils)} councils)")
        async with self.pool.acquire() as conn:
            await key_scheme_store.record(conn)
        return keyed

    async def _key_again(self, council: str, *, queue: bool) -> dict[str, str | None]:
        """Make the blocking keys of every live record of ``council`` again (writing only
        those that changed; a shield mark still drops the location keys), in chunks under
        the council's row lock, and queue the records when ``queue``. Returns each
        record's national id as it was."""
        store = self.linker.resolution
        before: dict[str, str | None] = {}
        after = ""
        while True:
            async with self.pool.acquire() as conn, conn.transaction():
                if await self.councils.get(conn, council, for_update=True) is None:
                    raise NotFoundError(f"council {council} is not enrolled")
                rows = await store.live_identities(conn, council, after, REQUEUE_CHUNK)
                if not rows:
                    break
                local_ids = [r["local_id"] for r in rows]
                before.update((r["local_id"], r["national_id"]) for r in rows)
                await store.sync_keys(conn, council, local_ids, {
                    r["local_id"]: blocking_keys(identity_of(r)) for r in rows})
                await self.shielding.refresh(conn, [(council, lid) for lid in local_ids])
                if queue:
                    await self.queue.enqueue_live(conn, council, local_ids)
                after = local_ids[-1]
        return before
