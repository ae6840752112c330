"""The hub's search page as a practitioner meets it (docs/pages.md), through real HTTP
on a real federation: date of birth in three boxes (19/08/2015 typed in the first works
too), a short list of purposes plus "another reason", errors in plain English in an
error summary linked to their fields with "Error:" in the title, a search with only a
purpose told what is missing, "N children found", what match strength means, and names
in the case people write them."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp

from national_hub.handlers import appkeys as k
from server_common.search_form import WHO_MISSING
from tests.conftest import DatabaseFactory
from tests.national_hub.search_federation import TFW, search_federation
from tests.national_hub.test_search_api import get, post

IZZY = {"given_name": "Izzy", "family_name": "Okonkwo-Reily"}
S47 = {"purpose": "s47"}
S47_WORDS = "Child protection enquiry (section 47)"


def title_of(page: str) -> str:
    match = re.search(r"<title>(.*?)</title>", page, re.S)
    assert match, page
    return " ".join(match.group(1).split())


def summary_links(page: str) -> list[tuple[str, str]]:
    """(href, text) of each link in the error summary."""
    summary = page.split('class="govuk-error-summary"', 1)
    assert len(summary) == 2, "no error summary"
    body = summary[1].split("</ul>", 1)[0]
    return [(href, " ".join(text.split()))
            for href, text in re.findall(r'<a href="([^"]+)">(.*?)</a>', body, re.S)]


async def test_the_search_page_speaks_plainly(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    async with search_federation(make_database, tmp_path) as fed:
        audit = fed.hub.server.app[k.AUDIT]
        status, empty, _ = await get(fed, "/", "pat")
        assert status == 200 and title_of(empty) == "Search – Signpost national hub"
        for seen in ('name="dob-day"', 'name="dob-month"', 'name="dob-year"',
                     "For example, 19 8 2015", 'type="radio"', S47_WORDS, "Another reason",
                     'name="purpose_other"'):
            assert seen in empty, seen
        assert "error-summary" not in empty
        # no box's entries are kept by the browser, to be offered to the next person
        # at a shared machine
        boxes = [box for box in re.findall(r"<input\b[^>]*>", empty)
                 if not re.search(r'type="(hidden|radio)"', box)]
        assert len(boxes) == 9 and all('autocomplete="off"' in b for b in boxes), boxes

        async def searches() -> int:
            return sum(r.entry.action == "search" for r in await audit.entries_by_user("pat"))

        searched = await searches()
        # only a purpose: told what is missing, nothing searched
        status, page, _ = await post(fed, "/", "pat", S47)
        assert status == 400 and title_of(page).startswith("Error: Search – ")
        assert summary_links(page) == [("#given_name", WHO_MISSING)]
        # each mistake linked to its field, in words a person uses
        cases = [
            ({**IZZY, "dob-day": "31", "dob-month": "2", "dob-year": "2015", **S47},
             [("#dob-day", "Date of birth must be a real date")]),
            ({**IZZY, "dob-day": "14", "dob-year": "2015", **S47},
             [("#dob-month", "Date of birth must include a month")]),
            ({**IZZY, "dob-day": "14", "dob-month": "3", "dob-year": "15", **S47},
             [("#dob-year", "Year must include 4 numbers")]),
            ({**IZZY, "dob-day": "14/03/2015"},
             [("#purpose", "Select why you are looking")]),
            ({**IZZY, "dob-day": "14/03/2015", "purpose": "other", "purpose_other": " "},
             [("#purpose_other", "Enter why you are looking, in 3 to 200 characters")]),
            ({"given_name": "Izzy", "postcode": "not a postcode", "nhs_number": "123", **S47},
             [("#postcode", "Enter a real postcode, like BN1 1AA"),
              ("#nhs_number", "Enter a real NHS number: 10 digits, like 943 476 5919")]),
        ]
        for form, expected in cases:
            status, page, _ = await post(fed, "/", "pat", form)
            assert status == 400, form
            assert summary_links(page) == expected, form
            assert "dob:" not in page and "ISO" not in page  # no internal names
            assert 'data-code="invalid_field"' in page  # the stable code, for programs
            for href, _ in expected:  # the message by the field too
                assert f'id="{href[1:]}-error"' in page or 'id="dob-error"' in page, href
        # what was typed is kept
        assert 'value="Okonkwo-Reily"' in page or 'value="Izzy"' in page
        assert await searches() == searched  # no search ran (400s are audited as refused)

        # 19/08/2015-style dates typed in the first box; a listed purpose
        status, page, _ = await post(fed, "/", "pat", {**IZZY, "dob-day": "14/03/2015", **S47})
        assert status == 200 and title_of(page) == "Search – Signpost national hub"
        assert "1 child found" in page and "What match strength means" in page
        row = page.split("data-national-id=", 1)[1].split("</tr>", 1)[0]
        assert "Isabella" in row and "14 March 2015" in row and "Strong (" in row
        entries = [e.entry for e in await audit.entries_by_user("pat")]
        assert entries[-1].action == "search" and entries[-1].purpose == S47_WORDS
        # the same with three boxes, and another reason in the person's own words
        status, page, _ = await post(fed, "/", "pat", {
            **IZZY, "dob-day": "14", "dob-month": "03", "dob-year": "2015",
            "purpose": "other", "purpose_other": "Court report"})
        assert status == 200 and "1 child found" in page
        assert (await audit.entries_by_user("pat"))[-1].entry.purpose == "Court report"
        status, page, _ = await post(fed, "/", "pat", {"nhs_number": "943 476 5048", **S47})
        assert status == 200 and "0 children found" in page and "No child matches" in page

        # a form that is not in its stated encoding: a clear 400, for the search and the child
        national_id = re.findall(r'data-national-id="([^"]+)"', (await post(
            fed, "/", "pat", {**IZZY, "dob-day": "14/03/2015", **S47}))[1])[0]
        # the child's page: its heading names the child, its title (kept in browser
        # history, tab and window lists) does not, opened by a result or an old link
        for status, page, _ in (await post(fed, f"/children/{national_id}", "pat", S47),
                                await get(fed, f"/children/{national_id}", "pat", S47)):
            assert status == 200 and title_of(page) == "Child record – Signpost national hub"
            assert '<h1 class="govuk-heading-l"><bdi>Isabella Okonkwo-Reilly</bdi></h1>' in page
        for path in ("/", f"/children/{national_id}"):
            async with aiohttp.ClientSession() as http, http.post(
                    fed.hub.url + path, data=b"given_name=\xff\xfe&purpose=s47",
                    headers={"Authorization": f"Bearer {fed.tokens['pat']}",
                             "Content-Type": "application/x-www-form-urlencoded"}) as resp:
                assert resp.status == 400, path
                assert (await resp.json())["error"]["code"] == "malformed_request", path

        # a feed that writes names in capitals: shown as people write them
        feed = tmp_path / "capitals.csv"
        feed.write_text(
            "source_ref,nhs_number,given_name,family_name,dob,sex,address_line,postcode,"
            "gp_ods_code,gp_name,gp_phone,registered_from\n"
            "H9,,MAYA,O'NEILL-PATEL,2013-05-02,F,2 Dale Road,TF1 2AB,M82001,"
            "Wrekin Medical Practice,01952 111111,2013-06-01\n", encoding="utf-8")
        node = fed.nodes[TFW]
        assert (await node.ingest("health", feed)).errors == []
        assert (await node.publish()).records_rejected == 0
        await fed.hub.resolved()
        status, page, _ = await post(fed, "/", "pat", {
            "given_name": "Maya", "dob-day": "2", "dob-month": "5", "dob-year": "2013", **S47})
        assert status == 200 and "Maya O&#39;Neill-Patel" in page and "MAYA" not in page
        # the name is isolated: a right-to-left name cannot reorder the row around it
        assert "<bdi>Maya O&#39;Neill-Patel</bdi>" in page
