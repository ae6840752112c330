"""A record's blocking keys, held twice and always alike (migration 017).

``record_keys`` holds one row a key, found by the key through its primary key (key,
council_code, local_id): the resolver's and search's candidate reads. ``record_key_sets``
holds each record's keys as one row, found by the record: replacing its keys and
shielding's relations. A record has a row of ``record_key_sets`` exactly when it holds
keys, and the row lists them. Every write of either goes through this module
(``ResolutionStore`` and ``ShieldingStore`` call it), so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import asyncpg

RecordKey = tuple[str, str]  # (council, local_id)
KeyRow = tuple[str, str, str]  # (council, local_id, key)


async def read(conn: asyncpg.Connection, records: Sequence[RecordKey], *,
               lock: bool = False) -> dict[RecordKey, set[str]]:
    """The keys each of ``records`` holds; a record holding none is absent.

    ``lock`` before changing them (:func:`change`): each record's row is locked, in
    (council, local id) order, until the transaction ends. A record's keys may be
    changed by a transaction that does not hold its council's lock (shielding drops the
    location keys of every record a shielded one is related to, in any council), so
    what is read here must still be what is there when the change is written; and as
    every writer takes a record's row before its rows of record_keys, two writers
    cannot deadlock over them."""
    wanted = sorted(records) if lock else list(records)
    rows = await conn.fetch(
        "SELECT s.council_code, s.local_id, s.keys"
        " FROM unnest($1::text[], $2::text[]) w(c, l) CROSS JOIN LATERAL ("
        "  SELECT * FROM record_key_sets s WHERE s.council_code = w.c AND s.local_id = w.l"
        "  LIMIT 1" + (" FOR UPDATE" if lock else "") + ") s",
        [c for c, _ in wanted], [lid for _, lid in wanted])
    return {(r["council_code"], r["local_id"]): set(r["keys"]) for r in rows}


async def copy(conn: asyncpg.Connection, council: str,
               keys: Mapping[str, Collection[str]]) -> None:
    """Insert the keys of a council's records that hold none (local_id → its keys): new
    to the hub under their council's lock, or just removed, so no conflict is possible
    and they are copied in (COPY is about twice as fast as
    INSERT … ON CONFLICT over unnest at a batch's 66,000 keys, the largest write of batch
    intake).

    Only each record's row of ``record_key_sets`` travels; PostgreSQL unnests it into
    ``record_keys`` itself. Sending ``record_keys`` too, a tuple a key (about 80,000 a
    batch), cost the hub process about 12 µs of CPU a record more, where PostgreSQL's
    unnesting costs it about 7 (``bench.intake``, medians of four runs each;
    docs/scaling.md, "Intake: a record's keys sent once; where a bulk drain's time
    goes")."""
    held = {local_id: sorted(ks) for local_id, ks in keys.items() if ks}
    if held:
        await conn.copy_records_to_table(
            "record_key_sets", columns=["council_code", "local_id", "keys"],
            records=[(council, local_id, ks) for local_id, ks in held.items()])
        # each row found by its primary key (LATERAL ... LIMIT 1): the same plan
        # whatever a connection keeps after five batches (docs/scaling.md, "Generic plans")
        await conn.execute(
            "INSERT INTO record_keys (council_code, local_id, key)"
            " SELECT s.council_code, s.local_id, unnest(s.keys) FROM unnest($2::text[]) w(l)"
            " CROSS JOIN LATERAL (SELECT * FROM record_key_sets s"
            "  WHERE s.council_code = $1 AND s.local_id = w.l LIMIT 1) s",
            council, list(held))


async def remove(conn: asyncpg.Connection, council: str, local_ids: Sequence[str]) -> None:
    """Drop every key of a council's ``local_ids``."""
    if not local_ids:
        return
    gone = await conn.fetch("DELETE FROM record_key_sets WHERE council_code = $1"
                            " AND local_id = ANY($2::text[]) RETURNING local_id, keys",
                            council, list(local_ids))
    await _delete_rows(conn, [(council, r["local_id"], key) for r in gone for key in r["keys"]])


async def change(conn: asyncpg.Connection, have: Mapping[RecordKey, set[str]],
                 want: Mapping[RecordKey, set[str]]) -> None:
    """Move records from the keys they ``have`` (as :func:`read` gave them, locked) to those
    they ``want`` (absent: none), writing only what differs: a key kept is not
    touched."""
    changed = [rk for rk in sorted(have.keys() | want.keys())
               if have.get(rk, set()) != want.get(rk, set())]
    if not changed:
        return
    await _delete_rows(conn, [(*rk, key) for rk in changed
                              for key in sorted(have.get(rk, set()) - want.get(rk, set()))])
    added = [(*rk, key) for rk in changed
             for key in sorted(want.get(rk, set()) - have.get(rk, set()))]
    if added:
        await conn.execute("INSERT INTO record_keys (council_code, local_id, key)"
                           " SELECT * FROM unnest($1::text[], $2::text[], $3::text[])",
                           *_columns(added))
    emptied: dict[str, list[str]] = {}
    for council, local_id in changed:
        if not want.get((council, local_id)):
            emptied.setdefault(council, []).append(local_id)
    for council, local_ids in emptied.items():
        # by council, each list an index condition: joined to the list, a batch of
        # 5,000 deletes was planned as a scan of every council's rows
        await conn.execute("DELETE FROM record_key_sets WHERE council_code = $1"
                           " AND local_id = ANY($2::text[])", council, local_ids)
    kept = [(*rk, key) for rk in changed for key in sorted(want.get(rk, set()))]
    if kept:
        await conn.execute(
            "INSERT INTO record_key_sets (council_code, local_id, keys)"
            " SELECT w.c, w.l, array_agg(w.key ORDER BY w.key)"
            " FROM unnest($1::text[], $2::text[], $3::text[]) w(c, l, key) GROUP BY w.c, w.l"
            " ON CONFLICT (council_code, local_id) DO UPDATE SET keys = EXCLUDED.keys",
            *_columns(kept))


async def _delete_rows(conn: asyncpg.Connection, rows: Sequence[KeyRow]) -> None:
    """Delete these rows of record_keys, each found by its primary-key entry."""
    if rows:
        await conn.execute(
            "DELETE FROM record_keys k USING unnest($1::text[], $2::text[], $3::text[])"
            " w(c, l, key) WHERE k.key = w.key AND k.council_code = w.c AND k.local_id = w.l",
            *_columns(rows))


def _columns(rows: Sequence[KeyRow]) -> tuple[list[str], list[str], list[str]]:
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]
