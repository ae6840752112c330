"""SQL of the log's witnesses, at the log's side: cosignatures received and alarms
witnesses raised (schema 002_witness.sql). Rows are only ever added. Federation
health reads both with the councils (national_hub/storage/health.py)."""

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


    async def cosignatures(self, conn: asyncpg.Connection) -> list[Cosigned]:
        """Every cosignature held, each witness's in the order they arrived."""
        rows = await conn.fetch("SELECT * FROM audit_cosignatures ORDER BY witness, id")
        return [_cosigned(r) for r in rows]


async def record_refusal(conn: asyncpg.Connection, origin: str, reason: str,
                         kept_size: int | None, offered_size: int | None,
                         offered_note: str | None) -> None:
    """At the witness's side: a checkpoint of the log ``origin`` it refused, and why
    (a node refusing the hub's; the hub refusing a node's)."""
    await conn.execute(
        "INSERT INTO witness_refusals (origin, reason, kept_size, offered_size,"
        " offered_note) VALUES ($1, $2, $3, $4, $5)",
        origin, reason, kept_size, offered_size, offered_note)
