"""A practitioner at the hub in a real browser (Chromium via Playwright): sign in, find
the mover by nickname and a misspelt surname, open the child (the council where the
child is now first, services in words, the lead professional and CAF), go back to the
same results, and open a shielded child, whose page shows no address, school or GP but
its index team's phone and email. Every page visited passes axe (no serious or critical
violation) and needs no sideways scrolling at 320 px; screenshots are kept in
test-artifacts/. Then the same journey by keyboard alone."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import Browser, Page, expect

from national_hub.handlers import appkeys as k
from server_common.accounts import Role
from server_common.search_form import WHO_MISSING
from tests.browser import check_page
from tests.conftest import DatabaseFactory
from tests.national_hub.search_federation import ESX, TFW, search_federation
from tests.server_common.accounts_helpers import sign_in

ESX_TEAM = {"email": "index.team@esx.gov.uk", "phone": "01273 481000"}


async def find(page: Page, base: str, **fields: str) -> None:
    """Fill the search form as a person would: the date of birth typed as 14/03/2015 in
    its first box, the purpose in words under "Another reason"."""
    await page.goto(f"{base}/")
    for name, value in fields.items():
        if name == "dob":
            year, month, day = value.split("-")
            await page.fill("#dob-day", f"{day}/{month}/{year}")
        elif name == "purpose":
            await page.get_by_label("Another reason", exact=True).check()
            await page.fill("#purpose_other", value)
        else:
            await page.fill(f"input[name={name}]", value)
    await page.click("#search-button")


async def test_find_the_mover_and_a_shielded_child(make_database: DatabaseFactory, tmp_path: Path,
                                                   browser: Browser) -> None:
    async with search_federation(make_database, tmp_path) as fed:
        base = fed.hub.url
        await fed.hub.server.app[k.COUNCILS].set_contact(ESX, **ESX_TEAM)
        page = await browser.new_page()
        await sign_in(page, base, "/", "nadia", Role.PRACTITIONER, fed.hub.pool)
        await expect(page.locator("#who")).to_contain_text(
            "Signed in as nadia (Practitioner, Test Org)")
        await expect(page).to_have_title("Search – Signpost national hub")
        await check_page(page, "hub-search")

        # mistakes first: told at once, in plain words, each linked to its field
        await page.fill("#given_name", "Izzy")
        await page.click("#search-button")
        await expect(page).to_have_title("Error: Search – Signpost national hub")
        summary = page.locator(".govuk-error-summary")
        await expect(summary).to_be_focused()  # GOV.UK Frontend's script moved focus there
        await expect(summary.locator("a")).to_have_text([
            WHO_MISSING, "Select why you are looking"])
        await summary.locator("a", has_text="Select why").click()
        await expect(page.locator("input[name=purpose]").first).to_be_focused()
        await check_page(page, "hub-search-errors")

        await find(page, base, given_name="Izzy", family_name="Okonkwo-Reily",
                   dob="2015-03-14", purpose="Attendance concern")
        await expect(page.locator("#results")).to_have_text("1 child found")
        # a result opens the child by a posted form: no name or purpose in an address
        link = page.locator("table button", has_text="Isabella Okonkwo-Reilly")
        await expect(link).to_have_count(1)
        row = page.locator("tr", has_text="Isabella Okonkwo-Reilly")
        await expect(row).to_contain_text("East Sussex (BN1)")
        await expect(row).to_contain_text("Telford and Wrekin (TF1)")
        await expect(row).to_contain_text("Strong")
        await page.get_by_text("What match strength means").click()
        await check_page(page, "hub-results")
        await link.click()

        # the address is the child's id alone: no name, date of birth or purpose
        await expect(page).to_have_url(re.compile(re.escape(base) + r"/children/N[0-9A-Z]+$"))
        await expect(page.locator("h1")).to_have_text("Isabella Okonkwo-Reilly")
        await expect(page).to_have_title("Child record – Signpost national hub")  # no name
        # she moved to Telford in 2025: that council first
        sections = page.locator("section.app-council")
        await expect(sections.first).to_have_attribute("data-council", TFW)
        await expect(sections.first.locator("h2")).to_contain_text("Where the child is now")
        esx = page.locator(f"section[data-council='{ESX}']")
        for seen in ("Hove Park School", "Sea Lane Surgery", "Dana Smith", "01273 333333"):
            await expect(esx).to_contain_text(seen)
        lead = esx.locator("[data-lead]")
        await expect(lead).to_contain_text("Lead professional")
        await expect(lead).to_contain_text("Dana Smith")
        await expect(lead).to_contain_text("CAF in place")
        early_help = esx.locator("tr[data-service=early_help]")
        await expect(early_help).to_contain_text("Early help")
        await expect(early_help).to_contain_text("Since 10 January 2023")
        await expect(esx.locator("tr[data-service=gp]")).to_contain_text("GP (family doctor)")
        await expect(page.locator("body")).not_to_contain_text("early_help")  # no codes
        tfw = page.locator(f"section[data-council='{TFW}']")
        for seen in ("Wrekin Medical Practice", "Priya Shah", "01952 222222"):
            await expect(tfw).to_contain_text(seen)
        await expect(page.locator("body")).not_to_contain_text("CAMHS")  # sensitive
        await check_page(page, "hub-child")

        # back to the same results, the search kept (posted again, not in the address)
        await page.click("text=Back to results")
        await expect(page).to_have_url(f"{base}/#results")
        await expect(page.locator("#results")).to_have_text("1 child found")
        await expect(page.locator("#given_name")).to_have_value("Izzy")

        await find(page, base, given_name="Kacper", family_name="Nowak", dob="2012-07-21",
                   purpose="Attendance concern")
        shielded = page.locator("tr", has_text="Kacper Nowak")
        await expect(shielded).to_contain_text("Shielded Contact the index team of "
                                               "East Sussex")
        await expect(shielded).not_to_contain_text("BN2")
        await shielded.locator("button").click()
        await expect(page.locator("h1")).to_have_text("Kacper Nowak")
        notice = page.locator("#shielded")
        await expect(notice).to_contain_text("contact the index team of East Sussex")
        await expect(notice).to_contain_text("Phone: 01273 481000")
        await expect(notice).to_contain_text("Email: index.team@esx.gov.uk")
        body = page.locator("body")
        for hidden in ("Quiet Road", "BN2", "Varndean", "Ruth Adams"):
            await expect(body).not_to_contain_text(hidden)
        await check_page(page, "hub-child-shielded")


async def test_the_journey_by_keyboard_alone(make_database: DatabaseFactory, tmp_path: Path,
                                            browser: Browser) -> None:
    """Tab and Enter only (and typing): skip link, the form (the reason typed in its box,
    Enter sends the form), a result, the child, the index team's contact, and back."""
    async with search_federation(make_database, tmp_path) as fed:
        base = fed.hub.url
        await fed.hub.server.app[k.COUNCILS].set_contact(ESX, **ESX_TEAM)
        page = await browser.new_page()
        await sign_in(page, base, "/", "kim", Role.PRACTITIONER, fed.hub.pool)
        keys = page.keyboard

        async def tab_to(selector: str, limit: int = 40) -> None:
            """Press Tab until ``selector`` has the focus."""
            target = page.locator(selector).first
            for _ in range(limit):
                await keys.press("Tab")
                if await target.evaluate("e => e === document.activeElement"):
                    return
            raise AssertionError(f"Tab never reached {selector}")

        await page.goto(f"{base}/")
        await keys.press("Tab")  # the first stop is the skip link
        await expect(page.locator(".govuk-skip-link")).to_be_focused()
        await keys.press("Enter")
        await tab_to("#given_name")
        await keys.type("Kacper")
        await tab_to("#family_name")
        await keys.type("Nowak")
        await tab_to("#dob-day")
        await keys.type("21/07/2012")
        await tab_to("#purpose_other")  # past the radios (one Tab stop)
        await keys.type("Attendance concern")
        await keys.press("Enter")
        await expect(page.locator("#results")).to_have_text("1 child found")
        await tab_to("table button")
        await keys.press("Enter")
        await expect(page.locator("h1")).to_have_text("Kacper Nowak")
        await tab_to("#shielded a[href^='tel:']")
        await expect(page.locator(":focus")).to_have_text("01273 481000")
        await page.keyboard.press("Shift+Tab")
        for _ in range(30):  # back up to "Back to results"
            if await page.locator(".app-back-button").evaluate(
                    "e => e === document.activeElement"):
                break
            await keys.press("Shift+Tab")
        await keys.press("Enter")
        await expect(page.locator("#results")).to_have_text("1 child found")
