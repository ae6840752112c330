"""How many resolved live records hold each value the matcher weighs by frequency
(migration 014): term frequencies and the partner rate of the prior, kept up to date
as records change instead of counted over the whole hub.

Triggers on ``records`` append each change of a counted record's raw values to
``term_changes`` in the writing transaction; :meth:`TermCountStore.fold` (the resolver,
under its lock) moves them into ``term_counts`` by the normalised value the caller
computes, and keeps ``term_totals`` (each field's sum, sum of squares, and the records
whose value another record holds too) with them. Readers then ask only for the values
they weigh (:meth:`TermCountStore.counts`) and the totals.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import asyncpg

# The fields counted: term_changes column -> term_counts field.
RAW_FIELDS: dict[str, str] = {
    "given_name": "given", "family_name": "family", "postcode": "postcode",
    "address_line": "address", "nhs_number": "nhs", "person": "person",
}
FOLD_ROWS = 50_000  # changes folded per statement (an upgrade's backlog is the hub)


@dataclass(frozen=True, slots=True)
class Totals:
    total: int  # sum of the counts
    squares: int  # sum of the squared counts
    partnered: int  # sum of the counts above one


class TermCountStore:
    async def fold(self, conn: asyncpg.Connection,
                   keys: Mapping[str, Callable[[str], str]]) -> int:
        """Move every change committed so far into the counts, each raw value counted
        under ``keys[field](value)`` (a field absent from ``keys``: as stored; a value
        whose key is ``""`` is not counted). Returns the changes folded.

        Only one transaction may fold at a time (the resolver's lock): the counts are
        read and written back."""
        folded = 0
        while True:
            rows = await conn.fetch(
                """
                WITH gone AS (
                    DELETE FROM term_changes WHERE id IN (
                        SELECT id FROM term_changes ORDER BY id LIMIT $1)
                    RETURNING *
                )
                SELECT 'records' AS field, '' AS value, sum(delta)::bigint AS d,
                       count(*) AS changes FROM gone
                UNION ALL SELECT 'given_name', given_name, sum(delta), 0 FROM gone
                    WHERE given_name IS NOT NULL GROUP BY given_name
                UNION ALL SELECT 'family_name', family_name, sum(delta), 0 FROM gone
                    WHERE family_name IS NOT NULL GROUP BY family_name
                UNION ALL SELECT 'postcode', postcode, sum(delta), 0 FROM gone
                    WHERE postcode IS NOT NULL GROUP BY postcode
                UNION ALL SELECT 'address_line', address_line, sum(delta), 0 FROM gone
                    WHERE address_line IS NOT NULL GROUP BY address_line
                UNION ALL SELECT 'nhs_number', nhs_number, sum(delta), 0 FROM gone
                    WHERE nhs_number IS NOT NULL GROUP BY nhs_number
                UNION ALL SELECT 'person', person, sum(delta), 0 FROM gone
                    WHERE person IS NOT NULL GROUP BY person
                """, FOLD_ROWS)
            changes = next(int(r["changes"]) for r in rows if r["field"] == "records")
            if changes == 0:
                return folded
            folded += changes
            await self._apply(conn, rows, keys)
            if changes < FOLD_ROWS:
                return folded

    async def _apply(self, conn: asyncpg.Connection, rows: Iterable[asyncpg.Record],
                     keys: Mapping[str, Callable[[str], str]]) -> None:
        deltas: Counter[tuple[str, str]] = Counter()
        records = 0
        for r in rows:
            if r["field"] == "records":
                records = int(r["d"] or 0)
                continue
            normalise = keys.get(r["field"])
            key = normalise(r["value"]) if normalise else r["value"]
            if key:
                deltas[(RAW_FIELDS[r["field"]], key)] += int(r["d"])
        changed = sorted((fk, d) for fk, d in deltas.items() if d)  # in key order: locks
        totals: dict[str, list[int]] = {f: [0, 0, 0] for f in RAW_FIELDS.values()}
        if changed:
            now = await conn.fetch(
                "INSERT INTO term_counts AS t (field, key, n)"
                " SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])"
                " ON CONFLICT (field, key) DO UPDATE SET n = t.n + EXCLUDED.n"
                " RETURNING field, key, n",
                [f for (f, _), _ in changed], [k for (_, k), _ in changed],
                [d for _, d in changed])
            delta = dict(changed)
            emptied: list[tuple[str, str]] = []
            for r in now:
                new = int(r["n"])
                old = new - delta[(r["field"], r["key"])]
                t = totals[r["field"]]
                t[0] += new - old
                t[1] += new * new - old * old
                t[2] += (new if new > 1 else 0) - (old if old > 1 else 0)
                if new == 0:
                    emptied.append((r["field"], r["key"]))
            if emptied:  # only values no record holds any more (none, in a first load)
                await conn.execute("DELETE FROM term_counts WHERE n = 0 AND (field, key) IN"
                                   " (SELECT * FROM unnest($1::text[], $2::text[]))",
                                   [f for f, _ in emptied], [k for _, k in emptied])
        totals["records"] = [records, 0, 0]
        fields = sorted(f for f, t in totals.items() if any(t))
        if fields:
            await conn.execute(
                "UPDATE term_totals t SET total = t.total + d.total,"
                " squares = t.squares + d.squares, partnered = t.partnered + d.partnered"
                " FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])"
                "  AS d(field, total, squares, partnered) WHERE t.field = d.field",
                fields, *([totals[f][i] for f in fields] for i in range(3)))

    async def totals(self, conn: asyncpg.Connection) -> dict[str, Totals]:
        """Each field's totals, and 'records': how many records are counted."""
        return {r["field"]: Totals(int(r["total"]), int(r["squares"]), int(r["partnered"]))
                for r in await conn.fetch("SELECT field, total, squares, partnered"
                                          " FROM term_totals")}

    async def counts(self, conn: asyncpg.Connection,
                     wanted: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """The counts of these (field, key) pairs that any record holds."""
        pairs = sorted(set(wanted))
        if not pairs:
            return {}
        rows = await conn.fetch(
            "SELECT t.field, t.key, t.n FROM term_counts t"
            " JOIN unnest($1::text[], $2::text[]) w(field, key)"
            " ON t.field = w.field AND t.key = w.key",
            [f for f, _ in pairs], [k for _, k in pairs])
        return {(r["field"], r["key"]): int(r["n"]) for r in rows}

    async def all_counts(self, conn: asyncpg.Connection) -> dict[tuple[str, str], int]:
        """Every count (tests compare them with a full recount)."""
        return {(r["field"], r["key"]): int(r["n"])
                for r in await conn.fetch("SELECT field, key, n FROM term_counts")}
