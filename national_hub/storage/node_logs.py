"""SQL of the hub's witness of each council's node log (docs/PROTOCOL.md §18): the
node checkpoints it accepted and those it refused, in the shared audit schema's
``witnessed_checkpoints`` and ``witness_refusals`` (002_witness.sql), by origin
(``signpost-node-<code>/audit``). Rows are only ever added; the newest accepted
checkpoint of a node's log is what its next one must extend."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from server_common.audit.witness_store import record_refusal


@dataclass(frozen=True, slots=True)
class HeldCheckpoint:
    """A node checkpoint the hub checked and keeps."""

    origin: str
    tree_size: int
    root_hash: bytes
    note: str
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class NodeLogRefusal:
    reason: str
    kept_size: int | None
    offered_size: int | None
    offered_note: str | None
    refused_at: datetime


class NodeLogStore:
    async def lock(self, conn: asyncpg.Connection, origin: str) -> None:
        """Judge one log's offers one at a time (a council may run two node processes):
        held until the transaction ends."""
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", origin)

    async def latest(self, conn: asyncpg.Connection, origin: str) -> HeldCheckpoint | None:
        row = await conn.fetchrow(
            "SELECT origin, tree_size, root_hash, note, recorded_at FROM witnessed_checkpoints"
            " WHERE origin = $1 ORDER BY id DESC LIMIT 1", origin)
        return None if row is None else HeldCheckpoint(
            row["origin"], row["tree_size"], bytes(row["root_hash"]), row["note"],
            row["recorded_at"])

    async def keep(self, conn: asyncpg.Connection, origin: str, tree_size: int,
                   root_hash: bytes, note: str, accepted_reason: str | None = None) -> None:
        """Keep a node's checkpoint as its log's newest. The hub does not countersign
        it (``cosignature`` is empty): the node's own key signed it."""
        await conn.execute(
            "INSERT INTO witnessed_checkpoints (origin, tree_size, root_hash, note,"
            " cosignature, cosigned_at, accepted_reason) VALUES ($1, $2, $3, $4, '', now(), $5)",
            origin, tree_size, root_hash, note, accepted_reason)

    async def refuse(self, conn: asyncpg.Connection, origin: str, reason: str,
                     kept_size: int | None, offered_size: int | None,
                     offered_note: str | None) -> None:
        await record_refusal(conn, origin, reason, kept_size, offered_size, offered_note)

    async def open_refusal(self, conn: asyncpg.Connection,
                           origin: str) -> NodeLogRefusal | None:
        """The newest refusal of ``origin``'s checkpoints, unless one was accepted since."""
        row = await conn.fetchrow(
            "SELECT reason, kept_size, offered_size, offered_note, refused_at"
            " FROM witness_refusals r WHERE origin = $1 AND refused_at > coalesce(("
            "   SELECT max(recorded_at) FROM witnessed_checkpoints w WHERE w.origin = $1),"
            "   '-infinity')"
            " ORDER BY refused_at DESC, id DESC LIMIT 1", origin)
        return None if row is None else NodeLogRefusal(
            row["reason"], row["kept_size"], row["offered_size"], row["offered_note"],
            row["refused_at"])
