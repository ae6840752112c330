"""The node's search page as a council practitioner meets it (docs/pages.md): the same
form as the hub's (date of birth in three boxes, or 14/03/2015 in the first; a listed
purpose or another reason), mistakes in plain English linked to their fields, a search
with only a purpose told what is missing, "N children found", what match strength
means, names from a capitals feed as people write them; through real HTTP."""

from __future__ import annotations

import re
from pathlib import Path

from local_node.app import PACKAGE, ingest_service
from server_common.accounts.config import AccountsConfig
from server_common.accounts.principal import Role
from server_common.accounts.service import AccountService
from server_common.audit.service import AuditLog
from server_common.search_form import WHO_MISSING
from tests.conftest import DatabaseFactory
from tests.hub_harness import upgrade
from tests.local_node.test_practitioner_api import running
from tests.national_hub.test_search_pages import summary_links, title_of
from tests.server_common.accounts_helpers import (
    PASSWORD,
    browser_session,
    code_at,
    csrf_in,
    login,
)

FEED = (
    "source_ref,nhs_number,given_name,family_name,dob,sex,address_line,postcode,"
    "gp_ods_code,gp_name,gp_phone,registered_from\n"
    "H1,9434765919,ISABELLA,OKONKWO-REILLY,2015-03-14,F,1 Sea Lane,BN1 1AA,G81001,"
    "Sea Lane Surgery,01273 222222,2015-04-01\n"
)


async def test_the_node_search_page_speaks_plainly(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    url = await make_database()
    await upgrade(url, PACKAGE)
    feed = tmp_path / "health.csv"
    feed.write_text(FEED, encoding="utf-8")
    async with running(url, tmp_path) as (base, pool):
        assert (await ingest_service(pool).ingest_file("health", feed)).errors == []
        user = await AccountService(pool, AccountsConfig()).add_user(
            "nadia", Role.PRACTITIONER, organisation="Hove Park School", password=PASSWORD)
        async with browser_session() as http:
            await login(http, base, "nadia", PASSWORD, code_at(user.totp_secret))
            page = await (await http.get(f"{base}/search")).text()
            assert title_of(page) == "Search – Signpost East Sussex"
            assert 'name="dob-day"' in page and "Another reason" in page
            token = csrf_in(page)

            async def search(**form: str) -> tuple[int, str]:
                async with http.post(f"{base}/search",
                                     data={**form, "csrf_token": token}) as resp:
                    return resp.status, await resp.text()

            status, page = await search(purpose="s17")
            assert status == 400 and title_of(page).startswith("Error: Search")
            assert summary_links(page) == [("#given_name", WHO_MISSING)]
            status, page = await search(given_name="Izzy", **{"dob-day": "14", "dob-month": "13",
                                                              "dob-year": "2015"}, purpose="s17")
            assert summary_links(page) == [("#dob-day", "Date of birth must be a real date")]
            assert 'value="13"' in page  # what was typed is kept

            status, page = await search(given_name="Izzy", family_name="Okonkwo-Reily",
                                        **{"dob-day": "14/03/2015"}, purpose="s17")
            assert status == 200 and "1 child found" in page
            assert "What match strength means" in page and "Strong (" in page
            assert "<bdi>Isabella Okonkwo-Reilly</bdi>" in page and "ISABELLA" not in page
            local_id = re.search(r'data-local-id="(L\d+)"', page)
            assert local_id is not None
            # the child's page: its heading names the child, its title (kept in browser
            # history, tab and window lists) does not, opened by a result or an old link
            for resp in (await http.post(f"{base}/children/{local_id.group(1)}",
                                         data={"purpose": "s17", "csrf_token": token}),
                         await http.get(f"{base}/children/{local_id.group(1)}",
                                        params={"purpose": "s17"})):
                async with resp:
                    page = await resp.text()
                assert resp.status == 200
                assert title_of(page) == "Child record – Signpost East Sussex"
                assert '<h1 class="govuk-heading-l"><bdi>Isabella Okonkwo-Reilly</bdi>' in page
        seen = [(e.to_dict()["action"], e.to_dict()["purpose"])
                for e in await AuditLog(pool, None).entries_for_child(local_id.group(1))]
        assert ("search", "Child in need assessment (section 17)") in seen
