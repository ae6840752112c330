"""SQL of the review queue: the pairs put to a person, and what each person decided.
Written by the resolver (storage/resolution.py does the rest of its writing) and by the
index teams' decisions (services/review.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from national_hub.storage.resolution import RecordKey


@dataclass(frozen=True, slots=True)
class ReviewRow:
    id: int
    a: RecordKey
    b: RecordKey
    score: float
    explanation: dict[str, Any]
    status: str
    decided_by: str | None

    @classmethod
    def of(cls, row: asyncpg.Record) -> ReviewRow:
        return cls(row["id"], (row["council_a"], row["local_id_a"]),
                   (row["council_b"], row["local_id_b"]), row["score"],
                   json.loads(row["explanation"]), row["status"], row["decided_by"])


@dataclass(frozen=True, slots=True)
class NewReview:
    a: RecordKey
    b: RecordKey
    score: float
    explanation: dict[str, Any]


_REVIEW_COLUMNS = ("id, council_a, local_id_a, council_b, local_id_b, score,"
                   " explanation::text AS explanation, status, decided_by")


class ReviewQueueStore:
    async def reviews_involving(self, conn: asyncpg.Connection, council: str,
                                local_ids: Sequence[str]) -> list[ReviewRow]:
        rows = await conn.fetch(
            f"SELECT {_REVIEW_COLUMNS} FROM review_queue"
            " WHERE (council_a = $1 AND local_id_a = ANY($2::text[]))"
            " OR (council_b = $1 AND local_id_b = ANY($2::text[]))", council, list(local_ids))
        return [ReviewRow.of(r) for r in rows]

    async def delete_reviews(self, conn: asyncpg.Connection, ids: Sequence[int]) -> None:
        if ids:
            await conn.execute("DELETE FROM review_queue WHERE id = ANY($1::bigint[])"
                               " AND status = 'open'", list(ids))

    async def put_reviews(self, conn: asyncpg.Connection, reviews: Sequence[NewReview]) -> None:
        """Open (or rescore an open) review per pair; a decided pair is left alone."""
        if not reviews:
            return
        await conn.execute(
            """
            INSERT INTO review_queue (council_a, local_id_a, council_b, local_id_b, score,
                                      explanation)
            SELECT ca, la, cb, lb, s, e::jsonb FROM unnest($1::text[], $2::text[], $3::text[],
                   $4::text[], $5::float8[], $6::text[]) AS n(ca, la, cb, lb, s, e)
            ON CONFLICT (council_a, local_id_a, council_b, local_id_b) DO UPDATE SET
                score = EXCLUDED.score, explanation = EXCLUDED.explanation
            WHERE review_queue.status = 'open'
            """,
            [r.a[0] for r in reviews], [r.a[1] for r in reviews], [r.b[0] for r in reviews],
            [r.b[1] for r in reviews], [r.score for r in reviews],
            [json.dumps(r.explanation) for r in reviews])

    async def separated_between(self, conn: asyncpg.Connection, first: str,
                                second: str) -> bool:
        """Whether a person separated a record of one national child from one of the
        other (merging the two would undo that decision)."""
        return bool(await conn.fetchval(
            """
            SELECT EXISTS (
                SELECT 1 FROM review_queue q
                JOIN records ra ON ra.council_code = q.council_a AND ra.local_id = q.local_id_a
                JOIN records rb ON rb.council_code = q.council_b AND rb.local_id = q.local_id_b
                WHERE q.status = 'separated' AND ra.record IS NOT NULL
                  AND rb.record IS NOT NULL
                  AND ((ra.national_id = $1 AND rb.national_id = $2)
                    OR (ra.national_id = $2 AND rb.national_id = $1)))
            """, first, second))

    async def list_reviews(self, conn: asyncpg.Connection, status: str | None = "open",
                           limit: int = 100, council: str | None = None) -> list[ReviewRow]:
        """Review items (of one status, or all), oldest first; with ``council``, only
        pairs with a record of that council."""
        rows = await conn.fetch(
            f"SELECT {_REVIEW_COLUMNS} FROM review_queue"
            " WHERE ($1::text IS NULL OR status = $1)"
            " AND ($3::text IS NULL OR council_a = $3 OR council_b = $3)"
            " ORDER BY id LIMIT $2", status, limit, council)
        return [ReviewRow.of(r) for r in rows]

    async def decided_reviews(self, conn: asyncpg.Connection, council: str,
                              limit: int) -> list[ReviewRow]:
        """Decided pairs with a record of ``council``, the latest decision first."""
        rows = await conn.fetch(
            f"SELECT {_REVIEW_COLUMNS} FROM review_queue WHERE status <> 'open'"
            " AND (council_a = $1 OR council_b = $1)"
            " ORDER BY decided_at DESC NULLS LAST, id DESC LIMIT $2", council, limit)
        return [ReviewRow.of(r) for r in rows]

    async def get_review(self, conn: asyncpg.Connection, review_id: int, *,
                         for_update: bool = False) -> ReviewRow | None:
        row = await conn.fetchrow(
            f"SELECT {_REVIEW_COLUMNS} FROM review_queue WHERE id = $1"
            + (" FOR UPDATE" if for_update else ""), review_id)
        return ReviewRow.of(row) if row is not None else None

    async def decide_review(self, conn: asyncpg.Connection, review_id: int, status: str,
                            decided_by: str) -> None:
        await conn.execute("UPDATE review_queue SET status = $2, decided_by = $3,"
                           " decided_at = now() WHERE id = $1", review_id, status, decided_by)

    async def reopen_review(self, conn: asyncpg.Connection, review_id: int) -> None:
        """A decision undone: the pair waits for a person again."""
        await conn.execute("UPDATE review_queue SET status = 'open', decided_by = NULL,"
                           " decided_at = NULL WHERE id = $1", review_id)

    async def open_review_count(self, conn: asyncpg.Connection,
                                council: str | None = None) -> int:
        """Pairs waiting for a person (those with a record of ``council`` if given)."""
        return int(await conn.fetchval(
            "SELECT count(*) FROM review_queue WHERE status = 'open'"
            " AND ($1::text IS NULL OR council_a = $1 OR council_b = $1)", council))
