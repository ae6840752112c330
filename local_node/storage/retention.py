"""Retention at the node (docs/design.md §3): which children the policy may concern, archiving
them, and purging them with everything held about them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import asyncpg


@dataclass(frozen=True, slots=True)
class RetentionCandidate:
    local_id: str
    dob: date
    date_of_death: date | None
    care_leaver: bool
    archived_on: date | None
    published_version: int
    published_digest: str | None  # None: never published, or withdrawn (merged)


class RetentionStore:
    async def lock_candidates(self, conn: asyncpg.Connection, born_on_or_before: date,
                              care_leaver_services: list[str]) -> list[RetentionCandidate]:
        """Children old enough to be archived, dead, or archived already (the only ones
        the policy can concern), locked until the transaction ends. A child an ingest
        is changing right now is skipped (SKIP LOCKED), never waited for: the job never
        deadlocks with ingest, and takes that child on its next run."""
        rows = await conn.fetch(
            """
            SELECT c.local_id, c.dob, c.date_of_death, c.archived_on, c.published_version,
                   c.published_digest,
                   EXISTS (SELECT 1 FROM involvements i WHERE i.local_id = c.local_id
                             AND i.consent AND i.service_type = ANY($2::text[])) AS care_leaver
              FROM children c
             WHERE c.dob <= $1 OR c.date_of_death IS NOT NULL OR c.archived_on IS NOT NULL
             ORDER BY c.local_id FOR UPDATE OF c SKIP LOCKED
            """,
            born_on_or_before, care_leaver_services,
        )
        return [RetentionCandidate(**dict(r)) for r in rows]

    async def absorbed_into(self, conn: asyncpg.Connection, local_ids: list[str]
                            ) -> list[RetentionCandidate]:
        """The children merged into these ones, directly or through another merged
        child, not among them: the same child, so purged with it. (Each keeps its own
        identity columns, so set free it would be a copy of the purged child.)"""
        if not local_ids:
            return []
        rows = await conn.fetch(
            """
            WITH RECURSIVE absorbed(local_id) AS (
                SELECT local_id FROM children WHERE merged_into = ANY($1::text[])
              UNION
                SELECT c.local_id FROM children c JOIN absorbed a ON c.merged_into = a.local_id
            )
            SELECT c.local_id, c.dob, c.date_of_death, c.archived_on, c.published_version,
                   c.published_digest, false AS care_leaver
              FROM children c JOIN absorbed a USING (local_id)
             WHERE NOT c.local_id = ANY($1::text[])
             ORDER BY c.local_id FOR UPDATE OF c
            """, local_ids)
        return [RetentionCandidate(**dict(r)) for r in rows]

    async def set_archived(self, conn: asyncpg.Connection,
                           changes: list[tuple[str, date | None]]) -> None:
        """Archive (a date) or un-archive (None, e.g. a corrected date of birth)."""
        if changes:
            await conn.execute(
                "UPDATE children c SET archived_on = a.day"
                " FROM unnest($1::text[], $2::date[]) AS a(local_id, day)"
                " WHERE c.local_id = a.local_id",
                [c[0] for c in changes], [c[1] for c in changes],
            )

    async def purge(self, conn: asyncpg.Connection, local_ids: list[str]) -> None:
        """Remove every trace of these children's data: the child, its source rows,
        involvements, blocking keys and review items, the notices the hub sent about it
        (and whose inbox each was in), who watched it, and the record bytes in the
        outbox. What stays is ids and versions (the outbox's delete, audit entries)."""
        if not local_ids:
            return
        for sql in (
            "DELETE FROM review_items WHERE local_id = ANY($1::text[])"
            " OR candidate_id = ANY($1::text[])",
            "DELETE FROM child_blocking_keys WHERE local_id = ANY($1::text[])",
            "DELETE FROM source_records WHERE local_id = ANY($1::text[])",
            "DELETE FROM involvements WHERE local_id = ANY($1::text[])",
            # a notice names the child's other councils and their lead professionals;
            # with the child's own flag and mark gone, one withheld from a watcher or a
            # lead professional because the child was shielded would show again
            "DELETE FROM notice_deliveries d USING notices n WHERE d.notice_id = n.id"
            " AND n.local_ids && $1::text[]",
            "DELETE FROM notices WHERE local_ids && $1::text[]",
            "DELETE FROM child_watches WHERE local_id = ANY($1::text[])",
            # the hub's reason for refusing a version may quote it ("dob: out of range
            # for a child: 1989-01-01")
            "DELETE FROM publish_rejections WHERE local_id = ANY($1::text[])",
            # its own mark only: the marks it gave others stay (shielding is sticky)
            "DELETE FROM shield_marks WHERE local_id = ANY($1::text[])",
            "DELETE FROM children WHERE local_id = ANY($1::text[])",
            "UPDATE outbox SET record = NULL, digest = NULL WHERE local_id = ANY($1::text[])"
            " AND record IS NOT NULL",
        ):
            await conn.execute(sql, local_ids)
