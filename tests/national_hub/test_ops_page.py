"""The /ops page in a real browser (Debian's Chromium driven by Playwright): a forked
council shows BAD with its reason, and when an operator clears the fork the page
turns it GOOD by itself, without a reload.

Under CI (CI=true) a missing Chromium fails the test; .ci/run installs it. Elsewhere
the test is skipped with the reason. Playwright never downloads a browser here.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, Locator, Page, expect

from national_hub.services.councils import CouncilService
from national_hub.storage.councils import CouncilStore
from national_hub.storage.heartbeats import HeartbeatStore
from protocol import encoding, keys
from protocol.batch import GENESIS, UpsertOp
from server_common.accounts import Role
from tests.browser import check_page
from tests.conftest import DatabaseFactory
from tests.hub_harness import Hub, running_hub
from tests.national_hub.helpers import Client, batch_bytes, error_code, record
from tests.national_hub.test_review_page import tab_to
from tests.server_common.accounts_helpers import sign_in

ESX, WSX = "E10000011", "E10000032"
REFRESH_WAIT_MS = 15_000  # the page refreshes every 5 s
TIME = re.compile(r"\d{1,2} [A-Z][a-z]{2} \d{4}, \d{2}:\d{2}:\d{2} UTC")


@pytest.fixture
async def hub(make_database: DatabaseFactory, tmp_path: Path) -> AsyncIterator[Hub]:
    # Refused batches would keep the forked council WARN for 24 h after the fork is
    # cleared; this test is about the fork alone.
    async with running_hub(await make_database(), tmp_path,
                           health={"rejected_warn": 100, "rejected_bad": 100}) as hub:
        yield hub


async def council(hub: Hub, code: str) -> Client:
    """An enrolled council that applied one batch and sent a heartbeat: GOOD."""
    key = keys.generate()
    await hub.enrol(code, keys.public_pem(key.public_key()))
    client = Client(hub, code, key)
    body, _ = batch_bytes(code, 1, GENESIS, [UpsertOp.of(record("L1"), 1)], key)
    assert (await client.send(body))[0] == 200
    beat = encoding.pack({"head_seq": 1, "outbox_depth": 0})
    assert (await client.send(beat, tail="heartbeats"))[0] == 200
    return client


def row(page: Page, code: str) -> Locator:
    return page.locator(f'#councils tbody tr[data-council="{code}"]')


async def test_ops_page_shows_a_bad_council_and_its_recovery(browser: Browser, hub: Hub) -> None:
    esx = await council(hub, ESX)
    await council(hub, WSX)
    # ESX signs a second, different batch 1: a fork, and the hub flags the council
    other, _ = batch_bytes(ESX, 1, GENESIS, [UpsertOp.of(record("L2"), 1)], esx.key)
    status, data, _ = await esx.send(other)
    assert (status, error_code(data)) == (409, "fork")

    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    await sign_in(page, hub.url, "/ops", "olga", Role.OPERATOR, hub.pool)
    await expect(page.locator("#overall")).to_have_text("BAD")
    await expect(row(page, ESX).locator(".badge")).to_have_text("BAD")
    await expect(row(page, ESX).locator(".reasons")).to_contain_text(
        "forked: seq 1 was already applied with a different hash")
    await expect(row(page, WSX).locator(".badge")).to_have_text("GOOD")
    # the script has taken over: the charts are drawn from the history, one small
    # chart per council (no line over another), named, each council its own colour
    for chart in ("#lag-chart", "#applied-chart"):
        panels = page.locator(f"{chart} figure.panel")
        await expect(panels).to_have_count(2)
        await expect(panels.locator("figcaption")).to_have_text(["East Sussex", "West Sussex"])
        for i in range(2):
            await expect(panels.nth(i).locator("polyline")).to_have_count(1)
        strokes = await page.locator(f"{chart} polyline").evaluate_all(
            "lines => lines.map(l => l.getAttribute('stroke'))")
        assert len(set(strokes)) == 2, strokes
    await expect(page.locator("#councils")).not_to_contain_text("$")
    # one time format, from the first render through every refresh
    first = await page.locator("#generated-at").inner_text()
    assert TIME.fullmatch(first), first
    await check_page(page, "hub-ops")
    await expect(page.locator("#generated-at")).not_to_have_text(first, timeout=REFRESH_WAIT_MS)
    assert TIME.fullmatch(await page.locator("#generated-at").inner_text())

    # worst first; a click on a header sorts by it, a second click reverses
    codes = page.locator("#councils tbody tr td.code")
    await expect(codes).to_have_text([ESX, WSX])
    await page.click('th[data-key="code"]')
    await expect(codes).to_have_text([ESX, WSX])
    await page.click('th[data-key="code"]')
    await expect(codes).to_have_text([WSX, ESX])
    await expect(page.locator('th[data-key="code"]')).to_have_attribute("aria-sort",
                                                                         "descending")
    # the headers sort from the keyboard too (each holds a button)
    await tab_to(page, 'th[data-key="name"] button')
    await page.keyboard.press("Enter")
    await expect(page.locator('th[data-key="name"]')).to_have_attribute("aria-sort",
                                                                         "ascending")
    await expect(codes).to_have_text([ESX, WSX])  # East Sussex, then West Sussex
    await page.click('th[data-key="code"]')
    await page.click('th[data-key="code"]')

    # the operator clears the fork (national-hub councils unflag); the page follows
    await page.evaluate("window.notReloaded = true")
    await CouncilService(hub.pool, CouncilStore(), HeartbeatStore()).clear_fork(ESX)
    await expect(row(page, ESX).locator(".badge")).to_have_text("GOOD",
                                                                timeout=REFRESH_WAIT_MS)
    await expect(row(page, ESX).locator(".reasons")).to_have_text("")
    await expect(page.locator("#overall")).to_have_text("GOOD")
    assert await page.evaluate("window.notReloaded") is True
    await expect(codes).to_have_text([WSX, ESX])  # the chosen order survives a refresh

    assert errors == []
    assert requested and all(url.startswith(hub.url + "/") for url in requested), requested


async def test_ops_page_without_javascript_shows_the_snapshot(hub: Hub) -> None:
    await council(hub, ESX)
    async with aiohttp.ClientSession(headers=await hub.operator()) as session:
        async with session.get(hub.url + "/ops") as resp:
            assert resp.status == 200
            assert resp.content_type == "text/html"
            page = await resp.text()
        for asset, kind in (("ops.js", "text/javascript"), ("ops.css", "text/css")):
            async with session.get(f"{hub.url}/ops/{asset}") as resp:
                assert resp.status == 200 and resp.content_type == kind
    assert f'data-council="{ESX}"' in page and "East Sussex" in page
    assert '<span class="badge good">GOOD</span>' in page
    assert TIME.search(page)  # the same time format as ops.js keeps


@pytest.mark.parametrize("path", ["/ops", "/ops/ops.js", "/v1/federation/health",
                                  "/v1/federation/history", "/metrics"])
async def test_operator_views_refuse_other_roles_and_no_login(hub: Hub, path: str) -> None:
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(hub.url + path, allow_redirects=False) as resp:
            if path.startswith("/v1/"):
                assert resp.status == 401
                assert (await resp.json())["error"]["code"] == "not_authenticated"
            else:  # a page: to the login form, and back here after it
                assert resp.status == 303
                assert resp.headers["Location"] == "/login?next=" + path
    for role in (Role.PRACTITIONER, Role.AUDITOR):
        async with aiohttp.ClientSession(headers=await hub.as_role(role)) as session:
            async with session.get(hub.url + path) as resp:
                assert resp.status == 403, (role, path)
                assert (await resp.json())["error"]["code"] == "forbidden"
    index_team = await hub.as_role(Role.INDEX_TEAM, ESX)
    async with aiohttp.ClientSession(headers=index_team) as session:
        async with session.get(hub.url + path) as resp:
            assert resp.status == 403
    async with aiohttp.ClientSession(headers=await hub.operator()) as session:
        async with session.get(hub.url + path) as resp:
            assert resp.status == 200
