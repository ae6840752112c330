"""Notices at the hub (docs/notices.md): made from what resolution, review
and batch intake write, fetched by each council's node.

The notice job drains ``notice_events`` (every record whose national id or content
changed, queued by a trigger in the writer's own transaction, so nothing is missed
and resolution's code is not involved): gather (async), :func:`decide` (pure), write
— one transaction per chunk, under one advisory lock across hub processes. Each
notice created is audited, so is each page a node fetches.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from national_hub.services.notices_decide import (
    Draft,
    Holder,
    RecordKey,
    Seen,
    coalesce,
    decide,
    disclose,
    events_from_json,
    pointers,
)
from national_hub.storage.notices import NoticeStore, StoredNotice
from protocol.notices import PAGE, Notice
from protocol.retention import RetentionPolicy
from server_common.audit.entry import AuditEntry
from server_common.audit.service import AuditLog

log = logging.getLogger(__name__)
PURPOSE = "tell the professionals involved with a child"
CHUNK = 5_000


@dataclass(frozen=True, slots=True)
class ChunkResult:
    changes: int
    notices: int


class NoticeJob:
    def __init__(self, pool: asyncpg.Pool, audit: AuditLog,
                 store: NoticeStore | None = None, chunk: int = CHUNK,
                 policy: RetentionPolicy | None = None) -> None:
        self.pool = pool
        self.policy = policy or RetentionPolicy()
        self.audit = audit
        self.store = store or NoticeStore()
        self.chunk = chunk
        self.created_total = 0  # notices written by this process (metrics)
        self.changes_total = 0  # changed records it handled
        self.busy_seconds = 0.0  # time spent in chunks that had work (bench.notices)

    async def run_once(self) -> ChunkResult | None:
        """One chunk; None when another process holds the lock."""
        started = time.perf_counter()
        async with self.pool.acquire() as conn, conn.transaction():
            if not await self.store.lock(conn):
                return None
            touched = await self.store.claim(conn, self.chunk)
            if not touched:
                return ChunkResult(0, 0)
            written = await self._derive(conn, touched)
        self.created_total += written
        self.changes_total += len(touched)
        self.busy_seconds += time.perf_counter() - started
        return ChunkResult(len(touched), written)

    async def drain(self) -> int:
        """Derive until no change waits; returns notices written."""
        total = 0
        while True:
            result = await self.run_once()
            if result is None:
                await asyncio.sleep(0.05)
                continue
            total += result.notices
            if result.changes == 0:
                return total

    async def run(self) -> None:
        """For run_every: drain what waits."""
        await self.drain()

    async def _derive(self, conn: asyncpg.Connection, touched: list[RecordKey]) -> int:
        store = self.store
        await store.forget_deleted(conn, touched)
        current = await store.current(conn, touched)
        seen_rows = await store.seen(conn, touched)
        national_ids = {n for n in current.values() if n} | {
            n for n, _ in seen_rows.values() if n}
        holder_rows = await store.holders(conn, sorted(national_ids))
        holders: dict[str, list[Holder]] = defaultdict(list)
        # An archived record (an adult now) is out of search and the child view: no
        # notice tells of it or is told about it. Its shield marks still count. Past its
        # archive date counts, as in search, before the retention job has marked it.
        today = datetime.now(UTC).date()
        gone = {(r["council_code"], r["local_id"]) for r in holder_rows
                if r["archived"] or (
                    self.policy.may_be_due(r["dob"], r["may_have_died"], today=today)
                    and self.policy.stored_record_due(r["record"], today=today))}
        archived: dict[str, list[RecordKey]] = defaultdict(list)
        for r in holder_rows:
            if (r["council_code"], r["local_id"]) in gone:
                archived[r["national_id"]].append((r["council_code"], r["local_id"]))
        for r in holder_rows:
            if (r["council_code"], r["local_id"]) in gone:
                continue
            try:
                services, lead = pointers(r["record"])
            except ValueError as exc:
                # damaged in storage: the council still holds the child, so it is
                # still told; anti-entropy repairs the bytes (docs/operations.md)
                log.warning("notices: %s for %s/%s; its services are left out",
                            exc, r["council_code"], r["local_id"])
                services, lead = (), None
            holders[r["national_id"]].append(
                Holder(r["council_code"], r["local_id"], services, lead))
        holder_keys = [(h.council, h.local_id) for hs in holders.values() for h in hs]
        seen_rows.update(await store.seen(conn, [k for k in holder_keys
                                                 if k not in seen_rows]))
        seen = {k: Seen(n, None if s is None else tuple(s)) for k, (n, s) in seen_rows.items()}
        names = await store.council_names(conn)
        drafts, new_seen = decide(touched, current, seen, holders, names)
        await store.put_seen(conn, [(c, lid, s.national_id, list(s.services or ()))
                                    for (c, lid), s in new_seen.items()])
        if not drafts:
            return 0
        marks = await store.shielding(
            conn, list({*holder_keys, *(k for ks in archived.values() for k in ks), *touched}))
        return await self._write(conn, drafts, holders, marks, archived)

    async def _write(self, conn: asyncpg.Connection, drafts: list[Draft],
                     holders: dict[str, list[Holder]], marks: dict[RecordKey, list[str]],
                     archived: dict[str, list[RecordKey]]) -> int:
        store = self.store
        by_notice: dict[tuple[str, str], list[Draft]] = defaultdict(list)
        for d in drafts:
            by_notice[(d.recipient, d.national_id)].append(d)
        day = await store.today(conn)
        existing = await store.existing(conn, list(by_notice), day)
        rows = []
        for (recipient, national_id), ds in by_notice.items():
            # shielding belongs to the child: any mark on any of its records (and on
            # the changed records, which may just have left it) shields the notice
            shielding = sorted({m for h in holders.get(national_id, ())
                                for m in marks.get((h.council, h.local_id), ())}
                               | {m for k in archived.get(national_id, ())
                                  for m in marks.get(k, ())}
                               | {m for d in ds for m in marks.get(d.source, ())})
            events = [disclose(d.event, recipient, shielding) for d in ds]
            old = existing.get((recipient, national_id))
            # the day's earlier events too: written before the child was shielded, they
            # name what a shielded child's notice withholds (disclosing twice changes
            # nothing more)
            earlier = [disclose(e, recipient, shielding)
                       for e in events_from_json(old.events)] if old else []
            merged = coalesce(earlier, events)
            local_ids = sorted(h.local_id for h in holders.get(national_id, ())
                               if h.council == recipient)
            rows.append((recipient, national_id, local_ids, bool(shielding),
                         [e.to_wire() for e in merged]))
        written = await store.upsert(conn, rows, day)
        per_council: dict[str, list[str]] = defaultdict(list)
        for _, _, council, national_id in written:
            per_council[council].append(national_id)
        for council, national_ids in sorted(per_council.items()):
            await self.audit.append(conn, AuditEntry(
                "notices", "system", "national hub", PURPOSE, "notice.created",
                {"council": council, "notices": len(national_ids), "day": day.isoformat()},
                tuple(sorted(national_ids))))
        return len(written)


def to_notice(stored: StoredNotice) -> Notice:
    return Notice(id=stored.id, seq=stored.seq, national_id=stored.national_id,
                  day=stored.day.isoformat(), local_ids=tuple(stored.local_ids),
                  shielded=stored.shielded, events=tuple(events_from_json(stored.events)))


class NoticeFeed:
    """What a node fetches: its council's notices after a cursor (idempotent: the same
    ``after`` gives the same notices, or the same ones coalesced further)."""

    def __init__(self, pool: asyncpg.Pool, audit: AuditLog,
                 store: NoticeStore | None = None) -> None:
        self.pool = pool
        self.audit = audit
        self.store = store or NoticeStore()

    async def page(self, council: str, after: int) -> tuple[list[Notice], int, bool]:
        async with self.pool.acquire() as conn, conn.transaction():
            stored = await self.store.page(conn, council, after, PAGE + 1)
            more = len(stored) > PAGE
            stored = stored[:PAGE]
            # asking from ``after`` says everything up to it arrived
            await self.store.delivered(conn, council, after)
            if stored:
                await self.audit.append(conn, AuditEntry(
                    f"node:{council}", "council node", council, PURPOSE, "notice.fetched",
                    {"council": council, "after": after, "notices": [n.id for n in stored]},
                    tuple(sorted({n.national_id for n in stored}))))
        notices = [to_notice(s) for s in stored]
        return notices, (notices[-1].seq if notices else after), more

    async def counts(self) -> dict[str, object]:
        async with self.pool.acquire() as conn:
            return await self.store.counts(conn)
