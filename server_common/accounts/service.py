"""Accounts and logins: adding users, password + TOTP login with lock-out, web
sessions, bearer tokens. Handlers and CLIs call this; SQL stays in ``store``.

A login is decided under the user's row lock (``SELECT … FOR UPDATE``), so
concurrent attempts count their failures one by one and one TOTP code cannot
open two sessions. A refused login is recorded (``login_failures``) and committed
before the refusal is raised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from protocol.batch import check_council_code
from protocol.errors import ErrorCode, NotFoundError, SignpostError, ValidationError
from server_common.accounts import credentials
from server_common.accounts.config import AccountsConfig
from server_common.accounts.principal import Principal, Role
from server_common.accounts.store import AccountStore, UserRow

_NAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
TOKEN_PREFIX = "spt_"


@dataclass(frozen=True, slots=True)
class NewUser:
    """What ``users add`` shows once: the password (if generated) and the TOTP secret."""

    name: str
    role: Role
    password: str
    totp_secret: str
    provisioning_uri: str


@dataclass(frozen=True, slots=True)
class Session:
    id: str  # the cookie value; only its sha256 is stored
    csrf_token: str
    principal: Principal


class LoginRefused(SignpostError):
    """``login_failed`` (401: unknown name, wrong password or code, code reused,
    disabled) or ``locked_out`` (429). The reason is logged, never told."""

    status = 401
    code = ErrorCode.LOGIN_FAILED


class AccountService:
    def __init__(self, pool: asyncpg.Pool, config: AccountsConfig,
                 store: AccountStore | None = None, issuer: str = credentials.ISSUER) -> None:
        self.pool = pool
        self.config = config
        self.store = store or AccountStore()
        self.issuer = issuer

    # --- administration (CLI) --------------------------------------------------------

    async def add_user(self, name: str, role: Role | str, *, council: str | None = None,
                       organisation: str = "", password: str | None = None) -> NewUser:
        if not _NAME.fullmatch(name):
            raise ValidationError("name", "lower-case letters, digits and . _ @ - "
                                          "(at most 64), starting with a letter or digit")
        try:
            role = Role(role)
        except ValueError as exc:
            raise ValidationError("role", f"one of {', '.join(Role)}") from exc
        if role is Role.INDEX_TEAM:
            if not council:
                raise ValidationError("council", "an index_team account needs --council")
            check_council_code(council, "council")
        elif council:
            raise ValidationError("council", "only index_team accounts belong to a council")
        if password is not None and len(password) < 12:
            raise ValidationError("password", "at least 12 characters")
        password = password if password is not None else credentials.generate_password()
        secret = credentials.new_totp_secret()
        try:
            async with self.pool.acquire() as conn:
                await self.store.insert_user(conn, name, role, council or None, organisation,
                                             credentials.hash_password(password), secret)
        except asyncpg.UniqueViolationError as exc:
            raise SignpostError(f"user {name} exists", code=ErrorCode.USER_EXISTS,
                                status=409) from exc
        return NewUser(name, role, password, secret,
                       credentials.provisioning_uri(secret, name, self.issuer))

    async def list_users(self) -> list[UserRow]:
        async with self.pool.acquire() as conn:
            return await self.store.list_users(conn)

    async def set_disabled(self, name: str, disabled: bool) -> None:
        async with self.pool.acquire() as conn:
            if not await self.store.set_disabled(conn, name, disabled):
                raise _unknown(name)

    async def unlock(self, name: str) -> None:
        async with self.pool.acquire() as conn:
            if not await self.store.unlock(conn, name):
                raise _unknown(name)

    async def create_token(self, name: str, lifetime: float | None = None
                           ) -> tuple[str, datetime]:
        """A new bearer token for ``name`` (shown once) and when it expires."""
        token = credentials.new_secret_token(TOKEN_PREFIX)
        async with self.pool.acquire() as conn:
            user = await self.store.user_by_name(conn, name)
            if user is None:
                raise _unknown(name)
            expires = await self.store.insert_token(
                conn, user.id, credentials.digest(token),
                lifetime if lifetime is not None else self.config.token_lifetime)
        return token, expires

    async def revoke_tokens(self, name: str) -> int:
        async with self.pool.acquire() as conn:
            return await self.store.revoke_tokens(conn, name)

    # --- logging in and out ----------------------------------------------------------

    async def login(self, name: str, password: str, totp_code: str,
                    remote: str | None = None) -> Session:
        """Check password and TOTP code; a new session, or LoginRefused."""
        refusal: tuple[str, bool] | None = None  # (reason, counts towards lock-out)
        locked = False
        async with self.pool.acquire() as conn, conn.transaction():
            user = await self.store.user_by_name(conn, name, for_update=True)
            if user is None:
                credentials.verify_password(None, password)  # same time as a real check
                refusal = ("unknown_user", False)
            elif user.locked_until is not None and user.locked_until > datetime.now(UTC):
                refusal, locked = ("locked", False), True
            elif not credentials.verify_password(user.password_hash, password):
                refusal = ("bad_password", True)
            elif user.disabled:
                refusal = ("disabled", False)
            else:
                step = credentials.totp_step(user.totp_secret, totp_code)
                if step is None:
                    refusal = ("bad_totp", True)
                elif not await self.store.use_totp_step(conn, user.id, step):
                    refusal = ("totp_replayed", True)
            if refusal is None:
                assert user is not None
                if credentials.needs_rehash(user.password_hash):  # parameters were raised
                    await self.store.set_password_hash(conn, user.id,
                                                       credentials.hash_password(password))
                session = Session(credentials.new_secret_token(),
                                  credentials.new_secret_token(), user.principal())
                await self.store.insert_session(conn, credentials.digest(session.id), user.id,
                                                session.csrf_token,
                                                self.config.session_lifetime)
                return session
            reason, counts = refusal
            await self.store.record_failure(
                conn, name[:200], user.id if (user and counts) else None, reason, remote,
                self.config.lockout_threshold, self.config.lockout_duration)
            if user is not None and counts:
                locked = await self.store.is_locked(conn, user.id)
        if locked:
            raise LoginRefused("too many failed logins: the account is locked for a while",
                               code=ErrorCode.LOCKED_OUT, status=429)
        raise LoginRefused("wrong name, password or code")

    async def logout(self, session_id: str) -> None:
        async with self.pool.acquire() as conn:
            await self.store.delete_session(conn, credentials.digest(session_id))

    # --- who is asking ---------------------------------------------------------------

    async def session(self, session_id: str) -> tuple[Principal, str] | None:
        """The principal and CSRF token of a live session."""
        async with self.pool.acquire() as conn:
            return await self.store.touch_session(conn, credentials.digest(session_id),
                                                  self.config.session_idle_timeout)

    async def principal_for_token(self, token: str) -> Principal | None:
        async with self.pool.acquire() as conn:
            return await self.store.principal_for_token(conn, credentials.digest(token))

    async def purge_sessions(self) -> int:
        async with self.pool.acquire() as conn:
            return await self.store.purge_sessions(conn, self.config.session_idle_timeout)


def _unknown(name: str) -> SignpostError:
    return NotFoundError(f"no user {name}", code=ErrorCode.UNKNOWN_USER)


__all__ = ["AccountService", "LoginRefused", "NewUser", "Session"]
