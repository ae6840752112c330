"""The review screen, ``/review``, in a real browser: East Sussex's index team signs in
(password and TOTP), sees the grey-zone pair its record is in — both records and why
(each field's level and weight, total, thresholds, model version) — and decides it;
the decision merges the two national children, is audited, and sticks. Another
council's index team does not see the pair and cannot decide it; practitioners and
operators are refused the page."""

from __future__ import annotations

import aiohttp
from playwright.async_api import Browser, expect

from server_common.accounts import Role
from tests.national_hub.test_review import (
    ESX,
    GREY_A,
    GREY_B,
    TFW,
    Federation,
    federation,  # noqa: F401 (a fixture)
    open_reviews,
    redirect,
    state,
)
from tests.server_common.accounts_helpers import sign_in

WSX = "E10000032"


async def test_index_team_decides_a_pair_on_the_review_screen(federation: Federation,  # noqa: F811
                                                              browser: Browser) -> None:
    hub, esx, tfw = federation
    await esx.send(GREY_A)
    await tfw.send(GREY_B)
    (queued,) = await open_reviews(hub)
    before = await state(hub)

    for role, council in ((Role.PRACTITIONER, None), (Role.OPERATOR, None)):
        async with aiohttp.ClientSession(headers=await hub.as_role(role, council)) as http:
            async with http.get(hub.url + "/review") as resp:
                assert resp.status == 403
    # another council's index team: nothing to decide, and this pair is not theirs
    wsx = await hub.as_role(Role.INDEX_TEAM, WSX)
    async with aiohttp.ClientSession(headers=wsx) as http:
        async with http.get(hub.url + "/review") as resp:
            assert resp.status == 200 and 'id="empty"' in await resp.text()
        async with http.post(f"{hub.url}/review/{queued['id']}",
                             data={"decision": "link"}) as resp:
            assert resp.status == 403
    assert len(await open_reviews(hub)) == 1

    page = await browser.new_page()
    await sign_in(page, hub.url, "/review", "ann", Role.INDEX_TEAM, hub.pool, council=ESX)
    pair = page.locator(f'section.review[data-review="{queued["id"]}"]')
    await expect(pair).to_contain_text("Lily Hart")
    await expect(pair).to_contain_text("Lily Oduya")
    await expect(pair).to_contain_text("TF1")  # the other council's record: district only
    await expect(pair).not_to_contain_text("TF1 2AB")
    await expect(pair.locator("table.why tr")).not_to_have_count(1)  # a row per field
    await expect(pair).to_contain_text("model ")
    await expect(pair).to_contain_text("link at ≥")

    await pair.locator("button[value=link]").click()
    await expect(page.locator(".notice")).to_contain_text(
        f"Pair {queued['id']}: recorded as the same child")
    await expect(page.locator("#empty")).to_be_visible()

    after = await state(hub)
    assert after[(ESX, "A1")][0] == after[(TFW, "B1")][0]  # one national child now
    retired = {before[(ESX, "A1")][0], before[(TFW, "B1")][0]} - {after[(ESX, "A1")][0]}
    assert [await redirect(hub, r) for r in retired] == [after[(ESX, "A1")][0]]
    decision = await hub.fetchval(
        "SELECT convert_from(entry, 'UTF8') FROM audit_log"
        " WHERE convert_from(entry, 'UTF8') LIKE '%\"review.link\"%'")
    assert decision is not None and '"who":"ann"' in str(decision)
    assert await hub.fetchval("SELECT count(*) FROM audit_log WHERE convert_from(entry, 'UTF8')"
                              " LIKE '%\"review.queue\"%'") >= 2  # each look is audited
