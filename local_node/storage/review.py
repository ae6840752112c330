"""The local review list: pairs of children that may be one, for the index team."""

from __future__ import annotations

import json
from typing import Any

import asyncpg


class ReviewStore:
    async def add(self, conn: asyncpg.Connection,
                  items: list[tuple[str, str, float, dict[str, Any]]],
                  model_version: str | None = None) -> int:
        """(local_id, candidate_id, score, explanation), sent by ``model_version``; a
        pair already listed is kept."""
        if not items:
            return 0
        result = await conn.execute(
            """
            INSERT INTO review_items (local_id, candidate_id, score, explanation, model_version)
            SELECT l, c, s, e::jsonb, v
              FROM unnest($1::text[], $2::text[], $3::float8[], $4::text[], $5::text[])
                AS t(l, c, s, e, v)
            ON CONFLICT (local_id, candidate_id) DO NOTHING
            """,
            [i[0] for i in items], [i[1] for i in items], [i[2] for i in items],
            [json.dumps(i[3]) for i in items], [model_version] * len(items),
        )
        return int(result.split()[-1])

    async def open_items(self, conn: asyncpg.Connection) -> list[asyncpg.Record]:
        return await conn.fetch(
            """
            SELECT r.id, r.local_id, r.candidate_id, r.score, r.explanation, r.created_at,
                   r.model_version,
                   a.given_name AS a_given, a.family_name AS a_family, a.dob AS a_dob,
                   a.postcode AS a_postcode, b.given_name AS b_given,
                   b.family_name AS b_family, b.dob AS b_dob, b.postcode AS b_postcode
              FROM review_items r
              JOIN children a ON a.local_id = r.local_id
              JOIN children b ON b.local_id = r.candidate_id
             WHERE r.status = 'open' ORDER BY r.score DESC, r.id
            """
        )

    async def get_for_update(self, conn: asyncpg.Connection,
                             item_id: int) -> asyncpg.Record | None:
        return await conn.fetchrow(
            "SELECT id, local_id, candidate_id, score, status FROM review_items WHERE id = $1"
            " FOR UPDATE", item_id,
        )

    async def status(self, conn: asyncpg.Connection, item_id: int) -> str | None:
        return await conn.fetchval("SELECT status FROM review_items WHERE id = $1", item_id)

    async def decide(self, conn: asyncpg.Connection, item_id: int, status: str,
                     decided_by: str) -> None:
        await conn.execute(
            "UPDATE review_items SET status = $2, decided_at = now(), decided_by = $3"
            " WHERE id = $1", item_id, status, decided_by,
        )

    async def reopen_rejected(self, conn: asyncpg.Connection, item_id: int) -> bool:
        """A "different children" decision undone: the pair waits again, unless one of
        its children has been merged into another since (then there is no pair to ask
        about). True if reopened."""
        return await conn.fetchval(
            """
            UPDATE review_items r SET status = 'open', decided_at = NULL, decided_by = NULL
             WHERE r.id = $1 AND r.status = 'rejected' AND NOT EXISTS (
                   SELECT 1 FROM children c WHERE c.local_id IN (r.local_id, r.candidate_id)
                      AND c.merged_into IS NOT NULL)
            RETURNING true
            """, item_id) is not None

    async def retire_child(self, conn: asyncpg.Connection, local_id: str) -> None:
        """Open items about a child merged away no longer need a decision."""
        await conn.execute(
            "UPDATE review_items SET status = 'obsolete', decided_at = now()"
            " WHERE status = 'open' AND (local_id = $1 OR candidate_id = $1)", local_id,
        )

    async def count_open(self, conn: asyncpg.Connection) -> int:
        return int(await conn.fetchval("SELECT count(*) FROM review_items WHERE status = 'open'"))
