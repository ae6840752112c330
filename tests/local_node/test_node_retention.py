"""What a purge at a council's node leaves behind (docs/design.md §3): nothing about the
purged child, through the practitioner API, the inbox, or the tables (the audit log's
ids and the outbox's versions apart)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

from local_node.app import create_app as create_node_app
from local_node.app import retention_service, review_service
from local_node.services.projection import Projector
from local_node.storage.children import ChildStore
from local_node.storage.outbox import OutboxStore
from server_common.accounts import Role
from tests.conftest import DatabaseFactory
from tests.federation import running_hub, running_node
from tests.local_node.test_node_notices import ESX, _feed
from tests.server_common.accounts_helpers import bearer_headers


async def test_a_child_merged_into_a_purged_one_is_purged_with_it(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """Izzy's education record was merged into Isabella's health record (one child).
    Isabella died at five; seven years on her record is purged. The absorbed record is
    the same child: it goes too, not back into the index as a child of its own with her
    name, birthday and old address, shown to whoever opens its local id."""
    async with running_hub(await make_database(), tmp_path) as hub, \
            running_node(ESX, await make_database(), tmp_path, hub) as node:
        await _feed(node, tmp_path, "education",
                    "source_ref,upn,given_name,family_name,dob,sex,postcode,address_line\n"
                    "E1,,Izzy,Okafor,2015-03-14,F,BN1 1AA,1 Sea Road\n")
        await _feed(node, tmp_path, "health",
                    "source_ref,nhs_number,given_name,family_name,dob,sex,postcode,"
                    "address_line\n"
                    "H1,9434765919,Isabella,Okafor,2015-03-14,F,TN2 2BB,9 Hill Street\n")
        (item,) = await review_service(node.pool).open_items()
        survivor = await review_service(node.pool).accept(item["id"], "tester")
        absorbed = ({item["local_id"], item["candidate_id"]} - {survivor}).pop()
        async with node.pool.acquire() as conn, conn.transaction():
            await conn.execute("UPDATE children SET date_of_death = '2020-06-30'"
                               " WHERE local_id = $1", survivor)
            await Projector(ChildStore(), OutboxStore()).publish_changes(conn, [survivor])
        await node.publish()

        report = await retention_service(node.pool, node.config).run(date(2027, 6, 30))
        assert survivor in report.purged and absorbed in report.purged
        for local_id in (survivor, absorbed):
            for table in ("children", "source_records", "involvements",
                          "child_blocking_keys", "review_items"):
                column = "local_id" if table != "review_items" else "candidate_id"
                assert await node.fetchval(
                    f"SELECT count(*) FROM {table} WHERE local_id = $1 OR {column} = $1",
                    local_id) == 0, (table, local_id)
        server = TestServer(create_node_app(node.config, publish=False), host="127.0.0.1")
        await server.start_server()
        try:
            olu = await bearer_headers(node.pool, "olu", Role.PRACTITIONER)
            async with aiohttp.ClientSession() as http, http.get(
                    str(server.make_url(f"/v1/children/{absorbed}")), headers=olu,
                    params={"purpose": "s47 enquiry"}) as resp:
                assert resp.status == 404
                assert "Okafor" not in await resp.text()
        finally:
            await server.close()
        await node.publish()
        assert await hub.fetchval("SELECT count(*) FROM records WHERE record IS NOT NULL") == 0

