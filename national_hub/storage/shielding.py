"""Which records count as shielded at the hub (docs/design.md §6): sticky marks, set-based.

``shield_marks`` holds one row per record that counts as shielded and per council
whose shielded record made it so. :meth:`ShieldingStore.refresh` brings the marks up
to date for the records whose relations just changed (a batch, a resolver chunk, a
review decision, retention), in the caller's transaction:

1. each touched record shielded by its own flag is marked for its own council, unless
   another council's shielding marks it already: a node publishes its copy of a child
   another council shields with the flag set (the hub's word, so that the hub withholds
   it even unpaired), and that does not make its council one that shields the child
   (named to every reader as whom to contact, its index team shown every council that
   knows the child);
2. each touched record *pulls* the marks of every record it is related to;
3. the marks of the touched records, then every mark newly made, are *pushed* to
   every related record, until nothing new is marked (a handful of rounds: each is one
   statement over the frontier, never a query per record);
4. a marked record loses its location blocking keys (``dp:``, ``gp:``, ``sp:``), so no search
   and no resolution reaches it, or counts it, through where it lives.

Related means (:class:`protocol.disclosure.Relation`): the same national id (live,
archived or a tombstone that still holds it; a merge puts records under one id, so a
merge is a link here), either side of a review pair of any status (in review, linked,
separated), or the same valid NHS number or UPN (the ``n:`` and ``u:`` blocking keys,
which only valid identifiers get). Marks are never deleted here: archiving, purging
or splitting never lifts them.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from national_hub.storage import key_sets
from protocol.disclosure import LOCATION_KEY_PREFIXES

RecordKey = tuple[str, str]  # (council, local_id)
MAX_ROUNDS = 50  # a chain of relations longer than this is not a real child

# Every record related to a record of ``src(council_code, local_id)``, as
# (src_council, src_local, council_code, local_id, reason).
_RELATED = """
    SELECT s.council_code AS sc, s.local_id AS sl, o.council_code, o.local_id,
           'linked' AS reason
    FROM src s
    JOIN records m ON m.council_code = s.council_code AND m.local_id = s.local_id
    JOIN records o ON o.national_id = m.national_id
    WHERE m.national_id IS NOT NULL
    UNION ALL
    SELECT s.council_code, s.local_id, q.council_b, q.local_id_b, 'review'
    FROM src s JOIN review_queue q ON q.council_a = s.council_code AND q.local_id_a = s.local_id
    UNION ALL
    SELECT s.council_code, s.local_id, q.council_a, q.local_id_a, 'review'
    FROM src s JOIN review_queue q ON q.council_b = s.council_code AND q.local_id_b = s.local_id
    UNION ALL
    SELECT s.council_code, s.local_id, o.council_code, o.local_id, 'same_identifier'
    FROM src s
    JOIN record_key_sets ks ON ks.council_code = s.council_code AND ks.local_id = s.local_id
    CROSS JOIN LATERAL unnest(ks.keys) k(key)
    JOIN record_keys o ON o.key = k.key
    WHERE k.key LIKE 'n:%' OR k.key LIKE 'u:%'
"""


def _split(records: Sequence[RecordKey]) -> tuple[list[str], list[str]]:
    return [c for c, _ in records], [lid for _, lid in records]


class ShieldingStore:
    async def refresh(self, conn: asyncpg.Connection, records: Sequence[RecordKey] = (),
                      national_ids: Sequence[str] = ()) -> int:
        """Bring the marks up to date after the relations of ``records`` (and of every
        record of ``national_ids``) changed. Returns how many marks were made."""
        touched = await conn.fetch(
            """
            SELECT DISTINCT c AS council_code, l AS local_id
            FROM unnest($1::text[], $2::text[]) w(c, l)
            UNION
            SELECT council_code, local_id FROM records WHERE national_id = ANY($3::text[])
            """, *_split(records), list(national_ids))
        if not touched:
            return 0
        councils = [r["council_code"] for r in touched]
        ids = [r["local_id"] for r in touched]
        made = len(await conn.fetch(
            """
            INSERT INTO shield_marks (council_code, local_id, shielding_council, reason)
            SELECT r.council_code, r.local_id, r.council_code, 'own'
            FROM unnest($1::text[], $2::text[]) w(c, l)
            JOIN records r ON r.council_code = w.c AND r.local_id = w.l AND r.shielded
            -- a record already shielded by another council's is flagged by its node
            -- because the hub said so (local_node.services.hub_shielding): its council
            -- holds a copy, it does not shield the child (nor is it named as one)
            WHERE NOT EXISTS (SELECT 1 FROM shield_marks o
                              WHERE o.council_code = r.council_code
                                AND o.local_id = r.local_id
                                AND o.shielding_council <> r.council_code)
            ON CONFLICT DO NOTHING RETURNING 1
            """, councils, ids))
        made += len(await conn.fetch(
            f"""
            WITH src AS (SELECT * FROM unnest($1::text[], $2::text[]) w(council_code, local_id)),
            related AS ({_RELATED})
            INSERT INTO shield_marks (council_code, local_id, shielding_council, reason)
            SELECT DISTINCT ON (rel.sc, rel.sl, m.shielding_council)
                   rel.sc, rel.sl, m.shielding_council, rel.reason
            FROM related rel
            JOIN shield_marks m ON m.council_code = rel.council_code
                               AND m.local_id = rel.local_id
            ON CONFLICT DO NOTHING RETURNING 1
            """, councils, ids))
        frontier: list[RecordKey] = [(r["council_code"], r["local_id"]) for r in touched]
        marked: set[RecordKey] = set(frontier)
        for _ in range(MAX_ROUNDS):
            new = await conn.fetch(
                f"""
                WITH src AS (  -- only marked records push (most touched ones are not)
                    SELECT DISTINCT w.council_code, w.local_id
                    FROM unnest($1::text[], $2::text[]) w(council_code, local_id)
                    JOIN shield_marks s ON s.council_code = w.council_code
                                       AND s.local_id = w.local_id),
                related AS ({_RELATED})
                INSERT INTO shield_marks (council_code, local_id, shielding_council, reason)
                SELECT DISTINCT ON (rel.council_code, rel.local_id, m.shielding_council)
                       rel.council_code, rel.local_id, m.shielding_council, rel.reason
                FROM related rel
                JOIN shield_marks m ON m.council_code = rel.sc AND m.local_id = rel.sl
                ON CONFLICT DO NOTHING RETURNING council_code, local_id
                """, *_split(frontier))
            if not new:
                break
            made += len(new)
            frontier = sorted({(r["council_code"], r["local_id"]) for r in new})
            marked.update(frontier)
        await self._drop_location_keys(conn, sorted(marked))
        return made

    async def refresh_all(self, conn: asyncpg.Connection) -> int:
        """Carry every shielded record's marks to all its relations (after an upgrade
        that introduced the marks, or to repair): a refresh from every marked record."""
        rows = await conn.fetch("SELECT DISTINCT council_code, local_id FROM shield_marks"
                                " UNION SELECT council_code, local_id FROM records"
                                " WHERE shielded")
        return await self.refresh(conn, [(r["council_code"], r["local_id"]) for r in rows])

    async def _drop_location_keys(self, conn: asyncpg.Connection,
                                  records: Sequence[RecordKey]) -> None:
        """A marked record's location keys go: nothing finds or counts it by them."""
        rows = await conn.fetch(
            """
            SELECT DISTINCT w.c, w.l FROM unnest($1::text[], $2::text[]) w(c, l)
            JOIN shield_marks m ON m.council_code = w.c AND m.local_id = w.l
            """, *_split(records))
        have = await key_sets.read(conn, [(r["c"], r["l"]) for r in rows], lock=True)
        await key_sets.change(conn, have, {
            rk: {key for key in held if not key.startswith(LOCATION_KEY_PREFIXES)}
            for rk, held in have.items()})

    async def shielding(self, conn: asyncpg.Connection,
                        records: Sequence[RecordKey]) -> dict[RecordKey, tuple[str, ...]]:
        """For each of ``records`` that counts as shielded, the councils shielding it."""
        rows = await conn.fetch(
            """
            SELECT m.council_code, m.local_id,
                   array_agg(DISTINCT m.shielding_council ORDER BY m.shielding_council) AS by
            FROM unnest($1::text[], $2::text[]) w(c, l)
            JOIN shield_marks m ON m.council_code = w.c AND m.local_id = w.l
            GROUP BY m.council_code, m.local_id
            """, *_split(records))
        return {(r["council_code"], r["local_id"]): tuple(r["by"]) for r in rows}

    async def shielded_elsewhere(self, conn: asyncpg.Connection, council: str, after: str,
                                 limit: int) -> list[str]:
        """``council``'s records that count as shielded because of another council's
        shielded record, by local id after ``after`` (key-set paging): what that
        council's node must withhold too. Which council shields them is not said."""
        rows = await conn.fetch(
            """
            SELECT DISTINCT local_id FROM shield_marks
            WHERE council_code = $1 AND shielding_council <> $1 AND local_id > $2
            ORDER BY local_id LIMIT $3
            """, council, after, limit)
        return [r["local_id"] for r in rows]
