"""Searches and child views read from a real PostgreSQL streaming replica
(``database.read_url``) while every write — batches, resolution, the audit entry each
search writes first — goes to the primary. Shown by pausing the replica's replay: a
child published meanwhile is held (and resolved) at the primary but not yet found;
once replay resumes, it is."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp

from protocol import keys
from protocol.batch import GENESIS, UpsertOp
from server_common.accounts import Role
from tests.hub_harness import Hub, running_hub
from tests.national_hub.helpers import Client, batch_bytes, record
from tests.replica import replicated_database

ESX = "E10000011"
AMELIA = {"given_name": "Amelia", "family_name": "Okafor", "dob": "2015-03-14"}
ZARA = {"given_name": "Zara", "family_name": "Quinlan", "dob": "2014-09-02"}


async def search(hub: Hub, **params: str) -> list[dict[str, Any]]:
    headers = await hub.as_role(Role.PRACTITIONER)
    async with aiohttp.ClientSession(headers=headers) as http, http.get(
            hub.url + "/v1/search", params={**params, "purpose": "s47 enquiry"}) as resp:
        assert resp.status == 200, await resp.text()
        return list((await resp.json())["results"])


async def until_resolved(hub: Hub, local_id: str) -> None:
    """Until the primary has given the record a national id (resolution may run in the
    background)."""
    async with asyncio.timeout(30):
        while True:
            if await hub.fetchval(
                    "SELECT national_id IS NOT NULL FROM records WHERE local_id = $1", local_id):
                return
            await asyncio.sleep(0.05)


async def test_searches_read_the_replica_and_write_the_primary(tmp_path: Path) -> None:
    async with replicated_database("hub") as db, \
            running_hub(db.primary_url, tmp_path, read_url=db.replica_url) as hub:
        assert await hub.fetchval("SELECT pg_is_in_recovery()") is False
        key = keys.generate()
        await hub.enrol(ESX, keys.public_pem(key.public_key()))
        esx = Client(hub, ESX, key)
        body, h1 = batch_bytes(ESX, 1, GENESIS, [UpsertOp.of(record("A1"), 1)], key)
        assert (await esx.send(body))[0] == 200
        await until_resolved(hub, "A1")
        await db.wait_caught_up()
        assert [r["given_name"] for r in await search(hub, **AMELIA)] == ["Amelia"]

        await db.pause_replay(True)
        zara = replace(record("Z1", nhs=None), given_name="Zara", family_name="Quinlan",
                       dob=date(2014, 9, 2), postcode="TN34 1AA")
        body, _ = batch_bytes(ESX, 2, h1, [UpsertOp.of(zara, 1)], key)
        assert (await esx.send(body))[0] == 200
        await until_resolved(hub, "Z1")  # held and resolved at the primary…
        audited = await hub.fetchval("SELECT count(*) FROM audit_log")
        assert await search(hub, **ZARA) == []  # …but the replica has not replayed it
        # the search's audit entry was written (to the primary: the replica is read-only)
        assert await hub.fetchval("SELECT count(*) FROM audit_log") == audited + 1

        await db.pause_replay(False)
        await db.wait_caught_up()
        assert [r["family_name"] for r in await search(hub, **ZARA)] == ["Quinlan"]
