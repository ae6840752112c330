"""One child written by two councils' systems in ways blocking key scheme 2 never
brought together, through the real path: each node loads its health feed, publishes
to the hub over HTTP (signed batches), and the hub resolves. The child moved, and the
second council has the year of birth one out: under scheme 2 the two records shared no
blocking key, so the hub never compared them (each stood alone, nobody was asked).
Scheme 3 keys the surname without its particle and the Cyrillic names transliterated:
the hub compares the pair and, as its model decides for a mover whose year slipped,
puts it to review."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import DatabaseFactory
from tests.federation import running_hub, running_node

ESX, WSX = "E10000011", "E10000032"
HEADER = "source_ref,nhs_number,given_name,family_name,dob,sex,postcode\n"


async def test_a_child_spelt_otherwise_with_a_year_slip_across_councils_is_compared(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    feeds = {
        ESX: ["E1,,Amelia,O'Brien,2015-03-14,F,BN1 1AA", "E2,,Иван,Петров,2014-06-20,M,BN2 4AB"],
        WSX: ["W1,,Amelia,Brien,2016-03-14,F,RH10 1AA", "W2,,Ivan,Petrov,2013-06-20,M,RH11 7AB"],
    }
    async with running_hub(await make_database(), tmp_path) as hub:
        for code, rows in feeds.items():
            feed = tmp_path / f"{code}-health.csv"
            feed.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
            async with running_node(code, await make_database(), tmp_path, hub) as node:
                report = await node.ingest("health", feed)
                assert report.errors == [] and report.rows_loaded == 2, report.errors
                await node.publish()
        await hub.resolved()
        async with hub.pool.acquire() as conn:
            ids = {(r["council_code"], r["given_name"]): r["local_id"] for r in await conn.fetch(
                "SELECT council_code, local_id, given_name FROM records")}
            put = {frozenset({(r["council_a"], r["local_id_a"]), (r["council_b"], r["local_id_b"])})
                   for r in await conn.fetch(
                       "SELECT council_a, local_id_a, council_b, local_id_b FROM review_queue"
                       " WHERE status = 'open'")}
            national = {(r["council_code"], r["local_id"]): r["national_id"]
                        for r in await conn.fetch(
                            "SELECT council_code, local_id, national_id FROM records")}
    for esx_name, wsx_name in (("Amelia", "Amelia"), ("Иван", "Ivan")):
        esx, wsx = (ESX, ids[(ESX, esx_name)]), (WSX, ids[(WSX, wsx_name)])
        assert frozenset({esx, wsx}) in put or national[esx] == national[wsx], (
            f"{esx_name} at {ESX} and {wsx_name} at {WSX} were never compared")
