"""Notices at the hub (docs/notices.md): made from resolution's and review's own writes,
coalesced per child, recipient and day, fetched by a signed cursor, audited.

Real hub over HTTP, real PostgreSQL, batches signed with real Ed25519 keys.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from national_hub.app import NOTICE_JOB
from national_hub.handlers import appkeys as k
from protocol import encoding, keys
from protocol.batch import UpsertOp
from protocol.disclosure import Viewer
from protocol.notices import parse_page
from protocol.records import ChildRecord, Involvement
from server_common.audit.entry import Actor
from tests.conftest import DatabaseFactory
from tests.hub_harness import Hub, running_hub
from tests.leaks import shows
from tests.national_hub.helpers import Client, batch_bytes, error_code
from tests.national_hub.helpers import record as base_record

ESX, WSX, TFW = "E10000011", "E10000032", "E06000020"
GENESIS = "0" * 64
SCHOOL = Involvement(service_type="school", organisation_code="114580")
SOCIAL = Involvement(service_type="social_care", professional_name="Dana Smith",
                     professional_role="Social worker", professional_phone="01273 000001",
                     professional_email="dana.smith@esx.gov.uk", lead_professional=True)
CAMHS = Involvement(service_type="mental_health", sensitive=True, consent=True,
                    professional_role="CAMHS nurse", lead_professional=True)
PERSON = Actor("ann", "index_team", "East Sussex")


def record(local_id: str, nhs: str | None = "9434765919", **extra: object) -> ChildRecord:
    return replace(base_record(local_id, nhs), **extra)  # type: ignore[arg-type]


class Council:
    """One council's signed batches, sent in order."""

    def __init__(self, hub: Hub, code: str, key: Ed25519PrivateKey) -> None:
        self.client, self.key, self.code = Client(hub, code, key), key, code
        self.seq, self.prev, self.version = 0, GENESIS, 0

    async def publish(self, *records: ChildRecord) -> None:
        self.seq += 1
        self.version += 1
        ops = [UpsertOp.of(r, self.version) for r in records]
        body, self.prev = batch_bytes(self.code, self.seq, self.prev, ops, self.key)
        status, answer, _ = await self.client.send(body)
        assert status == 200, answer

    async def notices(self, after: int = 0) -> tuple[list, int, bool]:
        status, body, _ = await self.client.send(b"", method="GET",
                                                 tail=f"notices?after={after}")
        assert status == 200, body
        return parse_page(encoding.unpack(body))


async def _council(hub: Hub, code: str) -> Council:
    key = keys.generate()
    await hub.enrol(code, keys.public_pem(key.public_key()))
    return Council(hub, code, key)


async def settle(hub: Hub) -> int:
    await hub.resolved()
    return await hub.server.app[NOTICE_JOB].drain()


async def test_a_mover_tells_both_councils_and_nothing_else_does(make_database: DatabaseFactory,
                                                                 tmp_path: Path) -> None:
    async with running_hub(await make_database(), tmp_path, notices={"interval": "0s"}) as hub:
        esx, wsx = await _council(hub, ESX), await _council(hub, WSX)
        # East Sussex knows two children; a bulk load alone tells nobody anything
        await esx.publish(record("E-1", involvements=(SOCIAL, CAMHS)),
                          record("E-2", nhs="9434765870", given_name="Zed",
                                 family_name="Quill"))
        assert await settle(hub) == 0
        assert (await esx.notices())[0] == []

        # the child moves: West Sussex publishes its own record of E-1's child
        await wsx.publish(record("W-1", postcode="RH10 1AA", involvements=(SCHOOL,)))
        assert await settle(hub) == 2
        # the operator sees, for each council, the notices its node has not fetched yet
        waiting = {c.code: c.notices_undelivered
                   for c in (await hub.server.app[k.HEALTH].snapshot()).councils}
        assert waiting == {ESX: 1, WSX: 1}
        async with aiohttp.ClientSession() as http, http.get(
                f"{hub.url}/ops", headers=await hub.operator()) as resp:
            ops = await resp.text()
        assert re.search(r'data-council="E10000011".*?Notices waiting">1 \(oldest \d+ s ago\)',
                         ops, re.S)
        (to_esx,), nxt, more = await esx.notices()
        assert not more and nxt == to_esx.seq
        assert to_esx.local_ids == ("E-1",) and not to_esx.shielded
        (event,) = to_esx.events
        assert (event.kind, event.council, event.council_name, event.services) == (
            "linked", WSX, "West Sussex", ("school",))
        (to_wsx,), _, _ = await wsx.notices()
        assert to_wsx.local_ids == ("W-1",) and to_wsx.national_id == to_esx.national_id
        (event,) = to_wsx.events
        assert (event.kind, event.council, event.services) == ("linked", ESX, ("social_care",))
        # the lead professional's role and contact, never the name; never the sensitive
        # service, nor its (sensitive) lead professional
        assert event.lead is not None and event.lead.role == "Social worker"
        assert event.lead.email == "dana.smith@esx.gov.uk"
        wire = repr(to_wsx.to_wire())
        for secret in ("Dana Smith", "mental_health", "CAMHS", "BN1", "Amelia", "Okafor"):
            assert not shows(wire, secret), secret

        # idempotent cursor: asking again from 0 gives the same; from next, nothing
        assert (await esx.notices())[0] == [to_esx]
        assert (await esx.notices(nxt))[0] == []
        # asked past it: East Sussex's notice is delivered, West Sussex's still waits
        assert {c.code: c.notices_undelivered for c in
                (await hub.server.app[k.HEALTH].snapshot()).councils} == {ESX: 0, WSX: 1}

        # the same day, West Sussex adds a service: coalesced into the same notice, at a
        # new seq, so a node past the old one still gets it
        await wsx.publish(record("W-1", postcode="RH10 1AA",
                                 involvements=(SCHOOL, Involvement(service_type="gp"))))
        assert await settle(hub) == 1
        (again,), _, _ = await esx.notices(nxt)
        assert again.id == to_esx.id and again.seq > nxt
        assert sorted((e.kind, e.services) for e in again.events) == [
            ("linked", ("school",)), ("new_involvement", ("gp",))]
        # re-publishing nothing new tells nothing
        await wsx.publish(record("W-1", postcode="RH10 1AA",
                                 involvements=(Involvement(service_type="gp"), SCHOOL)))
        assert await settle(hub) == 0

        # audited: created and fetched
        actions = [r.entry.action for r in await hub.server.app[k.AUDIT].entries_for_child(
            to_esx.national_id)]
        assert "notice.created" in actions and "notice.fetched" in actions


async def test_a_record_damaged_in_storage_still_tells_its_council(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    # bytes damaged after intake (what anti-entropy repairs) must not stop the job:
    # the council holding them is still told, without the services it cannot read
    async with running_hub(await make_database(), tmp_path, notices={"interval": "0s"}) as hub:
        esx, wsx = await _council(hub, ESX), await _council(hub, WSX)
        await esx.publish(record("E-1", involvements=(SOCIAL,)))
        assert await settle(hub) == 0
        async with hub.pool.acquire() as conn:
            await conn.execute("UPDATE records SET record = record || '\\x00'::bytea"
                               " WHERE local_id = 'E-1'")
        await wsx.publish(record("W-1", postcode="RH10 1AA", involvements=(SCHOOL,)))
        assert await settle(hub) == 2
        (to_esx,), _, _ = await esx.notices()
        assert to_esx.local_ids == ("E-1",)
        assert [(e.kind, e.council, e.services) for e in to_esx.events] == [
            ("linked", WSX, ("school",))]
        (to_wsx,), _, _ = await wsx.notices()
        assert [(e.kind, e.council, e.services, e.lead) for e in to_wsx.events] == [
            ("linked", ESX, (), None)]


async def test_a_shielded_childs_notices_withhold_what_the_policy_withholds(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    async with running_hub(await make_database(), tmp_path, notices={"interval": "0s"}) as hub:
        esx, tfw = await _council(hub, ESX), await _council(hub, TFW)
        await esx.publish(record("E-1", shielded=True, involvements=(SOCIAL,)))
        await settle(hub)
        await tfw.publish(record("T-1", postcode="TF1 2AB", involvements=(SCHOOL,)))
        await settle(hub)
        (to_tfw,), _, _ = await tfw.notices()
        assert to_tfw.shielded
        (event,) = to_tfw.events
        # Telford's index team may not see where the child is: no services, no lead
        # professional, no list of councils; whom to ask instead
        assert event.services == () and event.lead is None and event.council is None
        assert event.contact == (ESX,)
        assert "01273" not in repr(to_tfw.to_wire())
        (to_esx,), _, _ = await esx.notices()
        # East Sussex shields it: its index team sees which council and that it is shielded
        assert to_esx.shielded and to_esx.events[0].council == TFW


async def test_a_child_shielded_later_that_day_withholds_the_days_earlier_events(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """A notice gathers a child's events of one day. When the child is shielded during
    that day, the events written before (which named East Sussex, its service and its
    lead professional) are told as the policy tells a shielded child's, like the new
    ones: a notice marked shielded names nothing the child view withholds."""
    async with running_hub(await make_database(), tmp_path, notices={"interval": "0s"}) as hub:
        esx, tfw = await _council(hub, ESX), await _council(hub, TFW)
        await esx.publish(record("E-1", involvements=(SOCIAL,)))
        await settle(hub)
        await tfw.publish(record("T-1", postcode="TF1 2AB", involvements=(SCHOOL,)))
        await settle(hub)
        (before,), _, _ = await tfw.notices()
        assert not before.shielded and before.events[0].council == ESX
        await esx.publish(record("E-1", shielded=True, involvements=(SOCIAL, SCHOOL)))
        await settle(hub)
        (after,), _, _ = await tfw.notices()
        assert after.id == before.id and after.shielded  # the same day's notice, rewritten
        assert [(e.council, e.council_name, e.services, e.lead, e.contact)
                for e in after.events] == [(None, None, (), None, (ESX,))] * len(after.events)
        assert "01273" not in repr(after.to_wire()) and "East Sussex" not in repr(after.to_wire())


async def test_review_link_and_separation_tell_both_councils(make_database: DatabaseFactory,
                                                             tmp_path: Path) -> None:
    async with running_hub(await make_database(), tmp_path, notices={"interval": "0s"}) as hub:
        esx, tfw = await _council(hub, ESX), await _council(hub, TFW)
        # a grey-zone pair: same given name and date of birth, another surname, a move
        await esx.publish(record("A1", nhs=None, family_name="Hart", involvements=(SOCIAL,)))
        await tfw.publish(record("B1", nhs=None, family_name="Oduya", postcode="TF1 2AB"))
        await settle(hub)
        assert (await esx.notices())[0] == []  # in review: not the same child yet
        review_id = await hub.fetchval("SELECT id FROM review_queue WHERE status = 'open'")
        assert review_id is not None
        reviews, team = hub.server.app[k.REVIEW], Viewer("index_team", ESX)
        await reviews.link(review_id, PERSON, team)
        assert await settle(hub) == 2
        (linked,), nxt, _ = await tfw.notices()
        assert [(e.kind, e.council) for e in linked.events] == [("linked", ESX)]
        await reviews.separate(review_id, PERSON, team)
        assert await settle(hub) == 2
        (separated,), _, _ = await tfw.notices(nxt)
        # the same child and day: coalesced, and now also says the link was undone
        assert separated.id == linked.id
        assert sorted(e.kind for e in separated.events) == ["linked", "separated"]
        # East Sussex's record left the merged child for a new one: told on each
        to_esx, _, _ = await esx.notices()
        assert sorted(e.kind for n in to_esx for e in n.events) == ["linked", "separated"]
        assert {e.council for n in to_esx for e in n.events} == {TFW}


async def test_forged_and_replayed_fetches_are_refused(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    async with running_hub(await make_database(), tmp_path, notices={"interval": "0s"}) as hub:
        esx, wsx = await _council(hub, ESX), await _council(hub, WSX)
        # a request signed by West Sussex's key for East Sussex's notices
        status, body, _ = await esx.client.send(b"", method="GET", tail="notices",
                                                key=wsx.key)
        assert (status, error_code(body)) == (403, "key_wrong_council")
        # a forged signature (an unenrolled key naming East Sussex's key id is refused
        # too: the key id is only a hint)
        status, body, _ = await esx.client.send(b"", method="GET", tail="notices",
                                                key=keys.generate())
        assert status in (401, 403), body
        # replayed: the same signed headers twice
        status, _, headers = await esx.client.send(b"", method="GET", tail="notices")
        assert status == 200
        status, body, _ = await esx.client.send(b"", method="GET", tail="notices",
                                                headers=headers)
        assert (status, error_code(body)) == (401, "auth_replayed_nonce")
        # a bad cursor is a clear 400 with a stable code, not a 500
        status, body, _ = await esx.client.send(b"", method="GET", tail="notices?after=-1")
        assert (status, error_code(body)) == (400, "invalid_field")
