"""Shielding at the hub (docs/security.md), as an attacker would try them at the hub.

Three councils publish signed batches to a real hub (real HTTP, PostgreSQL, Ed25519):
East Sussex holds a **shielded** record of a child, Telford an unshielded record of the
same child, West Sussex a bystander (its index team is the "third council"). The two
records of the child sit

* (a) in an open review pair, (b) separated by a person, (c) linked, where East
  Sussex's record was then archived by retention, (c') or deleted by East Sussex, or
  (d) not linked at all but sharing an NHS number.

In every case a practitioner who knows where the child might live (Telford's postcode,
with the date of birth or the given name) finds nothing; searching by who the child is
finds it shielded, with no councils or districts and East Sussex's index team to ask;
the child view lists no council, local id or update time; ``/v1/links/…/explain`` and
the ``/review`` screen show no postcode or address comparison level; a third council's
index team cannot decide the pair; the owning councils can reverse a decision, and only
the shielding council may separate.
"""

from __future__ import annotations

import doctest
import importlib
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from national_hub.handlers import appkeys as k
from protocol import keys
from protocol.batch import DeleteOp
from server_common.accounts import Role
from tests.conftest import DatabaseFactory
from tests.hub_harness import Hub, running_hub
from tests.leaks import shows
from tests.national_hub.helpers import batch_bytes
from tests.national_hub.test_review import Council, child, open_reviews, state

ESX, TFW, WSX = "E10000011", "E06000020", "E10000032"
PURPOSE = "s47 enquiry"
NHS = "9434765919"
# Where Telford's copy lives: what a practitioner must never learn for this child.
TFW_ADDRESS, TFW_POSTCODE = "7 Dale Road", "TF1 2AB"
SECRETS = (TFW_ADDRESS, TFW_POSTCODE, "TF1", "Dale", "9 Quiet Road", "BN2 3CD", "BN2")
LOCATION_LEVELS = re.compile(r"\b(SECTOR|AREA|DISTRICT)\b")

SHIELDED = child("A1", family="Hart", postcode="BN2 3CD", address_line="9 Quiet Road",
                 shielded=True)
COPY = child("B1", family="Oduya", postcode=TFW_POSTCODE, address_line=TFW_ADDRESS)
BYSTANDER = child("C1", given="Oliver", family="Smith", dob=date(2014, 2, 5),
                  postcode="RH1 1AA", nhs="9434765013")


class Attack:
    """The running hub, its three councils and HTTP calls as each role would make them."""

    def __init__(self, hub: Hub, councils: dict[str, Council]) -> None:
        self.hub, self.councils = hub, councils

    async def headers(self, role: Role, council: str | None = None) -> dict[str, str]:
        return await self.hub.as_role(role, council)

    async def call(self, method: str, path: str, headers: dict[str, str],
                   **kwargs: Any) -> tuple[int, str]:
        async with aiohttp.ClientSession() as http, http.request(
                method, self.hub.url + path, headers=headers, allow_redirects=False,
                **kwargs) as resp:
            return resp.status, await resp.text()

    async def search(self, **query: str) -> list[dict[str, Any]]:
        status, body = await self.call("GET", "/v1/search",
                                       await self.headers(Role.PRACTITIONER),
                                       params={"purpose": PURPOSE, **query})
        assert status == 200, body
        results: list[dict[str, Any]] = json.loads(body)["results"]
        return results

    async def view(self, national_id: str, role: Role = Role.PRACTITIONER,
                   council: str | None = None) -> dict[str, Any]:
        status, body = await self.call("GET", f"/v1/children/{national_id}",
                                       await self.headers(role, council),
                                       params={"purpose": PURPOSE})
        assert status == 200, body
        found: dict[str, Any] = json.loads(body)
        return found

    async def explain(self, council: str, local_id: str, role: Role,
                      team: str | None = None) -> dict[str, Any]:
        status, body = await self.call("GET", f"/v1/links/{council}/{local_id}/explain",
                                       await self.headers(role, team))
        assert status == 200, body
        found: dict[str, Any] = json.loads(body)
        return found

    async def decide(self, review_id: int, decision: str, team: str) -> tuple[int, str]:
        return await self.call("POST", f"/review/{review_id}",
                               await self.headers(Role.INDEX_TEAM, team),
                               data={"decision": decision})

    async def review_status(self, review_id: int) -> object:
        return await self.hub.fetchval("SELECT status FROM review_queue WHERE id = $1",
                                       review_id)


@pytest.fixture
async def attack(make_database: DatabaseFactory, tmp_path: Path) -> AsyncIterator[Attack]:
    async with running_hub(await make_database(), tmp_path) as hub:
        councils = {code: Council(hub, code) for code in (ESX, TFW, WSX)}
        for council in councils.values():
            await hub.enrol(council.code, keys.public_pem(council.key.public_key()))
        await councils[WSX].send(BYSTANDER)
        yield Attack(hub, councils)


async def the_pair(attack: Attack) -> int:
    """East Sussex's shielded record and Telford's copy, queued for a person."""
    await attack.councils[ESX].send(SHIELDED)
    await attack.councils[TFW].send(COPY)
    (queued,) = await open_reviews(attack.hub)
    assert {(queued["council_a"], queued["local_id_a"]),
            (queued["council_b"], queued["local_id_b"])} == {(ESX, "A1"), (TFW, "B1")}
    return int(queued["id"])


async def open_pair(attack: Attack) -> None:
    await the_pair(attack)


async def separated_pair(attack: Attack) -> None:
    review_id = await the_pair(attack)
    # neither the third council nor Telford may split a shielded child off
    for team in (WSX, TFW):
        status, body = await attack.decide(review_id, "separate", team)
        assert status == 403 and 'data-code="forbidden"' in body
        assert await attack.review_status(review_id) == "open"
    status, _ = await attack.decide(review_id, "separate", ESX)  # 303: post/redirect/get
    assert status == 303 and await attack.review_status(review_id) == "separated"


async def archived_shielded_side(attack: Attack) -> None:
    # East Sussex knows the child died two years ago; Telford has not heard: retention
    # archives East Sussex's record only (a year after death), and the link stays
    died = datetime.now(UTC).date() - timedelta(days=730)
    await attack.councils[ESX].send(child("A1", postcode="BN2 3CD",
                                          address_line="9 Quiet Road", nhs=NHS,
                                          shielded=True, date_of_death=died))
    await attack.councils[TFW].send(child("B1", postcode=TFW_POSTCODE,
                                          address_line=TFW_ADDRESS, nhs=NHS))
    linked = await state(attack.hub)
    assert linked[(ESX, "A1")][0] == linked[(TFW, "B1")][0]
    # (batch intake stores a record already past its archive date archived; the job
    # archives one that reaches it in place: either way, East Sussex's only)
    report = await attack.hub.server.app[k.SERVICES].retention.run()
    assert TFW not in report.councils
    async with attack.hub.pool.acquire() as conn:
        archived = {(r["council_code"], r["local_id"]) for r in await conn.fetch(
            "SELECT council_code, local_id FROM records WHERE archived_on IS NOT NULL")}
    assert archived == {(ESX, "A1")}


async def same_nhs_not_linked(attack: Attack) -> None:
    # the same NHS number, but names and dates that do not match: never linked
    await attack.councils[ESX].send(child("A1", given="Kacper", family="Nowak",
                                          dob=date(2012, 7, 21), postcode="BN2 3CD",
                                          address_line="9 Quiet Road", nhs=NHS,
                                          shielded=True))
    await attack.councils[TFW].send(child("B1", postcode=TFW_POSTCODE,
                                          address_line=TFW_ADDRESS, nhs=NHS))
    now = await state(attack.hub)
    assert now[(ESX, "A1")][0] != now[(TFW, "B1")][0]


async def deleted_shielded_side(attack: Attack) -> None:
    # linked by NHS number, then East Sussex deletes its shielded record (a tombstone
    # keeps nothing, not even the flag): Telford's copy stays shielded
    await attack.councils[ESX].send(child("A1", postcode="BN2 3CD", nhs=NHS,
                                          address_line="9 Quiet Road", shielded=True))
    await attack.councils[TFW].send(child("B1", postcode=TFW_POSTCODE,
                                          address_line=TFW_ADDRESS, nhs=NHS))
    esx = attack.councils[ESX]
    esx.seq += 1
    body, esx.prev = batch_bytes(ESX, esx.seq, esx.prev, [DeleteOp("A1", 2)], esx.key)
    status, data, _ = await esx.client.send(body)
    assert status == 200, data
    await attack.hub.resolved()
    assert (ESX, "A1") not in await state(attack.hub)


async def linked_then_re_resolved_in_bulk(attack: Attack) -> None:
    # linked by NHS number, then both councils re-resolved in bulk (links resolve
    # --bulk after a model change): the keys are rewritten and the chunk is one
    # council's whole load, and Telford's copy still holds no location key
    await attack.councils[ESX].send(child("A1", postcode="BN2 3CD", nhs=NHS,
                                          address_line="9 Quiet Road", shielded=True))
    await attack.councils[TFW].send(child("B1", postcode=TFW_POSTCODE,
                                          address_line=TFW_ADDRESS, nhs=NHS))
    resolver = attack.hub.server.app[k.RESOLVER]
    for council in (ESX, TFW):
        await resolver.re_resolve(council, bulk=True)
    linked = await state(attack.hub)
    assert linked[(ESX, "A1")][0] == linked[(TFW, "B1")][0]


async def last_entry(hub: Hub, action: str) -> dict[str, Any]:
    async with hub.pool.acquire() as conn:
        rows = await conn.fetch("SELECT entry FROM audit_log ORDER BY seq DESC")
    entries = [json.loads(bytes(r["entry"])) for r in rows]
    found: dict[str, Any] = next(e for e in entries if e["action"] == action)
    return found


SETUPS = {"open review": open_pair, "separated": separated_pair,
          "shielded side archived": archived_shielded_side,
          "shielded side deleted": deleted_shielded_side,
          "same NHS number, not linked": same_nhs_not_linked,
          "linked, re-resolved in bulk": linked_then_re_resolved_in_bulk}


def assert_no_location(answer: object) -> None:
    text = json.dumps(answer) if not isinstance(answer, str) else answer
    for secret in SECRETS:
        assert not shows(text, secret), secret


@pytest.mark.parametrize("setup", list(SETUPS), ids=list(SETUPS))
async def test_the_unshielded_copy_of_a_shielded_child_never_shows_where_it_lives(
        attack: Attack, setup: str) -> None:
    await SETUPS[setup](attack)
    copy_id = (await state(attack.hub))[(TFW, "B1")][0]

    # finding 3: where the child might live finds nothing, alone or with a name
    assert await attack.search(dob="2016-02-09", postcode=TFW_POSTCODE) == []
    assert await attack.search(given_name="Lily", postcode=TFW_POSTCODE) == []
    assert await attack.search(given_name="Lily", dob="2016-02-09",
                               postcode=TFW_POSTCODE) == await attack.search(
        given_name="Lily", dob="2016-02-09")
    # who the child is finds Telford's copy, shielded, and says whom to ask
    hits = [h for h in await attack.search(given_name="Lily", family_name="Oduya",
                                           dob="2016-02-09")
            if h["national_id"] == copy_id]
    assert [h["shielded"] for h in hits] == [True]
    assert hits[0]["councils"] == []
    assert hits[0]["contact"] == [{"council": ESX, "name": "East Sussex",
                                   "team": "index team"}]
    assert_no_location(hits)

    # finding 4: the child view lists no council, local id or update time
    for role, council in ((Role.PRACTITIONER, None), (Role.INDEX_TEAM, WSX)):
        seen = await attack.view(copy_id, role, council)
        assert seen["shielded"] and seen["withheld"] and seen["councils"] == []
        assert [c["council"] for c in seen["contact"]] == [ESX]
        assert_no_location(seen)
        assert '"B1"' not in json.dumps(seen) and "updated_at" not in json.dumps(seen)
    # Telford's index team sees its own record in full, and that the child is shielded
    own = await attack.view(copy_id, Role.INDEX_TEAM, TFW)
    assert own["shielded"] and [c["council"] for c in own["councils"]] == [TFW]
    assert own["councils"][0]["address_line"] == TFW_ADDRESS

    # finding 4: no location comparison level in an explanation, for any reader; the
    # explanation's audit entry names every child in it (finding 7)
    for role, team in ((Role.OPERATOR, None), (Role.INDEX_TEAM, TFW)):
        explained = await attack.explain(TFW, "B1", role, team)
        for partner in explained["partners"]:
            assert partner["location_withheld"] is True
            assert {f["field"] for f in partner["fields"]}.isdisjoint(
                {"postcode", "address_line"})
        assert not LOCATION_LEVELS.search(json.dumps(explained))
        logged = await last_entry(attack.hub, "link.explain")
        assert set(logged["child_ids"]) == {explained["national_id"], *(
            p["partner"]["national_id"] for p in explained["partners"])}


async def test_the_review_screen_and_decisions(attack: Attack) -> None:
    review_id = await the_pair(attack)
    # finding 4: Telford's screen shows nothing of where East Sussex's record lives,
    # and no postcode or address comparison of the pair
    status, page = await attack.call("GET", "/review",
                                     await attack.headers(Role.INDEX_TEAM, TFW))
    assert status == 200 and f'data-review="{review_id}"' in page
    assert "withheld (shielded)" in page
    for secret in ("9 Quiet Road", "BN2 3CD", "BN2"):
        assert not shows(page, secret), secret
    assert "<td>postcode</td>" not in page and "<td>address_line</td>" not in page
    assert not LOCATION_LEVELS.search(page)

    # East Sussex sees its own record's postcode as held, and nothing of Telford's copy
    # (it counts as shielded now: where it lives is Telford's to tell)
    status, own = await attack.call("GET", "/review",
                                    await attack.headers(Role.INDEX_TEAM, ESX))
    assert status == 200 and "BN2 3CD" in own and "withheld (shielded)" in own
    assert not shows(own, TFW_POSTCODE) and not shows(own, "TF1")
    assert not LOCATION_LEVELS.search(own) and "<td>postcode</td>" not in own

    # finding 2: a third council's index team decides nothing, either way
    for decision in ("link", "separate"):
        status, body = await attack.decide(review_id, decision, WSX)
        assert status == 403 and 'data-code="forbidden"' in body
    cli_like = attack.hub.server.app[k.REVIEW]
    assert await attack.review_status(review_id) == "open"

    # the owners decide and reverse: Telford links, East Sussex (shielding) separates
    status, _ = await attack.decide(review_id, "link", TFW)  # 303: post/redirect/get
    assert status == 303 and await attack.review_status(review_id) == "linked"
    linked = await state(attack.hub)
    assert linked[(ESX, "A1")][0] == linked[(TFW, "B1")][0]
    status, body = await attack.decide(review_id, "separate", TFW)
    assert status == 403 and 'data-code="forbidden"' in body  # only the shielding council splits it
    status, body = await attack.call("POST", f"/review/{review_id}/undo",
                                     await attack.headers(Role.INDEX_TEAM, TFW))
    assert status == 403 and 'data-code="forbidden"' in body  # undoing the link splits it too
    status, page = await attack.call("GET", "/review",
                                     await attack.headers(Role.INDEX_TEAM, ESX))
    assert f'data-review="{review_id}"' in page and "Undo" in page
    status, _ = await attack.decide(review_id, "separate", ESX)
    assert status == 303 and await attack.review_status(review_id) == "separated"
    apart = await state(attack.hub)
    assert apart[(ESX, "A1")][0] != apart[(TFW, "B1")][0]
    # the split never unshields Telford's copy: it is not found by where it lives
    assert await attack.search(dob="2016-02-09", postcode=TFW_POSTCODE) == []
    assert (await cli_like.get(review_id)).decided_by is not None

    # the audit entries carry every child id the decisions touched, before and after
    async with attack.hub.pool.acquire() as conn:
        rows = await conn.fetch("SELECT entry FROM audit_log ORDER BY seq")
    entries = [json.loads(bytes(r["entry"])) for r in rows]
    decisions = [e for e in entries if e["action"].startswith("review.")
                 and e["action"] != "review.queue"]
    assert [e["action"] for e in decisions] == ["review.link", "review.separate"]
    ids = {linked[(ESX, "A1")][0], apart[(ESX, "A1")][0], apart[(TFW, "B1")][0]}
    assert ids <= set(decisions[1]["child_ids"])
    assert {"before", "after", "for_council"} <= set(decisions[1]["parameters"])


@pytest.mark.parametrize("module", ["protocol.disclosure", "national_hub.services.review"])
def test_the_policy_examples_hold(module: str) -> None:
    """Who sees what (protocol.disclosure) and who decides a pair (review.authorise)."""
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


async def test_a_pair_names_no_other_councils_record_of_a_shielded_child(
        attack: Attack) -> None:
    """Telford's index team decides a pair with East Sussex's shielded record: it sees
    that record's name and date of birth, but not which record it is at East Sussex
    (its local id, which the child view withholds too) nor its UPN (whose first digits
    name the issuing authority). East Sussex, which shields the child, sees both ids."""
    upn = "H801200001001"
    await attack.councils[ESX].send(child("A1", family="Hart", postcode="BN2 3CD",
                                          address_line="9 Quiet Road", shielded=True,
                                          upn=upn))
    await attack.councils[TFW].send(COPY)
    (queued,) = await open_reviews(attack.hub)
    telford = await attack.headers(Role.INDEX_TEAM, TFW)
    for path in ("/review", f"/review/{queued['id']}?decision=link"):
        status, page = await attack.call("GET", path, telford)
        assert status == 200, page
        assert "record B1" in page and "record A1" not in page, path
        assert upn not in page and "record withheld (shielded)" in page, path
    explained = await attack.explain(TFW, "B1", Role.INDEX_TEAM, TFW)
    assert [p["partner"]["local_id"] for p in explained["partners"]] == [None]
    assert [p["partner"]["council"] for p in explained["partners"]] == [ESX]
    # after a decision the pair is listed as decided, still without the id
    status, _ = await attack.decide(int(queued["id"]), "link", TFW)
    assert status == 303
    status, page = await attack.call("GET", "/review", telford)
    assert "East Sussex, record withheld (shielded)" in page and not shows(page, "A1")

    # the shielding council's team brokers contact: it sees which record is which
    status, own = await attack.call("GET", "/review",
                                    await attack.headers(Role.INDEX_TEAM, ESX))
    assert status == 200 and "Telford and Wrekin, B1" in own.replace("record ", "")
    explained = await attack.explain(ESX, "A1", Role.INDEX_TEAM, ESX)
    assert [p["partner"]["local_id"] for p in explained["partners"]] == ["B1"]
