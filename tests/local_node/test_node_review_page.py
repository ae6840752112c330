"""The node's own pages in a real browser: the index team signs in and lands on a page
that leads to its review list; decides a pair of the council's own children in plain
words, through a confirmation page, audited exactly as ``local-node review reject`` is
(the same action and parameters, the person as the actor); a reload decides nothing.
The council's auditor lands on a page that leads to the audit log and finds the
decision there. Every page visited passes axe and fits 320 px; screenshots are kept."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import asyncpg
from playwright.async_api import Browser, expect

from local_node.app import PACKAGE, ingest_service, review_service
from server_common.accounts import Role
from tests.browser import check_page
from tests.conftest import DatabaseFactory
from tests.hub_harness import upgrade
from tests.local_node.test_practitioner_api import running
from tests.server_common.accounts_helpers import bearer_headers, sign_in

ESX = "E10000011"
# The same child from two sources, too unlike to join without a person: one pair.
FEEDS = {
    "education": "source_ref,upn,given_name,family_name,dob,sex,postcode,address_line\n"
                 "E1,,Izzy,Okafor,2015-03-14,F,BN1 1AA,1 Sea Road\n",
    "health": "source_ref,nhs_number,given_name,family_name,dob,sex,postcode,address_line\n"
              "H1,9434765919,Isabella,Okafor,2015-03-14,F,TN2 2BB,9 Hill Street\n",
}


async def load(pool: asyncpg.Pool, tmp_path: Path) -> int:
    for feed, text in FEEDS.items():
        path = tmp_path / f"{feed}.csv"
        path.write_text(text, encoding="utf-8")
        assert (await ingest_service(pool).ingest_file(feed, path)).errors == []
    (item,) = await review_service(pool).open_items()
    return int(item["id"])


async def entries(pool: asyncpg.Pool, action: str) -> list[dict]:
    rows = await pool.fetch("SELECT convert_from(entry, 'UTF8') AS e FROM audit_log"
                            " ORDER BY seq")
    return [e for e in (json.loads(r["e"]) for r in rows) if e["action"] == action]


async def test_index_team_decides_and_auditor_finds_it(
        make_database: DatabaseFactory, tmp_path: Path,
                                                       browser: Browser) -> None:
    url = await make_database()
    await upgrade(url, PACKAGE)
    async with running(url, tmp_path) as (base, pool):
        item = await load(pool, tmp_path)
        pat = await bearer_headers(pool, "pat", Role.PRACTITIONER)
        async with aiohttp.ClientSession(headers=pat) as http:
            for path in ("/review", f"/review/{item}?decision=reject", "/audit"):
                async with http.get(base + path) as resp:
                    assert resp.status == 403, path
            async with http.post(f"{base}/review/{item}", data={"decision": "reject"}) as resp:
                assert resp.status == 403

        page = await browser.new_page()
        await sign_in(page, base, "/", "ian", Role.INDEX_TEAM, pool, council=ESX)
        await check_page(page, "node-landing-index-team")
        await page.get_by_role("link", name="Review").first.click()
        await expect(page).to_have_url(f"{base}/review")
        await expect(page.locator("#waiting")).to_have_text(
            "1 pair is waiting for your decision.")
        pair = page.locator(f'section.app-review[data-review="{item}"]')
        await expect(pair).to_contain_text("Izzy Okafor")
        await expect(pair).to_contain_text("Isabella Okafor")
        words = pair.locator(".app-comparisons")
        await expect(words.locator('dt:text-is("Date of birth") + dd')).to_have_text(
        "Same")
        await expect(words.locator('dt:text-is("Family name") + dd')).to_have_text(
        "Same")
        await expect(words).not_to_contain_text("EXACT")
        await expect(pair.locator(".app-weights")).to_be_hidden()
        await check_page(page, "node-review-list")

        await pair.locator("a[data-decision=reject]").click()
        await expect(page.locator("h1")).to_have_text("Are these different children?")
        await check_page(page, "node-review-confirm")
        assert await review_service(pool).status(item) == "open"  # nothing decided yet
        await page.click("#confirm")
        await expect(page).to_have_url(f"{base}/review?decided={item}")
        await expect(page.locator(".app-notice")).to_contain_text(
            f"Pair {item} is recorded as different children.")
        await expect(page.locator("#empty")).to_be_visible()
        await check_page(page, "node-review-decided")
        await page.reload()
        assert await review_service(pool).status(item) == "rejected"
        (decided,) = await entries(pool, "review.reject")  # once, however often reloaded
        # as the CLI records it (local_node.services.review), the person as the actor
        assert decided["who"] == "ian" and decided["role"] == "index_team"
        assert decided["purpose"] == "identity resolution"
        assert set(decided["parameters"]) == {"item", "a", "b", "score", "decided_by"}
        assert decided["parameters"]["decided_by"] == "ian"
        assert len(decided["child_ids"]) == 2
        assert await entries(pool, "review.queue")  # reading the list is on record
        # undo: asked again, audited like the decision; then decided once more
        await page.locator(".app-notice button", has_text="Undo").click()
        await expect(page).to_have_url(f"{base}/review?undone={item}")
        await expect(page.locator(".app-notice")).to_contain_text(
            f"Pair {item} is back in the list to decide.")
        await check_page(page, "node-review-undone")
        assert await review_service(pool).status(item) == "open"
        (undone,) = await entries(pool, "review.undo")
        assert undone["who"] == "ian" and undone["child_ids"] == decided["child_ids"]
        await page.locator(f'section.app-review[data-review="{item}"] '
                           "a[data-decision=reject]").click()
        await page.click("#confirm")
        assert await review_service(pool).status(item) == "rejected"
        async with aiohttp.ClientSession(
                headers=await bearer_headers(pool, "ivy", Role.INDEX_TEAM, ESX)) as http:
            # a merge is not undone from the screen, and what is not decided has no undo
            async with http.post(f"{base}/review/999/undo", allow_redirects=False) as resp:
                assert resp.status == 404 and 'data-code="not_found"' in await resp.text()
        await page.click("text=Sign out")

        await sign_in(page, base, "/", "aud", Role.AUDITOR, pool)
        await check_page(page, "node-landing-auditor")
        await page.get_by_role("link", name="Audit log").first.click()
        await expect(page).to_have_url(f"{base}/audit")
        await expect(page.locator("#entries")).to_contain_text("review.reject")
        await check_page(page, "node-audit-recent")
        await page.fill("#child_id", decided["child_ids"][0])
        await page.click("#search")
        await expect(page.locator("#entries")).to_contain_text("review.reject")
        await expect(page.locator("#entries")).to_contain_text("ian")
