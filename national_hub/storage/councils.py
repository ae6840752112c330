"""Councils and their enrolled Ed25519 keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True, slots=True)
class Council:
    code: str
    name: str
    cursor_seq: int
    cursor_hash: str
    forked_at: datetime | None
    fork_detail: str | None
    index_team_email: str | None = None  # how to reach the council's index team
    index_team_phone: str | None = None


@dataclass(frozen=True, slots=True)
class CouncilKey:
    kid: str
    council_code: str
    public_key: bytes
    enrolled_at: datetime
    not_after: datetime | None
    revoked_at: datetime | None


_COUNCIL_COLS = ("code, name, cursor_seq, cursor_hash, forked_at, fork_detail, "
                 "index_team_email, index_team_phone")
_KEY_COLS = "kid, council_code, public_key, enrolled_at, not_after, revoked_at"


class CouncilStore:
    async def add(self, conn: asyncpg.Connection, code: str, name: str) -> None:
        await conn.execute("INSERT INTO councils (code, name) VALUES ($1, $2)", code, name)

    async def get(self, conn: asyncpg.Connection, code: str, *,
                  for_update: bool = False) -> Council | None:
        sql = f"SELECT {_COUNCIL_COLS} FROM councils WHERE code = $1"
        if for_update:
            sql += " FOR UPDATE"  # serialises batches of one council across hub replicas
        row = await conn.fetchrow(sql, code)
        return Council(**dict(row)) if row else None

    async def lock(self, conn: asyncpg.Connection, codes: list[str]) -> None:
        """Take these councils' row locks, in code order (so two holders of several never
        deadlock): batch intake holds its council's while it writes the council's
        records, and the resolver takes them before it writes any."""
        await conn.execute("SELECT 1 FROM councils WHERE code = ANY($1::text[])"
                           " ORDER BY code FOR UPDATE", sorted(set(codes)))

    async def list_all(self, conn: asyncpg.Connection) -> list[Council]:
        rows = await conn.fetch(f"SELECT {_COUNCIL_COLS} FROM councils ORDER BY code")
        return [Council(**dict(r)) for r in rows]

    async def advance_cursor(self, conn: asyncpg.Connection, code: str, seq: int,
                             hash_: str) -> None:
        await conn.execute(
            "UPDATE councils SET cursor_seq = $2, cursor_hash = $3 WHERE code = $1",
            code, seq, hash_,
        )

    async def flag_fork(self, conn: asyncpg.Connection, code: str, detail: str) -> None:
        await conn.execute(
            "UPDATE councils SET forked_at = coalesce(forked_at, now()), fork_detail = $2"
            " WHERE code = $1", code, detail,
        )

    async def clear_fork(self, conn: asyncpg.Connection, code: str) -> bool:
        result = await conn.execute(
            "UPDATE councils SET forked_at = NULL, fork_detail = NULL WHERE code = $1", code
        )
        return bool(result.endswith(" 1"))

    async def set_contact(self, conn: asyncpg.Connection, code: str, email: str | None,
                          phone: str | None) -> bool:
        """Set the index team's email and phone (None clears one); False if no such
        council."""
        result = await conn.execute(
            "UPDATE councils SET index_team_email = $2, index_team_phone = $3"
            " WHERE code = $1", code, email, phone)
        return bool(result.endswith(" 1"))

    async def contacts(self, conn: asyncpg.Connection, codes: list[str]) -> list[Council]:
        """These councils (those enrolled), in code order, with their index teams'
        contact details."""
        rows = await conn.fetch(f"SELECT {_COUNCIL_COLS} FROM councils"
                                " WHERE code = ANY($1::text[]) ORDER BY code", codes)
        return [Council(**dict(r)) for r in rows]

    async def add_key(self, conn: asyncpg.Connection, kid: str, code: str, public_key: bytes,
                      not_after: datetime | None) -> None:
        await conn.execute(
            "INSERT INTO council_keys (kid, council_code, public_key, not_after)"
            " VALUES ($1, $2, $3, $4)", kid, code, public_key, not_after,
        )

    async def get_key(self, conn: asyncpg.Connection, kid: str, *,
                      for_update: bool = False) -> CouncilKey | None:
        sql = f"SELECT {_KEY_COLS} FROM council_keys WHERE kid = $1"
        if for_update:
            sql += " FOR UPDATE"  # serialises announcements that retire this key
        row = await conn.fetchrow(sql, kid)
        return CouncilKey(**dict(row)) if row else None

    async def expire_key_by(self, conn: asyncpg.Connection, kid: str,
                            when: datetime) -> datetime:
        """Bring the key's not_after forward to ``when`` (never later than it already is);
        return the resulting not_after."""
        value = await conn.fetchval(
            "UPDATE council_keys SET not_after = LEAST(coalesce(not_after, $2), $2)"
            " WHERE kid = $1 RETURNING not_after", kid, when,
        )
        assert value is not None
        return value

    async def set_not_after(self, conn: asyncpg.Connection, kid: str,
                            when: datetime | None) -> None:
        await conn.execute("UPDATE council_keys SET not_after = $2 WHERE kid = $1", kid, when)

    async def keys_of(self, conn: asyncpg.Connection, code: str) -> list[CouncilKey]:
        rows = await conn.fetch(
            f"SELECT {_KEY_COLS} FROM council_keys WHERE council_code = $1 ORDER BY enrolled_at",
            code,
        )
        return [CouncilKey(**dict(r)) for r in rows]

    async def witness_keys(self, conn: asyncpg.Connection) -> dict[str, tuple[str, bytes]]:
        """Every key ever enrolled, by kid: (its council, the raw public key). A council's
        node cosigns the hub's audit checkpoints with its key (audit verify checks them)."""
        rows = await conn.fetch("SELECT kid, council_code, public_key FROM council_keys")
        return {r["kid"]: (r["council_code"], bytes(r["public_key"])) for r in rows}

    async def revoke_key(self, conn: asyncpg.Connection, kid: str) -> CouncilKey | None:
        row = await conn.fetchrow(
            "UPDATE council_keys SET revoked_at = coalesce(revoked_at, now()) WHERE kid = $1"
            f" RETURNING {_KEY_COLS}", kid,
        )
        return CouncilKey(**dict(row)) if row else None
