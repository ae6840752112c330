"""The JSON answers a practitioner's or an index team's program reads show a stored name
as the pages do (protocol.hidden_text): a record stored before intake refused hidden
characters, or loaded by a node before feed loading removed them, cannot display as
another child's name in whatever program puts the answer in front of a person."""

from __future__ import annotations

import json
from pathlib import Path

from protocol import encoding
from protocol.records import ChildRecord
from server_common.accounts import Role
from tests.conftest import DatabaseFactory
from tests.security.surface import (
    ESX,
    HUB_QUERY,
    NODE_QUERY,
    PURPOSE,
    bearer,
    hub_with_child,
    node_with_child,
    send,
)

# "Okafor" then "rofakO" overridden right to left: it displays as "OkaforOkafor"
DISGUISED = "Okafor\u202erofakO"
SHOWN = "Okafor\ufffdrofakO"


async def test_the_hubs_search_and_child_answers_show_a_stored_override_plainly(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    async with hub_with_child(await make_database(), tmp_path) as (hub, _, national_id):
        async with hub.pool.acquire() as conn:
            stored = await conn.fetchval("SELECT record FROM records WHERE council_code = $1",
                                         ESX)
            record = ChildRecord.from_wire(encoding.unpack(stored))
            disguised = ChildRecord.from_wire({**record.to_wire(), "family_name": DISGUISED})
            await conn.execute(
                "UPDATE records SET record = $2, family_name = $3 WHERE council_code = $1",
                ESX, encoding.pack(disguised.to_wire()), DISGUISED)
        headers = await hub.as_role(Role.PRACTITIONER)
        status, found, _ = await send(hub.url, "GET", "/v1/search", headers=headers,
                                      params={**HUB_QUERY, "purpose": PURPOSE})
        assert status == 200, found
        assert "\u202e" not in json.dumps(found, ensure_ascii=False)
        assert [r["family_name"] for r in found["results"]] == [SHOWN]
        status, child, _ = await send(hub.url, "GET", f"/v1/children/{national_id}",
                                      headers=headers, params={"purpose": PURPOSE})
        assert status == 200, child
        assert "\u202e" not in json.dumps(child, ensure_ascii=False)
        assert child["family_name"] == SHOWN
        assert [c["family_name"] for c in child["councils"]] == [SHOWN]


async def test_the_nodes_search_and_child_answers_show_a_stored_override_plainly(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    async with node_with_child(await make_database(), tmp_path) as node:
        async with node.pool.acquire() as conn:
            await conn.execute("UPDATE children SET family_name = $1", "Reilly\u202eyellieR")
            await conn.execute("UPDATE involvements SET professional_name = $1",
                               "Dr \u2067Ali\u2069")
        status, found, _ = await send(node.base, "GET", "/v1/search",
                                      headers=bearer(node.token),
                                      params={**NODE_QUERY, "family_name": "Reilly",
                                              "purpose": PURPOSE})
        assert status == 200, found
        assert "\u202e" not in json.dumps(found, ensure_ascii=False)
        (hit,) = found["results"]
        assert hit["family_name"] == "Reilly\ufffdyellieR"
        status, child, _ = await send(node.base, "GET", f"/v1/children/{hit['local_id']}",
                                      headers=bearer(node.token),
                                      params={"purpose": PURPOSE})
        assert status == 200, child
        shown = json.dumps(child, ensure_ascii=False)
        assert "\u202e" not in shown and "\u2067" not in shown
        assert "Reilly\ufffdyellieR" in shown and "Dr \ufffdAli\ufffd" in shown
