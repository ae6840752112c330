"""The node's archive/purge job (docs/design.md §3), run by ``local-node retention run`` and on
``retention.interval`` inside ``serve``.

In one transaction: every child the policy concerns is locked; children past their
archive date are archived (out of practitioner search, still published so the hub
keeps pointing at them until it archives them itself); children past their purge date
are purged — every row about them removed, with every child merged into them (the same
child) — and, if the hub holds them, withdrawn with
a delete in the outbox, which the publisher sends as an ordinary signed batch. Archive
and purge are each recorded in the node's audit log in the same transaction (if the
audit write fails, nothing is archived or purged). ``today`` can be given, so the job
can be run for a date (tests move the clock this way).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import asyncpg

from local_node.storage.children import ChildStore
from local_node.storage.outbox import OutboxStore
from local_node.storage.retention import RetentionStore
from protocol.retention import ARCHIVED, LIVE, PURGE, RetentionPolicy, add_years
from server_common.audit.entry import AuditEntry
from server_common.audit.service import AuditLog

log = logging.getLogger(__name__)
PURPOSE = "retention policy (archive at 18, purge 6 years later)"


@dataclass(slots=True)
class RetentionReport:
    today: date
    archived: list[str] = field(default_factory=list)
    unarchived: list[str] = field(default_factory=list)
    purged: list[str] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)  # purged and sent to the hub as deletes


class NodeRetention:
    def __init__(self, pool: asyncpg.Pool, store: RetentionStore, outbox: OutboxStore,
                 audit: AuditLog, policy: RetentionPolicy, council: str, *,
                 children: ChildStore) -> None:
        self.pool = pool
        self.children = children
        self.store = store
        self.outbox = outbox
        self.audit = audit
        self.policy = policy
        self.council = council

    def _entry(self, action: str, report: RetentionReport, ids: list[str]) -> AuditEntry:
        return AuditEntry("retention", "system", self.council, PURPOSE, action,
                          {"today": report.today.isoformat(), "count": len(ids),
                           "withdrawn_from_hub": len(report.withdrawn)
                           if action == "retention.purge" else 0},
                          tuple(ids))

    async def run(self, today: date | None = None) -> RetentionReport:
        report = RetentionReport(today or datetime.now(UTC).date())
        oldest_live = add_years(report.today, -self.policy.archive_age)
        async with self.pool.acquire() as conn, conn.transaction():
            await self.children.lock_index(conn)  # no feed re-creates what this purges
            candidates = await self.store.lock_candidates(
                conn, oldest_live, list(self.policy.care_leaver_services))
            archive: list[tuple[str, date | None]] = []
            deletes: list[tuple[str, int, str, bytes | None, str | None]] = []
            for c in candidates:
                if c.dob is None:
                    continue  # no date of birth from any source: kept until one is known
                state = self.policy.state(c.dob, c.date_of_death, c.care_leaver,
                                          today=report.today)
                if state == PURGE:
                    report.purged.append(c.local_id)
                    if c.published_digest is not None:
                        deletes.append((c.local_id, c.published_version + 1, "delete", None,
                                        None))
                        report.withdrawn.append(c.local_id)
                elif state == ARCHIVED and c.archived_on is None:
                    archive.append((c.local_id, self.policy.archive_on(
                        c.dob, c.date_of_death, care_leaver=c.care_leaver)))
                    report.archived.append(c.local_id)
                elif state == LIVE and c.archived_on is not None:
                    archive.append((c.local_id, None))  # e.g. a corrected date of birth
                    report.unarchived.append(c.local_id)
            # a child merged into a purged one is the same child: it goes with it
            absorbed = await self.store.absorbed_into(conn, report.purged)
            gone = {c.local_id for c in absorbed}
            archive = [a for a in archive if a[0] not in gone]
            report.archived = [lid for lid in report.archived if lid not in gone]
            report.unarchived = [lid for lid in report.unarchived if lid not in gone]
            for c in absorbed:
                report.purged.append(c.local_id)
                if c.published_digest is not None:
                    deletes.append((c.local_id, c.published_version + 1, "delete", None,
                                    None))
                    report.withdrawn.append(c.local_id)
            await self.store.set_archived(conn, archive)
            await self.store.purge(conn, report.purged)
            await self.outbox.add(conn, deletes)
            if report.archived:
                await self.audit.append(conn, self._entry("retention.archive", report,
                                                          report.archived))
            if report.unarchived:
                await self.audit.append(conn, self._entry("retention.unarchive", report,
                                                          report.unarchived))
            if report.purged:
                await self.audit.append(conn, self._entry("retention.purge", report,
                                                          report.purged))
        log.info("retention run", extra={"today": report.today.isoformat(),
                                         "archived": len(report.archived),
                                         "unarchived": len(report.unarchived),
                                         "purged": len(report.purged),
                                         "withdrawn": len(report.withdrawn)})
        return report
