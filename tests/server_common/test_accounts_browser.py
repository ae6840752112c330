"""Logging in to the hub in a real browser (Debian's Chromium driven by Playwright):
password and TOTP, the landing page names the user, signing out returns to the form.

The Chromium fixtures are the /ops test's (CI=true fails when Chromium is missing,
elsewhere the test is skipped; Playwright never downloads a browser).
"""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, expect

from server_common.accounts import AccountsConfig, Role
from server_common.accounts.service import AccountService
from tests.conftest import DatabaseFactory
from tests.hub_harness import running_hub
from tests.server_common.accounts_helpers import code_at

PASSWORD = "correct horse battery"


async def test_log_in_with_password_and_totp_then_sign_out(
        make_database: DatabaseFactory, tmp_path: Path, browser: Browser) -> None:
    async with running_hub(await make_database(), tmp_path) as hub:
        user = await AccountService(hub.pool, AccountsConfig()).add_user(
            "nadia", Role.PRACTITIONER, organisation="Brighton GP", password=PASSWORD)
        page = await browser.new_page()
        await page.goto(f"{hub.url}/")
        await expect(page).to_have_url(f"{hub.url}/login?next=/")
        await page.fill("#name", "nadia")
        await page.fill("#password", "not the password")
        await page.fill("#totp", code_at(user.totp_secret))
        await page.click("button[type=submit]")
        await expect(page.locator(".error")).to_have_attribute("data-code", "login_failed")

        await page.fill("#password", PASSWORD)
        await page.fill("#totp", code_at(user.totp_secret))
        await page.click("button[type=submit]")
        await expect(page.locator("#who")).to_contain_text(
            "Signed in as nadia (Practitioner, Brighton GP)")
        cookies = {c["name"]: c for c in await page.context.cookies()}
        session = cookies["signpost_session"]
        assert session["httpOnly"] and session["sameSite"] == "Strict"
        # JavaScript cannot read the session cookie
        assert "signpost_session" not in await page.evaluate("document.cookie")

        await page.click("text=Sign out")
        await expect(page).to_have_url(f"{hub.url}/login")
        await page.goto(f"{hub.url}/")
        await expect(page).to_have_url(f"{hub.url}/login?next=/")
