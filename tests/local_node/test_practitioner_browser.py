"""A council practitioner in a real browser (Chromium via Playwright): log in with
password and TOTP, search with a misspelt name (the form is posted: nothing personal
in the URL), open the child, see the school, the GP, and the lead professional with
the CAF indicator, go back to the same results, and open a shielded child, whose page
names the council's index team to contact and shows nothing of where the child lives.
Every page visited passes axe (no serious or critical violation) and needs no sideways
scrolling at 320 px; screenshots are kept in test-artifacts/."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import Browser, expect

from local_node.app import PACKAGE, ingest_service
from server_common.accounts import AccountsConfig, Role
from server_common.accounts.service import AccountService
from tests.browser import check_page
from tests.conftest import DatabaseFactory
from tests.hub_harness import upgrade
from tests.local_node.test_practitioner_api import running
from tests.server_common.accounts_helpers import code_at

PASSWORD = "correct horse battery"
FEEDS = {
    "education": "source_ref,upn,given_name,family_name,dob,sex,postcode,school_urn,"
                 "school_name,school_phone\n"
                 "E1,B801200005001,Isabella,Okonkwo-Reilly,2015-03-14,F,BN1 1AA,114580,"
                 "Hove Park School,01273 111111\n",
    "health": "source_ref,nhs_number,given_name,family_name,dob,sex,postcode,gp_ods_code,"
              "gp_name,gp_phone\n"
              "H1,9434765919,Isabella,Okonkwo-Reilly,2015-03-14,F,BN1 1AA,G81001,"
              "Sea Lane Surgery,01273 222222\n",
    "services": "source_ref,nhs_number,given_name,family_name,dob,sex,postcode,service_type,"
                "service_name,professional_name,professional_role,professional_phone,"
                "lead_professional,caf_done\n"
                "S1,9434765919,Isabella,Okonkwo-Reilly,2015-03-14,F,BN1 1AA,early_help,"
                "Early Help,Dana Smith,Family Worker,01273 333333,Y,Y\n",
}
SHIELDED = ("source_ref,nhs_number,given_name,family_name,dob,sex,address_line,postcode,"
            "service_type,service_name,professional_name,professional_phone,shielded\n"
            "S9,9434765005,KACPER,NOWAK,2012-07-21,M,9 Quiet Road,BN2 3CD,social_care,"
            "Children's Social Care,Ruth Adams,01273 777777,Y\n")


async def test_search_misspelt_name_and_open_the_child(
        make_database: DatabaseFactory, tmp_path: Path, browser: Browser) -> None:
    url = await make_database()
    await upgrade(url, PACKAGE)
    async with running(url, tmp_path, index_team_phone="01632 960 123",
                       index_team_email="index.team@eastsussex.example") as (base, pool):
        for feed, text in FEEDS.items():
            path = tmp_path / f"{feed}.csv"
            path.write_text(text, encoding="utf-8")
            assert (await ingest_service(pool).ingest_file(feed, path)).errors == []
        user = await AccountService(pool, AccountsConfig()).add_user(
            "nadia", Role.PRACTITIONER, organisation="Hove Park School", password=PASSWORD)

        shielded = tmp_path / "shielded.csv"
        shielded.write_text(SHIELDED, encoding="utf-8")
        assert (await ingest_service(pool).ingest_file("services", shielded)).errors == []

        page = await browser.new_page()
        await page.goto(f"{base}/search")
        await check_page(page, "node-login")
        await page.fill("#name", "nadia")
        await page.fill("#password", PASSWORD)
        await page.fill("#totp", code_at(user.totp_secret))
        await page.click("button[type=submit]")
        await expect(page).to_have_url(f"{base}/search")

        await page.fill("input[name=given_name]", "Isabela")
        await page.fill("input[name=family_name]", "Okonkwo-Reily")
        await expect(page).to_have_title("Search – Signpost East Sussex")
        await check_page(page, "node-search")
        await page.fill("#dob-day", "14/03/2015")
        await page.get_by_label("Another reason", exact=True).check()
        await page.fill("#purpose_other", "Attendance concern")
        await page.click("#search-button")
        link = page.locator("table button", has_text="Isabella Okonkwo-Reilly")
        await expect(link).to_have_count(1)
        # the form was posted: no name or date of birth in the address bar (history,
        # proxies, logs); the child opens by a posted form too, its address the id only
        await expect(page).to_have_url(f"{base}/search#results")
        await expect(page.locator("#results")).to_have_text("1 child found")
        await check_page(page, "node-results")
        await link.click()
        await expect(page).to_have_url(re.compile(re.escape(base) + r"/children/L\d{9}$"))

        await expect(page.locator("h1")).to_have_text("Isabella Okonkwo-Reilly")
        await expect(page).to_have_title("Child record – Signpost East Sussex")  # no name
        table = page.locator("table")
        await expect(table).to_contain_text("Hove Park School")
        await expect(table).to_contain_text("Sea Lane Surgery")
        await expect(table.locator("tr[data-service=early_help]")).to_contain_text(
            "Early help")
        lead = page.locator("[data-lead]")
        await expect(lead).to_contain_text("Dana Smith")
        await expect(lead).to_contain_text("CAF in place")
        await check_page(page, "node-child")


        await page.click("text=Back to results")
        await expect(page).to_have_url(f"{base}/search#results")
        await expect(page.locator("#results")).to_have_text("1 child found")
        await expect(page.locator("#family_name")).to_have_value("Okonkwo-Reily")

        await page.fill("#given_name", "Kacper")
        await page.fill("#family_name", "Nowak")
        await page.fill("#dob-day", "21")
        await page.fill("#dob-month", "7")
        await page.fill("#dob-year", "2012")
        await page.click("#search-button")
        row = page.locator("tr", has_text="Kacper Nowak")  # a capitals feed, shown as written
        await expect(row).to_contain_text("Shielded")
        await expect(row).not_to_contain_text("BN2")
        await row.locator("button").click()
        notice = page.locator("#shielded")
        await expect(notice).to_contain_text("contact the East Sussex index team")
        # how to reach them, as the council's config gives it
        await expect(notice.locator("[data-index-team]")).to_contain_text("01632 960 123")
        await expect(notice.get_by_role("link", name="index.team@eastsussex.example")
                      ).to_have_attribute("href", "mailto:index.team@eastsussex.example")
        for hidden in ("Quiet Road", "BN2", "Ruth Adams"):
            await expect(page.locator("body")).not_to_contain_text(hidden)
        await check_page(page, "node-child-shielded")

        # watch a child: told, in the notices, of new involvements; and stop again
        await page.click("text=Back to results")
        await page.fill("#given_name", "Isabella")
        await page.fill("#family_name", "Okonkwo-Reilly")
        await page.fill("#dob-day", "14/03/2015")
        await page.fill("#dob-month", "")
        await page.fill("#dob-year", "")
        await page.click("#search-button")
        await page.locator("table button", has_text="Isabella Okonkwo-Reilly").click()
        await expect(page.locator("#watch")).to_contain_text("Watch this child")
        await page.click("#watch button")
        await expect(page).to_have_url(f"{base}/notices")
        await expect(page.locator("#notices")).to_have_text("Nothing new.")
        watched = page.locator("#watched li")
        await expect(watched).to_have_count(1)
        await check_page(page, "node-notices")
        await watched.get_by_role("link").click()
        await expect(page.locator("#watch")).to_contain_text("You are watching this child")
        await page.click("#watch button")
        await expect(page).to_have_url(f"{base}/notices")
        await expect(page.locator("#watched li")).to_have_count(0)
