"""The hub's archive/purge job (docs/design.md §3), run by ``national-hub retention run`` and on
``retention.interval`` inside ``serve``.

The hub applies the same policy as the nodes (``protocol.retention``) to the records it
holds, one council at a time under that council's row lock (so never inside one of its
batches): records past their archive date get ``archived_on``; records past their purge
date become tombstones at the version held, losing their blocking keys, and are
queued for the resolver, which refreshes their partners' link status. Neither lifts
shielding: an archived shielded record still shields every record it is related to,
and the marks a purged one made stay (``national_hub.storage.shielding``). Each purge is
recorded in the hub's audit log in the same transaction. A council normally purges
first and sends a delete; the hub's own purge is the backstop for a council that has
gone quiet.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import asyncpg

from national_hub.storage.councils import CouncilStore
from national_hub.storage.records import RecordStore
from national_hub.storage.resolution import ResolutionStore
from national_hub.storage.resolution_queue import ResolutionQueueStore
from national_hub.storage.retention import HeldForRetention, HubRetentionStore
from national_hub.storage.shielding import ShieldingStore
from protocol import encoding
from protocol.errors import SignpostError
from protocol.records import ChildRecord
from protocol.retention import ARCHIVED, LIVE, PURGE, RetentionPolicy, add_years
from server_common.audit.entry import AuditEntry
from server_common.audit.service import AuditLog

log = logging.getLogger(__name__)
PURPOSE = "retention policy (archive at 18, purge 6 years later)"


@dataclass(slots=True)
class CouncilRetention:
    archived: list[str] = field(default_factory=list)
    unarchived: list[str] = field(default_factory=list)
    purged: list[str] = field(default_factory=list)


@dataclass(slots=True)
class HubRetentionReport:
    today: date
    councils: dict[str, CouncilRetention] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # council → why its run failed

    def total(self, what: str) -> int:
        return sum(len(getattr(c, what)) for c in self.councils.values())


class HubRetention:
    def __init__(self, pool: asyncpg.Pool, councils: CouncilStore, store: HubRetentionStore,
                 records: RecordStore, resolution: ResolutionStore, audit: AuditLog,
                 policy: RetentionPolicy, *, queue: ResolutionQueueStore,
                 shielding: ShieldingStore) -> None:
        self.pool = pool
        self.councils = councils
        self.store = store
        self.records = records
        self.resolution = resolution
        self.queue = queue
        self.shielding = shielding
        self.audit = audit
        self.policy = policy

    def _state(self, held: HeldForRetention, today: date) -> tuple[str, date] | None:
        try:
            record = ChildRecord.from_wire(encoding.unpack(held.record, what="record"))
        except SignpostError:
            # a damaged row: anti-entropy repairs it; until then it is judged by its dob
            if held.dob is None:
                return None
            record = None
        dob = record.dob if record else held.dob
        if dob is None:
            return None  # a record without a date of birth is kept until it has one
        death = record.date_of_death if record else None
        care_leaver = bool(record) and self.policy.is_care_leaver(
            (i.service_type, i.consent) for i in (record.involvements if record else ()))
        return (self.policy.state(dob, death, care_leaver, today=today),
                self.policy.archive_on(dob, death, care_leaver=care_leaver))

    async def run(self, today: date | None = None) -> HubRetentionReport:
        report = HubRetentionReport(today or datetime.now(UTC).date())
        async with self.pool.acquire() as conn:
            codes = [c.code for c in await self.councils.list_all(conn)]
        for code in codes:
            # One council's run is one transaction: if something in its records makes it
            # fail, nothing of it is applied, and the councils after it still get theirs
            # (otherwise one bad council would stop retention for the rest every day).
            # A lost connection is not the council's: the run stops for run_every.
            try:
                result = await self._run_council(code, report.today)
            except (asyncpg.PostgresError, SignpostError, ValueError, ArithmeticError) as exc:
                log.error("retention failed for a council; the others go on",
                          extra={"council": code}, exc_info=True)
                report.failed[code] = f"{type(exc).__name__}: {exc}"
                continue
            if result.archived or result.unarchived or result.purged:
                report.councils[code] = result
        log.info("retention run", extra={"today": report.today.isoformat(),
                                         "archived": report.total("archived"),
                                         "purged": report.total("purged"),
                                         "failed": sorted(report.failed)})
        return report

    async def _run_council(self, code: str, today: date) -> CouncilRetention:
        result = CouncilRetention()
        async with self.pool.acquire() as conn, conn.transaction():
            await self.councils.get(conn, code, for_update=True)  # not inside a batch
            held = await self.store.candidates(
                conn, code, add_years(today, -self.policy.archive_age))
            archive: list[tuple[str, date | None]] = []
            purge: list[HeldForRetention] = []
            for h in held:
                decided = self._state(h, today)
                if decided is None:
                    continue
                state, archive_on = decided
                if state == PURGE:
                    purge.append(h)
                elif state == ARCHIVED and h.archived_on is None:
                    archive.append((h.local_id, archive_on))
                    result.archived.append(h.local_id)
                elif state == LIVE and h.archived_on is not None:
                    archive.append((h.local_id, None))
                    result.unarchived.append(h.local_id)
            await self.store.set_archived(conn, code, archive)
            if purge:
                await self._purge(conn, code, purge, today)
                result.purged = [h.local_id for h in purge]
            for action, ids in (("retention.archive", result.archived),
                                ("retention.unarchive", result.unarchived)):
                if ids:
                    await self.audit.append(conn, AuditEntry(
                        "retention", "system", "national hub", PURPOSE, action,
                        {"council": code, "today": today.isoformat(), "local_ids": ids}))
        return result

    async def _purge(self, conn: asyncpg.Connection, code: str,
                     purge: list[HeldForRetention], today: date) -> None:
        ids = [h.local_id for h in purge]
        # marks made before the purge keep the child's other records shielded after it
        await self.shielding.refresh(conn, [(code, lid) for lid in ids])
        by_batch: dict[int, list[tuple[str, int]]] = defaultdict(list)
        for h in purge:
            by_batch[h.batch_seq].append((h.local_id, h.version))
        await self.resolution.replace_keys(conn, code, ids, {})
        for batch_seq, deletes in by_batch.items():
            await self.records.tombstone(conn, code, batch_seq, deletes)
        national_ids = sorted({h.national_id for h in purge if h.national_id})
        # As for a council's delete: the resolver refreshes the partners' link status.
        await self.queue.enqueue(conn, code, ids, [h.national_id for h in purge])
        await self.audit.append(conn, AuditEntry(
            "retention", "system", "national hub", PURPOSE, "retention.purge",
            {"council": code, "today": today.isoformat(), "local_ids": ids},
            tuple(national_ids)))
