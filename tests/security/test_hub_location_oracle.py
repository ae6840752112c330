"""A council with its own valid key asks the resolver where a shielded child lives.

East Sussex shields a child; Telford holds an unshielded copy (Lily Oduya, 7 Dale Road,
TF1 2AB) that the hub marks shielded (the two are in review). West Sussex is hostile:
it knows who the child is and wants where it lives. It publishes one signed probe, a
record of "Lily Okoye" born the same day, at a postcode it guesses, and reads what any
of its index team may read: its own record's explanation (``status``, the partners'
relations) and what a practitioner's search by name and date of birth finds.

docs/security.md promises that no answer depends on where a shielded child lives, and
``national_hub/storage/resolution.py`` says matching never reads a shielded record's
postcode or address. The resolver's columns hide them only for a record shielded by its
*own* flag, not for one that counts as shielded through a relation (a shield mark), so
Telford's copy's postcode still scores: a right guess links the probe to the child, a
wrong one leaves it in review — an oracle for the postcode, one batch per guess.

The fix belongs in ``IDENTITY_COLUMNS`` (mask postcode and address when the record is
shielded *or marked*) and in the location term frequencies, both in
``national_hub/storage/resolution.py``; until it is made this test is expected to fail.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import aiohttp

from protocol import keys
from server_common.accounts import Role
from tests.conftest import DatabaseFactory
from tests.hub_harness import Hub, running_hub
from tests.national_hub.test_review import Council, child, open_reviews

ESX, TFW, WSX = "E10000011", "E06000020", "E10000032"
PURPOSE = "s47 enquiry"
TFW_POSTCODE, TFW_ADDRESS = "TF1 2AB", "7 Dale Road"
DOB = date(2016, 2, 9)


async def _get(hub: Hub, path: str, headers: dict[str, str],
               params: dict[str, str] | None = None) -> Any:
    async with aiohttp.ClientSession() as http, http.get(
            hub.url + path, headers=headers, params=params or {}) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def _what_west_sussex_learns(url: str, tmp_path: Path, postcode: str,
                                   address: str) -> dict[str, Any]:
    async with running_hub(url, tmp_path) as hub:
        councils = {code: Council(hub, code) for code in (ESX, TFW, WSX)}
        for council in councils.values():
            await hub.enrol(council.code, keys.public_pem(council.key.public_key()))
        await councils[ESX].send(child("A1", family="Hart", postcode="BN2 3CD",
                                       address_line="9 Quiet Road", shielded=True))
        await councils[TFW].send(child("B1", family="Oduya", postcode=TFW_POSTCODE,
                                       address_line=TFW_ADDRESS))
        assert len(await open_reviews(hub)) == 1  # Telford's copy now counts as shielded
        # the probe: the same given name and date of birth, another surname, a guess
        await councils[WSX].send(child("P1", family="Okoye", postcode=postcode,
                                       address_line=address))
        team = await hub.as_role(Role.INDEX_TEAM, WSX)
        explained = await _get(hub, f"/v1/links/{WSX}/P1/explain", team)
        practitioner = await hub.as_role(Role.PRACTITIONER)
        found = await _get(hub, "/v1/search", practitioner, {
            "given_name": "Lily", "dob": DOB.isoformat(), "purpose": PURPOSE})
        return {
            "status": explained["status"],
            # a council is None where withheld (another council's record of a shielded
            # child that does not shield it)
            "partners": sorted((str(p["partner"]["council"]), p["relation"],
                                round(p["total"], 6)) for p in explained["partners"]),
            "children found": len(found["results"]),
            "hits": sorted((h["shielded"], h["family_name"], round(h["confidence"], 6))
                           for h in found["results"]),
        }


async def test_a_guess_at_the_postcode_changes_nothing_west_sussex_can_see(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    right = await _what_west_sussex_learns(await make_database(), tmp_path / "right",
                                           TFW_POSTCODE, TFW_ADDRESS)
    wrong = await _what_west_sussex_learns(await make_database(), tmp_path / "wrong",
                                           "M1 1AA", "1 Far Street")
    assert right == wrong



async def _telfords_explanation(url: str, tmp_path: Path, shielded_at: str) -> list[float]:
    async with running_hub(url, tmp_path) as hub:
        councils = {code: Council(hub, code) for code in (ESX, TFW, WSX)}
        for council in councils.values():
            await hub.enrol(council.code, keys.public_pem(council.key.public_key()))
        await councils[ESX].send(*(child(f"S{i}", given=given, family="Zed",
                                         dob=date(2012, 5, i + 1), postcode=shielded_at,
                                         address_line=TFW_ADDRESS, shielded=True)
                                   for i, given in enumerate(("Ann", "Bea", "Cal", "Dov"))))
        await councils[TFW].send(child("B1", family="Oduya", postcode=TFW_POSTCODE,
                                       address_line=TFW_ADDRESS))
        await councils[WSX].send(child("C1", family="Oduya", postcode=TFW_POSTCODE,
                                       address_line=TFW_ADDRESS))
        team = await hub.as_role(Role.INDEX_TEAM, TFW)
        explained = await _get(hub, f"/v1/links/{TFW}/B1/explain", team)
        return [p["total"] for p in explained["partners"]]


async def test_where_shielded_children_live_moves_no_explanation(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """Telford's index team explains its own record, linked to West Sussex's, both at 7
    Dale Road, TF1 2AB. Whether four shielded children of East Sussex live there too or
    somewhere else must not move the postcode's and address's weight: term frequencies
    that count them say how many children live there that nobody may see."""
    there = await _telfords_explanation(await make_database(), tmp_path / "there",
                                        TFW_POSTCODE)
    elsewhere = await _telfords_explanation(await make_database(), tmp_path / "elsewhere",
                                            "M1 1AA")
    assert there == elsewhere
