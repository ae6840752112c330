"""The review screen, ``/review``, in a real browser: East Sussex's index team signs in
(password and TOTP), sees how many pairs wait and the grey-zone pair its record is in,
in plain words ("Date of birth: Same"), with the model's weights folded away; decides
it through a confirmation page; the answer is a redirect (a reload decides nothing);
the decision merges the two national children, is audited, and can be undone (back in
the queue, apart, audited too). Another council's index team does not see the pair and
cannot decide it; practitioners and operators are refused the page. Every page the
journey visits passes axe and fits 320 px; screenshots are kept."""

from __future__ import annotations

import html
import json
import re

import aiohttp
import asyncpg
from playwright.async_api import Browser, Page, expect

from server_common.accounts import Role
from tests.browser import check_page
from tests.national_hub.test_review import (
    ESX,
    GREY_A,
    GREY_B,
    TFW,
    Federation,
    child,
    federation,  # noqa: F401 (a fixture)
    open_reviews,
    redirect,
    state,
)
from tests.server_common.accounts_helpers import sign_in

WSX = "E10000032"


async def audited(hub: asyncpg.Connection, action: str) -> int:
    return int(await hub.fetchval(
        "SELECT count(*) FROM audit_log WHERE convert_from(entry, 'UTF8') LIKE $1",
        f'%"action":"{action}"%'))


async def test_index_team_decides_a_pair_on_the_review_screen(federation: Federation,  # noqa: F811
                                                              browser: Browser) -> None:
    hub, esx, tfw = federation
    await esx.send(GREY_A)
    await tfw.send(GREY_B)
    (queued,) = await open_reviews(hub)
    pair_id = queued["id"]
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
        async with http.get(f"{hub.url}/review/{pair_id}?decision=link") as resp:
            assert resp.status == 404  # no confirmation page for another council's pair
        async with http.post(f"{hub.url}/review/{pair_id}", data={"decision": "link"},
                             allow_redirects=False) as resp:
            assert resp.status == 403 and 'data-code="forbidden"' in await resp.text()
    assert len(await open_reviews(hub)) == 1

    page = await browser.new_page()
    await sign_in(page, hub.url, "/review", "ann", Role.INDEX_TEAM, hub.pool, council=ESX)
    await expect(page.locator("#waiting")).to_have_text("1 pair is waiting for your decision.")
    pair = page.locator(f'section.app-review[data-review="{pair_id}"]')
    await expect(pair).to_contain_text("Lily Hart")
    await expect(pair).to_contain_text("Lily Oduya")
    await expect(pair).to_contain_text("TF1 (district)")  # the other council's: district only
    await expect(pair).not_to_contain_text("TF1 2AB")
    # plain words, and no model code on show until the detail is unfolded
    words = pair.locator(".app-comparisons")
    await expect(words.locator('dt:text-is("Date of birth") + dd')).to_have_text(
        "Same")
    await expect(words.locator('dt:text-is("Given name") + dd')).to_have_text(
        "Same")
    await expect(words.locator('dt:text-is("Family name") + dd')).to_have_text("Different")
    await expect(words.locator('dt:text-is("Family name") ~ dd.app-evidence')).to_have_text(
        "Points to different children")
    await expect(words).not_to_contain_text("EXACT")
    weights = pair.locator(".app-weights")
    await expect(weights).to_be_hidden()
    await check_page(page, "hub-review-list")
    await pair.locator(".app-model-detail summary").click()
    await expect(weights).to_be_visible()
    await expect(weights).to_contain_text("EXACT")
    await expect(pair.locator(".app-model-detail")).to_contain_text("Model ")

    # the decision is asked twice: a confirmation page, then the form that records it
    await pair.locator("a[data-decision=link]").click()
    await expect(page).to_have_url(f"{hub.url}/review/{pair_id}?decision=link")
    await expect(page.locator("h1")).to_have_text("Are these the same child?")
    assert await audited(hub, "review.link") == 0  # nothing decided by looking
    await check_page(page, "hub-review-confirm")
    await page.click("#confirm")

    # post/redirect/get: the answer is the list again, with what was recorded
    await expect(page).to_have_url(f"{hub.url}/review?decided={pair_id}")
    notice = page.locator(".app-notice")
    await expect(notice).to_contain_text(f"Pair {pair_id} is recorded as the same child.")
    await expect(page.locator("#empty")).to_be_visible()
    await expect(page.locator("#waiting")).to_have_text("0 pairs are waiting for your decision.")
    await check_page(page, "hub-review-decided")
    await page.reload()  # decides nothing again
    await expect(notice).to_be_visible()
    assert await audited(hub, "review.link") == 1

    after = await state(hub)
    assert after[(ESX, "A1")][0] == after[(TFW, "B1")][0]  # one national child now
    retired = {before[(ESX, "A1")][0], before[(TFW, "B1")][0]} - {after[(ESX, "A1")][0]}
    assert [await redirect(hub, r) for r in retired] == [after[(ESX, "A1")][0]]
    decision = await hub.fetchval(
        "SELECT convert_from(entry, 'UTF8') FROM audit_log"
        " WHERE convert_from(entry, 'UTF8') LIKE '%\"review.link\"%'")
    assert decision is not None and '"who":"ann"' in str(decision)

    # undo: back in the queue, the two records apart again, audited like the decision
    await notice.locator("button", has_text="Undo").click()
    await expect(page).to_have_url(f"{hub.url}/review?undone={pair_id}")
    await expect(page.locator(".app-notice")).to_contain_text(
        f"Pair {pair_id} is back in the list to decide.")
    await expect(page.locator(f'section.app-review[data-review="{pair_id}"]')).to_be_visible()
    await check_page(page, "hub-review-undone")
    undone = await state(hub)
    assert undone[(ESX, "A1")][0] != undone[(TFW, "B1")][0]
    assert undone[(ESX, "A1")][1] == undone[(TFW, "B1")][1] == "review"
    assert [r["id"] for r in await open_reviews(hub)] == [pair_id]
    entry = await hub.fetchval(
        "SELECT convert_from(entry, 'UTF8') FROM audit_log"
        " WHERE convert_from(entry, 'UTF8') LIKE '%\"review.undo\"%'")
    assert entry is not None and '"who":"ann"' in str(entry)
    assert after[(ESX, "A1")][0] in str(entry) and undone[(TFW, "B1")][0] in str(entry)
    await page.reload()  # undoes nothing again
    assert await audited(hub, "review.undo") == 1
    assert await audited(hub, "review.queue") >= 4  # each look is audited


async def test_bad_decisions_are_refused_with_their_codes(federation: Federation) -> None:  # noqa: F811
    hub, esx, tfw = federation
    await esx.send(GREY_A)
    await tfw.send(GREY_B)
    (queued,) = await open_reviews(hub)
    esx_team = await hub.as_role(Role.INDEX_TEAM, ESX)
    async with aiohttp.ClientSession(headers=esx_team) as http:
        for method, path, data, status, code in (
                ("GET", f"/review/{queued['id']}?decision=maybe", None, 400, "invalid_field"),
                ("POST", f"/review/{queued['id']}", {"decision": "maybe"}, 400, "invalid_field"),
                ("POST", "/review/999999", {"decision": "link"}, 404, "not_found"),
                ("POST", f"/review/{queued['id']}/undo", {}, 409, "review_decided")):
            async with http.request(method, hub.url + path, data=data,
                                    allow_redirects=False) as resp:
                assert resp.status == status, (path, await resp.text())
                assert f'data-code="{code}"' in await resp.text()


async def conflicting_pair(federation: Federation) -> int:  # noqa: F811
    """Lilly at Telford joined East Sussex's Lily (NHS number ...919); a second Lily at
    East Sussex with NHS number ...137 matches Lilly as well as the first did, but waits
    for a person: her child and theirs hold different NHS numbers. The pair's id."""
    hub, esx, tfw = federation
    await esx.send(child("A1", nhs="9434765919"))
    await tfw.send(child("B1", given="Lilly", postcode="TF1 2AB"))
    await esx.send(child("A2", nhs="4010232137"))
    (queued,) = await open_reviews(hub)
    assert {(queued["council_a"], queued["local_id_a"]),
            (queued["council_b"], queued["local_id_b"])} == {(ESX, "A2"), (TFW, "B1")}
    return int(queued["id"])


async def test_linking_children_with_different_nhs_numbers_is_confirmed_first(
        federation: Federation) -> None:  # noqa: F811
    """The screen says the pair's children hold different NHS numbers, and a link
    without the box ticked is refused, nothing changed or audited."""
    hub = federation[0]
    pair_id = await conflicting_pair(federation)
    before = await state(hub)
    assert before[(ESX, "A2")][0] != before[(TFW, "B1")][0] == before[(ESX, "A1")][0]
    warning = "children have different NHS numbers."
    url = f"{hub.url}/review/{pair_id}"
    async with aiohttp.ClientSession(headers=await hub.as_role(Role.INDEX_TEAM, ESX)) as http:
        async with http.get(hub.url + "/review") as resp:
            listed = await resp.text()
            assert resp.status == 200 and warning in listed and "pupil numbers" not in listed
            # the kind of identifier, not its values nor where the other records are
            (said,) = re.findall(r'app-conflict">(.*?)</div>', listed, re.S)
            assert not re.search(r"\d|Sussex|Telford", html.unescape(said)), said
        async with http.get(url + "?decision=separate") as resp:
            assert warning in await resp.text()
            assert "confirm_identifier_conflict" not in await resp.text()  # nothing to tick
        async with http.get(url + "?decision=link") as resp:
            assert 'name="confirm_identifier_conflict"' in await resp.text()
        async with http.post(url, data={"decision": "link"}, allow_redirects=False) as resp:
            body = await resp.text()
            assert resp.status == 409, body
            assert "govuk-error-summary" in body and 'data-code="identifier_conflict"' in body
            assert 'href="#confirm_identifier_conflict"' in body
            assert 'name="confirm_identifier_conflict"' in body and warning in body
        assert await state(hub) == before and len(await open_reviews(hub)) == 1
        assert await audited(hub, "review.link") == 0
        async with http.post(url, data={"decision": "link", "confirm_identifier_conflict": "yes"},
                             allow_redirects=False) as resp:
            assert resp.status == 303, await resp.text()
    after = await state(hub)
    assert after[(ESX, "A2")][0] == after[(TFW, "B1")][0] == after[(ESX, "A1")][0]
    entry = json.loads(str(await hub.fetchval(
        "SELECT convert_from(entry, 'UTF8') FROM audit_log"
        " WHERE convert_from(entry, 'UTF8') LIKE '%\"review.link\"%'")))
    assert entry["parameters"]["identifier_conflict_confirmed"] == ["nhs_number"]
    assert "4010232137" not in json.dumps(entry) and "9434765919" not in json.dumps(entry)
    # the person decided: an update of the record does not take it out of the child again
    await federation[1].send(child("A2", nhs="4010232137", postcode="BN1 1AB"))
    assert {k: v[0] for k, v in (await state(hub)).items()} == {k: v[0] for k, v in after.items()}


async def test_a_conflicting_link_is_ticked_in_the_browser(federation: Federation,  # noqa: F811
                                                           browser: Browser) -> None:
    hub = federation[0]
    pair_id = await conflicting_pair(federation)
    page = await browser.new_page()
    await sign_in(page, hub.url, "/review", "ann", Role.INDEX_TEAM, hub.pool, council=ESX)
    pair = page.locator(f'section.app-review[data-review="{pair_id}"]')
    await expect(pair.locator(".app-conflict")).to_contain_text(
        "These records' children have different NHS numbers.")
    await pair.locator("a[data-decision=link]").click()
    await page.click("#confirm")  # the box not ticked
    await expect(page.locator(".govuk-error-summary")).to_contain_text(
        "Confirm that you have checked these records are the same child")
    await expect(page).to_have_title(re.compile("^Error: "))
    await check_page(page, "hub-review-conflict-refused")
    assert await audited(hub, "review.link") == 0
    await page.check("#confirm_identifier_conflict")
    await page.click("#confirm")
    await expect(page).to_have_url(f"{hub.url}/review?decided={pair_id}")
    assert await audited(hub, "review.link") == 1


async def tab_to(page: Page, selector: str, most: int = 80) -> None:
    """Press Tab until ``selector`` has the focus, as a keyboard user moves."""
    for _ in range(most):
        await page.keyboard.press("Tab")
        if await page.evaluate("s => document.activeElement?.matches(s) ?? false", selector):
            return
    raise AssertionError(f"{selector} is not reached by the keyboard on {page.url}")


async def test_a_pair_is_decided_and_undone_by_keyboard_alone(federation: Federation,  # noqa: F811
                                                              browser: Browser) -> None:
    hub, esx, tfw = federation
    await esx.send(GREY_A)
    await tfw.send(GREY_B)
    (queued,) = await open_reviews(hub)
    page = await browser.new_page()
    await sign_in(page, hub.url, "/review", "ann", Role.INDEX_TEAM, hub.pool, council=ESX)

    await tab_to(page, ".app-model-detail summary")
    await page.keyboard.press("Enter")  # the model's detail unfolds
    await expect(page.locator(".app-weights")).to_be_visible()
    await tab_to(page, "a[data-decision=separate]")
    await page.keyboard.press("Enter")
    await expect(page.locator("h1")).to_have_text("Are these different children?")
    await tab_to(page, "#confirm")
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(f"{hub.url}/review?decided={queued['id']}")
    assert await hub.fetchval("SELECT status FROM review_queue WHERE id = $1",
                              queued["id"]) == "separated"
    await tab_to(page, ".app-notice button")
    await page.keyboard.press("Space")
    await expect(page).to_have_url(f"{hub.url}/review?undone={queued['id']}")
    assert await hub.fetchval("SELECT status FROM review_queue WHERE id = $1",
                              queued["id"]) == "open"
