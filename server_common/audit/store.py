"""SQL of the audit log: entries, the gapless counter and signed checkpoints.

Nothing here updates or deletes a row of ``audit_log`` or ``audit_checkpoints``
(the schema's triggers would refuse it anyway).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True, slots=True)
class StoredEntry:
    seq: int
    entry: bytes
    leaf_hash: bytes
    who: str
    child_ids: tuple[str, ...]
    at: datetime


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    tree_size: int
    root_hash: bytes
    signed_at: datetime
    kid: str
    note: str


_ENTRY_COLS = "seq, entry, leaf_hash, who, child_ids, at"
_CHECKPOINT_COLS = "tree_size, root_hash, signed_at, kid, note"


def _entry(row: asyncpg.Record) -> StoredEntry:
    return StoredEntry(row["seq"], bytes(row["entry"]), bytes(row["leaf_hash"]), row["who"],
                       tuple(row["child_ids"]), row["at"])


def _checkpoint(row: asyncpg.Record) -> StoredCheckpoint:
    return StoredCheckpoint(row["tree_size"], bytes(row["root_hash"]), row["signed_at"],
                            row["kid"], row["note"])


class AuditStore:
    async def append(self, conn: asyncpg.Connection, entry: bytes, leaf_hash: bytes,
                     who: str, child_ids: list[str], at: datetime) -> int:
        """Insert the entry at the next leaf index, in one statement; return its seq.

        The counter row stays locked until the caller's transaction ends, which orders
        appends across connections and hub replicas; a rollback gives the number back,
        so seqs have no gaps.
        """
        return int(await conn.fetchval(
            "WITH next AS (UPDATE audit_head SET next_seq = next_seq + 1"
            "              RETURNING next_seq - 1 AS seq)"
            " INSERT INTO audit_log (seq, entry, leaf_hash, who, child_ids, at)"
            " SELECT seq, $1, $2, $3, $4, $5 FROM next RETURNING seq",
            entry, leaf_hash, who, child_ids, at))

    async def append_many(self, conn: asyncpg.Connection,
                          rows: list[tuple[bytes, bytes, str, list[str], datetime]]) -> int:
        """Insert entries (entry, leaf_hash, who, child_ids, at) at consecutive leaf
        indexes in one statement, locking the counter as :meth:`append` does; return
        the first seq."""
        entries, hashes, whos, children, ats = zip(*rows, strict=True)
        return int(await conn.fetchval(
            "WITH next AS (UPDATE audit_head SET next_seq = next_seq + $6"
            "              RETURNING next_seq - $6 AS first),"
            " added AS (INSERT INTO audit_log (seq, entry, leaf_hash, who, child_ids, at)"
            "  SELECT next.first + u.i - 1, u.e, u.h, u.w,"
            "         ARRAY(SELECT jsonb_array_elements_text(u.c::jsonb)), u.a"
            "  FROM next, unnest($1::bytea[], $2::bytea[], $3::text[], $4::text[],"
            "                    $5::timestamptz[]) WITH ORDINALITY AS u(e, h, w, c, a, i))"
            " SELECT first FROM next",
            list(entries), list(hashes), list(whos), [json.dumps(c) for c in children],
            list(ats), len(rows)))

    async def size(self, conn: asyncpg.Connection) -> int:
        """Entries committed (seen by this transaction's snapshot)."""
        return int(await conn.fetchval("SELECT next_seq FROM audit_head"))

    async def leaf_hashes(self, conn: asyncpg.Connection, size: int) -> list[bytes]:
        rows = await conn.fetch(
            "SELECT leaf_hash FROM audit_log WHERE seq < $1 ORDER BY seq", size)
        return [bytes(r["leaf_hash"]) for r in rows]

    async def get(self, conn: asyncpg.Connection, seq: int) -> StoredEntry | None:
        row = await conn.fetchrow(f"SELECT {_ENTRY_COLS} FROM audit_log WHERE seq = $1", seq)
        return _entry(row) if row else None

    async def scan(self, conn: asyncpg.Connection, after: int, limit: int) -> list[StoredEntry]:
        """Entries with seq > ``after``, in order, at most ``limit``."""
        rows = await conn.fetch(
            f"SELECT {_ENTRY_COLS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
            after, limit)
        return [_entry(r) for r in rows]

    async def for_child(self, conn: asyncpg.Connection, child_id: str) -> list[StoredEntry]:
        rows = await conn.fetch(
            f"SELECT {_ENTRY_COLS} FROM audit_log WHERE child_ids @> ARRAY[$1::text]"
            " ORDER BY seq", child_id)
        return [_entry(r) for r in rows]

    async def by_user(self, conn: asyncpg.Connection, who: str) -> list[StoredEntry]:
        rows = await conn.fetch(
            f"SELECT {_ENTRY_COLS} FROM audit_log WHERE who = $1 ORDER BY seq", who)
        return [_entry(r) for r in rows]

    async def recent(self, conn: asyncpg.Connection, since: datetime | None,
                     until: datetime | None, limit: int) -> list[StoredEntry]:
        """The newest entries stamped in [since, until) (either end open when None),
        newest first, at most ``limit``. Read backwards along seq, which follows time
        closely, so recent activity costs the entries read, not the log's size."""
        rows = await conn.fetch(
            f"SELECT {_ENTRY_COLS} FROM audit_log WHERE ($1::timestamptz IS NULL OR at >= $1)"
            " AND ($2::timestamptz IS NULL OR at < $2) ORDER BY seq DESC LIMIT $3",
            since, until, limit)
        return [_entry(r) for r in rows]

    async def add_checkpoint(self, conn: asyncpg.Connection, tree_size: int, root_hash: bytes,
                             signed_at: datetime, kid: str, note: str) -> StoredCheckpoint:
        """Store a checkpoint; if one of that size exists (another replica signed the
        same head first), keep and return that one."""
        await conn.execute(
            "INSERT INTO audit_checkpoints (tree_size, root_hash, signed_at, kid, note)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tree_size) DO NOTHING",
            tree_size, root_hash, signed_at, kid, note)
        row = await conn.fetchrow(
            f"SELECT {_CHECKPOINT_COLS} FROM audit_checkpoints WHERE tree_size = $1", tree_size)
        return _checkpoint(row)

    async def latest_checkpoint(self, conn: asyncpg.Connection) -> StoredCheckpoint | None:
        row = await conn.fetchrow(
            f"SELECT {_CHECKPOINT_COLS} FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1")
        return _checkpoint(row) if row else None

    async def checkpoint_at(self, conn: asyncpg.Connection,
                            tree_size: int) -> StoredCheckpoint | None:
        row = await conn.fetchrow(
            f"SELECT {_CHECKPOINT_COLS} FROM audit_checkpoints WHERE tree_size = $1", tree_size)
        return _checkpoint(row) if row else None

    async def checkpoints(self, conn: asyncpg.Connection) -> list[StoredCheckpoint]:
        rows = await conn.fetch(
            f"SELECT {_CHECKPOINT_COLS} FROM audit_checkpoints ORDER BY tree_size")
        return [_checkpoint(r) for r in rows]

    async def probe_write(self, conn: asyncpg.Connection) -> None:
        """Take a seq and insert an entry in a transaction that is always rolled back:
        proves the log is writable without leaving a trace (the seq is given back)."""
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.execute("SET LOCAL lock_timeout = '2s'")
            await self.append(conn, b"{}", bytes(32), "readiness-probe", [],
                              await conn.fetchval("SELECT now()"))
        finally:
            await tx.rollback()
