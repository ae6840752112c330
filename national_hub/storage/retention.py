"""Retention at the hub (docs/design.md §3): the records the policy may concern, and archiving
them. Purging goes through the record and resolution stores (a tombstone, no blocking
keys), so it clears exactly what a council's own delete clears."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import asyncpg


@dataclass(frozen=True, slots=True)
class HeldForRetention:
    local_id: str
    version: int
    batch_seq: int
    record: bytes
    dob: date | None
    archived_on: date | None
    national_id: str | None


class HubRetentionStore:
    async def candidates(self, conn: asyncpg.Connection, council: str,
                         born_on_or_before: date) -> list[HeldForRetention]:
        """Live records of a council old enough to be archived, archived already, or
        whose bytes may hold a date of death (a cheap byte search: the exact decision is
        made on the decoded record)."""
        rows = await conn.fetch(
            "SELECT local_id, version, batch_seq, record, dob, archived_on, national_id"
            " FROM records WHERE council_code = $1 AND record IS NOT NULL"
            " AND (dob <= $2 OR archived_on IS NOT NULL"
            "      OR position('date_of_death'::bytea in record) > 0)"
            " ORDER BY local_id", council, born_on_or_before,
        )
        return [HeldForRetention(**dict(r)) for r in rows]

    async def set_archived(self, conn: asyncpg.Connection, council: str,
                           changes: list[tuple[str, date | None]]) -> None:
        if changes:
            await conn.execute(
                "UPDATE records r SET archived_on = a.day"
                " FROM unnest($2::text[], $3::date[]) AS a(local_id, day)"
                " WHERE r.council_code = $1 AND r.local_id = a.local_id",
                council, [c[0] for c in changes], [c[1] for c in changes],
            )
