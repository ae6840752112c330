"""Incomplete rows (docs/architecture.md, the node's ingest): a feed row lacking a given
name, family name or date of birth, or with an invalid one, loads flagged incomplete
(``local-node ingest``, ``status``, ``index export``, the index team's child view), is
published with the field absent, held at the hub as NULL and linked there by its NHS
number only; and search, at the node and at the hub through HTTP, tolerates swapped
names, a birth year one digit off and a record lacking a field."""

from __future__ import annotations

import contextlib
import csv
import os
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from local_node.app import create_app
from server_common.accounts import Role
from tests.conftest import DatabaseFactory
from tests.federation import Hub, Node, running_hub, running_node
from tests.processes import script
from tests.server_common.accounts_helpers import bearer_headers

ESX, TFW = "E10000011", "E06000020"
NHS = "9434765919"
PURPOSE = "s47 enquiry"

HEALTH = "source_ref,nhs_number,given_name,family_name,dob,sex,address_line,postcode\n"


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, env=env, text=True, capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout
    return result


async def test_cli_loads_flags_and_exports_incomplete_rows(make_database: DatabaseFactory,
        tmp_path: Path) -> None:
    env = dict(os.environ) | {
        "LOCAL_NODE__DATABASE__URL": await make_database(),
        "LOCAL_NODE__COUNCIL__CODE": ESX,
        "LOCAL_NODE__COUNCIL__KEY_FILE": str(tmp_path / "key.pem"),
    }
    node = script("local-node")
    run([node, "db", "upgrade"], env)
    health = tmp_path / "health.csv"
    health.write_text(HEALTH +
                      f"H1,{NHS},,Okafor,2015-02-30,F,12 Church Road,BN7 2AA\n"
                      "H2,,Ben,Hale,,M,,BN7 2AA\n"
                      "H3,,,,,F,3 High Street,BN7 2AA\n"
                      "H4,9434765870,Cara,Smith,2014-05-06,F,,BN1 1AA\n", encoding="utf-8")
    result = run([node, "ingest", "--feed", "health", str(health)], env)
    # only the row with nothing to identify the child by is refused, with line and column
    assert "line 4, column given_name: no usable identifying field" in result.stderr
    assert "3 of 4 rows loaded, 1 rejected" in result.stdout
    assert "2 incomplete" in result.stdout

    status = run([node, "status"], env).stdout
    assert "children         3" in status
    assert "incomplete       2 (dob 2, given_name 1)" in status

    out = tmp_path / "index.csv"
    run([node, "index", "export", "--out", str(out)], env)
    rows = {r["source_ref"]: r for r in csv.DictReader(out.read_text().splitlines())}
    assert list(next(iter(rows.values()))) == ["local_id", "source", "source_ref", "incomplete",
                                              "model_version"]
    assert rows["H1"]["incomplete"] == "given_name: blank; dob: not a real date: '2015-02-30'"
    assert rows["H2"]["incomplete"] == "dob: blank"
    assert rows["H4"]["incomplete"] == ""

    # a less trusted source that has the missing fields completes the child (by NHS number)
    services = tmp_path / "services.csv"
    services.write_text(
        "source_ref,nhs_number,given_name,family_name,dob,sex,postcode,service_type\n"
        f"S1,{NHS},Amelia,Okafor,2015-03-14,F,BN7 2AA,early_help\n", encoding="utf-8")
    assert "0 children created, 1 updated" in run(
        [node, "ingest", "--feed", "services", str(services)], env).stdout
    run([node, "index", "export", "--out", str(out), "--overwrite"], env)
    rows = {r["source_ref"]: r for r in csv.DictReader(out.read_text().splitlines())}
    assert rows["S1"]["local_id"] == rows["H1"]["local_id"]
    assert rows["H1"]["incomplete"] == rows["S1"]["incomplete"] == ""
    assert "incomplete       1 (dob 1)" in run([node, "status"], env).stdout


# --- node → hub, and search at both ---------------------------------------------------

FEEDS = {
    ESX: HEALTH +
    # no given name, an impossible date of birth: linked at the hub by its NHS number
    f"H1,{NHS},,Okafor,2015-02-30,F,12 Church Road,BN7 2AA\n"
    # no given name: it must never link to the Hale at Telford on surname, DOB and home
    # alone (a twin would look the same); a person decides
    "H2,,,Hale,2019-11-02,M,4 Mill Lane,TF1 2AB\n"
    # no date of birth: search finds it by its names
    "H3,,Maddison,Taylor,,F,8 Station Road,BN7 3CD\n",
    TFW: HEALTH +
    f"H1,{NHS},Amelia,Okafor,2015-03-14,F,1 Wrekin Way,TF1 2AB\n"
    "H2,,Tom,Hale,2019-11-02,M,4 Mill Lane,TF1 2AB\n"
    # given and family names swapped in the council's own record
    "H3,,Grubb,Olivia,2016-05-07,F,9 Dale Road,TF2 9ZZ\n",
}


@contextlib.asynccontextmanager
async def federation(make_database: DatabaseFactory, tmp_path: Path
                     ) -> AsyncIterator[Fed]:
    async with contextlib.AsyncExitStack() as stack:
        hub = await stack.enter_async_context(running_hub(await make_database(), tmp_path))
        nodes = {}
        for code, text in FEEDS.items():
            node = await stack.enter_async_context(
                running_node(code, await make_database(), tmp_path, hub))
            path = tmp_path / f"{code}-health.csv"
            path.write_text(text, encoding="utf-8")
            report = await node.ingest("health", path)
            assert report.errors == [] and report.rows_loaded == 3
            published = await node.publish()
            assert published.records_rejected == 0
            nodes[code] = node
        await hub.resolved()
        yield hub, nodes


async def local_id(node: Node, source_ref: str) -> str:
    return str(await node.fetchval("SELECT local_id FROM source_records"
                                   " WHERE source = 'health' AND source_ref = $1", source_ref))


async def hub_record(hub: Hub, council: str, local: str) -> dict[str, Any]:
    async with hub.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT given_name, family_name, dob, nhs_number, national_id, link_status"
            " FROM records WHERE council_code = $1 AND local_id = $2", council, local)
    assert row is not None
    return dict(row)


async def get_json(base: str, path: str, headers: dict[str, str],
                   params: dict[str, str]) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(
            base + path, params={"purpose": PURPOSE, **params}, headers=headers) as resp:
        body = await resp.json()
        assert resp.status == 200, body
        return dict(body)


Fed = tuple[Hub, dict[str, Node]]  # the hub and each council's node


@pytest.fixture
async def fed(make_database: DatabaseFactory, tmp_path: Path
              ) -> AsyncIterator[Fed]:
    async with federation(make_database, tmp_path) as running:
        yield running


async def test_hub_holds_nulls_and_links_only_by_nhs_number(fed: tuple[Hub, dict[str,
        Node]]) -> None:
    hub, nodes = fed
    okafor_esx = await hub_record(hub, ESX, await local_id(nodes[ESX], "H1"))
    okafor_tfw = await hub_record(hub, TFW, await local_id(nodes[TFW], "H1"))
    assert (okafor_esx["given_name"], okafor_esx["dob"], okafor_esx["family_name"]) == (
        None, None, "Okafor")
    assert okafor_esx["national_id"] == okafor_tfw["national_id"] is not None
    # surname, date of birth and home in common, no given name: never linked by itself
    hale_esx = await hub_record(hub, ESX, await local_id(nodes[ESX], "H2"))
    hale_tfw = await hub_record(hub, TFW, await local_id(nodes[TFW], "H2"))
    assert hale_esx["given_name"] is None
    assert hale_esx["national_id"] != hale_tfw["national_id"]
    # at most a person decides: the pair is queued, and the review screen shows it
    assert hale_esx["link_status"] == "review"
    async with aiohttp.ClientSession() as http, http.get(
            hub.url + "/review", headers=await hub.as_role(Role.INDEX_TEAM, ESX)) as resp:
        page = await resp.text()
        assert resp.status == 200, page
    assert ">Hale<" in page and "2 November 2019" in page  # no given name: the surname alone


async def test_hub_search_tolerates_swaps_digits_and_absent_fields(fed: tuple[Hub, dict[str,
        Node]]) -> None:
    hub, nodes = fed
    headers = await hub.as_role(Role.PRACTITIONER)
    okafor = (await hub_record(hub, TFW, await local_id(nodes[TFW], "H1")))["national_id"]

    async def found(**params: str) -> list[dict[str, Any]]:
        return list((await get_json(hub.url, "/v1/search", headers, params))["results"])

    # the child whose own council's record has no given name or DOB, by the other's
    hits = await found(given_name="Amelia", family_name="Okafor", dob="2015-03-14")
    assert hits[0]["national_id"] == okafor
    # names swapped in the query; one digit of the year, of the day wrong
    for query in ({"given_name": "Okafor", "family_name": "Amelia", "dob": "2015-03-14"},
                  {"given_name": "Amelia", "family_name": "Okafor", "dob": "2016-03-14"},
                  {"given_name": "Amelia", "family_name": "Okafor", "dob": "2005-03-14"},
                  {"given_name": "Amelia", "family_name": "Okafor", "dob": "2015-03-19"}):
        assert [h["national_id"] for h in await found(**query)][:1] == [okafor], query
    # names swapped in the council's record; and with day and month swapped too
    for dob in ("2016-05-07", "2016-07-05"):
        grubb = await found(given_name="Olivia", family_name="Grubb", dob=dob)
        assert [(h["given_name"], h["family_name"]) for h in grubb] == [("Grubb", "Olivia")]
    # a record without a date of birth, by its names and any date
    taylor = await found(given_name="Maddison", family_name="Taylor", dob="2017-01-01")
    assert [(h["given_name"], h["dob"]) for h in taylor] == [("Maddison", None)]
    # and a record without a given name or DOB by its NHS number: the linked child
    assert [h["national_id"] for h in await found(nhs_number=NHS)] == [okafor]


async def test_node_search_and_index_team_view(fed: Fed) -> None:
    _, nodes = fed
    node = nodes[ESX]
    server = TestServer(create_app(node.config, publish=False), host="127.0.0.1")
    await server.start_server()
    try:
        base = str(server.make_url("")).rstrip("/")
        practitioner = await bearer_headers(node.pool, "pat", Role.PRACTITIONER)
        index_team = await bearer_headers(node.pool, "ian", Role.INDEX_TEAM, ESX)

        async def found(**params: str) -> list[str]:
            body = await get_json(base, "/v1/search", practitioner, params)
            return [h["local_id"] for h in body["results"]]

        okafor, taylor = await local_id(node, "H1"), await local_id(node, "H3")
        # the node's own record lacks the given name and DOB: found by its NHS number
        assert await found(nhs_number=NHS) == [okafor]
        # no date of birth, and the names swapped in the query: found by the names
        assert taylor in await found(given_name="Taylor", family_name="Maddison",
                                     dob="2016-01-01")
        view = await get_json(base, f"/v1/children/{okafor}", index_team, {})
        assert (view["given_name"], view["dob"], view["family_name"]) == (None, None, "Okafor")
        assert view["incomplete"] == "given_name: blank; dob: not a real date: '2015-02-30'"
        async with aiohttp.ClientSession() as http, http.get(
                f"{base}/children/{okafor}", params={"purpose": PURPOSE},
                headers=index_team) as resp:
            page = await resp.text()
            assert resp.status == 200, page
        assert "Incomplete: given_name: blank; dob: not a real date" in page
        born = re.search(r"Date of birth\s*</dt>\s*<dd[^>]*>\s*(.*?)\s*</dd>", page, re.S)
        assert born and born.group(1) == "Not known"
    finally:
        await server.close()
