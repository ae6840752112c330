"""Local matching through the bulk engine decides exactly as scoring pair by pair:
the same feeds loaded into two nodes, one scoring each chunk's candidate pairs in one
bulk call and one scoring every pair alone (``protocol.matching.score``), give the same
children, the same placements and the same review items, explanations included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

import synthetic
from local_node.app import PACKAGE
from local_node.services.container import NodeServices
from local_node.services.ingest import IngestReport
from tests.conftest import DatabaseFactory
from tests.hub_harness import upgrade

ESX = "E10000011"
FEEDS = ("education", "health", "services")


async def _load(make_database: DatabaseFactory, feeds: Path, *, bulk: bool,
                chunk_rows: int) -> tuple[dict[str, Any], list[IngestReport]]:
    url = await make_database()
    await upgrade(url, PACKAGE)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    assert pool is not None
    try:
        ingest = NodeServices(pool).ingest
        ingest.bulk_matching = bulk
        ingest.chunk_rows = chunk_rows
        reports = [await ingest.ingest_file(feed, feeds / ESX / f"{feed}.csv") for feed in FEEDS]
        children = await pool.fetch(
            "SELECT local_id, given_name, family_name, dob, sex, other_given_names,"
            " former_family_names, address_line, postcode, nhs_number, upn, merged_into,"
            " incomplete FROM children ORDER BY local_id")
        placed = await pool.fetch("SELECT source, source_ref, local_id, model_version"
                                  " FROM source_records ORDER BY source, source_ref")
        reviews = await pool.fetch("SELECT local_id, candidate_id, score,"
                                   " explanation::text AS explanation, model_version"
                                   " FROM review_items ORDER BY local_id, candidate_id")
    finally:
        await pool.close()
    return {"children": [dict(r) for r in children], "placed": [dict(r) for r in placed],
            "reviews": [dict(r, explanation=json.loads(r["explanation"])) for r in reviews],
            }, reports


@pytest.mark.parametrize(("seed", "chunk_rows"), [(31, 5000), (32, 61), (33, 7)])
async def test_bulk_scoring_places_every_row_as_pair_by_pair_scoring(
        make_database: DatabaseFactory, tmp_path: Path, seed: int, chunk_rows: int) -> None:
    # Typos, nicknames, swapped names, twins, incomplete rows: the generator's errors;
    # small chunks make earlier rows change the children later rows are compared with.
    population = synthetic.generate_population([ESX], 300, seed=seed)
    synthetic.write_feeds(population, tmp_path)
    bulk, bulk_reports = await _load(make_database, tmp_path, bulk=True, chunk_rows=chunk_rows)
    alone, alone_reports = await _load(make_database, tmp_path, bulk=False,
                                       chunk_rows=chunk_rows)

    assert bulk["placed"] == alone["placed"]
    assert bulk["children"] == alone["children"]
    assert bulk["reviews"] == alone["reviews"]
    # matching decided something: a link, or a pair left for review
    assert sum(r.matched_probabilistically + r.sent_to_review for r in bulk_reports) > 0
    # the placements matching decided, and every review item, name the model
    assert {p["model_version"] for p in bulk["placed"]} == {None, "signpost-default-1"}
    assert all(r["model_version"] == "signpost-default-1" for r in bulk["reviews"])
    # Both scored the same pairs: the reference alone, the bulk path almost all at once.
    scored = sum(r.pairs_scored for r in bulk_reports)
    assert scored == sum(r.pairs_scored for r in alone_reports) > 0
    assert sum(r.pairs_scored_alone for r in alone_reports) == scored
    assert sum(r.pairs_scored_alone for r in bulk_reports) < scored / 2
