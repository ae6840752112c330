"""Which of the council's children count as shielded (docs/design.md §6, ``protocol.disclosure``).

Shielding belongs to the child, not to one record. A child is shielded when its own
flag is set (a source said so; ingest never clears it) or when it carries a *mark*:
it was found related to a shielded child — merged with it (``merged_into`` either
way), in the review list with it (open, accepted, rejected or obsolete: a pair once
suspected stays a suspect), or sharing a valid NHS number or UPN with it (its own or
any of its source rows'), directly or through other related children.
:meth:`ShieldStore.refresh` walks those relations outwards from every shielded or
marked child and adds marks; nothing here removes one, so archiving or purging the
shielded record never lifts shielding from the others (sticky).

Search for anyone but the council's index team reaches a child through a location
blocking key (``protocol.disclosure.LOCATION_KEY_PREFIXES``) only if it is not
shielded, and a shielded child does not count towards such a key's block size either:
otherwise whether another child is found would depend on where a shielded child lives.
"""

from __future__ import annotations

import asyncpg

from local_node.storage.children import CHILD_COLUMNS, MATCH_BLOCK_LIMIT, ChildRow, child_row

# A mark learnt from the hub: another council shields the same child (which council is
# not said; its area is what must not leak).
HUB_VIA = "hub"

# Is the child ``{0}`` shielded (own flag, or a mark)? Used inside the queries below,
# and by the notices store (a shielded child's notice: the index team's inbox only).
SHIELDED_SQL = ("(EXISTS (SELECT 1 FROM children s WHERE s.local_id = {0} AND s.shielded)"
             " OR EXISTS (SELECT 1 FROM shield_marks m WHERE m.local_id = {0}))")

# Every child one step from ``r.local_id``: merged with it, in review with it, or
# holding one of its NHS numbers or UPNs (on the child or on a source row).
_NEIGHBOURS = """
    SELECT c.merged_into AS local_id FROM children c
     WHERE c.local_id = r.local_id AND c.merged_into IS NOT NULL
    UNION ALL SELECT c.local_id FROM children c WHERE c.merged_into = r.local_id
    UNION ALL SELECT i.candidate_id FROM review_items i WHERE i.local_id = r.local_id
    UNION ALL SELECT i.local_id FROM review_items i WHERE i.candidate_id = r.local_id
    UNION ALL SELECT o.local_id FROM (
        SELECT c.nhs_number AS nhs, c.upn AS upn FROM children c
         WHERE c.local_id = r.local_id
        UNION ALL SELECT s.identity ->> 'nhs_number', s.identity ->> 'upn'
          FROM source_records s WHERE s.local_id = r.local_id
    ) mine CROSS JOIN LATERAL (
        SELECT c.local_id FROM children c WHERE c.nhs_number = mine.nhs
        UNION ALL SELECT c.local_id FROM children c WHERE c.upn = mine.upn
        UNION ALL SELECT s.local_id FROM source_records s
         WHERE s.identity ->> 'nhs_number' = mine.nhs
        UNION ALL SELECT s.local_id FROM source_records s WHERE s.identity ->> 'upn' = mine.upn
    ) o
"""


class ShieldStore:
    async def refresh(self, conn: asyncpg.Connection) -> list[str]:
        """Mark every child related to a shielded one (see the module docstring); run in
        the transaction that changed the relations, under ``ChildStore.lock_index``.
        Returns the children newly marked (their records are published shielded)."""
        rows = await conn.fetch(
            f"""
            WITH RECURSIVE reach(local_id, via) AS (
                (SELECT local_id, local_id FROM children WHERE shielded
                 UNION SELECT local_id, via FROM shield_marks)
              UNION
                SELECT n.local_id, r.via FROM reach r CROSS JOIN LATERAL ({_NEIGHBOURS}) n
            )
            INSERT INTO shield_marks (local_id, via)
            SELECT DISTINCT ON (local_id) local_id, via FROM reach ORDER BY local_id, via
            ON CONFLICT (local_id) DO NOTHING
            RETURNING local_id
            """
        )
        return [r["local_id"] for r in rows]

    async def mark_from_hub(self, conn: asyncpg.Connection, local_ids: list[str]
                            ) -> list[str]:
        """Mark these children as the hub said: another council shields the same child.
        Ids the index no longer holds (purged) are skipped. Returns those newly marked;
        :meth:`refresh` then carries the marks to their local relations."""
        rows = await conn.fetch(
            """
            INSERT INTO shield_marks (local_id, via)
            SELECT c.local_id, $2 FROM children c WHERE c.local_id = ANY($1::text[])
            ON CONFLICT (local_id) DO NOTHING
            RETURNING local_id
            """, local_ids, HUB_VIA)
        return [r["local_id"] for r in rows]

    async def shielded_among(self, conn: asyncpg.Connection,
                             local_ids: list[str]) -> dict[str, str]:
        """Those of these children that are shielded, each with the shielded record it
        is shielded through (itself when its own flag is set)."""
        rows = await conn.fetch(
            """
            SELECT local_id, local_id AS via FROM children
             WHERE shielded AND local_id = ANY($1::text[])
            UNION ALL
            SELECT local_id, via FROM shield_marks WHERE local_id = ANY($1::text[])
            """,
            local_ids,
        )
        out: dict[str, str] = {}
        for r in rows:
            out.setdefault(r["local_id"], r["via"])
        return out

    async def find_unshielded(self, conn: asyncpg.Connection,
                              location_keys: list[str]) -> list[ChildRow]:
        """Children that are not shielded holding any of these location blocking keys,
        a key counting as too common (``MATCH_BLOCK_LIMIT``) by its unshielded holders only."""
        if not location_keys:
            return []
        rows = await conn.fetch(
            f"""
            SELECT {", ".join("c." + c for c in CHILD_COLUMNS)} FROM children c
              JOIN (SELECT DISTINCT k.local_id FROM child_blocking_keys k
                      JOIN (SELECT b.key FROM child_blocking_keys b
                             WHERE b.key = ANY($1::text[])
                               AND NOT {SHIELDED_SQL.format("b.local_id")}
                             GROUP BY b.key HAVING count(*) <= $2) small USING (key)
                   ) found USING (local_id)
             WHERE c.merged_into IS NULL AND NOT {SHIELDED_SQL.format("c.local_id")}
            """,
            location_keys, MATCH_BLOCK_LIMIT,
        )
        return [child_row(r) for r in rows]
