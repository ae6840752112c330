"""A short seeded fuzz of the council node's practitioner search and child view, over
real HTTP (``bench.chaos.fuzz_search`` aimed at ``bench.chaos.fuzz_node.NODE``;
``make soak`` runs thousands of cases against a ``local-node serve`` process).

Real queries of children the node's index holds (loaded through its services feed,
one of them merged with a second record of it, whose id then redirects), mutated
(bit flips, wrong types, deep nesting, huge strings and repeated keys, bad UTF-8 and
escapes, bad dates and identifiers, a wrong purpose or token, a mangled local id),
sent to ``/v1/search``, ``/v1/children/{local_id}``, ``/search`` and
``/children/{local_id}`` as a practitioner: never a 5xx, every refusal a 4xx with a
known code, every accepted answer well-formed, every unmutated query finding its child.

``FUZZ_SEED=<seed> FUZZ_ROUNDS=<n>`` replays or lengthens it.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.chaos.fuzz_node import MERGE_FEED, NODE, known_children, merge_reviewed, sample_feed
from bench.chaos.fuzz_search import ENDPOINTS, SAMPLE_CHILDREN, SearchFuzz
from local_node.app import PACKAGE, ingest_service
from server_common.accounts.config import AccountsConfig
from server_common.accounts.principal import Role
from server_common.accounts.service import AccountService
from server_common.ratelimit.config import RateLimitConfig
from tests.conftest import DatabaseFactory
from tests.hub_harness import upgrade
from tests.local_node.test_practitioner_api import running

SEED = int(os.environ.get("FUZZ_SEED", "20261126"))
ROUNDS = int(os.environ.get("FUZZ_ROUNDS", "300"))


async def test_mutated_searches_never_fail_the_node(make_database: DatabaseFactory,
        tmp_path: Path) -> None:
    url = await make_database()
    await upgrade(url, PACKAGE)
    feed, second = tmp_path / "services.csv", tmp_path / "education.csv"
    feed.write_text(sample_feed(), encoding="utf-8")
    second.write_text(MERGE_FEED, encoding="utf-8")
    # no rate limit: every case reaches the code it aims at rather than a 429
    async with running(url, tmp_path, RateLimitConfig(0, 0, 0)) as (base, pool):
        await ingest_service(pool).ingest_file("services", feed)
        await ingest_service(pool).ingest_file("education", second)
        assert await merge_reviewed(pool) == 1
        accounts = AccountService(pool, AccountsConfig())
        await accounts.add_user("pat", Role.PRACTITIONER, organisation="ESCC")
        token, _ = await accounts.create_token("pat")
        known = await known_children(pool)
        assert len(known) == len(SAMPLE_CHILDREN) + 1
        assert [k.found_as for k in known if k.found_as] == [known[0].id]
        print(f"node search fuzz seed {SEED} (FUZZ_SEED={SEED} replays it)")
        report = await SearchFuzz(base, {"Authorization": f"Bearer {token}"}, known, SEED,
                                  NODE).run(ROUNDS)
    print(*report.lines(), sep="\n")
    assert report.problems == [], report.problems
    assert set(report.cases) == {f"node {e}" for e in ENDPOINTS}, report.cases
    # the fuzz reached the code behind every endpoint, not only its refusals
    for endpoint in ENDPOINTS:
        assert report.outcomes[f"node {endpoint} answered"] > 0, report.outcomes
    # and a merged child's old id, which redirects (checked: to the child it joined)
    for endpoint in ("api_child", "page_child"):
        assert report.outcomes[f"node {endpoint} redirected"] > 0, report.outcomes
    assert report.outcomes["node refused by the HTTP parser (over the line limit)"] > 0
    # a bearer token or session cookie that is not UTF-8 was a 500 (its digest and
    # comparisons encoded it as strict UTF-8): now unknown, 401 or the login page
    assert report.outcomes["node sent a credential that is not UTF-8"] > 0
    assert {"invalid_field", "not_found", "not_authenticated",
            "method_not_allowed"} <= report.seen, report.seen
    assert "fuzz cases tried: " + str(ROUNDS) + " (batch 0; node search " + str(ROUNDS) \
        in report.lines()[0], report.lines()[0]
