"""Accounts and logins: adding users, password + TOTP login with throttling, web
sessions, bearer tokens. Handlers and CLIs call this; SQL stays in ``store``.

How a login is decided, so that an anonymous caller learns nothing and blocks nobody:

1. Throttle: too many counted failures within ``throttle_window`` from this client
   address for this name, or from this address at all → 429 ``login_throttled``,
   before anything about the name is looked at (the same answer whether it exists).
   Accounts are never locked as such: failures from one address do not keep the
   account's owner out from another. The one exception needs the password: past
   ``totp_guesses_per_account`` wrong TOTP codes given with the right password within
   the window, from any addresses, every sign-in of the account is refused (the same
   401, the right code too) until the window passes or ``users unlock``, so a stolen
   password does not buy unlimited guesses at the second factor from many addresses.
2. The password is checked in a worker thread through a bounded :class:`HashGate`
   (503 ``login_busy`` past the bound); an unknown name is checked against a dummy
   hash, so it costs the same time and gets the same 401 ``login_failed``.
3. The TOTP seed is opened (it is sealed at rest, :mod:`.seeds`) and the code
   checked; a code's time step is used at most once (an atomic UPDATE), so one code
   cannot open two sessions.

A node passes its council code: an ``index_team`` account of another council can be
neither added there nor used there (login, session or token).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from protocol.batch import check_council_code
from protocol.errors import ErrorCode, NotFoundError, SignpostError, ValidationError
from server_common.accounts import credentials, passwords
from server_common.accounts.config import AccountsConfig
from server_common.accounts.hashing import HashGate
from server_common.accounts.principal import Principal, Role
from server_common.accounts.seeds import SeedBox, load_or_create_key
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
    disabled, another council's account) or ``login_throttled`` (429). The reason is
    recorded in ``login_failures``, never told."""

    status = 401
    code = ErrorCode.LOGIN_FAILED


class AccountService:
    def __init__(self, pool: asyncpg.Pool, config: AccountsConfig,
                 store: AccountStore | None = None, issuer: str = credentials.ISSUER,
                 *, council: str | None = None) -> None:
        """``council``: the node's own council (None at the hub, which serves all)."""
        self.pool = pool
        self.config = config
        self.store = store or AccountStore()
        self.issuer = issuer
        self.council = council
        self.box = SeedBox(load_or_create_key(config.secret_key_file))
        self.gate = HashGate(config.hash_concurrency, config.hash_queue)

    async def seal_plain_seeds(self) -> int:
        """Seal every TOTP seed still stored in plain text (accounts schema 002)."""
        async with self.pool.acquire() as conn:
            plain = await self.store.plain_seeds(conn)
            for user_id, name, seed in plain:
                await self.store.seal_seed(conn, user_id, self.box.seal(name, seed))
        return len(plain)

    def _home(self, who: Principal | None) -> Principal | None:
        """``who``, unless this is a node and ``who`` is another council's index team."""
        if who is not None and self.council is not None and who.role is Role.INDEX_TEAM \
                and who.council != self.council:
            return None
        return who

    def totp_seed(self, user: UserRow) -> str:
        if user.totp_sealed is not None:
            return self.box.open(user.name, user.totp_sealed)
        assert user.totp_secret is not None  # the CHECK constraint: one or the other
        return user.totp_secret

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
            if self.council is not None and council != self.council:
                raise ValidationError("council", f"this node serves council {self.council} "
                                                 "only: add the account at that council's node")
        elif council:
            raise ValidationError("council", "only index_team accounts belong to a council")
        if password is not None:
            why = passwords.weakness(password, [name, self.issuer, organisation])
            if why is not None:
                raise ValidationError("password", why, code=ErrorCode.WEAK_PASSWORD)
        password = password if password is not None else credentials.generate_password()
        secret = credentials.new_totp_secret()
        password_hash = await self.gate.run(credentials.hash_password, password)
        try:
            async with self.pool.acquire() as conn:
                await self.store.insert_user(conn, name, role, council or None, organisation,
                                             password_hash, self.box.seal(name, secret))
        except asyncpg.UniqueViolationError as exc:
            raise SignpostError(f"user {name} exists", code=ErrorCode.USER_EXISTS,
                                status=409) from exc
        return NewUser(name, role, password, secret,
                       credentials.provisioning_uri(secret, name, self.issuer))

    async def list_users(self) -> list[UserRow]:
        async with self.pool.acquire() as conn:
            return await self.store.list_users(conn)

    async def set_disabled(self, name: str, disabled: bool) -> None:
        """Disable (every session ended, every token revoked) or enable ``name``."""
        async with self.pool.acquire() as conn, conn.transaction():
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
            try:
                expires = await self.store.insert_token(
                    conn, user.id, credentials.digest(token),
                    lifetime if lifetime is not None else self.config.token_lifetime)
            except asyncpg.DatetimeFieldOverflowError as exc:
                raise ValidationError("lifetime", "too long: the token would expire after "
                                                  "the last date a timestamp holds") from exc
        return token, expires

    async def revoke_tokens(self, name: str) -> int:
        """Revoke every token of ``name``; how many. An unknown name is refused (a
        misspelt one must not look done)."""
        async with self.pool.acquire() as conn:
            if await self.store.user_by_name(conn, name) is None:
                raise _unknown(name)
            return await self.store.revoke_tokens(conn, name)

    # --- logging in and out ----------------------------------------------------------

    async def login(self, name: str, password: str, totp_code: str,
                    remote: str | None = None) -> Session:
        """Check password and TOTP code; a new session, or LoginRefused (module doc)."""
        # as typed, but storable: PostgreSQL text holds no NUL (no account's name has one)
        name, remote = name[:200].replace("\x00", "\ufffd"), remote or "unknown"
        async with self.pool.acquire() as conn:
            by_name, by_address = await self.store.recent_failures(
                conn, remote, name, self.config.throttle_window)
            per_address = self.config.throttle_per_address
            if by_name >= self.config.throttle_per_name or 0 < per_address <= by_address:
                await self.store.record_failure(conn, name, None, "throttled", remote,
                                                counted=False)
                raise LoginRefused("too many failed sign-ins from here: wait a few minutes "
                                   "and try again", code=ErrorCode.LOGIN_THROTTLED, status=429)
            user = await self.store.user_by_name(conn, name)
        # No connection is held while hashing: the pool is for queries, not for waiting.
        password_ok = await self.gate.run(credentials.verify_password,
                                          user.password_hash if user else None, password)
        reason = await self._second_step(user, password_ok, password, totp_code)
        if isinstance(reason, Session):
            async with self.pool.acquire() as conn:
                await self.store.forget_failures(conn, remote, name)
            return reason
        async with self.pool.acquire() as conn:
            await self.store.record_failure(conn, name, user.id if user else None, reason,
                                            remote)
        raise LoginRefused("wrong name, password or code")

    async def _second_step(self, user: UserRow | None, password_ok: bool, password: str,
                           totp_code: str) -> Session | str:
        """After the password check: the new session, or why the login is refused."""
        if user is None:
            return "unknown_user"
        if not password_ok:
            return "bad_password"
        if user.disabled:
            return "disabled"
        if self._home(user.principal()) is None:
            return "other_council"
        async with self.pool.acquire() as conn:
            guessed = await self.store.recent_totp_guesses(conn, user.name,
                                                           self.config.throttle_window)
        if guessed >= self.config.totp_guesses_per_account:
            return "totp_guessed"  # the code is not even looked at
        step = credentials.totp_step(self.totp_seed(user), totp_code)
        if step is None:
            return "bad_totp"
        new_hash = await self.gate.run(credentials.hash_password, password) \
            if credentials.needs_rehash(user.password_hash) else None  # parameters were raised
        async with self.pool.acquire() as conn, conn.transaction():
            # the row locked, as it stands now: a `users disable` since the look-up
            # (while the password was hashed) either ended this session with the others
            # or is seen here (it ends sessions in a transaction on this row too)
            now = await self.store.user_by_name(conn, user.name, for_update=True)
            if now is None or now.disabled:
                return "disabled"
            if not await self.store.use_totp_step(conn, user.id, step):
                return "totp_replayed"
            if new_hash is not None:
                await self.store.set_password_hash(conn, user.id, new_hash)
            session = Session(credentials.new_secret_token(), credentials.new_secret_token(),
                              user.principal())
            await self.store.insert_session(conn, credentials.digest(session.id), user.id,
                                            session.csrf_token, self.config.session_lifetime)
        return session

    async def logout(self, session_id: str) -> None:
        async with self.pool.acquire() as conn:
            await self.store.delete_session(conn, credentials.digest(session_id))

    # --- who is asking ---------------------------------------------------------------

    async def session(self, session_id: str) -> tuple[Principal, str] | None:
        """The principal and CSRF token of a live session."""
        async with self.pool.acquire() as conn:
            found = await self.store.touch_session(conn, credentials.digest(session_id),
                                                   self.config.session_idle_timeout)
        return found if found is not None and self._home(found[0]) is not None else None

    async def principal_for_token(self, token: str) -> Principal | None:
        async with self.pool.acquire() as conn:
            return self._home(await self.store.principal_for_token(conn,
                                                                   credentials.digest(token)))

    async def purge_sessions(self) -> int:
        """Forget expired and idle sessions, and refused sign-ins older than
        ``accounts.login_failures_kept``; returns how many sessions went."""
        async with self.pool.acquire() as conn:
            await self.store.purge_login_failures(conn, self.config.login_failures_kept)
            return await self.store.purge_sessions(conn, self.config.session_idle_timeout)


def _unknown(name: str) -> SignpostError:
    return NotFoundError(f"no user {name}", code=ErrorCode.UNKNOWN_USER)


__all__ = ["AccountService", "LoginRefused", "NewUser", "Session"]
