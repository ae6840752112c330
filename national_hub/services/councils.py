"""Council enrolment, keys, cursors and heartbeats: what operators and nodes ask of the registry."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import asyncpg

from national_hub.storage.councils import Council, CouncilKey, CouncilStore
from national_hub.storage.heartbeats import HeartbeatStore
from protocol import keys
from protocol.batch import check_council_code
from protocol.errors import ErrorCode, NotFoundError, SignpostError, ValidationError
from protocol.records import check_text
from server_common.audit.entry import Actor, AuditEntry
from server_common.audit.service import AuditLog

# The shapes the records' pointers accept (protocol.records), for the index team too.
_PHONE = re.compile(r"^[0-9 +()-]{6,20}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,}$")


def _contact_value(value: str | None, current: str | None, pattern: re.Pattern[str],
                   option: str, what: str) -> str | None:
    """The new value: unchanged when not given, cleared by "", else checked."""
    if value is None:
        return current
    value = value.strip()
    if not value:
        return None
    if not pattern.fullmatch(value):
        raise ValidationError(option, f"not {what}: {value!r}")
    return value


def _council_name(name: str) -> str:
    """A council's name as practitioners see it: trimmed, not blank, at most 100
    characters, no control characters (the records' rule for a name)."""
    checked = check_text(name, "--name", name=True)
    if checked is None:
        raise ValidationError("--name", "a council needs a name")
    return checked


class CouncilService:
    def __init__(self, pool: asyncpg.Pool, councils: CouncilStore,
                 heartbeats: HeartbeatStore, audit: AuditLog | None = None,
                 actor: Actor | None = None) -> None:
        """With ``audit``, enrolment, revocation and unflagging are audited as ``actor``
        in the same transaction as the change (fail closed)."""
        self.pool = pool
        self.councils = councils
        self.heartbeats = heartbeats
        self.audit = audit
        self.actor = actor

    async def _audited(self, conn: asyncpg.Connection, action: str, **parameters: str) -> None:
        if self.audit is not None and self.actor is not None:
            await self.audit.append(conn, AuditEntry.by(self.actor, action, "administration",
                                                        parameters))

    async def enrol(self, code: str, name: str, public_key_pem: bytes,
                    not_after: datetime | None = None) -> str:
        """Add a council (or a new key for an existing one); return the key id.

        Refused before anything is written: a weak or non-canonical key (``weak_key``,
        see protocol.keys), an expiry that is already past (an operator who means to
        stop a key revokes it), a name that is blank, too long or holds control
        characters (practitioners are told to call it), and, for a council already
        enrolled, a name other than its own: the code was mistyped, and the key would
        let another council's node publish as this one."""
        try:
            check_council_code(code)
            name = _council_name(name)
            public = keys.load_public_key(public_key_pem, "--public-key")
            if not_after is not None and not_after <= datetime.now(UTC):
                raise ValidationError("--expires", f"{not_after.isoformat()} is already past")
            async with self.pool.acquire() as conn:
                enrolled = await self.councils.get(conn, code)
            if enrolled is not None and enrolled.name != name:
                raise ValidationError("--name", f"{code} is enrolled as {enrolled.name!r}, not "
                                                f"{name!r}: is the code mistyped?")
        except SignpostError as exc:  # a refused enrolment is on record too
            if self.audit is not None and self.actor is not None:
                await self.audit.record(AuditEntry.by(
                    self.actor, "council.enrol.refused", "administration",
                    {"council": code, "name": name, "code": str(exc.code),
                     "reason": exc.message}))
            raise
        kid = keys.key_id(public)
        async with self.pool.acquire() as conn, conn.transaction():
            if await self.councils.get(conn, code) is None:
                await self.councils.add(conn, code, name)
            existing = await self.councils.get_key(conn, kid)
            if existing is not None:
                if existing.council_code != code:
                    raise SignpostError(f"key {kid} is already enrolled for "
                                        f"{existing.council_code}", code=ErrorCode.INVALID_FIELD)
                if not_after is not None:  # the operator (re)sets the key's expiry
                    await self.councils.set_not_after(conn, kid, not_after)
                    await self._audited(conn, "council.key_expiry", council=code, kid=kid,
                                        not_after=not_after.isoformat())
                return kid
            await self.councils.add_key(conn, kid, code, keys.raw_public(public), not_after)
            await self._audited(conn, "council.enrol", council=code, name=name, kid=kid,
                                not_after=not_after.isoformat() if not_after else "")
        return kid

    async def get(self, code: str) -> Council:
        async with self.pool.acquire() as conn:
            council = await self.councils.get(conn, code)
        if council is None:
            raise NotFoundError(f"council {code} is not enrolled", code=ErrorCode.UNKNOWN_COUNCIL)
        return council

    async def names(self) -> dict[str, str]:
        """Every enrolled council's name by code."""
        async with self.pool.acquire() as conn:
            return {c.code: c.name for c in await self.councils.list_all(conn)}

    async def list_all(self) -> list[tuple[Council, list[CouncilKey]]]:
        async with self.pool.acquire() as conn:
            return [(c, await self.councils.keys_of(conn, c.code))
                    for c in await self.councils.list_all(conn)]

    async def set_contact(self, code: str, *, email: str | None = None,
                          phone: str | None = None) -> Council:
        """Set how to reach the council's index team: an option not given is unchanged,
        "" clears it. Audited (``council.contact``) with the values set."""
        async with self.pool.acquire() as conn, conn.transaction():
            council = await self.councils.get(conn, code, for_update=True)
            if council is None:
                raise NotFoundError(f"council {code} is not enrolled",
                                    code=ErrorCode.UNKNOWN_COUNCIL)
            new_email = _contact_value(email, council.index_team_email, _EMAIL, "--email",
                                       "an email address")
            new_phone = _contact_value(phone, council.index_team_phone, _PHONE, "--phone",
                                       "a phone number")
            await self.councils.set_contact(conn, code, new_email, new_phone)
            await self._audited(conn, "council.contact", council=code,
                                email=new_email or "", phone=new_phone or "")
            return await self.councils.get(conn, code) or council

    async def index_teams(self, codes: list[str]) -> list[Council]:
        """These councils with how to reach their index teams, in code order."""
        async with self.pool.acquire() as conn:
            return await self.councils.contacts(conn, codes)

    async def revoke_key(self, kid: str) -> CouncilKey:
        async with self.pool.acquire() as conn, conn.transaction():
            key = await self.councils.revoke_key(conn, kid)
            if key is not None:
                await self._audited(conn, "key.revoke", council=key.council_code, kid=kid)
        if key is None:
            raise NotFoundError(f"key {kid} is not enrolled", code=ErrorCode.UNKNOWN_KEY)
        return key

    async def clear_fork(self, code: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            if not await self.councils.clear_fork(conn, code):
                raise NotFoundError(f"council {code} is not enrolled",
                                    code=ErrorCode.UNKNOWN_COUNCIL)
            await self._audited(conn, "council.unflag", council=code)

    async def heartbeat(self, code: str, head_seq: int, outbox_depth: int,
                        sent_at: datetime | None) -> None:
        async with self.pool.acquire() as conn:
            await self.heartbeats.put(conn, code, head_seq, outbox_depth, sent_at)
