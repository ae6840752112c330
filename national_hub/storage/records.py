"""Minimal records per (council, local_id), and the national ids they link to.

Writes are set-based: per batch one statement for new records, one for updates, one
for deletes, one for links, each over arrays (``unnest``), never one query per record.

Any code that writes a live record's identity columns must write its ``fingerprint``
with them (``record_fingerprint``, migration 006), as ``upsert`` does: anti-entropy
takes a row whose columns no longer match it for damaged, and the council republishes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import asyncpg

# The link status of a new record until the resolver has given it a national id.
PENDING = "pending"


@dataclass(frozen=True, slots=True)
class RecordRow:
    """The columns the hub keeps beside the exact record bytes, for lookups."""

    local_id: str
    version: int
    record: bytes
    digest: str
    given_name: str | None   # absent from the record: NULL (docs/PROTOCOL.md §3.2.1)
    family_name: str | None
    dob: date | None
    sex: int
    postcode: str | None
    nhs_number: str | None
    upn: str | None
    shielded: bool
    national_id: str | None = None
    link_status: str | None = None
    other_given_names: str | None = None
    former_family_names: tuple[str, ...] = ()
    address_line: str | None = None
    archived_on: date | None = None  # past its archive date already (retention)


@dataclass(frozen=True, slots=True)
class HeldRecord:
    """What the hub already holds for a (council, local_id) before a batch applies."""

    version: int
    national_id: str | None
    live: bool


def _text_array(values: tuple[str, ...]) -> str:
    # unnest cannot take a ragged array of arrays: each row's list travels as one text,
    # joined by the unit separator (records refuse control characters in text fields).
    return "\x1f".join(values)


# An upsert's update of a record the hub holds (or held: a tombstone).
_ON_CONFLICT = """
            ON CONFLICT (council_code, local_id) DO UPDATE SET
                batch_seq = EXCLUDED.batch_seq, version = EXCLUDED.version,
                record = EXCLUDED.record, digest = EXCLUDED.digest,
                given_name = EXCLUDED.given_name, family_name = EXCLUDED.family_name,
                dob = EXCLUDED.dob, sex = EXCLUDED.sex, postcode = EXCLUDED.postcode,
                nhs_number = EXCLUDED.nhs_number, upn = EXCLUDED.upn,
                shielded = EXCLUDED.shielded,
                -- the national id is the resolver's to change; a record that was
                -- deleted (no status) is pending again
                link_status = coalesce(records.link_status, EXCLUDED.link_status),
                other_given_names = EXCLUDED.other_given_names,
                former_family_names = EXCLUDED.former_family_names,
                address_line = EXCLUDED.address_line, fingerprint = EXCLUDED.fingerprint,
                archived_on = EXCLUDED.archived_on, updated_at = now()
"""


# Each id looked up by the primary key, in a LATERAL subquery with a LIMIT (which the
# planner cannot turn into a join): one index descent an id, however many records the
# council has and whatever plan a connection keeps. As ``local_id = ANY($2)`` the
# generic plan a connection may keep after five batches read all of the council's
# records and searched the list for each one (40 s over a 228,771-record load instead
# of 0.7 s); as a plain join the planner hashed all of them (docs/scaling.md,
# "Generic plans").
HELD_SQL = (
    "SELECT r.local_id, r.version, r.national_id, r.live"
    " FROM unnest($2::text[]) AS w(local_id),"
    " LATERAL (SELECT local_id, version, national_id, record IS NOT NULL AS live"
    "          FROM records WHERE council_code = $1 AND local_id = w.local_id LIMIT 1) r")


class RecordStore:
    async def held(self, conn: asyncpg.Connection, council: str,
                   local_ids: list[str]) -> dict[str, HeldRecord]:
        rows = await conn.fetch(HELD_SQL, council, local_ids)
        return {r["local_id"]: HeldRecord(r["version"], r["national_id"], r["live"])
                for r in rows}

    async def upsert(self, conn: asyncpg.Connection, council: str, batch_seq: int,
                     rows: list[RecordRow], *, new: bool = False) -> None:
        """Write ``rows``, inserting or updating each. ``new``: the caller holds the
        council's lock and has read that none of them exists, so they are inserted
        without the conflict check of each row (an existing one fails the statement)."""
        if not rows:
            return
        cols = list(zip(*[
            (r.local_id, r.version, r.record, r.digest, r.given_name, r.family_name, r.dob,
             r.sex, r.postcode, r.nhs_number, r.upn, r.shielded, r.national_id, r.link_status,
             r.other_given_names, _text_array(r.former_family_names), r.address_line,
             r.archived_on)
            for r in rows
        ], strict=True))
        await conn.execute(
            """
            INSERT INTO records (council_code, batch_seq, local_id, version, record, digest,
                                 given_name, family_name, dob, sex, postcode, nhs_number, upn,
                                 shielded, national_id, link_status, other_given_names,
                                 former_family_names, address_line, archived_on, fingerprint)
            SELECT $1, $2, l, v, rec, dg, gn, fn, d, sx, pc, nhs, upn, sh, nid, ls, og, ffa, al,
                   ar,
                   -- written with the columns, so anti-entropy can tell a damaged row
                   record_fingerprint(gn, fn, d, sx, pc, nhs, upn, sh, og, ffa, al)
            FROM unnest($3::text[], $4::bigint[], $5::bytea[], $6::text[],
                        $7::text[], $8::text[], $9::date[], $10::smallint[],
                        $11::text[], $12::text[], $13::text[], $14::bool[],
                        $15::text[], $16::text[], $17::text[], $18::text[], $19::text[],
                        $20::date[])
                 AS u(l, v, rec, dg, gn, fn, d, sx, pc, nhs, upn, sh, nid, ls, og, ff, al, ar),
                 LATERAL (SELECT CASE WHEN ff = '' THEN NULL
                                      ELSE string_to_array(ff, chr(31)) END AS ffa) f
            """ + ("" if new else _ON_CONFLICT), council, batch_seq, *[list(c) for c in cols],
        )


    async def tombstone(self, conn: asyncpg.Connection, council: str, batch_seq: int,
                        deletes: list[tuple[str, int]]) -> None:
        """Delete records, keeping (local_id, version) so older upserts stay stale."""
        if not deletes:
            return
        ids, versions = zip(*deletes, strict=True)
        await conn.execute(
            """
            INSERT INTO records (council_code, batch_seq, local_id, version)
            SELECT $1, $2, * FROM unnest($3::text[], $4::bigint[])
            ON CONFLICT (council_code, local_id) DO UPDATE SET
                batch_seq = EXCLUDED.batch_seq, version = EXCLUDED.version, record = NULL,
                digest = NULL, given_name = NULL, family_name = NULL, dob = NULL, sex = NULL,
                postcode = NULL, nhs_number = NULL, upn = NULL, shielded = false,
                national_id = NULL, link_status = NULL, other_given_names = NULL,
                former_family_names = NULL, address_line = NULL, fingerprint = NULL,
                archived_on = NULL, updated_at = now()
            """,
            council, batch_seq, list(ids), list(versions),
        )

    async def digests(self, conn: asyncpg.Connection, council: str) -> dict[str, str]:
        """local_id → digest of every live record the hub holds for a council."""
        rows = await conn.fetch(
            "SELECT local_id, digest FROM records WHERE council_code = $1 AND record IS NOT NULL",
            council,
        )
        return {r["local_id"]: r["digest"] for r in rows}

    async def count(self, conn: asyncpg.Connection, council: str) -> int:
        return int(await conn.fetchval(
            "SELECT count(*) FROM records WHERE council_code = $1 AND record IS NOT NULL",
            council,
        ))

    async def get(self, conn: asyncpg.Connection, council: str,
                  local_id: str) -> asyncpg.Record | None:
        return await conn.fetchrow(
            "SELECT * FROM records WHERE council_code = $1 AND local_id = $2", council, local_id
        )

    # --- national ids -------------------------------------------------------------

    async def links_by_nhs(self, conn: asyncpg.Connection,
                           nhs_numbers: list[str]) -> list[asyncpg.Record]:
        """Live, linked records holding any of these NHS numbers."""
        return await conn.fetch(
            "SELECT council_code, local_id, nhs_number, national_id FROM records"
            " WHERE nhs_number = ANY($1::text[]) AND record IS NOT NULL"
            " AND national_id IS NOT NULL", nhs_numbers,
        )

    async def holders_of(self, conn: asyncpg.Connection,
                         national_ids: list[str]) -> list[asyncpg.Record]:
        """Every live record linked to any of these national ids, with its NHS number
        and UPN."""
        return await conn.fetch(
            "SELECT council_code, local_id, national_id, nhs_number, upn FROM records"
            " WHERE national_id = ANY($1::text[]) AND record IS NOT NULL", national_ids,
        )

    async def create_national_ids(self, conn: asyncpg.Connection, ids: list[str]) -> None:
        if ids:
            await conn.execute(
                "INSERT INTO national_children (national_id) SELECT unnest($1::text[])", ids
            )

    async def link_status(self, conn: asyncpg.Connection, council: str,
                          local_id: str) -> str | None:
        """'linked', 'single' (or another status the resolver gave), None if unknown."""
        status: str | None = await conn.fetchval(
            "SELECT link_status FROM records WHERE council_code = $1 AND local_id = $2",
            council, local_id)
        return status

    async def refresh_link_status(self, conn: asyncpg.Connection,
                                  national_ids: list[str]) -> None:
        """A national child held by more than one record is 'linked', else 'single'.
        Rewrites only the rows whose status changes (usually none or a partner's)."""
        if not national_ids:
            return
        await conn.execute(
            """
            UPDATE records r SET link_status = n.status
            FROM (SELECT national_id,
                         CASE WHEN count(*) > 1 THEN 'linked' ELSE 'single' END AS status
                  FROM records
                  WHERE national_id = ANY($1::text[]) AND record IS NOT NULL
                  GROUP BY national_id) n
            WHERE r.national_id = n.national_id AND r.record IS NOT NULL
              AND r.link_status IS DISTINCT FROM n.status
            """,
            national_ids,
        )

    async def export_links(self, conn: asyncpg.Connection) -> list[asyncpg.Record]:
        return await conn.fetch(
            "SELECT council_code AS council, local_id, national_id, link_status AS status,"
            " model_version FROM records WHERE record IS NOT NULL"
            " ORDER BY council_code, local_id"
        )
