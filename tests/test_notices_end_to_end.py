"""Notices end to end (docs/notices.md): a child known to East Sussex moves to West Sussex.

A real hub and two council nodes, each running its own loops as ``serve`` does
(publisher, notice fetch), real PostgreSQL, real Ed25519, and a real SMTP server on
loopback (aiosmtpd). West Sussex publishes; East Sussex's lead professional gets an
email within seconds that says only that there is something to look at, and finds
the notice in the inbox; West Sussex's index team sees that East Sussex is involved;
a shielded child's notice reaches index teams only; the sensitive service never
appears anywhere; a watcher is told of a new involvement.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from email import message_from_bytes
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

import synthetic
from bench import notices as bench_notices
from local_node.app import create_app as create_node_app
from local_node.config import NoticesSection
from server_common.accounts import Role
from server_common.config import Duration
from tests.conftest import DatabaseFactory
from tests.federation import Node, running_hub, running_node
from tests.leaks import shows
from tests.server_common.accounts_helpers import bearer_headers
from tests.smtp import smtp_server

ESX, WSX = "E10000011", "E10000032"
SERVICES = ("source_ref,nhs_number,given_name,family_name,dob,sex,postcode,service_type,"
            "service_name,professional_name,professional_role,professional_phone,"
            "professional_email,lead_professional,sensitive,consent,shielded\n")
ESX_FEED = SERVICES + (
    # Mia: a social worker leads; CAMHS is involved too (sensitive, with consent)
    "S1,9434765919,Mia,Okafor,2014-05-02,F,BN1 1AA,social_care,Children's Social Care,"
    "Dana Smith,Social worker,01273 000001,dana.smith@esx.gov.uk,Y,N,N,N\n"
    "S2,9434765919,Mia,Okafor,2014-05-02,F,BN1 1AA,mental_health,CAMHS,"
    "Sam Lee,CAMHS nurse,01273 000002,sam.lee@camhs.nhs.uk,N,Y,Y,N\n"
    # Zara: shielded here, with the same lead professional
    "S3,9434765870,Zara,Hall,2012-11-20,F,BN2 2BB,social_care,Children's Social Care,"
    "Dana Smith,Social worker,01273 000001,dana.smith@esx.gov.uk,Y,N,N,Y\n")
WSX_FEED = SERVICES + (
    "W1,9434765919,Mia,Okafor,2014-05-02,F,RH10 1AA,school,Three Bridges Primary,"
    ",,01293 000000,,N,N,N,N\n"
    "W2,9434765870,Zara,Hall,2012-11-20,F,RH11 1BB,school,Ifield School,"
    ",,01293 000001,,N,N,N,N\n")
WSX_GP = ("source_ref,nhs_number,given_name,family_name,dob,sex,postcode,gp_ods_code,gp_name,"
          "gp_phone\nH1,9434765919,Mia,Okafor,2014-05-02,F,RH10 1AA,H81001,Crawley Surgery,"
          "01293 111111\n")
PERSONAL = ("Mia", "Okafor", "Zara", "Hall", "9434765919", "9434765870", "2014-05-02",
            "BN1", "RH10", "Dana Smith", "mental_health", "CAMHS", "Sam Lee", "camhs")


@contextlib.asynccontextmanager
async def serving(node: Node, port: int, team_email: str) -> AsyncIterator[str]:
    """The node's app with its loops (publisher, notices), as ``local-node serve``."""
    config = replace(node.config, notices=NoticesSection(
        interval=Duration(0.2), smtp_host="127.0.0.1", smtp_port=port,
        base_url="https://signpost.example", index_team_email=team_email))
    server = TestServer(create_node_app(config), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def _feed(node: Node, tmp_path: Path, feed: str, text: str) -> None:
    path = tmp_path / f"{node.code}-{feed}.csv"
    path.write_text(text, encoding="utf-8")
    report = await node.ingest(feed, path)
    assert report.errors == [], report.errors


async def _json(method: str, url: str, headers: dict[str, str]) -> Any:
    async with aiohttp.ClientSession() as http, http.request(method, url,
                                                             headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def _until(what: str, check: Any, within: float = 15.0) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {within}s: {what}")


async def test_a_mover_reaches_the_lead_professional_and_the_index_teams(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    with smtp_server() as (mail, port):
        async with running_hub(await make_database(), tmp_path,
                               notices={"interval": "0.2s"}) as hub, \
                running_node(ESX, await make_database(), tmp_path, hub) as esx, \
                running_node(WSX, await make_database(), tmp_path, hub) as wsx:
            await _feed(esx, tmp_path, "services", ESX_FEED)
            await esx.publish()
            await hub.resolved()
            dana = await bearer_headers(esx.pool, "dana", Role.PRACTITIONER)
            async with esx.pool.acquire() as conn:  # dana's work address, as the CLI sets
                await conn.execute("INSERT INTO notice_addresses VALUES ($1, $2)",
                                   "dana", "dana.smith@esx.gov.uk")
            esx_team = await bearer_headers(esx.pool, "esx-team", Role.INDEX_TEAM, ESX)
            wsx_team = await bearer_headers(wsx.pool, "wsx-team", Role.INDEX_TEAM, WSX)
            wsx_tia = await bearer_headers(wsx.pool, "tia", Role.PRACTITIONER)
            async with serving(esx, port, "team@esx.gov.uk") as esx_url, \
                    serving(wsx, port, "team@wsx.gov.uk") as wsx_url:
                # the children move: West Sussex takes them on and publishes
                published = time.monotonic()
                await _feed(wsx, tmp_path, "services", WSX_FEED)
                ((arrived, raw),) = await _until(
                    "an email to the lead professional",
                    lambda: _async(mail.to("dana.smith@esx.gov.uk")))
                assert arrived - published < 10, arrived - published
                email = message_from_bytes(raw)
                payload = email.get_payload(decode=True)
                assert isinstance(payload, bytes)
                body = payload.decode()
                assert "https://signpost.example/notices" in body
                for secret in PERSONAL:
                    assert not shows(raw.decode(), secret), secret

                # the inbox: Mia's notice, West Sussex involved, a link to her record
                mine = (await _json("GET", f"{esx_url}/v1/notices", dana))["notices"]
                assert len(mine) == 1 and not mine[0]["read"] and not mine[0]["shielded"]
                mia = await esx.fetchval(
                    "SELECT local_id FROM children WHERE given_name = 'Mia'")
                assert mine[0]["local_ids"] == [mia]
                (event,) = mine[0]["events"]
                assert (event["kind"], event["council"], event["services"]) == (
                    "linked", WSX, ["school"])
                await _json("POST", f"{esx_url}/v1/notices/{mine[0]['id']}/read", dana)
                assert (await _json("GET", f"{esx_url}/v1/notices", dana))["notices"][0][
                    "read"]

                # Zara is shielded: East Sussex's index team only, never the lead
                # professional; its team mailbox is told "something to look at"
                team_view = (await _json("GET", f"{esx_url}/v1/notices", esx_team))["notices"]
                zara = [n for n in team_view if n["shielded"]]
                assert len(zara) == 1 and zara[0]["events"][0]["council"] == WSX
                assert all(not n["shielded"] for n in mine)
                await _until("an email to East Sussex's index team",
                             lambda: _async(mail.to("team@esx.gov.uk")))

                # West Sussex has no lead professional for them: its index team sees that
                # East Sussex is involved, with Dana's role and contact (not her name)
                wsx_view = await _until(
                    "West Sussex's index team's notices",
                    lambda: _inbox(wsx_url, wsx_team, 2))
                mia_there = next(n for n in wsx_view if not n["shielded"])
                (event,) = mia_there["events"]
                assert event["council"] == ESX and event["services"] == ["social_care"]
                assert event["lead_professional"] == {
                    "role": "Social worker", "phone": "01273 000001",
                    "email": "dana.smith@esx.gov.uk"}
                zara_there = next(n for n in wsx_view if n["shielded"])
                assert "lead_professional" not in zara_there["events"][0]
                assert zara_there["events"][0]["contact"] == [
                    {"council": ESX, "team": "index team"}]
                # a West Sussex practitioner sees none of it
                assert (await _json("GET", f"{wsx_url}/v1/notices", wsx_tia))["notices"] == []

                # watching: Tia at West Sussex watches Mia; East Sussex registers Mia's GP,
                # a new kind of service there, and Tia is told
                await _json("PUT", f"{esx_url}/v1/children/{mia}/watch", dana)
                tia_mia = await wsx.fetchval(
                    "SELECT local_id FROM children WHERE given_name = 'Mia'")
                await _json("PUT", f"{wsx_url}/v1/children/{tia_mia}/watch", wsx_tia)
                await _feed(esx, tmp_path, "health", WSX_GP.replace("H81001", "G81001"))
                told = await _until("Tia, watching Mia, is told of the new GP",
                                    lambda: _inbox(wsx_url, wsx_tia, 1))
                assert any(e["kind"] == "new_involvement" and e["services"] == ["gp"]
                           for e in told[0]["events"])
                await _json("DELETE", f"{wsx_url}/v1/children/{tia_mia}/watch", wsx_tia)

                everything = repr(mail.mail) + repr(team_view) + repr(wsx_view) + repr(told)
                for secret in ("mental_health", "CAMHS", "Sam Lee", "camhs"):
                    assert secret not in everything, secret

            # audited at the node: received, read, emailed, watched
            actions = {r["action"] for r in await esx.pool.fetch(
                "SELECT convert_from(entry, 'UTF8')::jsonb->>'action' AS action FROM audit_log")}
            assert {"notice.received", "notice.read", "notice.emailed",
                    "notice.watch"} <= actions, actions


async def _async(value: Any) -> Any:
    return value


async def _inbox(base: str, headers: dict[str, str], at_least: int) -> list[Any] | None:
    notices = (await _json("GET", f"{base}/v1/notices", headers))["notices"]
    return notices if len(notices) >= at_least else None


async def test_a_bulk_load_tells_only_about_true_movers(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """Two councils' synthetic children, 5% moved between them (ground truth known):
    West Sussex's whole index arrives at once, and every notice is about a child who
    really moved — each one told to both councils."""
    population = synthetic.generate_population([ESX, WSX], 150, seed=3, movers_fraction=0.1)
    synthetic.write_feeds(population, tmp_path / "feeds")
    async with running_hub(await make_database(), tmp_path,
                           notices={"interval": "0s"}) as hub, \
            running_node(ESX, await make_database(), tmp_path, hub) as esx, \
            running_node(WSX, await make_database(), tmp_path, hub) as wsx:
        figures = await bench_notices.bulk(hub, esx, wsx, tmp_path / "feeds", population,
                                           lambda _: None)
    assert figures["movers"] > 10
    assert figures["wrong"] == 0
    assert figures["told"] >= 0.9 * figures["movers"]  # bounded by resolution's recall
    assert figures["created"] == 2 * figures["told"]
