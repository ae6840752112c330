"""The auditor's page, ``/audit``, in a real browser: after a practitioner searched and
opened a child through the API, an auditor signs in (password and TOTP) and sees the
recent activity, then every access to that child, everything that practitioner did,
and a date range, each entry a short description list with a readable time (no
microseconds, no JSON), the page no wider than 320 px; the answer downloads as CSV.
The auditor's own look-ups are on record too. Other roles are refused the page."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from playwright.async_api import Browser, expect

from protocol import keys
from protocol.batch import GENESIS, UpsertOp
from server_common.accounts import Role
from server_common.audit.service import AuditLog
from tests.browser import check_page
from tests.conftest import DatabaseFactory
from tests.hub_harness import running_hub
from tests.national_hub.helpers import Client, batch_bytes, record
from tests.server_common.accounts_helpers import sign_in

ESX = "E10000011"
READABLE = re.compile(r"^\d{1,2} [A-Z][a-z]{2} \d{4}, \d{2}:\d{2}:\d{2} UTC$")


async def test_auditor_searches_the_log(make_database: DatabaseFactory, tmp_path: Path,
                                        browser: Browser) -> None:
    async with running_hub(await make_database(), tmp_path) as hub:
        key = keys.generate()
        await hub.enrol(ESX, keys.public_pem(key.public_key()))
        body, _ = batch_bytes(ESX, 1, GENESIS, [UpsertOp.of(record("A1"), 1)], key)
        assert (await Client(hub, ESX, key).send(body))[0] == 200
        await hub.resolved()  # search answers with national ids
        practitioner = await hub.as_role(Role.PRACTITIONER)
        async with aiohttp.ClientSession(hub.url, headers=practitioner) as http:
            async with http.get("/v1/search", params={
                    "given_name": "Amelia", "family_name": "Okafor", "dob": "2015-03-14",
                    "purpose": "school place enquiry"}) as resp:
                assert resp.status == 200
                child = (await resp.json())["results"][0]["national_id"]
            async with http.get(f"/v1/children/{child}",
                                params={"purpose": "school place enquiry"}) as resp:
                assert resp.status == 200
            for path in ("/audit", "/audit/export.csv"):
                async with http.get(path, allow_redirects=False) as resp:
                    assert resp.status == 403
        await AuditLog(hub.pool, keys.load_private_key(hub.config.hub.key_file)).checkpoint()

        page = await browser.new_page()
        await sign_in(page, hub.url, "/audit", "olu", Role.AUDITOR, hub.pool)
        # the search, the view, and the practitioner's two refused attempts
        await expect(page.locator("#checkpoint")).to_contain_text(
            "Latest signed checkpoint: 4 entries")
        # with nothing asked: the recent activity, newest first (this look first, then
        # the refusal that sent the browser to sign in)
        entries = page.locator("#entries > li")
        await expect(page.locator("#about")).to_contain_text("recent activity")
        await expect(entries).to_have_count(6)
        await expect(entries.nth(0)).to_contain_text("audit.recent")
        await expect(entries.nth(1)).to_contain_text("not_authenticated")
        await expect(entries.nth(5)).to_contain_text("search")
        for when in await page.locator("#entries time").all_inner_texts():
            assert READABLE.match(when), when
        assert "{" not in await page.locator("#entries").inner_text()  # no JSON
        await expect(entries.nth(5)).to_contain_text("Given name")  # parameters as a list
        await check_page(page, "hub-audit-recent")

        await page.fill("#child_id", child)
        await page.click("#search")
        await expect(entries).to_have_count(3)  # this look-up, the view, the search
        await expect(entries.nth(2)).to_contain_text("test-practitioner-all")
        await expect(entries.nth(2)).to_contain_text("school place enquiry")
        await expect(entries.nth(1)).to_contain_text("view_child")
        await expect(entries.nth(0)).to_contain_text("audit.entries")
        await expect(entries.nth(0)).to_contain_text("olu")
        await check_page(page, "hub-audit-child")

        await page.fill("#child_id", "")
        await page.fill("#user", "test-practitioner-all")
        await page.click("#search")
        await expect(entries).to_have_count(4)  # the search, the view, two refused
        await expect(page.locator("#entries")).to_contain_text("refused")
        await expect(page.locator("#entries")).not_to_contain_text("audit.entries")

        # a date range: today holds everything; tomorrow nothing
        today = datetime.now(UTC).date()
        await page.fill("#user", "")
        for box, value in (("day", today.day), ("month", today.month), ("year", today.year)):
            await page.fill(f"#from-{box}", str(value))
        await page.fill("#to-day", today.strftime("%d/%m/%Y"))  # typed whole, in one box
        await page.click("#search")
        await expect(page.locator("#about")).to_contain_text("the dates chosen")
        assert await entries.count() >= 9
        tomorrow = (today + timedelta(days=1)).isoformat()
        for name in ("from", "to"):
            await page.fill(f"#{name}-day", tomorrow)
            await page.fill(f"#{name}-month", "")
            await page.fill(f"#{name}-year", "")
        await page.click("#search")
        await expect(page.locator("#none")).to_be_visible()

        # the answer as CSV: what the page showed, the export itself on record
        for name in ("from", "to"):
            for box in ("day", "month", "year"):
                await page.fill(f"#{name}-{box}", "")
        await page.fill("#child_id", child)
        await page.click("#search")
        async with page.expect_download() as download:
            await page.click("#export")
        saved = await (await download.value).path()
        text = await asyncio.to_thread(Path(saved).read_text, encoding="utf-8")
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0][:3] == ["seq", "at", "who"]
        # newest first: the export itself, both look-ups of the child, the view, the search
        assert [r[5] for r in rows[1:]] == ["audit.export", "audit.entries", "audit.entries",
                                            "view_child", "search"]
        assert all(child in r[8] for r in rows[1:])
        assert await hub.fetchval("SELECT count(*) FROM audit_log WHERE convert_from("
                                  "entry, 'UTF8') LIKE '%\"audit.export\"%'") == 1

        # both a child and a user, or a range backwards: an error linked to its field
        await page.goto(f"{hub.url}/audit?child_id={child}&user=someone")
        await expect(page).to_have_title(re.compile("^Error: "))
        summary = page.locator(".govuk-error-summary a")
        await expect(summary).to_have_text("Give a child id or a user, not both")
        await expect(summary).to_have_attribute("href", "#child_id")
        await page.goto(f"{hub.url}/audit?from={tomorrow}&to={today.isoformat()}")
        await expect(summary).to_have_attribute("href", "#to-day")
        # the boxes show the dates the link carried
        await expect(page.locator("#from-year")).to_have_value(tomorrow[:4])
        await page.goto(f"{hub.url}/audit?from-day=31&from-month=2&from-year=2026")
        await expect(summary).to_have_text("From date must be a real date")
        await expect(summary).to_have_attribute("href", "#from-day")
        await page.goto(f"{hub.url}/audit?to-day=3&to-month=12&to-year=26")
        await expect(summary).to_have_attribute("href", "#to-year")
        await expect(page.locator("#to-year")).to_have_class(re.compile("govuk-input--error"))
        await expect(page.locator("#to-day")).not_to_have_class(re.compile("govuk-input--error"))
        await check_page(page, "hub-audit-date-error")
        await check_page(page, "hub-audit-error")
        async with aiohttp.ClientSession(headers=await hub.as_role(Role.AUDITOR)) as http:
            async with http.get(hub.url + "/audit/export.csv",
                                params={"from": "5 December"}) as resp:
                assert resp.status == 400
                assert (await resp.json())["error"]["code"] == "invalid_field"
