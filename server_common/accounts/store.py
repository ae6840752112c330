"""SQL for accounts, sessions, bearer tokens and refused logins (and nowhere else)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from server_common.accounts.principal import Principal, Role

_PRINCIPAL_COLUMNS = "u.name, u.role, u.organisation, u.council"
# A bearer token's last use is recorded to within this many seconds (see principal_for_token).
TOKEN_USE_GRANULARITY = 60


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    name: str
    role: Role
    organisation: str
    council: str | None
    password_hash: str
    totp_secret: str | None  # a plain seed not sealed yet (before the first start after 002)
    totp_sealed: bytes | None  # AES-GCM sealed seed (server_common.accounts.seeds)
    last_totp_step: int | None
    disabled: bool
    failed_logins: int
    locked_until: datetime | None
    created_at: datetime

    def principal(self) -> Principal:
        return Principal(self.name, self.role, self.organisation, self.council)


def _user(row: asyncpg.Record) -> UserRow:
    return UserRow(row["id"], row["name"], Role(row["role"]), row["organisation"],
                   row["council"], row["password_hash"], row["totp_secret"],
                   row["totp_sealed"], row["last_totp_step"], row["disabled"], row["failed_logins"],
                   row["locked_until"], row["created_at"])


def _principal(row: asyncpg.Record) -> Principal:
    return Principal(row["name"], Role(row["role"]), row["organisation"], row["council"])


class AccountStore:
    # --- users ---------------------------------------------------------------------

    async def insert_user(self, conn: asyncpg.Connection, name: str, role: Role,
                          council: str | None, organisation: str, password_hash: str,
                          totp_sealed: bytes) -> int:
        return int(await conn.fetchval(
            "INSERT INTO users (name, role, council, organisation, password_hash, totp_sealed)"
            " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            name, str(role), council, organisation, password_hash, totp_sealed))

    async def plain_seeds(self, conn: asyncpg.Connection) -> list[tuple[int, str, str]]:
        """(id, name, seed) of every user whose TOTP seed is not sealed yet."""
        return [(r["id"], r["name"], r["totp_secret"]) for r in await conn.fetch(
            "SELECT id, name, totp_secret FROM users WHERE totp_secret IS NOT NULL")]

    async def seal_seed(self, conn: asyncpg.Connection, user_id: int, sealed: bytes) -> None:
        await conn.execute("UPDATE users SET totp_sealed = $2, totp_secret = NULL"
                           " WHERE id = $1 AND totp_secret IS NOT NULL", user_id, sealed)

    async def user_by_name(self, conn: asyncpg.Connection, name: str,
                           for_update: bool = False) -> UserRow | None:
        row = await conn.fetchrow(
            "SELECT * FROM users WHERE name = $1" + (" FOR UPDATE" if for_update else ""), name)
        return _user(row) if row else None

    async def list_users(self, conn: asyncpg.Connection) -> list[UserRow]:
        return [_user(r) for r in await conn.fetch("SELECT * FROM users ORDER BY name")]

    async def set_password_hash(self, conn: asyncpg.Connection, user_id: int,
                                password_hash: str) -> None:
        await conn.execute("UPDATE users SET password_hash = $2 WHERE id = $1",
                           user_id, password_hash)

    async def set_disabled(self, conn: asyncpg.Connection, name: str, disabled: bool) -> bool:
        """Disabling also ends every session and revokes every token of ``name`` (in
        the caller's transaction): enabling it again must not bring them back."""
        user_id = await conn.fetchval(
            "UPDATE users SET disabled = $2 WHERE name = $1 RETURNING id", name, disabled)
        if user_id is None:
            return False
        if disabled:
            await conn.execute("DELETE FROM sessions WHERE user_id = $1", user_id)
            await conn.execute("UPDATE api_tokens SET revoked_at = now()"
                               " WHERE user_id = $1 AND revoked_at IS NULL", user_id)
        return True

    async def unlock(self, conn: asyncpg.Connection, name: str) -> bool:
        """Stop ``name``'s earlier failed logins from counting towards throttling."""
        if not await conn.fetchval("SELECT true FROM users WHERE name = $1", name):
            return False
        await conn.execute("UPDATE login_failures SET counted = false"
                           " WHERE name = $1 AND counted", name)
        return True

    async def record_failure(self, conn: asyncpg.Connection, name: str, user_id: int | None,
                             reason: str, remote: str, counted: bool = True) -> None:
        """Log a refused login (kept for investigation); ``counted`` ones throttle."""
        await conn.execute(
            "INSERT INTO login_failures (name, user_id, reason, remote, counted)"
            " VALUES ($1, $2, $3, $4, $5)", name, user_id, reason, remote, counted)

    async def recent_failures(self, conn: asyncpg.Connection, remote: str, name: str,
                              window_seconds: float) -> tuple[int, int]:
        """Counted failures within the window: from ``remote`` for ``name``, and from
        ``remote`` for any name."""
        row = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE name = $2) AS by_name, count(*) AS by_address"
            " FROM login_failures WHERE remote = $1 AND counted"
            " AND at > now() - make_interval(secs => $3)", remote, name, window_seconds)
        return int(row["by_name"]), int(row["by_address"])

    async def recent_totp_guesses(self, conn: asyncpg.Connection, name: str,
                                  window_seconds: float) -> int:
        """Counted wrong TOTP codes given with ``name``'s right password within the
        window, from any address."""
        return int(await conn.fetchval(
            "SELECT count(*) FROM login_failures WHERE name = $1 AND reason = 'bad_totp'"
            " AND counted AND at > now() - make_interval(secs => $2)", name, window_seconds))

    async def forget_failures(self, conn: asyncpg.Connection, remote: str, name: str) -> None:
        """After a good login: this address's earlier slips for this name stop counting."""
        await conn.execute("UPDATE login_failures SET counted = false"
                           " WHERE remote = $1 AND name = $2 AND counted", remote, name)

    async def use_totp_step(self, conn: asyncpg.Connection, user_id: int, step: int) -> bool:
        """Record a successful login's TOTP step; False if that code was used already."""
        done = await conn.execute(
            "UPDATE users SET last_totp_step = $2"
            " WHERE id = $1 AND (last_totp_step IS NULL OR last_totp_step < $2)",
            user_id, step)
        return done != "UPDATE 0"

    async def failures(self, conn: asyncpg.Connection, name: str) -> list[str]:
        return [r["reason"] for r in await conn.fetch(
            "SELECT reason FROM login_failures WHERE name = $1 ORDER BY id", name)]

    # --- sessions ------------------------------------------------------------------

    async def insert_session(self, conn: asyncpg.Connection, id_hash: bytes, user_id: int,
                             csrf_token: str, lifetime_seconds: float) -> None:
        await conn.execute(
            "INSERT INTO sessions (id_hash, user_id, csrf_token, expires_at)"
            " VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
            id_hash, user_id, csrf_token, lifetime_seconds)

    async def touch_session(self, conn: asyncpg.Connection, id_hash: bytes,
                            idle_seconds: float) -> tuple[Principal, str] | None:
        """The live session's principal and CSRF token, its idle clock restarted; None
        if it does not exist, expired, sat idle too long or its user is disabled."""
        row = await conn.fetchrow(
            "UPDATE sessions s SET last_seen_at = now() FROM users u"
            " WHERE s.id_hash = $1 AND u.id = s.user_id AND NOT u.disabled"
            "   AND s.expires_at > now()"
            "   AND s.last_seen_at > now() - make_interval(secs => $2)"
            f" RETURNING s.csrf_token, {_PRINCIPAL_COLUMNS}", id_hash, idle_seconds)
        return (_principal(row), row["csrf_token"]) if row else None

    async def delete_session(self, conn: asyncpg.Connection, id_hash: bytes) -> None:
        await conn.execute("DELETE FROM sessions WHERE id_hash = $1", id_hash)

    async def purge_sessions(self, conn: asyncpg.Connection, idle_seconds: float) -> int:
        done = await conn.execute(
            "DELETE FROM sessions WHERE expires_at <= now()"
            " OR last_seen_at <= now() - make_interval(secs => $1)", idle_seconds)
        return int(done.split()[-1])

    async def purge_login_failures(self, conn: asyncpg.Connection, kept_seconds: float) -> int:
        """Forget refused sign-ins older than ``kept_seconds``."""
        done = await conn.execute(
            "DELETE FROM login_failures WHERE at < now() - make_interval(secs => $1)",
            kept_seconds)
        return int(done.split()[-1])

    # --- bearer tokens -------------------------------------------------------------

    async def insert_token(self, conn: asyncpg.Connection, user_id: int, token_hash: bytes,
                           lifetime_seconds: float) -> datetime:
        return await conn.fetchval(
            "INSERT INTO api_tokens (user_id, token_hash, expires_at)"
            " VALUES ($1, $2, now() + make_interval(secs => $3)) RETURNING expires_at",
            user_id, token_hash, lifetime_seconds)

    async def principal_for_token(self, conn: asyncpg.Connection,
                                  token_hash: bytes) -> Principal | None:
        # A read, so that a search costs no commit for its token: ``last_used_at`` is
        # written only when it is a minute old, and an UPDATE that touches no row writes
        # nothing. Revocation, expiry and disabling still count from the next request.
        row = await conn.fetchrow(
            "WITH live AS ("
            f" SELECT t.id, {_PRINCIPAL_COLUMNS} FROM api_tokens t JOIN users u"
            "  ON u.id = t.user_id"
            "  WHERE t.token_hash = $1 AND NOT u.disabled"
            "    AND t.revoked_at IS NULL AND t.expires_at > now()),"
            " touched AS ("
            "  UPDATE api_tokens t SET last_used_at = now() FROM live"
            "  WHERE t.id = live.id AND (t.last_used_at IS NULL"
            f"    OR t.last_used_at < now() - make_interval(secs => {TOKEN_USE_GRANULARITY})))"
            " SELECT name, role, organisation, council FROM live", token_hash)
        return _principal(row) if row else None

    async def revoke_tokens(self, conn: asyncpg.Connection, name: str) -> int:
        done = await conn.execute(
            "UPDATE api_tokens t SET revoked_at = now() FROM users u"
            " WHERE u.id = t.user_id AND u.name = $1 AND t.revoked_at IS NULL", name)
        return int(done.split()[-1])
