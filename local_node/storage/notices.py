"""Notices at a council's node (docs/notices.md): what came from the hub, whose inbox each
is in, reads and emails, addresses and watches. SQL only."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from local_node.storage.shielding import SHIELDED_SQL
from protocol.notices import Notice


@dataclass(frozen=True, slots=True)
class InboxItem:
    id: int
    national_id: str
    day: str
    local_ids: list[str]
    shielded: bool
    events: list[dict[str, Any]]
    updated_at: datetime
    read: bool

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "day": self.day, "local_ids": self.local_ids,
                "shielded": self.shielded, "events": self.events,
                "updated_at": self.updated_at.isoformat(), "read": self.read}


@dataclass(frozen=True, slots=True)
class DueEmail:
    notice_id: int
    recipient: str
    email: str


class NoticeStore:
    async def cursor(self, conn: asyncpg.Connection) -> int:
        after: int | None = await conn.fetchval("SELECT after_seq FROM notice_cursor")
        return after or 0

    async def set_cursor(self, conn: asyncpg.Connection, after: int) -> None:
        await conn.execute(
            "INSERT INTO notice_cursor (one, after_seq) VALUES (true, $1)"
            " ON CONFLICT (one) DO UPDATE SET after_seq = GREATEST("
            " notice_cursor.after_seq, excluded.after_seq)", after)

    async def put(self, conn: asyncpg.Connection, notice: Notice) -> bool:
        """Keep the notice (or its newer, coalesced version); False if already held."""
        status = await conn.execute(
            "INSERT INTO notices (id, seq, national_id, day, local_ids, shielded, events)"
            " VALUES ($1, $2, $3, $4::date, $5, $6, $7::jsonb)"
            " ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, local_ids = excluded.local_ids,"
            " shielded = notices.shielded OR excluded.shielded, events = excluded.events,"
            " updated_at = now() WHERE notices.seq < excluded.seq",
            notice.id, notice.seq, notice.national_id, date.fromisoformat(notice.day),
            list(notice.local_ids), notice.shielded,
            json.dumps([e.to_wire() for e in notice.events]))
        return status != "INSERT 0 0"

    async def leads(self, conn: asyncpg.Connection, local_ids: Sequence[str]
                    ) -> dict[str, list[str]]:
        """The secure email of the lead professional of each child's current,
        non-sensitive involvements here."""
        rows = await conn.fetch(
            "SELECT DISTINCT local_id, lower(professional_email) AS email FROM involvements"
            " WHERE local_id = ANY($1::text[]) AND lead_professional AND NOT sensitive"
            " AND professional_email IS NOT NULL"
            " AND (end_date IS NULL OR end_date >= current_date)", list(local_ids))
        out: dict[str, list[str]] = {}
        for r in rows:
            out.setdefault(r["local_id"], []).append(r["email"])
        return out

    async def watchers(self, conn: asyncpg.Connection, local_ids: Sequence[str]) -> list[str]:
        rows = await conn.fetch("SELECT DISTINCT user_name FROM child_watches"
                                " WHERE local_id = ANY($1::text[]) ORDER BY 1", list(local_ids))
        return [r["user_name"] for r in rows]

    async def addresses(self, conn: asyncpg.Connection, users: Sequence[str]) -> dict[str, str]:
        rows = await conn.fetch("SELECT user_name, email FROM notice_addresses"
                                " WHERE user_name = ANY($1::text[])", list(users))
        return {r["user_name"]: r["email"] for r in rows}

    async def address_of(self, conn: asyncpg.Connection, user: str) -> str | None:
        email: str | None = await conn.fetchval(
            "SELECT email FROM notice_addresses WHERE user_name = $1", user)
        return email

    async def holder_of_address(self, conn: asyncpg.Connection, email: str) -> str | None:
        """The user whose notices address ``email`` is (addresses are held lower case)."""
        user: str | None = await conn.fetchval(
            "SELECT user_name FROM notice_addresses WHERE email = lower($1)", email)
        return user

    async def set_address(self, conn: asyncpg.Connection, user: str, email: str) -> None:
        await conn.execute(
            "INSERT INTO notice_addresses (user_name, email) VALUES ($1, lower($2))"
            " ON CONFLICT (user_name) DO UPDATE SET email = excluded.email", user, email)

    async def deliver(self, conn: asyncpg.Connection, notice_id: int, recipient: str,
                      email: str | None, email_due: bool) -> None:
        """Into the recipient's inbox, unread (again, for a coalesced notice)."""
        await conn.execute(
            "INSERT INTO notice_deliveries (notice_id, recipient, email, email_due)"
            " VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (notice_id, recipient) DO UPDATE SET read_at = NULL,"
            " email = excluded.email, email_due = notice_deliveries.email_due"
            " OR excluded.email_due, updated_at = now()",
            notice_id, recipient, email, email_due)

    async def withdraw(self, conn: asyncpg.Connection, notice_id: int, keep: str) -> None:
        """Out of every inbox but ``keep``'s (a notice that became a shielded child's)."""
        await conn.execute("DELETE FROM notice_deliveries WHERE notice_id = $1"
                           " AND recipient <> $2", notice_id, keep)

    async def inbox(self, conn: asyncpg.Connection, recipients: Sequence[str], *,
                    shielded: bool, limit: int = 200) -> list[InboxItem]:
        """The notices in these inboxes, newest first; without ``shielded``, none about a
        child shielded by the hub's word or the node's own (flag or mark), whenever it
        was delivered."""
        rows = await conn.fetch(
            "SELECT n.id, n.national_id, n.day, n.local_ids, n.shielded, n.events,"
            " max(n.updated_at) AS updated_at, bool_and(d.read_at IS NOT NULL) AS read"
            " FROM notice_deliveries d JOIN notices n ON n.id = d.notice_id"
            " WHERE d.recipient = ANY($1::text[]) AND ($3 OR NOT n.shielded AND NOT EXISTS"
            f" (SELECT 1 FROM unnest(n.local_ids) AS l(id) WHERE {SHIELDED_SQL.format('l.id')}))"
            " GROUP BY n.id ORDER BY max(n.updated_at) DESC, n.id DESC LIMIT $2",
            list(recipients), limit, shielded)
        return [InboxItem(r["id"], r["national_id"], r["day"].isoformat(), list(r["local_ids"]),
                          r["shielded"], json.loads(r["events"]), r["updated_at"], r["read"])
                for r in rows]

    async def mark_read(self, conn: asyncpg.Connection, notice_id: int,
                        recipients: Sequence[str]) -> list[str]:
        """Read in every inbox of the caller's it is in; the child's local ids (none:
        not in the caller's inboxes)."""
        rows = await conn.fetch(
            "UPDATE notice_deliveries SET read_at = coalesce(read_at, now())"
            " WHERE notice_id = $1 AND recipient = ANY($2::text[]) RETURNING notice_id",
            notice_id, list(recipients))
        if not rows:
            return []
        local_ids: list[str] = await conn.fetchval(
            "SELECT local_ids FROM notices WHERE id = $1", notice_id)
        return list(local_ids)

    async def due(self, conn: asyncpg.Connection, limit: int = 500) -> list[DueEmail]:
        rows = await conn.fetch(
            "SELECT notice_id, recipient, email FROM notice_deliveries"
            " WHERE email_due AND email IS NOT NULL ORDER BY updated_at LIMIT $1"
            " FOR UPDATE SKIP LOCKED", limit)
        return [DueEmail(r["notice_id"], r["recipient"], r["email"]) for r in rows]

    async def emailed(self, conn: asyncpg.Connection, items: Sequence[DueEmail]) -> None:
        await conn.execute(
            "UPDATE notice_deliveries d SET email_due = false, emailed_at = now(),"
            " last_error = NULL FROM unnest($1::bigint[], $2::text[]) AS u(n, r)"
            " WHERE d.notice_id = u.n AND d.recipient = u.r",
            [i.notice_id for i in items], [i.recipient for i in items])

    async def email_failed(self, conn: asyncpg.Connection, items: Sequence[DueEmail],
                           error: str) -> None:
        await conn.execute(
            "UPDATE notice_deliveries d SET email_failures = email_failures + 1,"
            " last_error = $3 FROM unnest($1::bigint[], $2::text[]) AS u(n, r)"
            " WHERE d.notice_id = u.n AND d.recipient = u.r",
            [i.notice_id for i in items], [i.recipient for i in items], error[:500])

    async def held_among(self, conn: asyncpg.Connection, local_ids: Sequence[str]) -> bool:
        """Whether the index still holds any of these children (purged ones are gone)."""
        return bool(await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM children WHERE local_id = ANY($1::text[]))",
            list(local_ids)))

    async def child_exists(self, conn: asyncpg.Connection, local_id: str) -> bool:
        return bool(await conn.fetchval("SELECT 1 FROM children WHERE local_id = $1",
                                        local_id))

    async def watch(self, conn: asyncpg.Connection, user: str, local_id: str) -> None:
        await conn.execute("INSERT INTO child_watches (user_name, local_id) VALUES ($1, $2)"
                           " ON CONFLICT DO NOTHING", user, local_id)

    async def unwatch(self, conn: asyncpg.Connection, user: str, local_id: str) -> None:
        await conn.execute("DELETE FROM child_watches WHERE user_name = $1 AND local_id = $2",
                           user, local_id)

    async def watching(self, conn: asyncpg.Connection, user: str) -> list[str]:
        rows = await conn.fetch("SELECT local_id FROM child_watches WHERE user_name = $1"
                                " ORDER BY local_id", user)
        return [r["local_id"] for r in rows]

    async def counts(self, conn: asyncpg.Connection) -> asyncpg.Record:
        """For /metrics: notices held, deliveries unread, emails due and failing."""
        row: asyncpg.Record = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM notices) AS notices,"
            " count(*) FILTER (WHERE read_at IS NULL) AS unread,"
            " count(*) FILTER (WHERE email_due AND email IS NOT NULL) AS emails_due,"
            " count(*) FILTER (WHERE email_due AND email_failures > 0) AS emails_failing"
            " FROM notice_deliveries")
        return row
