"""Which councils know a shielded child is kept from index teams that do not shield it.

The child view shows Telford's index team only Telford's own record of a child East
Sussex shields, and a notice to Telford names no other council (``protocol.disclosure``:
which areas know a shielded child, and which knew it last, say where it went). The
same trail must not come out of the other paths an index team reads: the explanation
of its own record's links (``/v1/links/…/explain``) and the review screen, whose
records are headed by the council that holds them.

West Sussex holds a second, unshielded record of the child (linked to East Sussex's
shielded one by its NHS number, so it counts as shielded too). Telford's record is a
grey match of both. Telford's index team may be told to ask East Sussex (the shielding
council, the child's contact) but not that West Sussex knows the child; East Sussex,
which brokers contact, still sees every council.
"""

from __future__ import annotations

import json
from datetime import date

from server_common.accounts import Role
from tests.leaks import shows
from tests.national_hub.test_review import child, open_reviews, state
from tests.security.test_hub_shielding import (  # noqa: F401 (attack: a fixture)
    COPY,
    ESX,
    NHS,
    TFW,
    WSX,
    Attack,
    attack,
)

SHIELDED = child("A1", family="Hart", postcode="BN2 3CD", address_line="9 Quiet Road",
                 nhs=NHS, shielded=True)
# West Sussex's record of the same child: linked by the NHS number, never shielded itself
# its local id is lower case: a national id (upper-case letters and digits) cannot hold
# it by chance, as one held "W1"
WEST_LOCAL = "west-sussex-7"
WEST = child(WEST_LOCAL, family="Hart", postcode="RH10 1AA", address_line="2 Elm Row", nhs=NHS)
WEST_SUSSEX = ("West Sussex", WSX, WEST_LOCAL)


async def trail(attack: Attack) -> None:  # noqa: F811
    await attack.councils[ESX].send(SHIELDED)
    await attack.councils[WSX].send(WEST)
    now = await state(attack.hub)
    assert now[(ESX, "A1")][0] == now[(WSX, WEST_LOCAL)][0]
    await attack.councils[TFW].send(COPY)


async def test_an_explanation_names_no_council_the_child_view_withholds(
        attack: Attack) -> None:  # noqa: F811
    await trail(attack)
    # Telford's record, linked with the child or in review with both of its records
    copy_id = (await state(attack.hub))[(TFW, "B1")][0]
    seen = await attack.view(copy_id, Role.INDEX_TEAM, TFW)
    assert seen["shielded"] and [c["council"] for c in seen["councils"]] == [TFW]
    assert [c["council"] for c in seen["contact"]] == [ESX]

    explained = await attack.explain(TFW, "B1", Role.INDEX_TEAM, TFW)
    assert len(explained["partners"]) == 2, explained
    told = json.dumps(explained)
    for secret in WEST_SUSSEX:
        assert not shows(told, secret), secret
    # whom to ask is the shielding council, named as the child view names it
    assert sorted(str(p["partner"]["council"]) for p in explained["partners"]) == [ESX, "None"]
    # an operator sees no more of the trail than the child view would show it
    operator = json.dumps(await attack.explain(TFW, "B1", Role.OPERATOR))
    assert not shows(operator, WSX) and not shows(operator, WEST_LOCAL)

    # East Sussex's team shields the child: it sees every council that knows it
    own = await attack.explain(ESX, "A1", Role.INDEX_TEAM, ESX)
    assert {p["partner"]["council"] for p in own["partners"]} == {WSX, TFW}


async def test_the_review_screen_names_no_council_the_child_view_withholds(
        attack: Attack) -> None:  # noqa: F811
    await trail(attack)
    pairs = await open_reviews(attack.hub)
    assert {frozenset((p["council_a"], p["council_b"])) for p in pairs} == {
        frozenset((TFW, ESX)), frozenset((TFW, WSX))}, pairs
    west = next(int(p["id"]) for p in pairs if WSX in (p["council_a"], p["council_b"]))
    telford = await attack.headers(Role.INDEX_TEAM, TFW)
    for path in ("/review", f"/review/{west}?decision=link"):
        status, page = await attack.call("GET", path, telford)
        assert status == 200, page
        for secret in WEST_SUSSEX:
            assert not shows(page, secret), (path, secret)
        assert "Another council, record withheld (shielded)" in page, path
    status, page = await attack.call("GET", "/review", telford)
    # the shielding council is named: it is whom to contact
    assert "East Sussex, record withheld (shielded)" in page

    # decided by Telford, the pair is listed as decided, still without the council
    status, _ = await attack.decide(west, "link", TFW)
    assert status == 303
    status, page = await attack.call("GET", "/review", telford)
    assert status == 200 and f'data-review="{west}"' in page
    for secret in WEST_SUSSEX:
        assert not shows(page, secret), secret

    # East Sussex shields the child: it sees which council holds which record
    status, own = await attack.call("GET", "/review",
                                    await attack.headers(Role.INDEX_TEAM, ESX))
    assert status == 200 and "Telford and Wrekin, record B1" in own


async def test_a_child_not_shielded_still_shows_every_council(
        attack: Attack) -> None:  # noqa: F811
    """The rule withholds nothing from a child nobody shields."""
    await attack.councils[WSX].send(child(WEST_LOCAL, family="Hart",
                                          postcode="RH10 1AA", nhs=NHS))
    await attack.councils[ESX].send(child("A1", family="Hart", postcode="BN2 3CD",
                                          nhs=NHS, dob=date(2016, 2, 9)))
    explained = await attack.explain(ESX, "A1", Role.INDEX_TEAM, ESX)
    assert [p["partner"]["council"] for p in explained["partners"]] == [WSX]
    assert [p["partner"]["local_id"] for p in explained["partners"]] == [WEST_LOCAL]


async def test_a_third_council_is_not_told_whose_pair_it_is(
        attack: Attack) -> None:  # noqa: F811
    """A third council's index team may post a decision for any pair number: it is
    refused without being told which councils hold the pair (pair numbers run in order,
    so it could otherwise read who holds every pair queued beside its own)."""
    await trail(attack)
    pairs = await open_reviews(attack.hub)
    esx_pair = next(int(p["id"]) for p in pairs if ESX in (p["council_a"], p["council_b"]))
    for decision in ("link", "separate"):
        status, body = await attack.decide(esx_pair, decision, WSX)
        assert status == 403 and 'data-code="forbidden"' in body
        for secret in (ESX, TFW, "East Sussex", "Telford"):
            assert secret not in body, (decision, secret)
    # undoing is refused as deciding is, before the pair's state is told (it was 409
    # "nothing to undo" for an open pair: whether any pair number is open or decided)
    status, body = await attack.call("POST", f"/review/{esx_pair}/undo",
                                     await attack.headers(Role.INDEX_TEAM, WSX))
    assert status == 403 and 'data-code="forbidden"' in body
    for secret in (ESX, TFW, "East Sussex", "Telford"):
        assert secret not in body, secret


async def test_deciding_a_decided_pair_again_names_nobody_the_review_screen_withholds(
        attack: Attack) -> None:  # noqa: F811
    """West Sussex's record and Telford's are a pair of a child East Sussex shields:
    West Sussex's team sees Telford's record as "Another council" and who decided the
    pair as withheld. Posting the decision Telford already made is refused (409), and
    the refusal must not name who decided it (Telford's user) either."""
    await trail(attack)
    pairs = await open_reviews(attack.hub)
    west = next(int(p["id"]) for p in pairs if WSX in (p["council_a"], p["council_b"]))
    status, _ = await attack.decide(west, "link", TFW)
    assert status == 303
    telford_user = "test-index_team-e06000020"  # the harness's Telford index team
    status, page = await attack.call("GET", "/review",
                                     await attack.headers(Role.INDEX_TEAM, WSX))
    assert status == 200 and "withheld (shielded)" in page
    assert telford_user not in page and not shows(page, TFW)
    status, body = await attack.decide(west, "link", WSX)
    assert status == 409 and 'data-code="review_decided"' in body, body
    for secret in (telford_user, TFW.lower(), "telford"):
        assert secret not in body.lower(), secret
