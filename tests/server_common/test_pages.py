"""The page shell both servers share (server_common.pages, templates/base.html): every
page has the skip link, the service's header with who is signed in and their role, that
role's navigation, sign out, ``<main>`` and a title that says where you are; browsers
get error pages (404, 403 for the wrong role, the sign-in page when not signed in or
the session expired) while API clients keep the JSON errors; the GOV.UK Frontend assets
are served from this site; and the pages pass axe and fit 320 px."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import Browser, expect

from local_node.app import PACKAGE as NODE_PACKAGE
from server_common.accounts import AccountsConfig, Role
from server_common.accounts.service import AccountService
from server_common.pages import ROLE_NAMES
from tests.browser import check_page
from tests.conftest import DatabaseFactory
from tests.hub_harness import running_hub, upgrade
from tests.local_node.test_practitioner_api import ESX, running
from tests.server_common.accounts_helpers import (
    PASSWORD,
    browser_session,
    code_at,
    login,
    sign_in,
)

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}  # what browsers send


def title_of(page: str) -> str:
    match = re.search(r"<title>(.*?)</title>", page, re.S)
    assert match, page
    return " ".join(match.group(1).split())


async def test_browsers_get_error_pages_and_api_clients_json(make_database: DatabaseFactory,
                                                             tmp_path: Path) -> None:
    async with running_hub(await make_database(), tmp_path) as hub:
        user = await AccountService(hub.pool, AccountsConfig()).add_user(
            "pat", Role.PRACTITIONER, organisation="Brighton GP", password=PASSWORD)
        async with browser_session() as http:
            # not signed in: a page sends the browser to sign in, GET or POST alike
            for method, path in (("GET", "/"), ("POST", "/children/N1")):
                resp = await http.request(method, f"{hub.url}{path}", headers=HTML,
                                          allow_redirects=False)
                assert resp.status == 303, (method, path)
                assert resp.headers["Location"] == f"/login?next={path}"
            # an API client is still told 401 in JSON
            resp = await http.post(f"{hub.url}/children/N1")
            assert resp.status == 401
            assert (await resp.json())["error"]["code"] == "not_authenticated"

            assert (await login(http, hub.url, "pat", PASSWORD,
                                code_at(user.totp_secret))).status == 303
            # an unknown page
            resp = await http.get(f"{hub.url}/no-such-page", headers=HTML)
            page = await resp.text()
            assert resp.status == 404 and resp.content_type == "text/html"
            assert title_of(page) == "Page not found – Signpost national hub"
            assert 'data-code="not_found"' in page and 'href="#main-content"' in page
            assert "Signed in as <strong>pat</strong>" in page  # the header, still there
            resp = await http.get(f"{hub.url}/no-such-page")
            assert (await resp.json())["error"]["code"] == "not_found"
            # the wrong role: a practitioner at the operators' page
            resp = await http.get(f"{hub.url}/ops", headers=HTML)
            page = await resp.text()
            assert resp.status == 403 and "You cannot see this page" in page
            assert "signed in as Practitioner" in page and 'data-code="forbidden"' in page
            resp = await http.get(f"{hub.url}/ops", headers=await hub.as_role(
                Role.PRACTITIONER))
            assert (await resp.json())["error"]["code"] == "forbidden"
            # the session expires (ended on the server): a page asks to sign in again
            await hub.fetchval("DELETE FROM sessions")
            resp = await http.post(f"{hub.url}/", headers=HTML, allow_redirects=False,
                                   data={"given_name": "Amelia", "purpose": "s47"})
            assert resp.status == 303 and resp.headers["Location"] == "/login?next=/"

        # the design system's assets come from this site, with the right types
        async with browser_session() as http:
            for name, kind in (("govuk-frontend.min.css", "text/css"),
                               ("govuk-frontend.min.js", "text/javascript"),
                               ("app.css", "text/css"), ("app.js", "text/javascript")):
                resp = await http.get(f"{hub.url}/static/{name}")
                assert resp.status == 200 and resp.content_type == kind, name


async def test_shell_navigation_and_sign_out_in_a_browser(
        make_database: DatabaseFactory, tmp_path: Path,
                                                          browser: Browser) -> None:
    async with running_hub(await make_database(), tmp_path) as hub:
        page = await browser.new_page()
        await page.goto(f"{hub.url}/login")
        await expect(page).to_have_title("Sign in – Signpost national hub")
        await check_page(page, "pages-login")
        await sign_in(page, hub.url, "/", "olu", Role.OPERATOR, hub.pool)
        await expect(page.locator("#who")).to_contain_text(
            "Signed in as olu (Operator, Test Org)")
        nav = page.locator("nav[aria-label=Menu]")
        await expect(nav.locator("a")).to_have_text(["Home", "Federation health"])
        await expect(nav.locator("a[aria-current=page]")).to_have_text("Home")
        await expect(page.locator("main#main-content h1")).to_have_text(
            "Signpost national hub")
        await check_page(page, "pages-landing-operator")
        # the service's own type, not GOV.UK's (GDS Transport is for GOV.UK only)
        for selector in ("h1", ".govuk-service-navigation__link", "#who"):
            font = await page.locator(selector).first.evaluate(
                "e => getComputedStyle(e).fontFamily")
            assert font.startswith("system-ui") and "GDS Transport" not in font, selector

        await page.goto(f"{hub.url}/no-such-page")
        await expect(page).to_have_title("Page not found – Signpost national hub")
        await check_page(page, "pages-404")
        await page.goto(f"{hub.url}/review")
        await expect(page.locator("h1")).to_have_text("You cannot see this page")
        await check_page(page, "pages-403")

        await page.click("text=Sign out")
        await expect(page).to_have_url(f"{hub.url}/login")
        await page.goto(f"{hub.url}/")
        await expect(page).to_have_url(f"{hub.url}/login?next=/")


async def test_every_role_lands_on_an_accessible_page_at_a_node(
        make_database: DatabaseFactory, tmp_path: Path,
                                                               browser: Browser) -> None:
    """Each role's first page at a node, and the question a child's page asks when it is
    opened without a purpose, pass axe and fit 320 px."""
    url = await make_database()
    await upgrade(url, NODE_PACKAGE)
    async with running(url, tmp_path) as (base, pool):
        for role, council in ((Role.PRACTITIONER, None), (Role.INDEX_TEAM, ESX),
                              (Role.OPERATOR, None), (Role.AUDITOR, None)):
            context = await browser.new_context()
            page = await context.new_page()
            await sign_in(page, base, "/", f"user-{role}".replace("_", "-"), role, pool,
                          council=council)
            await expect(page.locator("#who")).to_contain_text(ROLE_NAMES[role])
            await expect(page.locator("main h1")).to_have_text("Signpost East Sussex")
            await check_page(page, f"node-landing-{role}")
            if role is Role.PRACTITIONER:
                await page.goto(f"{base}/children/L000000001")  # no purpose: asked first
                await expect(page.locator("h1")).to_have_text(
                    "Why are you looking at this child's record?")
                await check_page(page, "node-purpose-question")
                await page.click("text=Open the record")  # nothing chosen: told so
                await expect(page.locator(".govuk-error-summary a")).to_have_text(
                    "Select why you are looking")
                await check_page(page, "node-purpose-question-error")
            await context.close()
