"""A node's notices (docs/notices.md): fetched from a real hub, kept once, caught up after an
outage, the inbox page, bad requests as clear 4xx, emails retried until the relay
answers (and counted in /metrics), and the ``local-node notices address`` command."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from local_node.app import PACKAGE
from local_node.app import create_app as create_node_app
from local_node.config import NodeConfig, NoticesSection
from local_node.services.notices import NoticeService, route
from local_node.transport import HubClient, connect
from national_hub.app import NOTICE_JOB
from protocol import keys
from protocol.notices import Notice, NoticeEvent
from server_common import config as config_module
from server_common.accounts import Role
from server_common.audit.service import AuditLog
from server_common.cli import cli_actor
from server_common.config import ConfigError, Duration
from tests.conftest import DatabaseFactory
from tests.federation import Hub, Node, running_hub, running_node
from tests.hub_harness import upgrade
from tests.processes import free_port, script
from tests.scrape import scrape
from tests.server_common.accounts_helpers import bearer_headers
from tests.smtp import smtp_server
from tests.test_notices_end_to_end import ESX_FEED, WSX_FEED, WSX_GP

ESX, WSX = "E10000011", "E10000032"


async def _feed(node: Node, tmp_path: Path, feed: str, text: str) -> None:
    path = tmp_path / f"{node.code}-{feed}.csv"
    path.write_text(text, encoding="utf-8")
    assert (await node.ingest(feed, path)).errors == []


@contextlib.asynccontextmanager
async def movers(
        make_database: DatabaseFactory, tmp_path: Path) -> AsyncIterator[tuple[Hub, Node, Node]]:
    """East Sussex knows Mia and (shielded) Zara; both move to West Sussex."""
    async with running_hub(await make_database(), tmp_path,
                           notices={"interval": "0s"}) as hub, \
            running_node(ESX, await make_database(), tmp_path, hub) as esx, \
            running_node(WSX, await make_database(), tmp_path, hub) as wsx:
        await _feed(esx, tmp_path, "services", ESX_FEED)
        await esx.publish()
        await _feed(wsx, tmp_path, "services", WSX_FEED)
        await wsx.publish()
        await hub.resolved()
        assert await hub.server.app[NOTICE_JOB].drain() == 4
        yield hub, esx, wsx


@dataclass
class MiaWatched:
    """East Sussex's node serving its pages, once Tom (a practitioner) watches Mia and
    the node has fetched that she went to West Sussex: Dana leads her case there, and
    Ian is East Sussex's index team. ``inbox`` is who's notices about Mia."""

    hub: Hub
    esx: Node
    wsx: Node
    notices: NoticeService
    base: str
    team: dict[str, str]
    tom: dict[str, str]
    dana: dict[str, str]
    mia: str

    async def inbox(self, who: dict[str, str]) -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as http, http.get(
                f"{self.base}/v1/notices", headers=who) as resp:
            assert resp.status == 200
            return [n for n in (await resp.json())["notices"] if self.mia in n["local_ids"]]


@contextlib.asynccontextmanager
async def mia_watched(make_database: DatabaseFactory,
                      tmp_path: Path) -> AsyncIterator[MiaWatched]:
    async with movers(make_database, tmp_path) as (hub, esx, wsx), connect(
            esx.config.hub, ESX, keys.load_private_key(esx.config.key_file)) as client:
        notices = service(esx, NoticesSection(), client)
        server = TestServer(create_node_app(esx.config, publish=False), host="127.0.0.1")
        await server.start_server()
        try:
            watched = MiaWatched(
                hub, esx, wsx, notices, str(server.make_url("")).rstrip("/"),
                await bearer_headers(esx.pool, "ian", Role.INDEX_TEAM, ESX),
                await bearer_headers(esx.pool, "tom", Role.PRACTITIONER),
                await bearer_headers(esx.pool, "dana", Role.PRACTITIONER),
                await esx.fetchval("SELECT local_id FROM children WHERE given_name = 'Mia'"))
            await notices.set_address("dana", "dana.smith@esx.gov.uk", cli_actor(ESX))
            async with aiohttp.ClientSession() as http, http.put(
                    f"{watched.base}/v1/children/{watched.mia}/watch",
                    headers=watched.tom) as resp:
                assert resp.status == 200
            await notices.fetch()
            assert await watched.inbox(watched.tom) and await watched.inbox(watched.dana)
            yield watched
        finally:
            await server.close()


def service(node: Node, settings: NoticesSection,
            client: HubClient | None = None) -> NoticeService:
    return NoticeService(node.pool, AuditLog(node.pool, None, origin=node.config.audit_origin),
                         settings, node.code, client)


async def test_fetch_is_idempotent_and_catches_up(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    async with movers(make_database, tmp_path) as (hub, esx, wsx), connect(
            esx.config.hub, ESX, keys.load_private_key(esx.config.key_file)) as client:
        notices = service(esx, NoticesSection(), client)
        assert await notices.fetch() == 2
        assert await notices.fetch() == 0  # nothing new: kept once
        # the hub counted them delivered only once the node asked past them
        operator = await hub.operator()
        metrics = await scrape(hub.url, operator)
        assert metrics.series("signpost_notices", council=ESX)[0][1] == 2
        # the node is away while West Sussex registers Mia with a GP: the hub coalesces
        # that into the day's notice at a new seq, and counts it undelivered
        await _feed(wsx, tmp_path, "health", WSX_GP)
        await wsx.publish()
        await hub.resolved()
        assert await hub.server.app[NOTICE_JOB].drain() == 1  # to East Sussex only
        metrics = await scrape(hub.url, operator)
        assert metrics.series("signpost_notices_undelivered", council=ESX)[0][1] == 1
        # back: it catches up from its cursor, replacing the notice it held
        assert await notices.fetch() == 1
        assert await esx.fetchval("SELECT count(*) FROM notices") == 2
        kinds = await esx.fetchval(
            "SELECT array_agg(e->>'kind' ORDER BY e->>'kind') FROM notices,"
            " jsonb_array_elements(events) e WHERE NOT shielded")
        assert kinds == ["linked", "new_involvement"]
        assert await esx.fetchval("SELECT after_seq FROM notice_cursor") == await hub.fetchval(
            "SELECT max(seq) FROM notices WHERE council_code = $1", ESX)
        # its next ask (from the new cursor) tells the hub they arrived
        assert await notices.fetch() == 0
        metrics = await scrape(hub.url, operator)
        assert metrics.series("signpost_notices_undelivered", council=ESX)[0][1] == 0


async def test_emails_are_retried_until_the_relay_answers(make_database: DatabaseFactory,
                                                          tmp_path: Path) -> None:
    async with movers(make_database, tmp_path) as (_, esx, _), connect(
            esx.config.hub, ESX, keys.load_private_key(esx.config.key_file)) as client:
        down = NoticesSection(smtp_host="127.0.0.1", smtp_port=free_port(),
                              smtp_timeout=Duration(2),
                              index_team_email="team@esx.gov.uk")
        notices = service(esx, down, client)
        await notices.run()
        assert notices.email_failures_total >= 1
        server = TestServer(create_node_app(replace(esx.config, notices=down), publish=False),
                            host="127.0.0.1")
        await server.start_server()
        try:
            base = str(server.make_url("")).rstrip("/")
            metrics = await scrape(base, await bearer_headers(esx.pool, "prom", Role.OPERATOR))
            assert metrics.series("signpost_node_notice_emails_failing")[0][1] >= 1
            assert metrics.series("signpost_node_notice_emails_due")[0][1] >= 1
        finally:
            await server.close()
        with smtp_server() as (mail, port):
            notices.settings = notices.mailer.settings = replace(down, smtp_port=port)
            assert await notices.send_emails() >= 1
            assert {r for _, rcpt, _ in mail.mail for r in rcpt} == {
                "dana.smith@esx.gov.uk", "team@esx.gov.uk"}
        assert await esx.fetchval("SELECT count(*) FROM notice_deliveries WHERE email_due") == 0


async def test_inbox_page_and_bad_requests(make_database: DatabaseFactory, tmp_path: Path) -> None:
    async with movers(make_database, tmp_path) as (_, esx, _), connect(
            esx.config.hub, ESX, keys.load_private_key(esx.config.key_file)) as client:
        await service(esx, NoticesSection(), client).fetch()
        server = TestServer(create_node_app(esx.config, publish=False), host="127.0.0.1")
        await server.start_server()
        base = str(server.make_url("")).rstrip("/")
        team = await bearer_headers(esx.pool, "ian", Role.INDEX_TEAM, ESX)
        stranger = await bearer_headers(esx.pool, "tom", Role.PRACTITIONER)
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{base}/notices", headers=team) as resp:
                    assert resp.status == 200
                    page = await resp.text()
                # the shielded child's notice, with whom to contact, and a link to the child
                assert "West Sussex is now also involved" in page
                assert 'href="/children/L' in page and "Mark read" in page
                # which council is involved with which child was shown: audited first
                # (an empty inbox shows no child and is not)
                async with http.get(f"{base}/v1/notices", headers=stranger) as resp:
                    assert (await resp.json())["notices"] == []
                log = AuditLog(esx.pool, None, origin=esx.config.audit_origin)
                (looked,) = [r.entry for r in await log.entries_by_user("ian")]
                shown = await esx.fetchval(
                    "SELECT array_agg(DISTINCT l) FROM notices n JOIN notice_deliveries d"
                    " ON d.notice_id = n.id AND d.recipient = 'team', unnest(n.local_ids) l")
                assert looked.action == "notice.inbox" and looked.role == "index_team"
                assert set(looked.child_ids) == set(shown) != set()
                assert [r.entry.action for r in await log.entries_by_user("tom")] == []
                notice_id = await esx.fetchval("SELECT min(id) FROM notices")
                for method, path, who, status, code in (
                        ("POST", "/v1/notices/x1/read", team, 400, "invalid_field"),
                        ("POST", f"/v1/notices/{notice_id}/read", stranger, 404, "not_found"),
                        ("PUT", "/v1/children/NOPE-1/watch", stranger, 404, "not_found"),
                        ("PUT", "/v1/children/a%20b/watch", stranger, 400, "invalid_field")):
                    async with http.request(method, base + path, headers=who) as resp:
                        assert resp.status == status, (path, await resp.text())
                        assert (await resp.json())["error"]["code"] == code
        finally:
            await server.close()


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([script("local-node"), *args], env=env, text=True,
                          capture_output=True, timeout=120)


async def test_local_node_notices_address(make_database: DatabaseFactory, tmp_path: Path) -> None:
    url = await make_database()
    await upgrade(url, PACKAGE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NATIONAL_HUB",
                                                                     "LOCAL_NODE"))} | {
        "LOCAL_NODE__DATABASE__URL": url, "LOCAL_NODE__COUNCIL__CODE": ESX}
    await bearer_headers(url, "dana", Role.PRACTITIONER)
    await bearer_headers(url, "tom", Role.PRACTITIONER)
    done = _cli(["notices", "address", "dana", "Dana.Smith@esx.gov.uk"], env)
    assert done.returncode == 0, done.stderr
    bad = _cli(["notices", "address", "dana", "nope"], env)
    assert bad.returncode != 0 and "not an email address" in bad.stderr
    # a misspelt account: the lead professional's notices would reach no one's inbox
    misspelt = _cli(["notices", "address", "danna", "other@esx.gov.uk"], env)
    assert misspelt.returncode == 1 and "Traceback" not in misspelt.stderr
    assert "unknown_user: no user danna" in misspelt.stderr
    # another account's address: tom would read the notices about dana's children
    taken = _cli(["notices", "address", "tom", "DANA.smith@esx.gov.uk"], env)
    assert taken.returncode == 1 and "Traceback" not in taken.stderr
    assert "already the notices address of dana" in taken.stderr
    conn = await asyncpg.connect(url)
    try:
        assert dict(await conn.fetch("SELECT user_name, email FROM notice_addresses")) == {
            "dana": "dana.smith@esx.gov.uk"}
    finally:
        await conn.close()
    # who routed whose notices where is on the audit log
    async with asyncpg.create_pool(url, min_size=1, max_size=1) as pool:
        entries = await AuditLog(pool, None, origin=ESX).entries_between(None, None, 100)
    assert [(e.entry.action, e.entry.role) for e in entries
            if e.entry.action.startswith("notice.address")] == [("notice.address", "operator")]


def test_per_council_settings_come_from_the_environment_and_decide_what_is_sent() -> None:
    env = {"LOCAL_NODE__NOTICES__EMAIL_KINDS": "linked",
           "LOCAL_NODE__NOTICES__EMAIL_WATCHERS": "false",
           "LOCAL_NODE__NOTICES__INDEX_TEAM_EMAIL": "team@esx.gov.uk"}
    settings = config_module.load(NodeConfig, "LOCAL_NODE", None, {}, environ=env).notices
    new_service = Notice(1, 1, "N1", "2026-12-05", ("L1",), False,
                         (NoticeEvent("new_involvement", "E10000032", services=("gp",)),))
    linked = replace(new_service, events=(NoticeEvent("linked", "E10000032"),))
    leads, watchers, addresses = {"L1": ["sw@esx.gov.uk"]}, ["amy"], {"amy": "amy@esx.gov.uk"}
    # every notice reaches the inboxes; only the kinds chosen are emailed, to whom chosen
    assert [(d.recipient, d.email_due) for d in route(linked, leads, watchers, addresses,
                                                      settings)] == [
        ("email:sw@esx.gov.uk", True), ("user:amy", False)]
    assert [d.email_due for d in route(new_service, leads, watchers, addresses,
                                       settings)] == [False, False]
    with pytest.raises(ConfigError, match="email_kinds"):
        config_module.load(NodeConfig, "LOCAL_NODE", None, {},
                           environ={"LOCAL_NODE__NOTICES__EMAIL_KINDS": "gossip"})


async def test_a_child_shielded_after_its_notice_leaves_every_inbox_but_the_teams(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """A watcher read that Mia's case went to West Sussex before she was shielded. Once
    East Sussex shields her, the notice leaves the watcher's and the lead professional's
    inboxes: at once, from what the node knows itself (before the hub has heard), and
    for good when the hub rewrites the day's notice as shielded with a new event — it
    still names West Sussex, where she now is, which only this council's index team
    may read (docs/notices.md)."""
    async with mia_watched(make_database, tmp_path) as w:
        hub, esx, wsx, notices, base = w.hub, w.esx, w.wsx, w.notices, w.base
        team, tom, dana = w.team, w.tom, w.dana
        # East Sussex shields Mia; the hub has not heard yet
        await _feed(esx, tmp_path, "services", ESX_FEED.replace(
            "dana.smith@esx.gov.uk,Y,N,N,N", "dana.smith@esx.gov.uk,Y,N,N,Y"))
        assert await w.inbox(tom) == [] and await w.inbox(dana) == []
        # the hub hears, and West Sussex registers her with a GP the same day: the
        # day's notice is rewritten, shielded, and still names West Sussex
        await esx.publish()
        await _feed(wsx, tmp_path, "health", WSX_GP)
        await wsx.publish()
        await hub.resolved()
        assert await hub.server.app[NOTICE_JOB].drain() >= 1
        assert await notices.fetch() >= 1
        (told,) = await w.inbox(team)
        assert told["shielded"] and "West Sussex" in str(told["events"])
        for who in (tom, dana):
            assert await w.inbox(who) == []
            async with aiohttp.ClientSession() as http, http.get(
                    f"{base}/notices", headers=who) as resp:
                assert "West Sussex" not in await resp.text()
        assert await esx.fetchval(
            "SELECT array_agg(recipient) FROM notice_deliveries WHERE notice_id = $1",
            told["id"]) == ["team"]
