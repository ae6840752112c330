"""Practitioner search and the child view at the hub, through real HTTP on a real
federation (two councils' nodes ingest feeds and publish signed batches): the
mover found by nickname and a misspelt surname, both councils' professionals,
shielding, sensitive services, roles, purpose, retired ids, and the audit log
written first (a failed audit write shows nothing)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from national_hub.handlers import appkeys as k
from protocol.disclosure import Viewer
from server_common.audit.entry import Actor
from tests.conftest import DatabaseFactory
from tests.national_hub.search_federation import (
    ESX,
    MOVER_NHS,
    TFW,
    SearchFederation,
    search_federation,
)

MOVER = {"given_name": "Izzy", "family_name": "Okonkwo-Reily", "dob": "2015-03-14"}
SHIELDED = {"given_name": "Kacper", "family_name": "Nowak", "dob": "2012-07-21"}
PURPOSE = {"purpose": "s47 enquiry"}


@pytest.fixture
async def fed(make_database: DatabaseFactory, tmp_path: Path
              ) -> AsyncIterator[SearchFederation]:
    async with search_federation(make_database, tmp_path) as federation:
        yield federation


async def get(fed: SearchFederation, path: str, user: str | None,
              params: dict[str, str] | None = None) -> tuple[int, Any, aiohttp.ClientResponse]:
    headers = {"Authorization": f"Bearer {fed.tokens[user]}"} if user else {}
    async with aiohttp.ClientSession() as http, http.get(
            fed.hub.url + path, params=params or {}, headers=headers,
            allow_redirects=False) as resp:
        text = await resp.text()
        body = await resp.json() if resp.content_type == "application/json" else text
        return resp.status, body, resp


async def post(fed: SearchFederation, path: str, user: str,
               form: dict[str, str]) -> tuple[int, Any, aiohttp.ClientResponse]:
    headers = {"Authorization": f"Bearer {fed.tokens[user]}"}
    async with aiohttp.ClientSession() as http, http.post(
            fed.hub.url + path, data=form, headers=headers, allow_redirects=False) as resp:
        return resp.status, await resp.text(), resp


async def search(fed: SearchFederation, user: str, **params: str) -> list[dict[str, Any]]:
    status, body, _ = await get(fed, "/v1/search", user, {**PURPOSE, **params})
    assert status == 200, body
    return list(body["results"])


async def view(fed: SearchFederation, user: str, national_id: str) -> dict[str, Any]:
    status, body, _ = await get(fed, f"/v1/children/{national_id}", user, PURPOSE)
    assert status == 200, body
    return dict(body)


def services(council_view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["organisation_name"]: s for s in council_view["services"]}


async def test_mover_found_by_nickname_and_misspelt_surname_shows_both_councils(
        fed: SearchFederation) -> None:
    results = await search(fed, "pat", **MOVER)
    top = results[0]
    assert (top["given_name"], top["family_name"], top["dob"]) == (
        "Isabella", "Okonkwo-Reilly", "2015-03-14")
    assert [(c["code"], c["name"], c["postcode_district"]) for c in top["councils"]] == [
        (TFW, "Telford and Wrekin", "TF1"), (ESX, "East Sussex", "BN1")]
    assert top["confidence"] > 0.5 and not top["shielded"] and top["contact"] == []
    # only what tells children apart: no address, no identifiers, no services
    assert set(top) == {"national_id", "given_name", "family_name", "dob", "sex",
                        "confidence", "councils", "shielded", "contact"}
    assert [r for r in results if r["national_id"] == top["national_id"]] == [top]
    assert "Oliver" not in {r["given_name"] for r in results}

    child = await view(fed, "pat", top["national_id"])
    by_council = {c["council"]: c for c in child["councils"]}
    assert set(by_council) == {ESX, TFW}
    esx, tfw = by_council[ESX], by_council[TFW]
    assert set(services(esx)) == {"Hove Park School", "Sea Lane Surgery", "Early Help Hove"}
    assert services(esx)["Hove Park School"]["service_type"] == "school"
    assert services(esx)["Sea Lane Surgery"]["service_type"] == "gp"
    lead = services(esx)["Early Help Hove"]
    assert (lead["professional_name"], lead["professional_phone"],
            lead["professional_email"]) == ("Dana Smith", "01273 333333",
                                             "dana.smith@esx.gov.uk")
    assert lead["lead_professional"] and lead["caf_done"] and esx["caf_done"]
    assert esx["lead_professional"]["professional_name"] == "Dana Smith"
    assert esx["address_line"] == "1 Sea Lane" and esx["postcode"] == "BN1 1AA"
    assert esx["nhs_number"] == MOVER_NHS and esx["upn"] == "B801200005001"
    assert esx["services"][0]["start_date"] is not None  # dates as published
    assert set(services(tfw)) == {"Wrekin Medical Practice", "Telford Children's Services"}
    assert tfw["lead_professional"]["professional_name"] == "Priya Shah"
    assert not tfw["caf_done"]

    # the same child by NHS number alone, at full confidence
    (by_nhs,) = await search(fed, "pat", nhs_number=MOVER_NHS)
    assert by_nhs["national_id"] == top["national_id"] and by_nhs["confidence"] == 1.0
    # and by date of birth and postcode (the child is not shielded)
    by_place = await search(fed, "pat", dob="2015-03-14", postcode="TF1 2AB")
    assert top["national_id"] in [r["national_id"] for r in by_place]


async def test_sensitive_services_only_for_the_publishing_councils_index_team(
        fed: SearchFederation) -> None:
    national_id = (await search(fed, "pat", nhs_number=MOVER_NHS))[0]["national_id"]

    def sensitive(child: dict[str, Any]) -> dict[str, list[str]]:
        return {c["council"]: [s["organisation_name"] for s in c.get("services", [])
                               if s["sensitive"]] for c in child["councils"]}

    assert sensitive(await view(fed, "pat", national_id)) == {ESX: [], TFW: []}
    assert sensitive(await view(fed, "esa", national_id)) == {ESX: ["CAMHS Brighton"], TFW: []}
    assert sensitive(await view(fed, "tia", national_id)) == {ESX: [], TFW: []}
    status, body, _ = await get(fed, f"/v1/children/{national_id}", "pat", PURPOSE)
    assert status == 200 and "CAMHS" not in str(body) and "Sam Lee" not in str(body)


@pytest.mark.parametrize("params", [
    {"given_name": "Okonkwo-Reilly", "family_name": "Isabella", "dob": "2015-03-14"},
    {"given_name": "Isabella", "family_name": "Okonkwo-Reilly", "dob": "2016-03-14"},
    {"given_name": "Isabella", "family_name": "Okonkwo-Reilly", "dob": "2015-03-17"},
    {"given_name": "Isabella", "family_name": "Okonkwo-Reilly", "dob": "2015-08-14"},
    {"given_name": "Isabella", "dob": "2015-03-14", "postcode": "TF1 2AB"},
    {"family_name": "Okonkwo-Reilly", "dob": "2015-03-14"},
], ids=["names swapped", "year digit", "day digit", "month digit",
        "no family name", "no given name"])
async def test_the_mover_is_found_through_the_errors_other_systems_make(
        fed: SearchFederation, params: dict[str, str]) -> None:
    results = await search(fed, "pat", **params)
    assert results, params
    top = results[0]
    assert (top["given_name"], top["family_name"]) == ("Isabella", "Okonkwo-Reilly")
    assert {c["code"] for c in top["councils"]} == {ESX, TFW}


async def test_shielded_child_found_only_by_who_it_is_and_shows_no_location(
        fed: SearchFederation) -> None:
    # where it lives never finds it, alone or with a given name
    assert await search(fed, "pat", dob="2012-07-21", postcode="BN2 3CD") == []
    assert await search(fed, "pat", given_name="Kacper", postcode="BN2 3CD") == []
    # nor both names with it, in either order (no date of birth: only location keys
    # would meet his record, and it holds none)
    assert await search(fed, "pat", given_name="Kacper", family_name="Nowak",
                        postcode="BN2 3CD") == []
    assert await search(fed, "pat", given_name="Nowak", family_name="Kacper",
                        postcode="BN2 3CD") == []
    (hit,) = [r for r in await search(fed, "pat", **SHIELDED)]
    assert hit["shielded"] and hit["given_name"] == "Kacper"
    assert hit["councils"] == []  # which areas know a shielded child says where it went
    assert hit["contact"] == [{"council": ESX, "name": "East Sussex", "team": "index team"}]
    # a wrong postcode given with the name changes nothing: it never scores
    (with_postcode,) = await search(fed, "pat", **SHIELDED, postcode="TF2 9ZZ")
    assert with_postcode["confidence"] == hit["confidence"]

    child = await view(fed, "pat", hit["national_id"])
    assert child["shielded"] and child["contact"][0]["council"] == ESX
    # no council's record, local id or update time: only who the child is, whom to ask
    assert child["withheld"] is True and child["councils"] == []
    # the national id is random: it may hold "S3" by chance, so it is left out of the check
    text = str({key: value for key, value in child.items() if key != "national_id"})
    for location in ("Quiet Road", "BN2", "Varndean", "Quiet Road Practice", "Ruth Adams",
                     "E2", "H2", "S3", "updated_at"):
        assert location not in text
    # the other council's index team sees no more than a practitioner
    assert (await view(fed, "tia", hit["national_id"]))["councils"] == []

    # East Sussex's index team brokers contact: it sees its own child in full
    full = (await view(fed, "esa", hit["national_id"]))["councils"][0]
    assert full["withheld"] is False and full["address_line"] == "9 Quiet Road"
    assert set(services(full)) == {"Varndean School", "Quiet Road Practice",
                                   "Children's Social Care"}
    assert full["lead_professional"]["professional_name"] == "Ruth Adams"


async def test_a_record_damaged_in_storage_fails_closed_on_the_child_page(
        fed: SearchFederation) -> None:
    # bytes that no longer decode (anti-entropy repairs them) are no 500 and uncover
    # nothing: the record stands as shielded by its council
    (hit,) = await search(fed, "pat", **SHIELDED)
    async with fed.hub.pool.acquire() as conn:
        await conn.execute("UPDATE records SET record = record || '\\x00'::bytea"
                           " WHERE national_id = $1", hit["national_id"])
    child = await view(fed, "pat", hit["national_id"])
    assert child["shielded"] and child["withheld"] and child["councils"] == []
    assert child["contact"] == [{"council": ESX, "name": "East Sussex", "team": "index team"}]
    own = (await view(fed, "esa", hit["national_id"]))["councils"]
    assert [c["council"] for c in own] == [ESX] and "Quiet Road" not in str(own)


async def test_roles_purpose_and_bad_queries(fed: SearchFederation) -> None:
    national_id = (await search(fed, "pat", nhs_number=MOVER_NHS))[0]["national_id"]
    for path, params in (("/v1/search", {**PURPOSE, **MOVER}),
                         (f"/v1/children/{national_id}", PURPOSE)):
        status, body, _ = await get(fed, path, None, params)
        assert (status, body["error"]["code"]) == (401, "not_authenticated")
        for user in ("olu", "aud"):
            status, body, _ = await get(fed, path, user, params)
            assert (status, body["error"]["code"]) == (403, "forbidden"), (path, user)
        status, body, _ = await get(fed, path, "esa", params)
        assert status == 200

    for path, params in (("/v1/search", MOVER), (f"/v1/children/{national_id}", {})):
        status, body, _ = await get(fed, path, "pat", {**params, "purpose": " "})
        assert (status, body["error"]["code"]) == (400, "invalid_field")
        assert body["error"]["detail"]["field"] == "purpose"
    status, body, _ = await get(fed, "/v1/search", "pat", {**PURPOSE, "family_name": "Smith"})
    assert (status, body["error"]["detail"]["field"]) == (400, "query")
    status, body, _ = await get(fed, "/v1/search", "pat", {**PURPOSE, "dob": "14/03/2015",
                                                           "given_name": "Isabella"})
    assert (status, body["error"]["detail"]["field"]) == (400, "dob")
    status, body, _ = await get(fed, "/v1/search", "pat", {**PURPOSE, "nhs_number": "123"})
    assert (status, body["error"]["detail"]["field"]) == (400, "nhs_number")
    status, body, _ = await get(fed, "/v1/children/NC0000000000000000", "pat", PURPOSE)
    assert (status, body["error"]["code"]) == (404, "not_found")
    # an id no national id looks like (a NUL, which PostgreSQL refuses in text) is not
    # found either, rather than a database error (found by bench.chaos.fuzz_search)
    status, body, _ = await get(fed, "/v1/children/NC%00", "pat", PURPOSE)
    assert (status, body["error"]["code"]) == (404, "not_found")


async def test_every_search_and_view_is_audited_first(fed: SearchFederation) -> None:
    results = await search(fed, "pat", **MOVER)
    national_id = results[0]["national_id"]
    await view(fed, "esa", national_id)
    audit = fed.hub.server.app[k.AUDIT]
    entries = [e.entry for e in await audit.entries_for_child(national_id)]
    found = next(e for e in entries if e.action == "search")
    assert (found.who, found.role, found.organisation, found.purpose) == (
        "pat", "practitioner", "pat org", "s47 enquiry")
    assert found.parameters == MOVER
    assert list(found.child_ids) == [r["national_id"] for r in results]
    seen = next(e for e in entries if e.action == "view_child")
    assert (seen.who, seen.role, seen.parameters, seen.child_ids) == (
        "esa", "index_team", {"national_id": national_id}, (national_id,))

    # fail closed: with the audit log broken, neither answers, and nothing leaks
    before = len(await audit.entries_by_user("pat"))
    async with fed.hub.pool.acquire() as conn:
        await conn.execute("ALTER TABLE audit_log ADD CONSTRAINT broken CHECK (false) NOT VALID")
    for path, params in (("/v1/search", {**PURPOSE, **MOVER}),
                         (f"/v1/children/{national_id}", PURPOSE)):
        status, body, _ = await get(fed, path, "pat", params)
        assert (status, body["error"]["code"]) == (503, "unavailable")
        assert "results" not in body and "councils" not in body
        assert "Isabella" not in str(body) and national_id not in str(body)
    async with fed.hub.pool.acquire() as conn:
        await conn.execute("ALTER TABLE audit_log DROP CONSTRAINT broken")
    assert len(await audit.entries_by_user("pat")) == before
    assert await search(fed, "pat", **MOVER)  # repaired: answers (and is audited) again
    assert len(await audit.entries_by_user("pat")) == before + 1


async def test_a_retired_id_redirects_to_the_surviving_child(fed: SearchFederation) -> None:
    lilies = await search(fed, "pat", given_name="Lily", dob="2016-02-09",
                          postcode="TF1 2AB")
    lilies += await search(fed, "pat", given_name="Lily", family_name="Hart",
                           dob="2016-02-09")
    ids = {r["national_id"] for r in lilies}
    assert len(ids) == 2, "a new surname after a move: the hub queues the pair, never links"
    reviews = fed.hub.server.app[k.REVIEW]
    (queued,) = await reviews.list()
    decided = await reviews.link(queued.id, Actor("esa", "index_team", "esa org"),
                                 Viewer("index_team", ESX))
    survivor = decided.national_ids[0]
    (retired,) = ids - {survivor}

    status, _, resp = await get(fed, f"/v1/children/{retired}", "pat", PURPOSE)
    assert status == 308
    assert resp.headers["Location"] == f"/v1/children/{survivor}?purpose=s47+enquiry"
    async with aiohttp.ClientSession() as http, http.get(
            fed.hub.url + f"/v1/children/{retired}", params=PURPOSE,
            headers={"Authorization": f"Bearer {fed.tokens['pat']}"}) as followed:
        child = await followed.json()
    assert child["national_id"] == survivor
    assert {c["council"] for c in child["councils"]} == {ESX, TFW}
    # the purpose goes on as it was stated, its & # + % too: the redirect wrote the
    # query decoded, so "Court report #3 & s47" reached the survivor (and its audit
    # entry) as "Court report ", the rest a fragment, and "+" as a space
    stated = "Court report #3 & s47 + 100%"
    async with aiohttp.ClientSession() as http, http.get(
            fed.hub.url + f"/v1/children/{retired}", params={"purpose": stated},
            headers={"Authorization": f"Bearer {fed.tokens['pat']}"}) as followed:
        assert followed.status == 200 and len(followed.history) == 1
    audit = fed.hub.server.app[k.AUDIT]
    viewed = [e.entry for e in await audit.entries_by_user("pat")
              if e.entry.action == "view_child"]
    assert [e.purpose for e in viewed[-2:]] == [stated, stated]


async def test_pages_need_a_reader_purpose_and_an_audit(fed: SearchFederation) -> None:
    national_id = (await search(fed, "pat", nhs_number=MOVER_NHS))[0]["national_id"]
    child_page = f"/children/{national_id}"
    for path in ("/", child_page):
        status, _, resp = await get(fed, path, None, PURPOSE)
        assert status == 303 and resp.headers["Location"].startswith("/login?next=")
    status, body, _ = await get(fed, child_page, "olu", PURPOSE)
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, landing, _ = await get(fed, "/", "aud")  # the landing page, and no search
    assert status == 200 and "Signed in as <strong>aud</strong>" in landing
    assert "Find a child" not in landing and "<form method=\"get\"" not in landing
    assert 'href="/audit"' in landing  # where an auditor's work is

    # the form is posted, and a result opens the child by a posted form too: no name,
    # date of birth or purpose in any address the page builds
    status, empty, _ = await get(fed, "/", "pat")
    assert status == 200 and '<form method="post" action="/#results"' in empty
    assert 'name="csrf_token"' in empty
    status, found, _ = await post(fed, "/", "pat", {**PURPOSE, **MOVER})
    assert status == 200 and f'<form method="post" action="/children/{national_id}"' in found
    assert 'name="purpose_other" value="s47 enquiry"' in found and "?purpose=" not in found
    assert "href=\"/children/" not in found and "given_name=" not in found
    status, opened, _ = await post(fed, f"/children/{national_id}", "pat", PURPOSE)
    assert status == 200 and "Priya Shah" in opened
    # an old bookmark with the fields in its address still searches
    status, bookmarked, _ = await get(fed, "/", "pat", {**PURPOSE, **MOVER})
    assert status == 200 and f'action="/children/{national_id}"' in bookmarked
    status, form, _ = await get(fed, "/", "pat", MOVER)  # no purpose: the form says why
    assert status == 400 and "Select why you are looking" in form and national_id not in form
    status, ask, _ = await get(fed, child_page, "pat")
    assert status == 200 and 'name="purpose"' in ask and "Isabella" not in ask
    status, shown, _ = await get(fed, child_page, "pat", PURPOSE)
    assert status == 200 and "Priya Shah" in shown and "Dana Smith" in shown

    async with fed.hub.pool.acquire() as conn:
        await conn.execute("ALTER TABLE audit_log ADD CONSTRAINT broken CHECK (false) NOT VALID")
    status, failed, _ = await get(fed, "/", "pat", {**PURPOSE, **MOVER})
    assert status == 503 and failed["error"]["code"] == "unavailable"  # a bearer: JSON
    assert national_id not in str(failed) and "Isabella" not in str(failed)
    status, failed, _ = await get(fed, child_page, "pat", PURPOSE)
    assert status == 503 and "Priya Shah" not in failed and "Isabella" not in failed
