"""Batch intake writes each record's blocking keys exactly, and rewrites none that an
update keeps: a record new to the hub has its keys copied in, an update or delete has
them synced."""

from __future__ import annotations

from dataclasses import replace

from protocol.batch import GENESIS, DeleteOp, UpsertOp
from protocol.matching import IdentityFields, blocking_keys
from protocol.records import ChildRecord, Involvement
from tests.hub_harness import Hub
from tests.national_hub.conftest import ESX
from tests.national_hub.helpers import Client, batch_bytes, key_tables_disagree, record


async def held_keys(hub: Hub, local_id: str) -> dict[str, str]:
    """key -> the row's physical place (a rewritten row moves)."""
    async with hub.pool.acquire() as conn:
        rows = await conn.fetch("SELECT key, ctid::text AS place FROM record_keys"
                                " WHERE council_code = $1 AND local_id = $2", ESX, local_id)
    return {r["key"]: r["place"] for r in rows}


def keys_of(rec: ChildRecord) -> set[str]:
    return set(blocking_keys(IdentityFields.from_record(rec)))


async def send(esx: Client, seq: int, prev: str, ops: list[UpsertOp | DeleteOp]) -> str:
    body, h = batch_bytes(ESX, seq, prev, ops, esx.key)
    status, data, _ = await esx.send(body)
    assert status == 200, data
    return h


async def test_updates_keep_unchanged_keys_and_replace_changed_ones(hub: Hub,
                                                                    esx: Client) -> None:
    a1, a2, a3 = record("A1"), record("A2", nhs=None), record("A3", nhs=None)
    h = await send(esx, 1, GENESIS, [UpsertOp.of(r, 1) for r in (a1, a2, a3)])
    first = await held_keys(hub, "A1")
    assert set(first) == keys_of(a1)
    assert set(await held_keys(hub, "A2")) == keys_of(a2)

    # A1: a new involvement only; A2: a new surname and postcode; A3 deleted.
    a1_next = replace(a1, involvements=(*a1.involvements, Involvement(
        service_type="gp", organisation_code="M82001")))
    a2_next = replace(a2, family_name="Okonkwo-Reilly", postcode="TF1 2AB")
    h = await send(esx, 2, h, [UpsertOp.of(a1_next, 2), UpsertOp.of(a2_next, 2),
                               DeleteOp("A3", 2)])
    assert await held_keys(hub, "A1") == first  # not one key row rewritten
    assert set(await held_keys(hub, "A2")) == keys_of(a2_next) != keys_of(a2)
    assert await held_keys(hub, "A3") == {}
    async with hub.pool.acquire() as conn:  # A3's row of record_key_sets went with them
        assert await key_tables_disagree(conn) == []

    # A record deleted and then sent again gets its keys back.
    await send(esx, 3, h, [UpsertOp.of(a3, 3)])
    assert set(await held_keys(hub, "A3")) == keys_of(a3)
    async with hub.pool.acquire() as conn:  # each record's row lists exactly these
        assert await key_tables_disagree(conn) == []
