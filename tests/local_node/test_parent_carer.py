"""Parent/carer name and phone: optional columns of the health and education
feeds, validated row by row, loaded by ``local-node ingest``, published in the record's
``parent_carer_*`` fields and shown on the child page at the node and at the hub;
withheld with the location of a shielded child."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from local_node.app import create_app
from local_node.feeds import parse_feed_text
from server_common.accounts import Role
from tests.federation import Hub, Node, running_hub, running_node
from tests.processes import script
from tests.server_common.accounts_helpers import bearer_headers

ESX = "E10000011"
PURPOSE = {"purpose": "s47 enquiry"}
HEALTH = ("source_ref,nhs_number,given_name,family_name,dob,sex,postcode,"
          "parent_carer_name,parent_carer_phone\n"
          "H1,9434765870,Amelia,Okafor,2015-03-14,F,BN7 1AA,Grace Okafor,07700 900123\n"
          "H2,9434765919,Ben,Hale,2016-01-02,M,BN7 2AA,Tom Hale,call mum\n"
          "H3,,Cara,Smith,2014-05-06,F,BN7 3AA,,\n"
          "H4,,Dev,Shah,2017-07-08,M,BN1 1AA,Asha Shah,01273 400500\n")
# a later education row changes Amelia's carer: name and phone come together from it
EDUCATION = ("source_ref,given_name,family_name,dob,postcode,parent_carer_name,"
             "parent_carer_phone\n"
             "E1,Amelia,Okafor,2015-03-14,BN7 1AA,Joy Okafor,07700 900456\n")
# Dev is shielded by children's services
SERVICES = ("source_ref,given_name,family_name,dob,postcode,service_type,shielded\n"
            "S1,Dev,Shah,2017-07-08,BN1 1AA,social_care,yes\n")


def test_parser_validates_the_carer_columns() -> None:
    result = parse_feed_text("health", HEALTH.splitlines(keepends=True))
    assert [str(e) for e in result.errors] == [
        "line 3, column parent_carer_phone: not a phone number: 'call mum'"]
    carers = {r.source_ref: (r.identity.parent_carer_name, r.identity.parent_carer_phone)
              for r in result.rows}
    assert carers == {"H1": ("Grace Okafor", "07700 900123"), "H3": (None, None),
                      "H4": ("Asha Shah", "01273 400500")}
    long_name = parse_feed_text("education", [
        "source_ref,given_name,family_name,dob,parent_carer_name\n",
        f"E1,Ann,Lee,2015-01-01,{'x' * 101}\n"])
    assert [(e.line, e.column) for e in long_name.errors] == [(2, "parent_carer_name")]


def ingest(node: Node, feed: str, text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"{feed}.csv"
    path.write_text(text, encoding="utf-8")
    env = dict(os.environ) | {"LOCAL_NODE__DATABASE__URL": str(node.config.database.url),
                              "LOCAL_NODE__COUNCIL__CODE": ESX,
                              "LOCAL_NODE__COUNCIL__KEY_FILE": str(node.config.key_file)}
    return subprocess.run([script("local-node"), "ingest", "--feed", feed, str(path)],
                          env=env, text=True, capture_output=True, timeout=120)


async def page(base: str, path: str, headers: dict[str, str]) -> str:
    async with aiohttp.ClientSession() as http, http.get(
            base + path, params=PURPOSE, headers=headers) as resp:
        text = await resp.text()
        assert resp.status == 200, text
        return text


def carer(html: str) -> str | None:
    """What the child page's "Parent or carer" row says, or None without the row."""
    found = re.search(r"Parent or carer\s*</dt>\s*<dd[^>]*>\s*(.*?)\s*</dd>", html, re.S)
    return found.group(1) if found else None


async def national_id(hub: Hub, local_id: str) -> str:
    async with hub.pool.acquire() as conn:
        return str(await conn.fetchval(
            "SELECT national_id FROM records WHERE council_code = $1 AND local_id = $2",
            ESX, local_id))


async def test_carer_goes_from_the_feed_to_both_child_pages(make_database: Any,
                                                            tmp_path: Path) -> None:
    async with running_hub(await make_database(), tmp_path) as hub, \
            running_node(ESX, await make_database(), tmp_path, hub) as node:
        health = ingest(node, "health", HEALTH, tmp_path)
        assert health.returncode == 0, health.stderr
        assert "line 3, column parent_carer_phone: not a phone number" in health.stderr
        assert "3 of 4 rows loaded, 1 rejected" in health.stdout
        for feed, text in (("education", EDUCATION), ("services", SERVICES)):
            loaded = ingest(node, feed, text, tmp_path)
            assert loaded.returncode == 0 and "1 of 1 rows loaded" in loaded.stdout, loaded
        assert (await node.publish()).records_rejected == 0
        await hub.resolved()

        amelia, cara, dev = [str(await node.fetchval(
            "SELECT local_id FROM source_records WHERE source = 'health' AND source_ref = $1",
            ref)) for ref in ("H1", "H3", "H4")]
        practitioner = await hub.as_role(Role.PRACTITIONER)
        shown = await page(hub.url, f"/children/{await national_id(hub, amelia)}",
                           practitioner)
        assert carer(shown) == "Joy Okafor 07700 900456"
        assert "Grace Okafor" not in shown  # the older row's carer gave way, name and phone
        assert carer(await page(
            hub.url, f"/children/{await national_id(hub, cara)}", practitioner)) == "Not recorded"
        # shielded: the carer is contact data, withheld from practitioners at the hub
        hidden = await page(hub.url, f"/children/{await national_id(hub, dev)}", practitioner)
        assert "shielded" in hidden and "Asha Shah" not in hidden and "01273 400500" not in hidden

        server = TestServer(create_app(node.config, publish=False), host="127.0.0.1")
        await server.start_server()
        try:
            base = str(server.make_url("")).rstrip("/")
            pat = await bearer_headers(node.pool, "pat", Role.PRACTITIONER)
            ian = await bearer_headers(node.pool, "ian", Role.INDEX_TEAM, ESX)
            assert carer(await page(base, f"/children/{amelia}", pat)) == \
                "Joy Okafor 07700 900456"
            withheld = await page(base, f"/children/{dev}", pat)
            assert "Asha Shah" not in withheld and "01273 400500" not in withheld
            # the council's own index team sees the shielded child's carer
            assert carer(await page(base, f"/children/{dev}", ian)) == "Asha Shah 01273 400500"
        finally:
            await server.close()
