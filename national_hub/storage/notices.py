"""Notices at the hub (docs/notices.md): the queue of changed records, what was last seen of
each, the notices themselves and each council's delivery cursor. SQL only; what a
change means is :mod:`national_hub.services.notices_decide`'s to say.

Only the notice job writes notices, under ``NOTICE_LOCK`` (one transaction at a
time across every hub process), so seqs are allocated in commit order: a node that
read up to seq N never misses a notice committed later with a seq at or below N.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg

RecordKey = tuple[str, str]
NOTICE_LOCK = 0x5167_6E6F_7469_6365 & 0x7FFF_FFFF_FFFF_FFFF


@dataclass(frozen=True, slots=True)
class StoredNotice:
    id: int
    seq: int
    council: str
    national_id: str
    day: date
    local_ids: list[str]
    shielded: bool
    events: list[dict[str, Any]]

    @classmethod
    def of(cls, row: asyncpg.Record) -> StoredNotice:
        return cls(row["id"], row["seq"], row["council_code"], row["national_id"], row["day"],
                   list(row["local_ids"]), row["shielded"], json.loads(row["events"]))


def _split(keys: Sequence[RecordKey]) -> tuple[list[str], list[str]]:
    return [c for c, _ in keys], [lid for _, lid in keys]


class NoticeStore:
    async def lock(self, conn: asyncpg.Connection) -> bool:
        return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", NOTICE_LOCK))

    async def claim(self, conn: asyncpg.Connection, limit: int) -> list[RecordKey]:
        """Take the oldest queued changes (deleted with the caller's transaction)."""
        rows = await conn.fetch(
            "DELETE FROM notice_events WHERE id IN"
            " (SELECT id FROM notice_events ORDER BY id LIMIT $1)"
            " RETURNING id, council_code, local_id", limit)
        rows.sort(key=lambda r: r["id"])
        return [(r["council_code"], r["local_id"]) for r in rows]

    async def current(self, conn: asyncpg.Connection, keys: Sequence[RecordKey]
                      ) -> dict[RecordKey, str | None]:
        """Each record's national id now (None when deleted)."""
        councils, local_ids = _split(keys)
        rows = await conn.fetch(
            "SELECT r.council_code, r.local_id,"
            " CASE WHEN r.record IS NULL THEN NULL ELSE r.national_id END AS national_id"
            " FROM unnest($1::text[], $2::text[]) AS k(c, l)"
            " JOIN records r ON r.council_code = k.c AND r.local_id = k.l",
            councils, local_ids)
        return {(r["council_code"], r["local_id"]): r["national_id"] for r in rows}

    async def forget_deleted(self, conn: asyncpg.Connection, keys: Sequence[RecordKey]
                             ) -> None:
        """Drop the notices to a council about children it held only through records of
        these that are deleted now (a council's delete, or a purge): written or still
        waiting to be fetched, they are about a child that council no longer holds."""
        councils, local_ids = _split(keys)
        await conn.execute(
            "DELETE FROM notices n USING ("
            "  SELECT r.council_code, array_agg(r.local_id) AS ids"
            "  FROM unnest($1::text[], $2::text[]) AS k(c, l)"
            "  JOIN records r ON r.council_code = k.c AND r.local_id = k.l"
            "  WHERE r.record IS NULL GROUP BY r.council_code) d"
            " WHERE n.council_code = d.council_code AND n.local_ids && d.ids"
            " AND NOT EXISTS (SELECT 1 FROM unnest(n.local_ids) AS l(id) JOIN records h"
            "   ON h.council_code = n.council_code AND h.local_id = l.id"
            "   WHERE h.record IS NOT NULL)",
            councils, local_ids)

    async def seen(self, conn: asyncpg.Connection, keys: Sequence[RecordKey]
                   ) -> dict[RecordKey, tuple[str | None, list[str] | None]]:
        councils, local_ids = _split(keys)
        rows = await conn.fetch(
            "SELECT s.council_code, s.local_id, s.national_id, s.services"
            " FROM unnest($1::text[], $2::text[]) AS k(c, l)"
            " JOIN notice_seen s ON s.council_code = k.c AND s.local_id = k.l",
            councils, local_ids)
        return {(r["council_code"], r["local_id"]): (r["national_id"], r["services"])
                for r in rows}

    async def holders(self, conn: asyncpg.Connection, national_ids: Sequence[str]
                      ) -> list[asyncpg.Record]:
        """The live records of these children: council, local id, national id, bytes,
        whether retention has archived it, and what says whether it may be due to be
        (date of birth; bytes holding a date of death)."""
        return await conn.fetch(
            "SELECT council_code, local_id, national_id, record, dob,"
            " position('date_of_death'::bytea in record) > 0 AS may_have_died,"
            " archived_on IS NOT NULL AS archived FROM records"
            " WHERE national_id = ANY($1::text[]) AND record IS NOT NULL", list(national_ids))

    async def shielding(self, conn: asyncpg.Connection, keys: Sequence[RecordKey]
                        ) -> dict[RecordKey, list[str]]:
        """The councils whose shielded records shield each record (shield marks)."""
        councils, local_ids = _split(keys)
        rows = await conn.fetch(
            "SELECT m.council_code, m.local_id, array_agg(m.shielding_council) AS by"
            " FROM unnest($1::text[], $2::text[]) AS k(c, l)"
            " JOIN shield_marks m ON m.council_code = k.c AND m.local_id = k.l"
            " GROUP BY m.council_code, m.local_id", councils, local_ids)
        return {(r["council_code"], r["local_id"]): list(r["by"]) for r in rows}

    async def council_names(self, conn: asyncpg.Connection) -> dict[str, str]:
        return {r["code"]: r["name"] for r in await conn.fetch("SELECT code, name FROM councils")}

    async def put_seen(self, conn: asyncpg.Connection,
                       rows: Sequence[tuple[str, str, str | None, list[str]]]) -> None:
        await conn.execute(
            "INSERT INTO notice_seen (council_code, local_id, national_id, services)"
            " SELECT c, l, n, string_to_array(s, ',')"
            " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(c, l, n, s)"
            " ON CONFLICT (council_code, local_id) DO UPDATE SET"
            " national_id = excluded.national_id, services = excluded.services",
            [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
            [",".join(r[3]) for r in rows])

    async def today(self, conn: asyncpg.Connection) -> date:
        day: date = await conn.fetchval("SELECT (now() AT TIME ZONE 'UTC')::date")
        return day

    async def existing(self, conn: asyncpg.Connection, keys: Sequence[tuple[str, str]],
                       day: date) -> dict[tuple[str, str], StoredNotice]:
        """Today's notices for these (recipient, national id), locked for coalescing."""
        councils, national_ids = _split(keys)
        rows = await conn.fetch(
            "SELECT n.* FROM unnest($1::text[], $2::text[]) AS k(c, n)"
            " JOIN notices n ON n.council_code = k.c AND n.national_id = k.n AND n.day = $3"
            " FOR UPDATE OF n", councils, national_ids, day)
        return {(r["council_code"], r["national_id"]): StoredNotice.of(r) for r in rows}

    async def upsert(self, conn: asyncpg.Connection,
                     rows: Sequence[tuple[str, str, list[str], bool, list[dict[str, Any]]]],
                     day: date) -> list[tuple[int, int, str, str]]:
        """Create or coalesce notices (recipient, national id, local ids, shielded,
        events); each written one takes a new seq. Returns (id, seq, council, national id)."""
        written = await conn.fetch(
            "INSERT INTO notices (council_code, national_id, day, local_ids, shielded, events)"
            " SELECT c, n, $6, string_to_array(l, ','), s, e::jsonb"
            " FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[], $5::text[])"
            "   AS u(c, n, l, s, e)"
            " ON CONFLICT (council_code, national_id, day) DO UPDATE SET"
            " seq = nextval('notice_seq'), local_ids = excluded.local_ids,"
            " shielded = notices.shielded OR excluded.shielded, events = excluded.events,"
            " updated_at = now()"
            " RETURNING id, seq, council_code, national_id",
            [r[0] for r in rows], [r[1] for r in rows], [",".join(r[2]) for r in rows],
            [r[3] for r in rows], [json.dumps(r[4]) for r in rows], day)
        return [(r["id"], r["seq"], r["council_code"], r["national_id"]) for r in written]

    async def page(self, conn: asyncpg.Connection, council: str, after: int,
                   limit: int) -> list[StoredNotice]:
        rows = await conn.fetch(
            "SELECT * FROM notices WHERE council_code = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            council, after, limit)
        return [StoredNotice.of(r) for r in rows]

    async def delivered(self, conn: asyncpg.Connection, council: str, seq: int) -> None:
        """The node asked past ``seq``: everything up to it has reached it."""
        await conn.execute(
            "INSERT INTO notice_cursors (council_code, delivered_seq) VALUES ($1, $2)"
            " ON CONFLICT (council_code) DO UPDATE SET fetched_at = now(),"
            " delivered_seq = GREATEST(notice_cursors.delivered_seq, excluded.delivered_seq)",
            council, seq)

    async def counts(self, conn: asyncpg.Connection) -> dict[str, Any]:
        """For /metrics and /ops: notices per council, those not yet fetched and the
        age of the oldest of them, and changes waiting for the notice job."""
        rows = await conn.fetch(
            "SELECT n.council_code, count(*) AS total,"
            " count(*) FILTER (WHERE n.seq > coalesce(c.delivered_seq, 0)) AS undelivered,"
            " coalesce(extract(epoch FROM now() - min(n.updated_at)"
            "   FILTER (WHERE n.seq > coalesce(c.delivered_seq, 0))), 0) AS oldest"
            " FROM notices n LEFT JOIN notice_cursors c USING (council_code)"
            " GROUP BY n.council_code")
        pending = await conn.fetchval("SELECT count(*) FROM notice_events")
        return {"councils": {r["council_code"]: {"total": r["total"],
                                                 "undelivered": r["undelivered"],
                                                 "oldest_undelivered_seconds":
                                                     float(r["oldest"])} for r in rows},
                "pending_changes": pending}
