"""A practitioner at the hub in a real browser (Chromium via Playwright): log in with
password and TOTP, find the mover by nickname and a misspelt surname, open the child
and see both councils' professionals; a shielded child's page shows no address,
school or GP and names the council whose index team to contact."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, Page, expect

from server_common.accounts import Role
from tests.conftest import DatabaseFactory
from tests.national_hub.search_federation import ESX, TFW, search_federation
from tests.server_common.accounts_helpers import sign_in


async def find(page: Page, base: str, **fields: str) -> None:
    await page.goto(f"{base}/")
    for name, value in fields.items():
        await page.fill(f"input[name={name}]", value)
    await page.click("button:has-text('Search')")


async def test_find_the_mover_and_a_shielded_child(make_database: DatabaseFactory, tmp_path: Path,
                                                   browser: Browser) -> None:
    async with search_federation(make_database, tmp_path) as fed:
        base = fed.hub.url
        page = await browser.new_page()
        await sign_in(page, base, "/", "nadia", Role.PRACTITIONER, fed.hub.pool)
        await expect(page.locator("#who")).to_contain_text("Signed in as nadia (practitioner)")

        await find(page, base, given_name="Izzy", family_name="Okonkwo-Reily",
                   dob="2015-03-14", purpose="Attendance concern")
        # a result opens the child by a posted form: no name or purpose in an address
        link = page.locator("table button", has_text="Isabella Okonkwo-Reilly")
        await expect(link).to_have_count(1)
        row = page.locator("tr", has_text="Isabella Okonkwo-Reilly")
        await expect(row).to_contain_text("East Sussex (BN1)")
        await expect(row).to_contain_text("Telford and Wrekin (TF1)")
        await link.click()

        await expect(page.locator("h1")).to_have_text("Isabella Okonkwo-Reilly")
        esx = page.locator(f"section[data-council='{ESX}']")
        await expect(esx.locator("h2")).to_have_text("East Sussex")
        for seen in ("Hove Park School", "Sea Lane Surgery", "Dana Smith", "01273 333333"):
            await expect(esx).to_contain_text(seen)
        await expect(esx.locator("tr", has_text="Dana Smith")).to_contain_text(
            "lead professional · CAF done")
        tfw = page.locator(f"section[data-council='{TFW}']")
        for seen in ("Wrekin Medical Practice", "Priya Shah", "01952 222222"):
            await expect(tfw).to_contain_text(seen)
        await expect(page.locator("body")).not_to_contain_text("CAMHS")  # sensitive

        await find(page, base, given_name="Kacper", family_name="Nowak", dob="2012-07-21",
                   purpose="Attendance concern")
        shielded = page.locator("tr", has_text="Kacper Nowak")
        await expect(shielded).to_contain_text("Shielded – contact the index team of "
                                               "East Sussex")
        await expect(shielded).not_to_contain_text("BN2")
        await shielded.locator("button").click()
        await expect(page.locator("h1")).to_have_text("Kacper Nowak")
        await expect(page.locator("#shielded")).to_contain_text(
            "contact the index team of East Sussex")
        body = page.locator("body")
        for hidden in ("Quiet Road", "BN2", "Varndean", "Ruth Adams"):
            await expect(body).not_to_contain_text(hidden)
