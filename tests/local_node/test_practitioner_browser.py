"""A council practitioner in a real browser (Chromium via Playwright): log in with
password and TOTP, search with a misspelt name (the form is posted: nothing personal
in the URL), open the child, and see the school, the GP, and the lead professional
with the CAF indicator."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import Browser, expect

from local_node.app import PACKAGE, ingest_service
from server_common.accounts import AccountsConfig, Role
from server_common.accounts.service import AccountService
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


async def test_search_misspelt_name_and_open_the_child(
        make_database: DatabaseFactory, tmp_path: Path, browser: Browser) -> None:
    url = await make_database()
    await upgrade(url, PACKAGE)
    async with running(url, tmp_path) as (base, pool):
        for feed, text in FEEDS.items():
            path = tmp_path / f"{feed}.csv"
            path.write_text(text, encoding="utf-8")
            assert (await ingest_service(pool).ingest_file(feed, path)).errors == []
        user = await AccountService(pool, AccountsConfig()).add_user(
            "nadia", Role.PRACTITIONER, organisation="Hove Park School", password=PASSWORD)

        page = await browser.new_page()
        await page.goto(f"{base}/search")
        await page.fill("#name", "nadia")
        await page.fill("#password", PASSWORD)
        await page.fill("#totp", code_at(user.totp_secret))
        await page.click("button[type=submit]")
        await expect(page).to_have_url(f"{base}/search")

        await page.fill("input[name=given_name]", "Isabela")
        await page.fill("input[name=family_name]", "Okonkwo-Reily")
        await page.fill("input[name=dob]", "2015-03-14")
        await page.fill("input[name=purpose]", "Attendance concern")
        await page.click("text=Search")
        link = page.locator("table a", has_text="Isabella Okonkwo-Reilly")
        await expect(link).to_have_count(1)
        # the form was posted: no name or date of birth in the address bar (history,
        # proxies, logs), and the link to the child carries only the purpose
        await expect(page).to_have_url(f"{base}/search")
        href = await link.get_attribute("href")
        assert href is not None and re.fullmatch(
            r"/children/L\d{9}\?purpose=Attendance\+concern", href), href
        await link.click()

        await expect(page.locator("h1")).to_have_text("Isabella Okonkwo-Reilly")
        table = page.locator("table")
        await expect(table).to_contain_text("Hove Park School")
        await expect(table).to_contain_text("Sea Lane Surgery")
        row = table.locator("tr", has_text="Dana Smith")
        await expect(row).to_contain_text("lead professional")
        await expect(row).to_contain_text("CAF done")
