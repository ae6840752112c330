"""SQL of the node's witness: the hub checkpoints it cosigned and those it refused
(shared audit schema, 002_witness.sql). Rows are only ever added: the newest
cosigned checkpoint is what the hub's next one must extend."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from server_common.audit.witness_store import record_refusal


@dataclass(frozen=True, slots=True)
class Kept:
    """A hub checkpoint this node checked and cosigned, with its cosignature line."""

    origin: str
    tree_size: int
    root_hash: bytes
    note: str
    cosignature: str
    cosigned_at: datetime


@dataclass(frozen=True, slots=True)
class Refusal:
    origin: str
    reason: str
    kept_size: int | None
    offered_size: int | None
    refused_at: datetime


@dataclass(frozen=True, slots=True)
class WitnessState:
    kept: Kept | None
    refusal: Refusal | None  # the newest refusal, when no cosignature came after it

    @property
    def ok(self) -> bool | None:
        """True: witnessing, False: refusing, None: never witnessed yet."""
        if self.refusal is not None:
            return False
        return None if self.kept is None else True

    def describe(self) -> str:
        if self.refusal is not None:
            return f"REFUSED to cosign: {self.refusal.reason}"
        if self.kept is None:
            return "not witnessed yet"
        return f"cosigned {self.kept.tree_size} entries at {self.kept.cosigned_at:%Y-%m-%d %H:%M}"


class WitnessStore:
    async def latest(self, conn: asyncpg.Connection) -> Kept | None:
        row = await conn.fetchrow(
            "SELECT origin, tree_size, root_hash, note, cosignature, cosigned_at"
            " FROM witnessed_checkpoints ORDER BY id DESC LIMIT 1")
        return None if row is None else Kept(
            row["origin"], row["tree_size"], bytes(row["root_hash"]), row["note"],
            row["cosignature"], row["cosigned_at"])

    async def keep(self, conn: asyncpg.Connection, kept: Kept,
                   accepted_reason: str | None = None) -> None:
        """Keep a cosigned checkpoint as the newest (unless it already is)."""
        await conn.execute(
            "INSERT INTO witnessed_checkpoints (origin, tree_size, root_hash, note,"
            " cosignature, cosigned_at, accepted_reason)"
            " SELECT $1, $2, $3, $4, $5, $6, $7 WHERE NOT EXISTS ("
            "  SELECT 1 FROM (SELECT origin, tree_size, root_hash FROM witnessed_checkpoints"
            "                 ORDER BY id DESC LIMIT 1) newest"
            "  WHERE (newest.origin, newest.tree_size, newest.root_hash) = ($1, $2, $3))",
            kept.origin, kept.tree_size, kept.root_hash, kept.note, kept.cosignature,
            kept.cosigned_at, accepted_reason)

    async def refuse(self, conn: asyncpg.Connection, origin: str, reason: str,
                     kept_size: int | None, offered_size: int | None,
                     offered_note: str | None) -> None:
        await record_refusal(conn, origin, reason, kept_size, offered_size, offered_note)

    async def state(self, conn: asyncpg.Connection) -> WitnessState:
        kept = await self.latest(conn)
        row = await conn.fetchrow(
            "SELECT origin, reason, kept_size, offered_size, refused_at FROM witness_refusals"
            " WHERE refused_at > coalesce((SELECT max(recorded_at) FROM witnessed_checkpoints),"
            "                             '-infinity')"
            " ORDER BY refused_at DESC, id DESC LIMIT 1")
        refusal = None if row is None else Refusal(
            row["origin"], row["reason"], row["kept_size"], row["offered_size"],
            row["refused_at"])
        return WitnessState(kept, refusal)
