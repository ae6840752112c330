"""Shielding belongs to the child *at every node*, not only at the hub (docs/security.md).

ContactPoint's 2009 leak, across councils: East Sussex shields a child (it moved there
to be safe); Telford still holds the child's old GP record, unshielded, in its own
index. The hub links the two by NHS number and marks Telford's record. Before, a
Telford practitioner searching Telford's own node by date of birth and postcode found
the record and saw its address and GP. Now Telford's node learns from the hub, after a
heartbeat, which of its children another council shields (``GET
/v1/councils/{code}/shielded``), and withholds them as it withholds its own — without
being told which council shields them.

Real processes' parts throughout: two nodes' databases and publishers, real HTTP and
Ed25519 to a real hub, each node's own practitioner app.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from local_node.app import create_app as create_node_app
from local_node.transport import connect
from protocol import encoding, keys
from server_common.accounts import Role
from tests.conftest import DatabaseFactory
from tests.federation import Hub, Node, running_hub, running_node
from tests.leaks import shows
from tests.server_common.accounts_helpers import bearer_headers

ESX, TFW = "E10000011", "E06000020"
PURPOSE = "s47 enquiry"
NHS = "9434765919"
SHIELDED_FEED = (
    "source_ref,nhs_number,given_name,family_name,dob,sex,postcode,service_type,"
    "service_name,professional_name,professional_phone,sensitive,consent,shielded\n"
    f"S1,{NHS},Zara,Hall,2012-11-20,F,BN9 9ZZ,social_care,Children's Social Care,"
    "Dana Smith,01273 000001,N,,Y\n")
# Telford's unshielded record of the same child: what the attacker is after.
OLD_GP_FEED = (
    "source_ref,nhs_number,given_name,family_name,dob,sex,address_line,postcode,"
    "gp_ods_code,gp_name,gp_phone\n"
    f"H1,{NHS},Zara,Hall,2012-11-20,F,7 Dale Road,TF1 2AB,M83001,Dale Road Surgery,"
    "01952 222222\n"
    "H2,9434765013,Oliver,Smith,2012-11-20,M,9 Dale Road,TF1 2AB,M83001,"
    "Dale Road Surgery,01952 222222\n")
SECRETS = ("7 Dale Road", "TF1 2AB", "TF1", "Dale Road Surgery", "01952")


async def _feed(node: Node, tmp_path: Path, feed: str, text: str) -> None:
    path = tmp_path / f"{node.code}-{feed}.csv"
    path.write_text(text, encoding="utf-8")
    report = await node.ingest(feed, path)
    assert report.errors == [], report.errors


async def _get(base: str, path: str, headers: dict[str, str],
               params: dict[str, str]) -> Any:
    async with aiohttp.ClientSession() as http, http.get(
            base + path, headers=headers, params=params) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


@contextlib.asynccontextmanager
async def _shielded_here_held_there(make_database: DatabaseFactory, tmp_path: Path
                                    ) -> AsyncIterator[tuple[Hub, Node, Node, str]]:
    """East Sussex shields Zara; Telford's node holds her from an old GP feed. Both
    published and resolved: the hub, both nodes and Telford's local id for her."""
    async with running_hub(await make_database(), tmp_path) as hub, \
            running_node(ESX, await make_database(), tmp_path, hub) as esx, \
            running_node(TFW, await make_database(), tmp_path, hub) as tfw:
        await _feed(esx, tmp_path, "services", SHIELDED_FEED)
        await _feed(tfw, tmp_path, "health", OLD_GP_FEED)
        await esx.publish()
        await tfw.publish()
        await hub.resolved()
        yield hub, esx, tfw, await tfw.fetchval(
            "SELECT local_id FROM children WHERE nhs_number = $1", NHS)


async def test_a_child_shielded_at_another_council_is_withheld_at_this_node(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    async with _shielded_here_held_there(make_database, tmp_path) as (_, esx, tfw, copy):
        bystander = await tfw.fetchval("SELECT local_id FROM children WHERE nhs_number <> $1",
                                       NHS)

        # The hub answers Telford with its own local id, and says nothing of who shields.
        async with connect(tfw.config.hub, TFW, _key(tfw)) as client:
            raw = await client._send("GET", f"/v1/councils/{TFW}/shielded")
        assert encoding.unpack(raw, what="test") == {"local_ids": [copy], "next": None}
        assert ESX.encode() not in raw and b"East Sussex" not in raw
        # ...and nobody else's: East Sussex's own shielded record is its own business
        async with connect(esx.config.hub, ESX, _key(esx)) as client:
            raw = await client._send("GET", f"/v1/councils/{ESX}/shielded")
        assert encoding.unpack(raw, what="test") == {"local_ids": [], "next": None}

        await tfw.publish()  # its heartbeat: Telford's node learns
        assert await tfw.fetchval("SELECT via FROM shield_marks WHERE local_id = $1",
                                  copy) == "hub"
        assert await tfw.fetchval("SELECT count(*) FROM shield_marks") == 1

        server = TestServer(create_node_app(tfw.config, publish=False), host="127.0.0.1")
        await server.start_server()
        base = str(server.make_url("")).rstrip("/")
        try:
            practitioner = await bearer_headers(tfw.pool, "tia", Role.PRACTITIONER)
            by_place = await _get(base, "/v1/search", practitioner, {
                "dob": "2012-11-20", "postcode": "TF1 2AB", "purpose": PURPOSE})
            # the bystander living there is found; the shielded child is not
            assert [h["local_id"] for h in by_place["results"]] == [bystander]
            by_name = await _get(base, "/v1/search", practitioner, {
                "given_name": "Zara", "family_name": "Hall", "dob": "2012-11-20",
                "purpose": PURPOSE})
            assert [h["local_id"] for h in by_name["results"]] == [copy]
            assert by_name["results"][0]["shielded"] is True
            assert by_name["results"][0]["postcode_district"] is None
            view = await _get(base, f"/v1/children/{copy}", practitioner, {"purpose": PURPOSE})
            text = json.dumps(view)
            assert view["withheld"] is True
            assert not any(shows(text, secret) for secret in SECRETS), text
            assert ESX not in text and "East Sussex" not in text
            # Telford's own index team still sees its own record, marked shielded
            team = await bearer_headers(tfw.pool, "ian", Role.INDEX_TEAM, TFW)
            full = await _get(base, f"/v1/children/{copy}", team, {"purpose": PURPOSE})
            assert full["shielded"] is True and full["postcode"] == "TF1 2AB"
        finally:
            await server.close()


def _key(node: Node) -> Ed25519PrivateKey:
    return keys.load_private_key(node.config.key_file)


async def test_learning_from_the_hub_does_not_make_this_council_a_shielding_one(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """Telford's node learns that East Sussex shields its child and publishes its record
    shielded (so the hub withholds its location even unpaired). That must not make
    Telford one of the councils that shield the child: the hub names shielding councils
    to every reader (whom to contact) and lets their index teams see every council that
    knows the child. Before, after one heartbeat a practitioner was told to contact
    Telford too (so that Telford knows the child), and Telford's index team saw East
    Sussex's record with its local id and update time, as only a shielding council may."""
    async with _shielded_here_held_there(make_database, tmp_path) as (hub, _, tfw, copy):
        await tfw.publish()  # its heartbeat: Telford's node learns, and queues the copy
        await tfw.publish()  # ...which goes to the hub, shielded
        await hub.resolved()
        sent = await hub.fetchval("SELECT shielded FROM records WHERE council_code = $1"
                                  " AND local_id = $2", TFW, copy)
        assert sent is True  # the hub withholds its location whatever it pairs it with

        practitioner = await hub.as_role(Role.PRACTITIONER)
        found = await _get(hub.url, "/v1/search", practitioner, {
            "given_name": "Zara", "family_name": "Hall", "dob": "2012-11-20",
            "purpose": PURPOSE})
        (hit,) = found["results"]
        assert hit["shielded"] is True and hit["councils"] == []
        assert [c["council"] for c in hit["contact"]] == [ESX], hit
        view = await _get(hub.url, f"/v1/children/{hit['national_id']}", practitioner,
                          {"purpose": PURPOSE})
        assert [c["council"] for c in view["contact"]] == [ESX], view
        assert not shows(json.dumps(view), TFW)

        telford = await hub.as_role(Role.INDEX_TEAM, TFW)
        own = await _get(hub.url, f"/v1/children/{hit['national_id']}", telford,
                         {"purpose": PURPOSE})
        assert [c["council"] for c in own["councils"]] == [TFW], own
        assert own["withheld"] is True
