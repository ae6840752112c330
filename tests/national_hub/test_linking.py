"""National ids at the foundation: the same valid NHS number links records across
councils; a change that breaks the match splits them; a delete releases a partner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from protocol import keys
from protocol.batch import GENESIS, DeleteOp, Op, UpsertOp
from tests.conftest import DatabaseFactory
from tests.hub_harness import Hub, running_hub
from tests.national_hub.helpers import Client, batch_bytes, record

ESX, WSX = "E10000011", "E10000032"
GIVEN = ("Amelia", "Noah", "Zara", "Oliver", "Freya", "Arlo", "Isla", "Kofi", "Maya", "Theo")
FAMILY = ("Okafor", "Nowak", "Patel", "Jones", "Murphy")


class Council:
    def __init__(self, hub: Hub, code: str) -> None:
        self.key = keys.generate()
        self.client = Client(hub, code, self.key)
        self.code, self.prev, self.seq = code, GENESIS, 0

    async def send(self, *ops: Op) -> None:
        self.seq += 1
        body, self.prev = batch_bytes(self.code, self.seq, self.prev, list(ops), self.key)
        status, data, _ = await self.client.send(body)
        assert status == 200, data
        await self.client.hub.resolved()


async def links(hub: Hub) -> dict[tuple[str, str], tuple[str, str]]:
    async with hub.pool.acquire() as conn:
        rows = await conn.fetch("SELECT council_code, local_id, national_id, link_status"
                                " FROM records WHERE record IS NOT NULL")
    return {(r[0], r[1]): (r[2], r[3]) for r in rows}


Federation = tuple[Hub, Council, Council]  # a hub and two councils publishing to it


@pytest.fixture
async def federation(make_database: DatabaseFactory, tmp_path: Path
                     ) -> AsyncIterator[Federation]:
    async with running_hub(await make_database(), tmp_path) as hub:
        esx, wsx = Council(hub, ESX), Council(hub, WSX)
        for council in (esx, wsx):
            await hub.enrol(council.code, keys.public_pem(council.key.public_key()))
        yield hub, esx, wsx


async def test_same_nhs_links_then_change_splits_then_delete_releases(
        federation: Federation) -> None:
    hub, esx, wsx = federation
    await esx.send(UpsertOp.of(record("A1", nhs="9434765919"), 1),
                   UpsertOp.of(replace(record("A2", nhs=None), given_name="Noah",
                                       dob=date(2012, 7, 1)), 1))  # another child
    await wsx.send(UpsertOp.of(record("B1", nhs="9434765919"), 1))
    state = await links(hub)
    assert state[(ESX, "A1")][0] == state[(WSX, "B1")][0]
    assert state[(ESX, "A1")][1] == state[(WSX, "B1")][1] == "linked"
    assert state[(ESX, "A2")][1] == "single"
    shared_id = state[(ESX, "A1")][0]

    # a corrected NHS number no longer matches: the record splits off, ids stay stable
    await wsx.send(UpsertOp.of(record("B1", nhs="4010232137"), 2))
    state = await links(hub)
    assert state[(ESX, "A1")] == (shared_id, "single")
    assert state[(WSX, "B1")][0] != shared_id and state[(WSX, "B1")][1] == "single"

    # and corrected back, it merges again into the surviving id
    await wsx.send(UpsertOp.of(record("B1", nhs="9434765919"), 3))
    state = await links(hub)
    assert state[(WSX, "B1")] == (shared_id, "linked")

    # deleting one side leaves the other single
    await esx.send(DeleteOp("A1", 2))
    state = await links(hub)
    assert (ESX, "A1") not in state
    assert state[(WSX, "B1")] == (shared_id, "single")


async def test_national_ids_are_never_reused(federation: Federation) -> None:
    hub, esx, _ = federation
    # fifty different children: before probabilistic resolution these were fifty copies
    # of one child without an NHS number, which the resolver now (rightly) links
    await esx.send(*[UpsertOp.of(replace(
        record(f"C{i}", nhs=None), given_name=GIVEN[i % 10], family_name=FAMILY[i // 10],
        dob=date(2008 + i % 10, 1 + i // 10, 1 + i % 28)), 1) for i in range(50)])
    ids = {nid for nid, _ in (await links(hub)).values()}
    assert len(ids) == 50
    assert await hub.fetchval("SELECT count(*) FROM national_children") == 50
