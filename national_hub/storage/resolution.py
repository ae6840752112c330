"""SQL of national identity resolution: blocking keys, candidates, national ids and
merging national children (the review queue is storage/review_queue.py). Set-based:
each call is one statement over arrays."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

import asyncpg

from national_hub.storage import key_sets
from national_hub.storage.blocks import counted_holders
from national_hub.storage.records import PENDING
from server_common.sampling_store import seeded_order

RecordKey = tuple[str, str]  # (council, local_id)

# Whether record ``r`` counts as shielded, its location masked: flagged, or holding a
# shield mark (migration 015). Written out, not asked of a SQL function: PostgreSQL does
# not inline a function around a subquery, and each call cost about 3 us (migration 019).
LOCATION_MASKED = (
    "(r.shielded OR EXISTS (SELECT 1 FROM shield_marks sm"
    " WHERE sm.council_code = r.council_code AND sm.local_id = r.local_id))"
)
# The columns matching reads, as one select list (``r`` is ``records``). A shielded
# record's postcode and address are not evidence (docs/design.md §6): no link, review or
# explanation may depend on where a shielded child lives, so matching never reads them.
IDENTITY_COLUMNS = (
    "r.council_code, r.local_id, r.national_id, r.given_name, r.family_name, r.dob, r.sex,"
    " r.other_given_names, r.former_family_names,"
    # a shielded child's location weighs nothing: flagged or marked
    f" CASE WHEN {LOCATION_MASKED} THEN NULL ELSE r.postcode END AS postcode,"
    f" CASE WHEN {LOCATION_MASKED} THEN NULL ELSE r.address_line END AS address_line,"
    " r.nhs_number, r.upn"
)


# The resolver's candidate read (:meth:`ResolutionStore.candidates`): $1 the keys, $2
# the block limit, $3 and $4 a council and local ids whose records are left out (the
# chunk's own).
# Each key is looked up in the covering index and read no further than one
# holder past the limit: a common key costs max_block + 1 index entries however
# many records hold it, and nothing scans record_keys as a whole (which made
# every chunk slower as the hub filled). Only a key held past the limit is then
# walked council by council, so that one council flooding it skips its own holders
# and not the others' (storage/blocks.py: at most about 3 * max_block entries a key).
# The keys are grouped by holder first, on narrow rows, and each holder's record
# read once after: grouping the wide joined rows spilled its sort to disk (a
# 1,600-record chunk's candidates: 0.74-0.96 s, now 0.6). Ordered, so the decision
# meets the candidates in the same order on every run.
# Each holder's record is read by its primary key in a LATERAL ... LIMIT 1, which
# the planner cannot turn into a join: it estimates the grouped holders at a
# couple of rows, and while a bulk load is being resolved its statistics still
# say few records have a national id, so it chose to walk every resolved record
# (records_national) and a chunk's read took 15-88 s, not 0.4. The test of a
# national id stays outside, where it cannot steer the lookup to that index.
# The chunk's own records hold every key it asks for: they still count towards a key's
# limit, but are dropped before grouping, not grouped and looked up to be dropped by
# the caller. In a 50,000-record chunk they were two rows in three of the key rows and
# a third of the lookups (a chunk's read 4.5 -> 3.4 s). Their ids are hashed once per
# statement (a hashed subplan), and the planner must not know how many there are:
# - NOT EXISTS made an anti-join, which in the generic plan a connection keeps after
#   five runs (every array guessed at ten elements) was redone for every key: a
#   50,000-record chunk of `links resolve --bulk` was still running after 12 minutes;
# - NOT IN over $4 itself, told 300,000 ids, gave up the hash for a scan of the list
#   per row (not done in minutes). Behind OFFSET 0 the list's length is unknown to
#   the planner, so the subplan is hashed for any number (300,000: 3.4 s).
CANDIDATES_SQL = f"""
    WITH RECURSIVE {counted_holders("$1", "$2")}, held AS (
        SELECT h.council_code, h.local_id, array_agg(h.key) AS keys
        FROM counted h
        WHERE h.council_code <> $3 OR h.local_id NOT IN (
                  SELECT unnest(own.ids) FROM (SELECT $4::text[] AS ids OFFSET 0) own)
        GROUP BY h.council_code, h.local_id
    )
    SELECT r.*, held.keys
    FROM held CROSS JOIN LATERAL (
        SELECT {IDENTITY_COLUMNS} FROM records r
        WHERE r.council_code = held.council_code AND r.local_id = held.local_id
          AND r.record IS NOT NULL
        LIMIT 1
    ) r
    WHERE r.national_id IS NOT NULL
    ORDER BY r.council_code, r.local_id
"""


# ResolutionStore.retire_if_empty: $1 retired ids, $2 their survivors. The retired id and
# the ids that redirected to it are found as two joins, each by an index: one join on
# "national_id = retired OR redirect_to = retired" can use neither, and compared every
# national child with every retired id (2,000 ids retired on a hub of 200,000 children:
# 17 s, against 0.04).
RETIRE_SQL = """
    WITH gone AS (
        SELECT m.retired, m.survivor FROM unnest($1::text[], $2::text[])
            AS m(retired, survivor)
        WHERE m.retired <> m.survivor AND NOT EXISTS (
            SELECT 1 FROM records r WHERE r.national_id = m.retired
            AND r.record IS NOT NULL)
    ), redirected AS (
        SELECT c.national_id, gone.survivor FROM gone
        JOIN national_children c ON c.national_id = gone.retired
        UNION ALL
        SELECT c.national_id, gone.survivor FROM gone
        JOIN national_children c ON c.redirect_to = gone.retired
    )
    UPDATE national_children c SET redirect_to = redirected.survivor
    FROM redirected WHERE c.national_id = redirected.national_id
"""


# Live records the resolver has given a national id (a new record waits in the queue
# without one).
_RESOLVED = "record IS NOT NULL AND national_id IS NOT NULL"

class ResolutionStore:
    # --- blocking keys (held twice, always alike: storage/key_sets.py) -----------

    async def replace_keys(self, conn: asyncpg.Connection, council: str,
                           local_ids: Sequence[str],
                           keys: Mapping[str, Collection[str]]) -> None:
        """Drop every key of ``local_ids`` and insert ``keys`` (local_id → its keys, each
        one of ``local_ids``): once dropped they hold none, so the new ones are copied in."""
        await key_sets.remove(conn, council, local_ids)
        await key_sets.copy(conn, council, keys)

    async def sync_keys(self, conn: asyncpg.Connection, council: str,
                        local_ids: Sequence[str], keys: Mapping[str, Collection[str]]) -> None:
        """Make ``local_ids``' keys exactly ``keys`` (local_id → its keys), writing only
        what differs (a record of ``local_ids`` absent from ``keys`` loses all of its).
        Re-resolving a council after a model change computes the keys its records already
        hold, and so does most of batch intake's updates (a new school, a service ended):
        deleting and re-inserting every one cost more than the resolution itself (an
        index entry rewritten per key); a key kept is not touched."""
        if not local_ids:
            return
        have = await key_sets.read(conn, [(council, lid) for lid in local_ids], lock=True)
        await key_sets.change(conn, have, {(council, lid): set(ks)
                                           for lid, ks in keys.items()})

    async def candidates(self, conn: asyncpg.Connection, keys: Collection[str],
                         max_block: int, *, besides: str = "",
                         besides_ids: Sequence[str] = ()) -> list[asyncpg.Record]:
        """Resolved live records holding any of ``keys``, with the keys they hold; a key
        held by more than ``max_block`` records is no evidence and is skipped, but for
        the councils holding at most ``max_block`` of it when at most ``max_block`` are
        outside the council holding most (:mod:`national_hub.storage.blocks`). A record
        still queued is left out: it meets these when its own turn comes. So are the
        records ``besides_ids`` of council ``besides`` (the chunk asking), though they
        still count towards a key's limit."""
        if not keys:
            return []
        return await conn.fetch(CANDIDATES_SQL, sorted(set(keys)), max_block, besides,
                                list(besides_ids))

    async def chunk_identities(self, conn: asyncpg.Connection, council: str,
                               local_ids: Sequence[str]) -> list[asyncpg.Record]:
        """The identity columns of a resolver chunk's live records, each with the blocking
        keys it holds (``keys``, empty if none), read in one statement so that the two
        agree: intake writes a record and its keys in one transaction. The keys held are
        what its identity columns give (a marked record's location keys dropped as its
        location is masked, storage/shielding.py), and reading them costs less than
        deriving them again."""
        if not local_ids:
            return []
        return await conn.fetch(
            f"SELECT {IDENTITY_COLUMNS}, coalesce(ks.keys, '{{}}') AS keys"
            " FROM unnest($2::text[]) w(l) CROSS JOIN LATERAL ("
            "  SELECT * FROM records r WHERE r.council_code = $1 AND r.local_id = w.l"
            "  AND r.record IS NOT NULL LIMIT 1) r"
            " LEFT JOIN LATERAL (SELECT s.keys FROM record_key_sets s"
            "  WHERE s.council_code = r.council_code AND s.local_id = r.local_id LIMIT 1) ks"
            " ON true", council, list(local_ids))

    async def identities(self, conn: asyncpg.Connection, records: Sequence[RecordKey],
                         *, with_shielded: bool = False) -> list[asyncpg.Record]:
        """The identity columns of these live records (and, for a person deciding a
        review, whether each counts as shielded, by its own flag or a relation, and the
        postcode as held, for the record's own council's eyes only)."""
        if not records:
            return []
        councils, ids = zip(*records, strict=True)
        shielded = (f", {LOCATION_MASKED} AS shielded, r.postcode AS held_postcode"
                    if with_shielded else "")
        return await conn.fetch(
            f"SELECT {IDENTITY_COLUMNS}{shielded} FROM records r"
            " JOIN unnest($1::text[], $2::text[]) w(c, l)"
            " ON r.council_code = w.c AND r.local_id = w.l WHERE r.record IS NOT NULL",
            list(councils), list(ids))

    async def live_identities(self, conn: asyncpg.Connection, council: str,
                              after: str = "", limit: int = 5000) -> list[asyncpg.Record]:
        """The council's live records in local_id order, from after ``after``."""
        return await conn.fetch(
            f"SELECT {IDENTITY_COLUMNS} FROM records r WHERE r.council_code = $1"
            " AND r.local_id > $2 AND r.record IS NOT NULL ORDER BY r.local_id LIMIT $3",
            council, after, limit)

    async def random_identities(self, conn: asyncpg.Connection, limit: int,
                                seed: int | None = None) -> list[asyncpg.Record]:
        """Up to ``limit`` live records of any council, drawn at random (model training);
        with a ``seed``, the same draw from the same records every time
        (:func:`~server_common.sampling_store.seeded_order`)."""
        return await conn.fetch(
            f"SELECT {IDENTITY_COLUMNS} FROM records r WHERE r.record IS NOT NULL"
            f" ORDER BY {seeded_order('$2', 'r.council_code', 'r.local_id')} LIMIT $1",
            limit, seed)

    async def random_candidate_pairs(self, conn: asyncpg.Connection, max_block: int,
                                     limit: int, seed: int | None = None,
                                     ) -> tuple[list[tuple[RecordKey, RecordKey]], int]:
        """Up to ``limit`` pairs of live records sharing a blocking key (a key held by
        more than ``max_block`` records is skipped, as in resolution), drawn at random
        (with a ``seed``, the same draw every time); and how many such pairs there are
        (what the sample stands for)."""
        # Statistics first: right after a council's initial load (when a model is first
        # trained) autovacuum may not have counted record_keys yet, and planned for a
        # near-empty table this self-join rescanned a spilled tuplestore for each row:
        # over 6 minutes at 228,771 records, where it takes 25 s. A sample, about 1 s.
        await conn.execute("ANALYZE record_keys")
        rows = await conn.fetch(
            f"""
            WITH block AS (
                SELECT key FROM record_keys GROUP BY key HAVING count(*) BETWEEN 2 AND $1
            ), pairs AS (
                SELECT DISTINCT a.council_code AS ca, a.local_id AS la,
                                b.council_code AS cb, b.local_id AS lb
                FROM block JOIN record_keys a USING (key) JOIN record_keys b USING (key)
                WHERE (a.council_code, a.local_id) < (b.council_code, b.local_id)
            )
            SELECT ca, la, cb, lb, count(*) OVER () AS every
            FROM pairs ORDER BY {seeded_order('$3', 'ca', 'la', 'cb', 'lb')} LIMIT $2
            """, max_block, limit, seed)
        every = int(rows[0]["every"]) if rows else 0
        return [((r["ca"], r["la"]), (r["cb"], r["lb"])) for r in rows], every

    async def set_national_ids(self, conn: asyncpg.Connection, council: str,
                               national_ids: dict[str, str],
                               model_versions: dict[str, str] | None = None) -> None:
        """Point records at their resolved national ids, and note the model version that
        decided each (``model_versions``); rows already right are left. A pending record
        becomes 'single' in the same write, so a new record is rewritten once more only
        if ``refresh_status`` finds it linked or in review."""
        if not national_ids:
            return
        versions = model_versions or {}
        await conn.execute(
            "UPDATE records r SET national_id = u.n, updated_at = now(),"
            " model_version = coalesce(u.v, r.model_version),"
            " link_status = CASE WHEN r.link_status = $4 THEN 'single' ELSE r.link_status END"
            " FROM unnest($2::text[], $3::text[], $5::text[]) AS u(l, n, v)"
            " WHERE r.council_code = $1 AND r.local_id = u.l AND r.record IS NOT NULL"
            " AND (r.national_id IS DISTINCT FROM u.n OR r.link_status = $4"
            "      OR r.model_version IS DISTINCT FROM coalesce(u.v, r.model_version))",
            council, list(national_ids), list(national_ids.values()), PENDING,
            [versions.get(lid) for lid in national_ids])

    async def holders(self, conn: asyncpg.Connection,
                      national_ids: Sequence[str]) -> list[asyncpg.Record]:
        if not national_ids:
            return []
        return await conn.fetch(
            f"SELECT {IDENTITY_COLUMNS} FROM records r"
            " WHERE r.national_id = ANY($1::text[]) AND r.record IS NOT NULL",
            list(national_ids))

    async def councils_holding(self, conn: asyncpg.Connection,
                               national_ids: Sequence[str]) -> list[str]:
        """The councils with a live record holding any of these national ids."""
        if not national_ids:
            return []
        rows = await conn.fetch("SELECT DISTINCT council_code FROM records"
                                " WHERE national_id = ANY($1::text[]) AND record IS NOT NULL",
                                list(national_ids))
        return [r["council_code"] for r in rows]

    async def created(self, conn: asyncpg.Connection,
                      national_ids: Sequence[str]) -> dict[str, datetime]:
        rows = await conn.fetch("SELECT national_id, created_at FROM national_children"
                                " WHERE national_id = ANY($1::text[])", list(national_ids))
        return {r["national_id"]: r["created_at"] for r in rows}

    async def name_counts(self, conn: asyncpg.Connection
                          ) -> tuple[dict[str, int], dict[str, int]]:
        """How many resolved live records carry each given name and each family name
        (records still queued count once resolved, as they did when resolution ran
        before they were written)."""
        given = await conn.fetch("SELECT given_name AS n, count(*) AS c FROM records"
                                 f" WHERE {_RESOLVED} GROUP BY given_name")
        family = await conn.fetch("SELECT family_name AS n, count(*) AS c FROM records"
                                  f" WHERE {_RESOLVED} GROUP BY family_name")
        return ({r["n"]: r["c"] for r in given if r["n"]},
                {r["n"]: r["c"] for r in family if r["n"]})

    async def location_counts(self, conn: asyncpg.Connection
                              ) -> tuple[dict[str, int], dict[str, int]]:
        """How many resolved live records carry each postcode and each address line, as
        written (the caller normalises and adds up spellings of one value). A shielded
        record's location (flagged or marked) is not counted."""
        unmasked = f" AND NOT {LOCATION_MASKED}"
        postcode = await conn.fetch("SELECT postcode AS v, count(*) AS c FROM records r"
                                    f" WHERE {_RESOLVED}{unmasked} GROUP BY postcode")
        address = await conn.fetch("SELECT address_line AS v, count(*) AS c FROM records r"
                                   f" WHERE {_RESOLVED}{unmasked} GROUP BY address_line")
        return ({r["v"]: r["c"] for r in postcode if r["v"]},
                {r["v"]: r["c"] for r in address if r["v"]})

    async def partner_rate(self, conn: asyncpg.Connection) -> tuple[int, int, int]:
        """(resolved live records, those with an NHS number, those whose NHS number
        another resolved live record holds too).

        Where no record holds an NHS number (feeds that carry none), the same measure on
        the exact given name, family name and date of birth instead: (records, those
        with all three, those sharing all three with another record). Exact agreement
        misses the partners a typo hides, so it errs towards the smaller prior; twins
        never share a given name."""
        row = await conn.fetchrow(
            f"""
            SELECT (SELECT count(*) FROM records WHERE {_RESOLVED}) AS n,
                   coalesce(sum(c), 0) AS with_nhs,
                   coalesce(sum(c) FILTER (WHERE c > 1), 0) AS partnered
            FROM (SELECT count(*) AS c FROM records WHERE {_RESOLVED}
                  AND nhs_number IS NOT NULL GROUP BY nhs_number) g
            """)
        assert row is not None
        if row["with_nhs"] > 0:
            return int(row["n"]), int(row["with_nhs"]), int(row["partnered"])
        named = await conn.fetchrow(
            f"""
            SELECT coalesce(sum(c), 0) AS with_names,
                   coalesce(sum(c) FILTER (WHERE c > 1), 0) AS partnered
            FROM (SELECT count(*) AS c FROM records WHERE {_RESOLVED}
                  AND given_name IS NOT NULL AND family_name IS NOT NULL
                  AND dob IS NOT NULL
                  GROUP BY lower(given_name), lower(family_name), dob) g
            """)
        assert named is not None
        return int(row["n"]), int(named["with_names"]), int(named["partnered"])

    # --- national children ------------------------------------------------------

    async def retire_if_empty(self, conn: asyncpg.Connection,
                              moves: Sequence[tuple[str, str]]) -> None:
        """For each (old id, survivor): if nothing holds the old id any more, it
        redirects to the survivor (and so does every id that redirected to it)."""
        if not moves:
            return
        retired, survivor = zip(*moves, strict=True)
        await conn.execute(RETIRE_SQL, list(retired), list(survivor))

    async def merge(self, conn: asyncpg.Connection, retired: str, survivor: str) -> None:
        """Every record of ``retired`` moves to ``survivor``; ``retired`` redirects."""
        await conn.execute("UPDATE records SET national_id = $2, updated_at = now()"
                           " WHERE national_id = $1", retired, survivor)
        await self.retire_if_empty(conn, [(retired, survivor)])

    async def move(self, conn: asyncpg.Connection, record: RecordKey, national_id: str) -> None:
        await conn.execute("UPDATE records SET national_id = $3, updated_at = now()"
                           " WHERE council_code = $1 AND local_id = $2",
                           record[0], record[1], national_id)

    async def refresh_status(self, conn: asyncpg.Connection, national_ids: Sequence[str]) -> None:
        """A national child held by more than one live record is 'linked'; a record alone
        with an open review is 'review'; else 'single'. Rewrites only rows that change."""
        if not national_ids:
            return
        await conn.execute(
            """
            UPDATE records r SET link_status = n.status
            FROM (SELECT x.council_code, x.local_id,
                         CASE WHEN count(*) OVER (PARTITION BY x.national_id) > 1
                              THEN 'linked'
                              WHEN EXISTS (
                                  SELECT 1 FROM review_queue q WHERE q.status = 'open' AND (
                                  (q.council_a = x.council_code AND q.local_id_a = x.local_id)
                                  OR (q.council_b = x.council_code AND q.local_id_b = x.local_id)))
                              THEN 'review' ELSE 'single' END AS status
                  FROM records x
                  WHERE x.national_id = ANY($1::text[]) AND x.record IS NOT NULL) n
            WHERE r.council_code = n.council_code AND r.local_id = n.local_id
              AND r.link_status IS DISTINCT FROM n.status
            """, sorted(set(national_ids)))
