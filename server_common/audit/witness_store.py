"""SQL of the log's witnesses, at the log's side: cosignatures received and alarms
witnesses raised (schema 002_witness.sql). Rows are only ever added."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True, slots=True)
class Cosigned:
    """A witness's cosignature of the log at ``tree_size``."""

    witness: str
    tree_size: int
    root_hash: bytes
    kid: str
    cosignature: str
    cosigned_at: datetime
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Alarm:
    witness: str
    reason: str
    cosigned_size: int | None
    offered_size: int | None
    received_at: datetime


def _cosigned(row: asyncpg.Record) -> Cosigned:
    return Cosigned(row["witness"], row["tree_size"], bytes(row["root_hash"]), row["kid"],
                    row["cosignature"], row["cosigned_at"], row["received_at"])


class WitnessStore:
    async def add_cosignature(self, conn: asyncpg.Connection, witness: str, tree_size: int,
                              root_hash: bytes, kid: str, cosignature: str,
                              cosigned_at: datetime) -> bool:
        """Store a cosignature unless it is of the witness's newest cosigned checkpoint
        (sent again); True when stored."""
        status = await conn.execute(
            "INSERT INTO audit_cosignatures (witness, tree_size, root_hash, kid, cosignature,"
            " cosigned_at) SELECT $1, $2, $3, $4, $5, $6 WHERE NOT EXISTS ("
            "  SELECT 1 FROM (SELECT tree_size, root_hash FROM audit_cosignatures"
            "                 WHERE witness = $1 ORDER BY id DESC LIMIT 1) newest"
            "  WHERE newest.tree_size = $2 AND newest.root_hash = $3)",
            witness, tree_size, root_hash, kid, cosignature, cosigned_at)
        return bool(status.endswith(" 1"))

    async def add_alarm(self, conn: asyncpg.Connection, witness: str, reason: str,
                        cosigned_size: int | None, offered_size: int | None) -> None:
        await conn.execute(
            "INSERT INTO audit_witness_alarms (witness, reason, cosigned_size, offered_size)"
            " VALUES ($1, $2, $3, $4)", witness, reason, cosigned_size, offered_size)

    async def latest_cosignatures(self, conn: asyncpg.Connection) -> list[Cosigned]:
        """Each witness's newest cosignature, by witness. Newest by arrival, not by
        size: a witness that accepted an incident (a restore that lost entries) cosigns
        a smaller log from then on, and only that one binds the log."""
        rows = await conn.fetch(
            "SELECT DISTINCT ON (witness) * FROM audit_cosignatures"
            " ORDER BY witness, id DESC")
        return [_cosigned(r) for r in rows]

    async def latest_alarms(self, conn: asyncpg.Connection) -> dict[str, Alarm]:
        """Each witness's newest alarm that no later cosignature by it answered: a witness
        that refused and has not cosigned since still stands by its refusal."""
        rows = await conn.fetch(
            "SELECT DISTINCT ON (a.witness) a.witness, a.reason, a.cosigned_size,"
            "       a.offered_size, a.received_at"
            " FROM audit_witness_alarms a"
            " WHERE NOT EXISTS (SELECT 1 FROM audit_cosignatures c"
            "                   WHERE c.witness = a.witness AND c.received_at > a.received_at)"
            " ORDER BY a.witness, a.received_at DESC")
        return {r["witness"]: Alarm(r["witness"], r["reason"], r["cosigned_size"],
                                    r["offered_size"], r["received_at"]) for r in rows}
