"""SQL of practitioner search and the child view (docs/design.md §6, §8).

One statement per search, whatever the number of candidates: the query's blocking
keys → the records holding them that count (``record_keys``' primary key, the block
limit as :mod:`national_hub.storage.blocks` counts it) → their national children →
every live record of those children (``records_national``), each with the keys it
matched and the councils that shield it (``shield_marks``, by primary key). Indexed all
the way, so it stays a few index probes at a million children.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import asyncpg

from national_hub.storage.blocks import counted_holders


@dataclass(frozen=True, slots=True)
class CandidateRow:
    """A live record of a national child that one of the query's keys reached."""

    national_id: str
    council: str
    council_name: str
    local_id: str
    given_name: str | None
    family_name: str | None
    dob: date | None
    sex: int
    other_given_names: str | None
    former_family_names: tuple[str, ...]
    postcode: str | None
    address_line: str | None
    nhs_number: str | None
    upn: str | None
    shielded: bool  # by its own flag or by a relation (national_hub.storage.shielding)
    keys: tuple[str, ...]  # the query's keys this record holds (none: a sibling record)
    # the councils whose shielded records make this one shielded, with their names
    shielded_by: tuple[tuple[str, str], ...] = ()
    # its bytes hold a date of death (retention may archive it a year after)
    may_have_died: bool = False


@dataclass(frozen=True, slots=True)
class HeldRecord:
    """One council's record of a national child, as published (exact bytes)."""

    council: str
    council_name: str
    local_id: str
    record: bytes
    updated_at: datetime
    shielded_by: tuple[tuple[str, str], ...] = ()  # as CandidateRow.shielded_by


@dataclass(frozen=True, slots=True)
class NationalChild:
    national_id: str
    redirect_to: str | None
    records: tuple[HeldRecord, ...]


def _shielded_by(row: asyncpg.Record) -> tuple[tuple[str, str], ...]:
    return tuple(zip(row["codes"] or (), row["names"] or (), strict=True))


def candidate_row(r: asyncpg.Record) -> CandidateRow:
    return CandidateRow(
        r["national_id"], r["council_code"], r["council_name"], r["local_id"],
        r["given_name"], r["family_name"], r["dob"], r["sex"] or 0,
        r["other_given_names"], tuple(r["former_family_names"] or ()), r["postcode"],
        r["address_line"], r["nhs_number"], r["upn"], r["shielded"], tuple(r["keys"]),
        _shielded_by(r), bool(r.get("may_have_died")))


# A search's candidates (:meth:`SearchStore.candidates`): $1 the keys, $2 the block limit.
SEARCH_CANDIDATES_SQL = f"""
    WITH RECURSIVE {counted_holders("$1", "$2")}, hit AS (
        SELECT council_code, local_id, array_agg(key ORDER BY key) AS keys
        FROM counted  -- each key's holders that count (storage/blocks.py)
        GROUP BY council_code, local_id
    ), children AS (
        -- each hit read by its primary key (LATERAL ... LIMIT 1, which the
        -- planner cannot make a join): during a first load the statistics
        -- still say few records have a national id, and a join then walked
        -- every resolved record through records_national
        SELECT DISTINCT r.national_id FROM hit CROSS JOIN LATERAL (
            SELECT r.national_id, r.archived_on FROM records r
            WHERE r.council_code = hit.council_code AND r.local_id = hit.local_id
              AND r.record IS NOT NULL
            LIMIT 1) r
        WHERE r.national_id IS NOT NULL
          AND r.archived_on IS NULL  -- archived by retention: adults now
    )
    SELECT r.national_id, r.council_code, c.name AS council_name, r.local_id,
           r.given_name, r.family_name, r.dob, r.sex, r.other_given_names,
           r.former_family_names, r.postcode, r.address_line, r.nhs_number, r.upn,
           r.shielded OR sh.codes IS NOT NULL AS shielded,
           coalesce(hit.keys, '{{}}') AS keys, sh.codes, sh.names,
           position('date_of_death'::bytea in r.record) > 0 AS may_have_died
    FROM children
    JOIN records r ON r.national_id = children.national_id AND r.record IS NOT NULL
                  AND r.archived_on IS NULL
    JOIN councils c ON c.code = r.council_code
    LEFT JOIN LATERAL (
        SELECT array_agg(m.shielding_council ORDER BY m.shielding_council) AS codes,
               array_agg(s.name ORDER BY m.shielding_council) AS names
        FROM shield_marks m JOIN councils s ON s.code = m.shielding_council
        WHERE m.council_code = r.council_code AND m.local_id = r.local_id) sh ON true
    LEFT JOIN hit ON hit.council_code = r.council_code AND hit.local_id = r.local_id
"""


class SearchStore:
    async def candidates(self, conn: asyncpg.Connection, keys: Sequence[str],
                         max_block: int) -> list[CandidateRow]:
        """Every live record of every national child one of whose records holds one of
        ``keys``. A key held by more than ``max_block`` records is too common to be
        evidence and is skipped, unless at most ``max_block`` of them are outside the
        council holding most: then only a council holding more than ``max_block`` is
        skipped (one council cannot hide the others' records,
        :mod:`national_hub.storage.blocks`). Each key's holders are read once, at most
        ``max_block + 1`` of them, and a key held more often council by council, at most
        about ``3 * max_block``: a huge block costs no more than a small one."""
        if not keys:
            return []
        rows = await conn.fetch(SEARCH_CANDIDATES_SQL, list(keys), max_block)
        return [candidate_row(r) for r in rows]

    async def record_bytes(self, conn: asyncpg.Connection,
                           keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], bytes]:
        """The exact bytes of these live records, by (council, local id)."""
        rows = await conn.fetch(
            "SELECT r.council_code, r.local_id, r.record"
            " FROM unnest($1::text[], $2::text[]) AS k(c, l)"
            " JOIN records r ON r.council_code = k.c AND r.local_id = k.l"
            " WHERE r.record IS NOT NULL",
            [c for c, _ in keys], [lid for _, lid in keys])
        return {(r["council_code"], r["local_id"]): r["record"] for r in rows}

    async def national_child(self, conn: asyncpg.Connection,
                             national_id: str) -> NationalChild | None:
        """The national id (and where it redirects) with every live record linked to it;
        None for an id the hub never issued."""
        rows = await conn.fetch(
            """
            SELECT n.redirect_to, r.council_code, c.name AS council_name, r.local_id,
                   r.record, r.updated_at, sh.codes, sh.names
            FROM national_children n
            LEFT JOIN records r ON r.national_id = n.national_id AND r.record IS NOT NULL
                               AND r.archived_on IS NULL
            LEFT JOIN councils c ON c.code = r.council_code
            LEFT JOIN LATERAL (
                SELECT array_agg(m.shielding_council ORDER BY m.shielding_council) AS codes,
                       array_agg(s.name ORDER BY m.shielding_council) AS names
                FROM shield_marks m JOIN councils s ON s.code = m.shielding_council
                WHERE m.council_code = r.council_code AND m.local_id = r.local_id) sh ON true
            WHERE n.national_id = $1
            ORDER BY r.council_code, r.local_id
            """, national_id)
        if not rows:
            return None
        held = tuple(HeldRecord(r["council_code"], r["council_name"], r["local_id"],
                                r["record"], r["updated_at"], _shielded_by(r))
                     for r in rows if r["council_code"] is not None)
        return NationalChild(national_id, rows[0]["redirect_to"], held)
