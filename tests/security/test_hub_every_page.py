"""Every reader's page and answer at the hub, swept for where a shielded child lives.

East Sussex's shielded record and Telford's copy sit in an open review pair (see
``test_hub_shielding.py``). Each role in turn — a practitioner, a third council's index
team, Telford's, East Sussex's, an operator, an auditor — asks for everything it may
ask for that could mention the child: searches (by who, and by where), the child view
as JSON and as a page, the search page, the review list and a pair's confirmation
page, both explanations, ``/ops``, ``/metrics``, ``/v1/federation/health``, the audit
page, its CSV export and subject access. No answer, whatever its status, holds an
address, postcode or district the asker may not see: only a council's own index team
sees its own record's.
"""

from __future__ import annotations

from server_common.accounts import Role
from tests.national_hub.test_review import state
from tests.security.test_hub_shielding import (  # noqa: F401 (attack: a fixture)
    ESX,
    PURPOSE,
    TFW,
    WSX,
    Attack,
    attack,
    open_pair,
)

WHERE = {ESX: ("9 Quiet Road", "BN2 3CD", "BN2"), TFW: ("7 Dale Road", "TF1 2AB", "TF1")}
READERS = ((Role.PRACTITIONER, None), (Role.INDEX_TEAM, WSX), (Role.INDEX_TEAM, TFW),
           (Role.INDEX_TEAM, ESX), (Role.OPERATOR, None), (Role.AUDITOR, None))


async def test_no_page_or_answer_says_where_the_shielded_child_lives(
        attack: Attack) -> None:  # noqa: F811
    await open_pair(attack)
    now = await state(attack.hub)
    shielded, copy = now[(ESX, "A1")][0], now[(TFW, "B1")][0]
    review_id = await attack.hub.fetchval("SELECT id FROM review_queue")
    why = {"purpose": PURPOSE}
    asked: list[tuple[str, dict[str, str]]] = [
        ("/v1/search", {**why, "given_name": "Lily", "dob": "2016-02-09"}),
        ("/v1/search", {**why, "given_name": "Lily", "postcode": "BN2 3CD"}),
        ("/v1/search", {**why, "dob": "2016-02-09", "postcode": "TF1 2AB"}),
        # found by who it is, with where it lives typed beside: the audit entry the
        # auditor reads below must not say where (audit.sealing)
        *(("/v1/search", {**why, "given_name": "Lily", "dob": "2016-02-09", "postcode": p})
          for p in ("BN2 3CD", "TF1 2AB")),
        ("/", {**why, "given_name": "Lily", "dob-day": "9", "dob-month": "2",
               "dob-year": "2016"}),
        *((f"/v1/children/{i}", why) for i in (shielded, copy)),
        *((f"/children/{i}", why) for i in (shielded, copy)),
        ("/review", {}), (f"/review/{review_id}", {"decision": "link"}),
        (f"/v1/links/{ESX}/A1/explain", {}), (f"/v1/links/{TFW}/B1/explain", {}),
        ("/ops", {}), ("/metrics", {}), ("/v1/federation/health", {}),
        *(("/audit", {"child_id": i}) for i in (shielded, copy)),
        ("/audit/export.csv", {"child_id": shielded}),
        ("/v1/audit/entries", {"child_id": copy}),
    ]
    told: list[str] = []
    answered = 0
    for role, council in READERS:
        headers = await attack.headers(role, council)
        secrets = [s for owner, found in WHERE.items() if owner != council for s in found]
        for path, params in asked:
            status, body = await attack.call("GET", path, headers, params=params)
            answered += status == 200
            told += [f"{role}/{council} {path} {params}: {s}" for s in secrets if s in body]
    assert told == []
    # the sweep saw real pages: each role is answered where it may ask
    assert answered >= 40, answered
