"""Notices at a council's node (docs/notices.md).

After each run of its own loop the node asks the hub for its council's notices past
its cursor (``GET /v1/councils/{code}/notices``, docs/PROTOCOL.md §17), keeps them,
and routes each (:func:`route`, pure): to the lead professional of this council's own
involvement with the child — or to the index team when there is none — and to every
practitioner watching the child. A shielded child's notice goes to the index team
only: never a practitioner, a watcher or a lead professional. Emails
(:mod:`local_node.services.notices_mail`) say only that there is something to look
at. Every notice received, read and emailed is in the node's audit log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import aiosmtplib
import asyncpg

from local_node.config import NoticesSection
from local_node.services.notices_mail import Mailer
from local_node.storage.notices import InboxItem, NoticeStore
from local_node.storage.shielding import ShieldStore
from local_node.transport import HubClient
from protocol.errors import ErrorCode, NotFoundError, SignpostError, ValidationError
from protocol.notices import Notice
from server_common.accounts.principal import Principal, Role
from server_common.accounts.store import AccountStore
from server_common.audit.entry import Actor, AuditEntry
from server_common.audit.service import AuditLog

log = logging.getLogger(__name__)
PURPOSE = "tell the professionals involved with a child"
TEAM = "team"


@dataclass(frozen=True, slots=True)
class Delivery:
    recipient: str  # "team", "user:<name>" or "email:<address>"
    email: str | None
    email_due: bool


def route(notice: Notice, leads: dict[str, list[str]], watchers: list[str],
          addresses: dict[str, str], settings: NoticesSection) -> list[Delivery]:
    """Whose inbox a notice goes to, and who is emailed.

    >>> from protocol.notices import NoticeEvent
    >>> n = Notice(1, 1, "N1", "2026-12-05", ("L1",), False, (NoticeEvent("linked"),))
    >>> s = NoticesSection(index_team_email="team@esx.gov.uk")
    >>> [d.recipient for d in route(n, {"L1": ["sw@esx.gov.uk"]}, ["amy"], {}, s)]
    ['email:sw@esx.gov.uk', 'user:amy']
    >>> [d.recipient for d in route(n, {}, ["amy"], {}, s)]
    ['team', 'user:amy']
    >>> shielded = Notice(1, 1, "N1", "2026-12-05", ("L1",), True, (NoticeEvent("linked"),))
    >>> route(shielded, {"L1": ["sw@esx.gov.uk"]}, ["amy"], {}, s)
    [Delivery(recipient='team', email='team@esx.gov.uk', email_due=True)]
    """
    emailed = bool({e.kind for e in notice.events} & settings.kinds())
    team = Delivery(TEAM, settings.index_team_email or None,
                    emailed and bool(settings.index_team_email))
    if notice.shielded:
        return [team]
    lead_emails = sorted({e for lid in notice.local_ids for e in leads.get(lid, ())})
    out = [Delivery(f"email:{e}", e, emailed and settings.email_lead_professional)
           for e in lead_emails] or [team]
    for user in watchers:
        address = addresses.get(user)
        out.append(Delivery(f"user:{user}", address,
                            emailed and settings.email_watchers and address is not None))
    return out


def recipients_of(who: Principal, address: str | None) -> list[str]:
    """The inboxes a signed-in user reads: their own, their address's, their team's."""
    out = [f"user:{who.user}"]
    if address:
        out.append(f"email:{address}")
    if who.role == Role.INDEX_TEAM:
        out.append(TEAM)
    return out


class NoticeService:
    def __init__(self, pool: asyncpg.Pool, audit: AuditLog, settings: NoticesSection,
                 council: str, client: HubClient | None = None,
                 store: NoticeStore | None = None, mailer: Mailer | None = None,
                 shields: ShieldStore | None = None) -> None:
        self.pool = pool
        self.audit = audit
        self.settings = settings
        self.council = council
        self.client = client
        self.store = store or NoticeStore()
        self.mailer = mailer or Mailer(settings)
        self.shields = shields or ShieldStore()
        self.accounts = AccountStore()
        self.received_total = 0
        self.email_failures_total = 0
        self.emails_sent_total = 0

    async def run(self) -> None:
        """One turn of the loop: fetch what the hub has, then send the emails due."""
        await self.fetch()
        await self.send_emails()

    async def fetch(self) -> int:
        """Every page past the cursor; returns how many notices were new or newer."""
        if self.client is None:
            return 0
        fresh = 0
        while True:
            async with self.pool.acquire() as conn:
                after = await self.store.cursor(conn)
            try:
                notices, nxt, more = await self.client.get_notices(after)
            except SignpostError as exc:
                if exc.code != ErrorCode.NOT_FOUND:
                    raise
                log.warning("the hub does not send notices")
                return fresh
            async with self.pool.acquire() as conn, conn.transaction():
                for notice in notices:
                    # about a child purged here since the hub wrote it: nothing to keep
                    if not await self.store.held_among(conn, notice.local_ids):
                        continue
                    if await self.store.put(conn, notice):
                        fresh += 1
                        await self._route(conn, notice)
                if notices:
                    await self.audit.append(conn, AuditEntry(
                        "notices", "system", self.council, PURPOSE, "notice.received",
                        {"notices": [n.id for n in notices], "after": after},
                        tuple(sorted({i for n in notices for i in n.local_ids}))))
                await self.store.set_cursor(conn, nxt)
            if not more:
                break
        self.received_total += fresh
        return fresh

    async def _route(self, conn: asyncpg.Connection, notice: Notice) -> None:
        # shielded by the hub's word or by what this node knows (its flag, its marks)
        if not notice.shielded and await self.shields.shielded_among(
                conn, list(notice.local_ids)):
            notice = replace(notice, shielded=True)
        if notice.shielded:  # a notice rewritten shielded leaves every other inbox
            await self.store.withdraw(conn, notice.id, TEAM)
        leads = await self.store.leads(conn, notice.local_ids)
        watchers = await self.store.watchers(conn, notice.local_ids)
        addresses = await self.store.addresses(conn, watchers)
        for d in route(notice, leads, watchers, addresses, self.settings):
            await self.store.deliver(conn, notice.id, d.recipient, d.email, d.email_due)

    async def send_emails(self) -> int:
        """One email per address for everything due; a failure is kept and retried on
        the next turn (counted for /metrics and the alert)."""
        if not self.settings.smtp_host:
            return 0
        sent = 0
        async with self.pool.acquire() as conn, conn.transaction():
            due = await self.store.due(conn)
            by_address: dict[str, list] = {}
            for item in due:
                by_address.setdefault(item.email, []).append(item)
            for address, items in sorted(by_address.items()):
                try:
                    await self.mailer.send(address)
                except (aiosmtplib.SMTPException, OSError) as exc:  # converted here, kept
                    self.email_failures_total += 1
                    log.warning("notice email failed", extra={"error": type(exc).__name__})
                    await self.store.email_failed(conn, items, type(exc).__name__)
                    continue
                await self.store.emailed(conn, items)
                await self.audit.append(conn, AuditEntry(
                    "notices", "system", self.council, PURPOSE, "notice.emailed",
                    {"to": address, "notices": sorted({i.notice_id for i in items})}))
                sent += 1
        self.emails_sent_total += sent
        return sent

    # -- what a signed-in user does ----------------------------------------------

    async def _recipients(self, conn: asyncpg.Connection, who: Principal) -> list[str]:
        return recipients_of(who, await self.store.address_of(conn, who.user))

    async def inbox(self, who: Principal) -> list[InboxItem]:
        """The user's notices, read or not. Each says which other council or service is
        involved with which of this council's children, and whom to call: showing them
        is a view of those children, audited before it is shown (``notice.inbox``, the
        children as the entry's), as a search is. An empty inbox shows no child."""
        async with self.pool.acquire() as conn, conn.transaction():
            items = await self.store.inbox(conn, await self._recipients(conn, who),
                                           shielded=who.role == Role.INDEX_TEAM)
            if items:
                await self.audit.append(conn, AuditEntry(
                    who.user, str(who.role), who.organisation, PURPOSE, "notice.inbox",
                    {"notices": [i.id for i in items]},
                    tuple(sorted({lid for i in items for lid in i.local_ids}))))
            return items

    async def read(self, who: Principal, notice_id: int) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            local_ids = await self.store.mark_read(conn, notice_id,
                                                   await self._recipients(conn, who))
            if not local_ids:
                raise NotFoundError(f"no notice {notice_id} in your inbox")
            await self.audit.append(conn, AuditEntry(
                who.user, str(who.role), who.organisation, PURPOSE, "notice.read",
                {"notice": notice_id}, tuple(local_ids)))

    async def watch(self, who: Principal, local_id: str, on: bool) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            if not await self.store.child_exists(conn, local_id):
                raise NotFoundError(f"no child {local_id}")
            if on:
                await self.store.watch(conn, who.user, local_id)
            else:
                await self.store.unwatch(conn, who.user, local_id)
            await self.audit.append(conn, AuditEntry(
                who.user, str(who.role), who.organisation, PURPOSE,
                "notice.watch" if on else "notice.unwatch", {"local_id": local_id},
                (local_id,)))

    async def watching(self, who: Principal) -> list[str]:
        async with self.pool.acquire() as conn:
            return await self.store.watching(conn, who.user)

    async def set_address(self, user: str, email: str, actor: Actor) -> None:
        """Route to ``user``'s inbox the notices for the lead professional ``email``
        names. Only an account of this node can be given one, and an address only one
        account: a misspelt name would send a practitioner's notices to an inbox no one
        reads, and two accounts to the same address would show one person's notices
        about children to another. Audited (before the change, in its transaction): it
        decides who is told about which children."""
        async with self.pool.acquire() as conn, conn.transaction():
            if await self.accounts.user_by_name(conn, user) is None:
                raise NotFoundError(f"no user {user}", code=ErrorCode.UNKNOWN_USER)
            holder = await self.store.holder_of_address(conn, email)
            if holder is not None and holder != user:
                raise ValidationError("email", f"is already the notices address of {holder}")
            await self.audit.append(conn, AuditEntry.by(
                actor, "notice.address", "administration", {"user": user, "email": email.lower()}))
            await self.store.set_address(conn, user, email)
