"""A short seeded fuzz of search and the child view at the hub, over real HTTP
(``bench.chaos.fuzz_search``; ``make soak`` runs thousands of cases against a
``national-hub serve`` process).

Real queries of children the hub holds, mutated (bit flips, wrong types, deep nesting,
huge strings and repeated keys, bad UTF-8 and escapes, bad dates and identifiers, a
wrong purpose or token), sent to ``/v1/search``, ``/v1/children/{id}``, ``/`` and
``/children/{id}`` as a practitioner: never a 5xx, every refusal a 4xx with a known
code, every accepted answer well-formed, every unmutated query finding its child.

``FUZZ_SEED=<seed> FUZZ_ROUNDS=<n>`` replays or lengthens it.
"""

from __future__ import annotations

import os

from bench.chaos.fuzz_search import (
    ENDPOINTS,
    SAMPLE_CHILDREN,
    SearchFuzz,
    known_children,
    sample_batch,
)
from protocol import keys
from server_common.accounts import Role
from tests.hub_harness import Hub
from tests.national_hub.helpers import Client

ESX = "E10000011"
SEED = int(os.environ.get("FUZZ_SEED", "20261126"))
ROUNDS = int(os.environ.get("FUZZ_ROUNDS", "240"))


async def test_mutated_searches_never_fail_the_hub(hub: Hub) -> None:
    key = keys.generate()
    await hub.enrol(ESX, keys.public_pem(key.public_key()))
    status, data, _ = await Client(hub, ESX, key).send(sample_batch(ESX, key))
    assert status == 200, data
    await hub.resolved()
    known = await known_children(hub.pool)
    assert len(known) == len(SAMPLE_CHILDREN)
    print(f"search fuzz seed {SEED} (FUZZ_SEED={SEED} replays it)")
    report = await SearchFuzz(hub.url, await hub.as_role(Role.PRACTITIONER), known,
                              SEED).run(ROUNDS)
    assert report.problems == [], report.problems
    assert set(report.cases) == set(ENDPOINTS), report.cases
    # the fuzz reached the code behind every endpoint, not only its refusals
    for endpoint in ENDPOINTS:
        assert report.outcomes[f"{endpoint} answered"] > 0, report.outcomes
    assert report.outcomes["refused by the HTTP parser (over the line limit)"] > 0
    assert report.outcomes["sent a credential that is not UTF-8"] > 0  # a 500 once
    assert {"invalid_field", "not_found", "not_authenticated",
            "method_not_allowed"} <= report.seen, report.seen
