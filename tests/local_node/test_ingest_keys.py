"""Ingest writes only the blocking keys a chunk changed (and fetches key candidates only
for rows nothing certain places): after loads that move, rename and add children, each
child's keys in the index are exactly the keys of who it now is, and a row with a
misspelt name and no identifier still finds its child through those keys (here as
an uncertain pair on the review list)."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from local_node.app import PACKAGE, ingest_service
from local_node.services.ingest import child_fields
from local_node.storage.children import ChildStore
from protocol.matching import blocking_keys
from tests.conftest import DatabaseFactory
from tests.hub_harness import upgrade

HEADER = "source_ref,nhs_number,given_name,family_name,dob,sex,address_line,postcode\n"
FIRST = (HEADER +
         "H1,9434765870,Amelia,Okafor,2015-03-14,F,12 Church Lane,BN7 1AA\n"
         "H2,9434765919,Ben,Hale,2016-01-02,M,4 Mill Lane,BN7 2AA\n"
         "H3,,Cara,Smith,2014-05-06,F,8 Station Road,BN7 3CD\n")
# Amelia moves to Telford; Ben's row now spells his name Benjamin; a new child.
SECOND = (HEADER +
          "H1,9434765870,Amelia,Okafor,2015-03-14,F,1 Wrekin Way,TF1 2AB\n"
          "H2,9434765919,Benjamin,Hale,2016-01-02,M,4 Mill Lane,BN7 2AA\n"
          "H4,,Dev,Shah,2017-07-08,M,9 Dale Road,BN1 1AA\n")
# Another system's row for Cara: a typo in her given name, no identifier.
SERVICES = ("source_ref,given_name,family_name,dob,sex,postcode,service_type\n"
            "S1,Kara,Smith,2014-05-06,F,BN7 3CD,early_help\n")


async def keys_by_child(conn: asyncpg.Connection) -> dict[str, set[str]]:
    held: dict[str, set[str]] = {}
    for r in await conn.fetch("SELECT key, local_id FROM child_blocking_keys"):
        held.setdefault(r["local_id"], set()).add(r["key"])
    return held


async def test_keys_follow_each_child_through_later_loads(make_database: DatabaseFactory,
                                                          tmp_path: Path) -> None:
    url = await make_database()
    await upgrade(url, PACKAGE)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        service = ingest_service(pool)
        for name, feed, text in (("first", "health", FIRST), ("second", "health", SECOND),
                                 ("services", "services", SERVICES)):
            path = tmp_path / f"{name}.csv"
            path.write_text(text, encoding="utf-8")
            report = await service.ingest_file(feed, path)
            assert report.errors == [], report.errors
        async with pool.acquire() as conn:
            children = await ChildStore().get_many(conn, [
                r["local_id"] for r in await conn.fetch("SELECT local_id FROM children")])
            held = await keys_by_child(conn)
            refs = {(r["source"], r["source_ref"]): r["local_id"] for r in await conn.fetch(
                "SELECT source, source_ref, local_id FROM source_records")}
            pairs = {(r["local_id"], r["candidate_id"]) for r in await conn.fetch(
                "SELECT local_id, candidate_id FROM review_items")}
        assert len(children) == 5  # Amelia, Ben, Cara, Dev, and Kara who may be Cara
        for child in children:
            assert held[child.local_id] == set(blocking_keys(child_fields(child))), child
        amelia = next(c for c in children if c.family_name == "Okafor")
        assert amelia.postcode == "TF1 2AB"
        assert not any("BN7" in key for key in held[amelia.local_id])  # the old home's gone
        assert {c.given_name for c in children} == {"Amelia", "Benjamin", "Cara", "Dev", "Kara"}
        # the misspelt row found Cara by her keys: a person decides whether it is her
        assert pairs == {(refs[("services", "S1")], refs[("health", "H3")])}
    finally:
        await pool.close()


async def test_each_chunk_is_ingested_with_the_cyclic_collector_paused(
        make_database: DatabaseFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk's objects are freed by reference counting; the collector rescanning every
    child and row held so far was a sixth of a load's CPU or more. It runs again after each chunk,
    a failed one too, and the chunk's rows are still loaded as before."""
    url = await make_database()
    await upgrade(url, PACKAGE)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        service = ingest_service(pool)
        service.chunk_rows = 2  # the three rows in two chunks
        path = tmp_path / "first.csv"
        path.write_text(FIRST, encoding="utf-8")
        ingest_chunk, collector_ran = service._ingest_chunk, []

        async def failing(*args: Any, **kwargs: Any) -> None:
            collector_ran.append(gc.isenabled())
            raise RuntimeError("the database went away")

        monkeypatch.setattr(service, "_ingest_chunk", failing)
        with pytest.raises(RuntimeError):
            await service.ingest_file("health", path)
        assert collector_ran == [False] and gc.isenabled()

        async def watched(*args: Any, **kwargs: Any) -> None:
            collector_ran.append(gc.isenabled())
            await ingest_chunk(*args, **kwargs)

        monkeypatch.setattr(service, "_ingest_chunk", watched)
        report = await service.ingest_file("health", path)
        assert (report.rows_loaded, report.children_created) == (3, 3)
        assert collector_ran == [False, False, False] and gc.isenabled()
    finally:
        await pool.close()
