"""The auditor's page, ``/audit``, in a real browser: after a practitioner searched and
opened a child through the API, an auditor signs in (password and TOTP) and lists
every access to that child and everything that practitioner did, with purposes; the
auditor's own look-ups are on record too. Other roles are refused the page."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from playwright.async_api import Browser, expect

from protocol import keys
from protocol.batch import GENESIS, UpsertOp
from server_common.accounts import Role
from server_common.audit.service import AuditLog
from tests.conftest import DatabaseFactory
from tests.hub_harness import running_hub
from tests.national_hub.helpers import Client, batch_bytes, record
from tests.server_common.accounts_helpers import sign_in

ESX = "E10000011"


async def test_auditor_lists_accesses_to_a_child_and_by_a_user(
        make_database: DatabaseFactory, tmp_path: Path, browser: Browser) -> None:
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
            async with http.get("/audit", allow_redirects=False) as resp:
                assert resp.status == 403
        await AuditLog(hub.pool, keys.load_private_key(hub.config.hub.key_file)).checkpoint()

        page = await browser.new_page()
        await sign_in(page, hub.url, "/audit", "olu", Role.AUDITOR, hub.pool)
        # the search, the view, and the practitioner's refused attempt at /audit
        await expect(page.locator("#checkpoint")).to_contain_text("Latest signed checkpoint: 3")
        await page.fill("input[name=child_id]", child)
        await page.click("text=Show accesses")
        rows = page.locator("#entries tr[data-seq]")
        await expect(rows).to_have_count(3)  # the search, the view, this look-up
        await expect(rows.nth(0)).to_contain_text("test-practitioner-all")
        await expect(rows.nth(0)).to_contain_text("school place enquiry")
        await expect(rows.nth(1)).to_contain_text("view_child")
        await expect(rows.nth(2)).to_contain_text("audit.entries")
        await expect(rows.nth(2)).to_contain_text("olu")

        await page.fill("input[name=child_id]", "")
        await page.fill("input[name=user]", "test-practitioner-all")
        await page.click("text=Show accesses")
        await expect(rows).to_have_count(3)  # the search, the view, the refused /audit
        await expect(rows.nth(2)).to_contain_text("refused")
        await expect(page.locator("#entries")).not_to_contain_text("audit.entries")

        await page.fill("input[name=child_id]", child)  # both: which one is meant?
        await page.click("text=Show accesses")
        await expect(page.locator(".error")).to_contain_text("exactly one of")
