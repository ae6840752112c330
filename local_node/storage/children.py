"""Children, their source rows and their involvements (the council's local index)."""

from __future__ import annotations

import json
import operator
from dataclasses import dataclass, fields
from datetime import date
from typing import Any

import asyncpg
import msgspec

from server_common.sampling_store import seeded_order


@dataclass(slots=True)
class ChildRow:
    """A child as the index holds it (mutable while an ingest merges rows into it)."""

    local_id: str
    given_name: str | None        # None when no source row supplies a usable one
    family_name: str | None
    dob: date | None
    sex: int = 0
    other_given_names: str | None = None
    former_family_names: list[str] | None = None
    address_line: str | None = None
    postcode: str | None = None
    nhs_number: str | None = None
    upn: str | None = None
    parent_carer_name: str | None = None
    parent_carer_phone: str | None = None
    shielded: bool = False
    date_of_death: date | None = None
    incomplete: str | None = None   # which identity fields are absent, and why
    merged_into: str | None = None  # set when a merge absorbed this child
    published_version: int = 0
    published_digest: str | None = None


CHILD_COLUMNS = [f.name for f in fields(ChildRow)]
# What an upsert writes, named one by one: a field added to ChildRow is written only
# once it is listed here (or among PROJECTION_COLUMNS), and until then
# tests/local_node/test_children_store.py fails rather than the field being dropped.
WRITE_COLUMNS = (
    "local_id", "given_name", "family_name", "dob", "sex", "other_given_names",
    "former_family_names", "address_line", "postcode", "nhs_number", "upn",
    "parent_carer_name", "parent_carer_phone", "shielded", "date_of_death", "merged_into",
    "incomplete",
)
# Set by the projection only (services.projection, as it publishes), never by an upsert.
PROJECTION_COLUMNS = ("published_version", "published_digest")
# Arbitrary constant: the advisory lock key under which the children index is written.
_INDEX_LOCK = 0x5167_6E70_6368_6C64
# A blocking key shared by more children than this (a common given name in a big
# postcode district) is too common to find local candidates by: the other keys still
# do. The node's own limit, not the hub's (national_hub.services.linking and .search).
MATCH_BLOCK_LIMIT = 15
# The big writes of an ingest chunk (thousands of children, source rows, involvements,
# blocking keys) travel as one JSON document each, encoded in C by msgspec (dataclasses,
# dates as ISO text) and unpacked by PostgreSQL: asyncpg's encoding of the same values
# as arrays checks every element against the collections ABCs in Python, which cost
# more than the statements themselves.
_JSON = msgspec.json.Encoder()


def _json(value: Any) -> str:
    return _JSON.encode(value).decode()


@dataclass(frozen=True, slots=True)
class InvolvementRow:
    source: str
    source_ref: str
    local_id: str
    service_type: str
    organisation_code: str | None
    organisation_name: str | None
    organisation_phone: str | None
    professional_name: str | None
    professional_role: str | None
    professional_phone: str | None
    professional_email: str | None
    start_date: date | None
    end_date: date | None
    lead_professional: bool
    caf_done: bool
    sensitive: bool
    consent: bool


INVOLVEMENT_COLUMNS = [f.name for f in fields(InvolvementRow)]
_INVOLVEMENT_VALUES = operator.attrgetter(*INVOLVEMENT_COLUMNS)


_FORMER = CHILD_COLUMNS.index("former_family_names")


def child_row(row: asyncpg.Record) -> ChildRow:
    """A child from a row selected as ``CHILD_COLUMNS``, in that order (and perhaps more
    columns after them)."""
    child = ChildRow(*row[:len(CHILD_COLUMNS)])
    child.former_family_names = list(row[_FORMER] or [])
    return child


_COLS = ", ".join(CHILD_COLUMNS)
_C_COLS = ", ".join("c." + c for c in CHILD_COLUMNS)
# ChildStore.find: each identifier and name looked up by its index in a LATERAL
# subquery, whose LIMIT or OFFSET keeps the planner from turning it into a join. As
# ``= ANY($1)`` and a join, the plan a connection keeps after five chunks compared every
# child with every value of the chunk: 29 s instead of 0.3 over a 20,000-child load
# (docs/scaling.md, "Generic plans"). NHS numbers and UPNs are unique among children.
FIND_SQL = f"""
            SELECT c.* FROM unnest($1::text[]) AS n(v),
              LATERAL (SELECT {_COLS} FROM children WHERE nhs_number = n.v LIMIT 1) c
            UNION
            SELECT c.* FROM unnest($2::text[]) AS u(v),
              LATERAL (SELECT {_COLS} FROM children WHERE upn = u.v LIMIT 1) c
            UNION
            SELECT c.* FROM unnest($3::text[], $4::text[], $5::date[]) AS k(g, f, d),
              LATERAL (SELECT {_COLS} FROM children
                        WHERE lower(family_name) = k.f AND lower(given_name) = k.g
                          AND dob = k.d AND merged_into IS NULL OFFSET 0) c
            UNION
            SELECT {_C_COLS} FROM children c
              JOIN (SELECT DISTINCT k.local_id FROM child_blocking_keys k
                      JOIN (SELECT key FROM child_blocking_keys WHERE key = ANY($6::text[])
                             GROUP BY key HAVING count(*) <= $7) small USING (key)
                   ) b USING (local_id)
             WHERE c.merged_into IS NULL
            """


class ChildStore:
    async def allocate_ids(self, conn: asyncpg.Connection, n: int) -> list[str]:
        if n == 0:
            return []
        rows = await conn.fetch(
            "SELECT nextval('child_local_id_seq') AS n FROM generate_series(1, $1)", n
        )
        return [f"L{r['n']:09d}" for r in rows]

    async def by_source_refs(self, conn: asyncpg.Connection, source: str,
                             refs: list[str]) -> dict[str, str]:
        rows = await conn.fetch(
            "SELECT source_ref, local_id FROM source_records"
            " WHERE source = $1 AND source_ref = ANY($2::text[])", source, refs,
        )
        return {r["source_ref"]: r["local_id"] for r in rows}

    async def find(self, conn: asyncpg.Connection, *, nhs: list[str], upn: list[str],
                   name_dob: list[tuple[str, str, date]],
                   keys: list[str] | None = None) -> list[ChildRow]:
        """Children holding any of these NHS numbers, UPNs, (given, family, dob) or
        blocking keys: every child a chunk of feed rows could match (:data:`FIND_SQL`)."""
        keys = keys or []
        givens = [k[0] for k in name_dob]
        families = [k[1] for k in name_dob]
        dobs = [k[2] for k in name_dob]
        rows = await conn.fetch(FIND_SQL, nhs, upn, givens, families, dobs, keys,
                                MATCH_BLOCK_LIMIT)
        return [child_row(r) for r in rows]

    async def candidates(self, conn: asyncpg.Connection,
                         keys: list[str]) -> list[tuple[ChildRow, list[str]]]:
        """The children holding any of these blocking keys, each with the keys of these
        it holds; a key held by more than MATCH_BLOCK_LIMIT children is too common to
        find candidates by, and is left out."""
        rows = await conn.fetch(
            f"""
            SELECT {", ".join("c." + c for c in CHILD_COLUMNS)}, b.shared FROM children c
              JOIN (SELECT k.local_id, array_agg(k.key) AS shared FROM child_blocking_keys k
                      JOIN (SELECT key FROM child_blocking_keys WHERE key = ANY($1::text[])
                             GROUP BY key HAVING count(*) <= $2) small USING (key)
                     GROUP BY k.local_id) b USING (local_id)
             WHERE c.merged_into IS NULL
            """,
            keys, MATCH_BLOCK_LIMIT,
        )
        return [(child_row(r), list(r["shared"])) for r in rows]

    async def get_many(self, conn: asyncpg.Connection, local_ids: list[str]) -> list[ChildRow]:
        rows = await conn.fetch(
            f"SELECT {', '.join(CHILD_COLUMNS)} FROM children WHERE local_id = ANY($1::text[])",
            local_ids,
        )
        return [child_row(r) for r in rows]

    async def upsert(self, conn: asyncpg.Connection, children: list[ChildRow]) -> None:
        if not children:
            return
        select_cols = ", ".join("coalesce(former_family_names, '{}')"
                                if c == "former_family_names" else c for c in WRITE_COLUMNS)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in WRITE_COLUMNS if c != "local_id")
        await conn.execute(
            f"""
            INSERT INTO children ({", ".join(WRITE_COLUMNS)})
            SELECT {select_cols} FROM json_populate_recordset(NULL::children, $1::text::json)
            ON CONFLICT (local_id) DO UPDATE SET {updates}, updated_at = now()
            """,
            _json(children),
        )

    async def insert_new(self, conn: asyncpg.Connection, children: list[ChildRow]) -> None:
        """Children whose local ids were allocated in this transaction: none is written
        yet, so they are copied in (COPY), without the upsert's conflict check."""
        if not children:
            return
        former = WRITE_COLUMNS.index("former_family_names")
        get = operator.attrgetter(*WRITE_COLUMNS)
        records = [get(c) for c in children]
        for i, values in enumerate(records):
            if values[former] is None:
                records[i] = (*values[:former], [], *values[former + 1:])
        await conn.copy_records_to_table("children", records=records,
                                         columns=list(WRITE_COLUMNS))

    async def defer_source_check(self, conn: asyncpg.Connection) -> None:
        """Until this transaction commits, a source row may name a child not yet
        written (migration 007)."""
        await conn.execute("SET CONSTRAINTS source_records_local_id_fkey DEFERRED")

    async def upsert_sources(self, conn: asyncpg.Connection,
                             rows: list[tuple[str, str, str, dict[str, Any]]],
                             model_versions: list[str | None] | None = None) -> None:
        """(source, source_ref, local_id, identity) — the row as received wins — and, row
        by row, the model that placed it (None: a rule did; a row placed again by a rule,
        its own source_ref, keeps the model version that placed it first)."""
        if not rows:
            return
        versions = model_versions or [None] * len(rows)
        await conn.execute(
            """
            INSERT INTO source_records (source, source_ref, local_id, identity, model_version)
            SELECT s, r, l, i, v
              FROM json_to_recordset($1::text::json) AS t(s text, r text, l text, i jsonb, v text)
            ON CONFLICT (source, source_ref) DO UPDATE SET
                local_id = EXCLUDED.local_id, identity = EXCLUDED.identity,
                model_version = coalesce(EXCLUDED.model_version, source_records.model_version),
                -- "most recent" means most recently *changed*: the same row sent again
                -- must not make its address newer than another source's.
                received_at = CASE WHEN source_records.identity = EXCLUDED.identity
                                   THEN source_records.received_at ELSE now() END
            """,
            _json([{"s": s, "r": r, "l": lid, "i": i, "v": v}
                   for (s, r, lid, i), v in zip(rows, versions, strict=True)]),
        )

    async def insert_new_sources(self, conn: asyncpg.Connection,
                                 rows: list[tuple[str, str, str, dict[str, Any]]],
                                 model_versions: list[str | None]) -> None:
        """:meth:`upsert_sources` for rows whose (source, source_ref) is not held: the
        caller looked them up under the index lock (``lock_index``), so they are copied
        in (COPY), without the upsert's conflict check."""
        if not rows:
            return
        await conn.copy_records_to_table(
            "source_records",
            records=[(s, r, lid, _json(i), v)
                     for (s, r, lid, i), v in zip(rows, model_versions, strict=True)],
            columns=["source", "source_ref", "local_id", "identity", "model_version"])

    async def upsert_involvements(self, conn: asyncpg.Connection,
                                  rows: list[InvolvementRow]) -> None:
        if not rows:
            return
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in INVOLVEMENT_COLUMNS[2:])
        await conn.execute(
            f"""
            INSERT INTO involvements ({", ".join(INVOLVEMENT_COLUMNS)})
            SELECT {", ".join(INVOLVEMENT_COLUMNS)}
              FROM json_populate_recordset(NULL::involvements, $1::text::json)
            ON CONFLICT (source, source_ref) DO UPDATE SET {updates}
            """,
            _json(rows),
        )

    async def insert_new_involvements(self, conn: asyncpg.Connection,
                                      rows: list[InvolvementRow]) -> None:
        """:meth:`upsert_involvements` for the pointers of source rows loaded for the first
        time (see :meth:`insert_new_sources`; an involvement is held only with its source
        row): copied in (COPY), without the upsert's conflict check."""
        if rows:
            await conn.copy_records_to_table(
                "involvements", records=list(map(_INVOLVEMENT_VALUES, rows)),
                columns=INVOLVEMENT_COLUMNS)

    async def involvements_of(self, conn: asyncpg.Connection,
                              local_ids: list[str]) -> dict[str, list[InvolvementRow]]:
        rows = await conn.fetch(
            f"SELECT {', '.join(INVOLVEMENT_COLUMNS)} FROM involvements"
            " WHERE local_id = ANY($1::text[]) ORDER BY local_id, source, source_ref",
            local_ids,
        )
        out: dict[str, list[InvolvementRow]] = {}
        for r in rows:
            out.setdefault(r["local_id"], []).append(InvolvementRow(*r))
        return out

    async def set_published(self, conn: asyncpg.Connection,
                            published: list[tuple[str, int, str | None]]) -> None:
        if not published:
            return
        ids, versions, digests = zip(*published, strict=True)
        await conn.execute(
            """
            UPDATE children c SET published_version = p.v, published_digest = p.d
            FROM unnest($1::text[], $2::bigint[], $3::text[]) AS p(id, v, d)
            WHERE c.local_id = p.id
            """,
            list(ids), list(versions), list(digests),
        )

    async def count(self, conn: asyncpg.Connection) -> int:
        return int(await conn.fetchval("SELECT count(*) FROM children WHERE merged_into IS NULL"))

    async def count_incomplete(self, conn: asyncpg.Connection) -> tuple[int, dict[str, int]]:
        """Children flagged incomplete, and how many lack each field ("dob" → 12)."""
        rows = await conn.fetch(
            """
            SELECT split_part(reason, ':', 1) AS field, count(*) AS n
              FROM children, unnest(string_to_array(incomplete, '; ')) AS reason
             WHERE incomplete IS NOT NULL AND merged_into IS NULL
             GROUP BY 1 ORDER BY 1
            """)
        total = await conn.fetchval("SELECT count(*) FROM children"
                                    " WHERE incomplete IS NOT NULL AND merged_into IS NULL")
        return int(total), {r["field"]: r["n"] for r in rows}

    async def replace_blocking_keys(self, conn: asyncpg.Connection,
                                    keys: dict[str, set[str]]) -> None:
        """Set the blocking keys of these children (local_id → keys) to exactly these."""
        if not keys:
            return
        ids = list(keys)
        await conn.execute("DELETE FROM child_blocking_keys WHERE local_id = ANY($1::text[])",
                           ids)
        pairs = [(key, lid) for lid, ks in keys.items() for key in ks]
        if pairs:
            await conn.execute(
                "INSERT INTO child_blocking_keys (key, local_id)"
                " SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
                [p[0] for p in pairs], [p[1] for p in pairs],
            )

    async def change_blocking_keys(self, conn: asyncpg.Connection, *,
                                   added: list[tuple[str, str]],
                                   removed: list[tuple[str, str]]) -> None:
        """Add and remove (key, local_id) pairs: the difference an ingest chunk made,
        where most rows leave a child's keys as they were."""
        if removed:
            await conn.execute(
                "DELETE FROM child_blocking_keys k"
                " USING json_array_elements($1::text::json) AS r"
                " WHERE k.key = r->>0 AND k.local_id = r->>1", _json(removed))
        if added:
            await conn.execute(
                "INSERT INTO child_blocking_keys (key, local_id)"
                " SELECT r->>0, r->>1 FROM json_array_elements($1::text::json) AS r"
                " ON CONFLICT DO NOTHING", _json(added))

    async def holding_keys(self, conn: asyncpg.Connection) -> list[ChildRow]:
        """Every child that holds blocking keys (a merged or purged child holds none)."""
        rows = await conn.fetch(
            f"SELECT {_C_COLS} FROM children c WHERE EXISTS"
            " (SELECT 1 FROM child_blocking_keys k WHERE k.local_id = c.local_id)")
        return [child_row(r) for r in rows]

    async def replace_all_blocking_keys(self, conn: asyncpg.Connection,
                                        pairs: list[tuple[str, str]]) -> None:
        """Make the (key, local_id) pairs exactly these: every key made again."""
        await conn.execute("DELETE FROM child_blocking_keys")
        await conn.copy_records_to_table("child_blocking_keys", records=pairs,
                                         columns=["key", "local_id"])

    async def add_blocking_keys_of_new(self, conn: asyncpg.Connection,
                                       pairs: list[tuple[str, str]]) -> None:
        """The (key, local_id) pairs of children created in this transaction: none can be
        held yet, so they are copied in (COPY), without the insert's conflict check,
        which cost more than the rest of writing them."""
        if pairs:
            await conn.copy_records_to_table("child_blocking_keys", records=pairs,
                                             columns=["key", "local_id"])

    async def keys_index(self, conn: asyncpg.Connection,
                         keys: list[str]) -> dict[str, list[str]]:
        rows = await conn.fetch(
            "SELECT key, local_id FROM child_blocking_keys WHERE key = ANY($1::text[])", keys
        )
        out: dict[str, list[str]] = {}
        for r in rows:
            out.setdefault(r["key"], []).append(r["local_id"])
        return out

    async def lock_index(self, conn: asyncpg.Connection) -> None:
        """Serialise writers of the children index until this transaction ends.

        Placing a row reads the index (who has this NHS number, these keys?) and then
        writes it; two feeds loaded at once would both find no child for a shared NHS
        number and both create one (the second fails on the unique index, found by the
        fault runs). Ingest chunks, review merges and retention runs each take this
        lock first, so each sees the last one's children. Searches do not take it."""
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _INDEX_LOCK)

    async def lock(self, conn: asyncpg.Connection, local_ids: list[str]) -> list[ChildRow]:
        rows = await conn.fetch(
            f"SELECT {', '.join(CHILD_COLUMNS)} FROM children"
            " WHERE local_id = ANY($1::text[]) ORDER BY local_id FOR UPDATE", local_ids,
        )
        return [child_row(r) for r in rows]

    async def move_sources(self, conn: asyncpg.Connection, from_id: str, to_id: str) -> None:
        """A merge: every source row and involvement of one child now belongs to another."""
        await conn.execute("UPDATE source_records SET local_id = $2 WHERE local_id = $1",
                           from_id, to_id)
        await conn.execute("UPDATE involvements SET local_id = $2 WHERE local_id = $1",
                           from_id, to_id)
        await conn.execute("DELETE FROM child_blocking_keys WHERE local_id = $1", from_id)

    async def mark_merged(self, conn: asyncpg.Connection, absorbed: str, survivor: str) -> None:
        await conn.execute(
            "UPDATE children SET merged_into = $2, nhs_number = NULL, upn = NULL,"
            " updated_at = now() WHERE local_id = $1", absorbed, survivor,
        )

    async def export_sources(self, conn: asyncpg.Connection) -> list[asyncpg.Record]:
        """Every source row with its child, the child's incomplete flag ('' if none) and
        the model that placed the row ('' when a rule did)."""
        return await conn.fetch(
            "SELECT s.local_id, s.source, s.source_ref, coalesce(c.incomplete, '') AS incomplete,"
            " coalesce(s.model_version, '') AS model_version"
            " FROM source_records s JOIN children c ON c.local_id = s.local_id"
            " ORDER BY s.local_id, s.source, s.source_ref"
        )

    async def sources_of(self, conn: asyncpg.Connection,
                         local_ids: list[str]) -> dict[str, list[asyncpg.Record]]:
        rows = await conn.fetch(
            "SELECT local_id, source, source_ref, identity, received_at FROM source_records"
            " WHERE local_id = ANY($1::text[]) ORDER BY received_at, source, source_ref",
            local_ids,
        )
        out: dict[str, list[asyncpg.Record]] = {}
        for r in rows:
            out.setdefault(r["local_id"], []).append(r)
        return out

    async def sample_sources(self, conn: asyncpg.Connection, limit: int,
                             seed: int | None = None) -> list[tuple[str, dict[str, Any]]]:
        """Up to ``limit`` source rows of live children, drawn at random (with a
        ``seed``, the same draw every time): (local_id, identity as received). What a
        local model is trained on."""
        rows = await conn.fetch(
            "SELECT s.local_id, s.identity::text AS identity FROM source_records s"
            " JOIN children c ON c.local_id = s.local_id WHERE c.merged_into IS NULL"
            f" ORDER BY {seeded_order('$2', 's.source', 's.source_ref')} LIMIT $1",
            limit, seed)
        return [(r["local_id"], json.loads(r["identity"])) for r in rows]

    async def unarchived(self, conn: asyncpg.Connection, limit: int) -> list[ChildRow]:
        """Up to ``limit`` children not archived (merged ones too), in local id order."""
        rows = await conn.fetch(
            f"SELECT {', '.join(CHILD_COLUMNS)} FROM children"
            " WHERE archived_on IS NULL ORDER BY local_id LIMIT $1",
            limit,
        )
        return [child_row(r) for r in rows]

    async def care_leavers_among(self, conn: asyncpg.Connection, local_ids: list[str],
                                 services: list[str]) -> set[str]:
        """Those of these children with a consented involvement of one of ``services``
        (a care leaver, kept live longer by retention)."""
        rows = await conn.fetch(
            "SELECT DISTINCT local_id FROM involvements WHERE local_id = ANY($1::text[])"
            " AND consent AND service_type = ANY($2::text[])", local_ids, services)
        return {r["local_id"] for r in rows}

    async def archived_among(self, conn: asyncpg.Connection,
                             local_ids: list[str]) -> dict[str, date]:
        """Those of these children archived by the retention job, with the day."""
        rows = await conn.fetch("SELECT local_id, archived_on FROM children"
                                " WHERE archived_on IS NOT NULL AND local_id = ANY($1::text[])",
                                local_ids)
        return {r["local_id"]: r["archived_on"] for r in rows}
