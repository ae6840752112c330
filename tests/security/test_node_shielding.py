"""Shielding at a node (docs/security.md), as an attacker with a practitioner's login at a council's
node would try them: through the node's real HTTP app, its real PostgreSQL and its
real feed ingest (the ``local-node ingest`` code path) — and once more against
``local-node serve`` running as a process, fed by the ``local-node ingest`` command.

A child is shielded in the council's services feed. The same child's school (or GP)
record, from another feed, sits apart from it in the node's index: local matching put
the pair on the review list (still open), or the index team merged them, or separated
them, or the two share an NHS number. Before the fix a practitioner found the school
record by date of birth and postcode, or by given name and postcode, and its view
showed the address, school and GP. Now: nothing is found through where the child
lives, a search by name and date of birth finds it with no location, its view
withholds every location field and names whom to contact; the council's index team
sees everything, with a clear shielded notice. And nobody else learns that a
sensitive service exists.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from local_node.app import PACKAGE, ingest_service, retention_service, review_service
from protocol import encoding
from server_common.accounts import Role
from tests.conftest import DatabaseFactory
from tests.federation import node_config
from tests.hub_harness import upgrade
from tests.leaks import shows
from tests.local_node.test_practitioner_api import running
from tests.processes import Process, free_port, script, wait_ready
from tests.server_common.accounts_helpers import bearer_headers

ESX = "E10000011"
PURPOSE = "s47 enquiry"

# Loaded first, so these are the older children (a merge keeps the older one).
EDUCATION = (
    "source_ref,upn,given_name,family_name,dob,sex,address_line,postcode,school_urn,"
    "school_name,school_phone\n"
    "E1,B801200005001,Maya,Fenwick,2014-06-02,F,12 Elm Road,TN22 1AA,114580,"
    "Uckfield Primary,01825 111111\n"
    "E2,Q801200005002,Leo,Marsh,2016-01-10,M,3 Mill Lane,TN22 1AB,114581,"
    "Framfield Primary,01825 222222\n"
    "E3,E801200005003,Ruby,Cole,2013-09-09,F,7 Oak Close,TN22 1AD,114582,"
    "Buxted Primary,01825 333333\n"
)
# The shielded records: the address a child was moved to, and the services involved.
SERVICES = (
    "source_ref,nhs_number,given_name,family_name,dob,sex,postcode,service_type,"
    "service_name,professional_name,professional_phone,sensitive,consent,shielded\n"
    "S1,,Mya,Fenwick,2014-06-02,F,BN1 1AA,social_care,Children's Social Care,"
    "Dana Smith,01273 000001,N,,Y\n"
    "S2,,Leon,Marsh,2016-01-10,M,BN2 3CD,social_care,Children's Social Care,"
    "Dana Smith,01273 000001,N,,Y\n"
    "S3,,Rubi,Cole,2013-09-09,F,BN3 4EF,social_care,Children's Social Care,"
    "Dana Smith,01273 000001,N,,Y\n"
    "S5,9434765919,Zara,Hall,2012-11-20,F,BN9 9ZZ,social_care,Children's Social Care,"
    "Dana Smith,01273 000001,N,,Y\n"
)
HEALTH = ("source_ref,nhs_number,given_name,family_name,dob,sex,address_line,postcode,"
          "gp_ods_code,gp_name,gp_phone\n"
          "H5,{nhs},Zara,Hill,2012-02-20,F,1 Sea Lane,TN22 9ZZ,G81001,Sea Lane Surgery,"
          "01273 222222\n")


@dataclass(frozen=True)
class Copy:
    """The unshielded record of a shielded child: what the attacker is after."""

    local_id: str
    given_name: str
    family_name: str
    dob: str
    postcode: str
    address: str
    pointer: str  # its school or GP


@dataclass
class Node:
    base: str
    pool: asyncpg.Pool
    practitioner: dict[str, str]
    index_team: dict[str, str]
    other_team: dict[str, str]  # another council's index team: refused outright at this node
    cli_env: dict[str, str] | None = None  # feeds through the ``local-node ingest`` command


async def _ingest(node: Node, tmp_path: Path, feed: str, text: str) -> None:
    path = tmp_path / f"{feed}.csv"
    path.write_text(text, encoding="utf-8")
    if node.cli_env is not None:
        done = await asyncio.to_thread(
            subprocess.run, [script("local-node"), "ingest", "--feed", feed, str(path)],
            env=node.cli_env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and " 0 rejected" in done.stdout, done.stdout + done.stderr
        return
    report = await ingest_service(node.pool).ingest_file(feed, path)
    assert report.errors == [], report.errors


async def _id_of(pool: asyncpg.Pool, source: str, ref: str) -> str:
    async with pool.acquire() as conn:
        return str(await conn.fetchval("SELECT local_id FROM source_records"
                                       " WHERE source = $1 AND source_ref = $2", source, ref))


@pytest.fixture
async def node(make_database: DatabaseFactory, tmp_path: Path) -> AsyncIterator[Node]:
    url = await make_database()
    await upgrade(url, PACKAGE)
    async with running(url, tmp_path) as (base, pool):
        yield Node(base, pool,
                   await bearer_headers(pool, "pat", Role.PRACTITIONER),
                   await bearer_headers(pool, "ian", Role.INDEX_TEAM, ESX),
                   await bearer_headers(pool, "ola", Role.INDEX_TEAM, "E06000020"))


@pytest.fixture
async def node_process(make_database: DatabaseFactory, tmp_path: Path) -> AsyncIterator[Node]:
    """``local-node serve`` as a real process (not publishing: no hub is needed to show
    what the node itself answers); feeds loaded by the ``local-node ingest`` command."""
    url = await make_database()
    env = dict(os.environ) | {"LOCAL_NODE__DATABASE__URL": url, "LOCAL_NODE__COUNCIL__CODE": ESX}
    await upgrade(url, PACKAGE)
    port = free_port()
    server = Process([script("local-node"), "serve", "--no-publish", "--port", str(port)], env,
                     tmp_path / "node.log").start()
    base = f"http://127.0.0.1:{port}"
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        await asyncio.to_thread(wait_ready, base)
        yield Node(base, pool,
                   await bearer_headers(pool, "pat", Role.PRACTITIONER),
                   await bearer_headers(pool, "ian", Role.INDEX_TEAM, ESX),
                   await bearer_headers(pool, "ola", Role.INDEX_TEAM, "E06000020"), env)
    finally:
        server.kill()
        await pool.close()


async def _load(node: Node, tmp_path: Path) -> dict[str, Copy]:
    """The feeds, as a council would load them; the index team's decisions; and the
    unshielded copy of each shielded child, by how it relates to the shielded record."""
    pool = node.pool
    await _ingest(node, tmp_path, "education", EDUCATION)
    await _ingest(node, tmp_path, "health", HEALTH.format(nhs=""))
    await _ingest(node, tmp_path, "services", SERVICES)
    # the GP's record is sent again with the child's NHS number, already held by the
    # shielded record: the node keeps them apart (it never moves an identifier)
    await _ingest(node, tmp_path, "health", HEALTH.format(nhs="9434765919"))
    reviews = review_service(pool)
    pairs = {item["candidate_id"]: item["id"] for item in await reviews.open_items()}
    e1, e2, e3 = [await _id_of(pool, "education", f"E{i}") for i in (1, 2, 3)]
    assert set(pairs) == {e1, e2, e3}, "local matching put each pair on the review list"
    # Leon Marsh's shielded record is merged into his school record (the older child)
    assert await reviews.accept(pairs[e2], "ian") == e2
    await reviews.reject(pairs[e3], "ian")  # and Ruby Cole's kept apart
    h5, s5 = await _id_of(pool, "health", "H5"), await _id_of(pool, "services", "S5")
    assert h5 != s5
    return {
        "in review with": Copy(e1, "Maya", "Fenwick", "2014-06-02", "TN22 1AA", "12 Elm Road",
                               "Uckfield Primary"),
        "merged with": Copy(e2, "Leon", "Marsh", "2016-01-10", "BN2 3CD", "3 Mill Lane",
                            "Framfield Primary"),
        "separated from": Copy(e3, "Ruby", "Cole", "2013-09-09", "TN22 1AD", "7 Oak Close",
                               "Buxted Primary"),
        "sharing an NHS number with": Copy(h5, "Zara", "Hill", "2012-02-20", "TN22 9ZZ",
                                           "1 Sea Lane", "Sea Lane Surgery"),
    }


async def _call(node: Node, method: str, path: str, headers: dict[str, str],
                **kwargs: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.request(
            method, node.base + path, headers=headers, allow_redirects=False,
            **kwargs) as resp:
        if resp.content_type == "application/json":
            return resp.status, await resp.json()
        return resp.status, await resp.text()


async def _search(node: Node, headers: dict[str, str], **query: str) -> list[dict[str, Any]]:
    status, body = await _call(node, "POST", "/v1/search", headers,
                               json={**query, "purpose": PURPOSE})
    assert status == 200, body
    return list(body["results"])


async def _view(node: Node, headers: dict[str, str], local_id: str) -> dict[str, Any]:
    status, body = await _call(node, "GET", f"/v1/children/{local_id}", headers,
                               params={"purpose": PURPOSE})
    assert status == 200, body
    return dict(body)


async def test_a_shielded_childs_other_records_show_no_location(node: Node,
                                                                tmp_path: Path) -> None:
    await _check_copies(node, await _load(node, tmp_path))


async def test_every_copy_goes_to_the_hub_shielded(node: Node, tmp_path: Path) -> None:
    """What the node knows, the hub learns: each unshielded copy of a shielded child is
    published shielded (the hub may never pair the two records itself), whether the
    relation came with the copy's own row or later, with another feed."""
    copies = await _load(node, tmp_path)
    ids = [c.local_id for c in copies.values()]
    async with node.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT DISTINCT ON (local_id) local_id, op, record FROM outbox"
            " WHERE local_id = ANY($1::text[]) ORDER BY local_id, id DESC", ids)
    latest = {r["local_id"]: encoding.unpack(r["record"]) for r in rows if r["op"] == "upsert"}
    assert set(latest) == set(ids)
    assert {local_id: record.get("shielded") for local_id, record in latest.items()} == {
        local_id: True for local_id in ids}


async def test_the_same_through_the_node_processes(node_process: Node, tmp_path: Path) -> None:
    """The same attack on ``local-node serve`` as it runs, fed by ``local-node ingest``."""
    await _check_copies(node_process, await _load(node_process, tmp_path))


async def _check_copies(node: Node, copies: dict[str, Copy]) -> None:
    # another council's index team has no account at this node at all
    for copy in copies.values():
        status, _ = await _call(node, "GET", f"/v1/children/{copy.local_id}", node.other_team,
                                params={"purpose": PURPOSE})
        assert status == 401
    for how, copy in copies.items():
        district = copy.postcode.split()[0]
        # Found through where the child lives: nothing.
        for query in ({"dob": copy.dob, "postcode": copy.postcode},
                      {"given_name": copy.given_name, "postcode": copy.postcode},
                      # both names with the postcode, in either order (the sp key)
                      {"given_name": copy.given_name, "family_name": copy.family_name,
                       "postcode": copy.postcode},
                      {"given_name": copy.family_name, "family_name": copy.given_name,
                       "postcode": copy.postcode}):
            for who in (node.practitioner,):
                hits = await _search(node, who, **query)
                assert copy.local_id not in {h["local_id"] for h in hits}, (how, query)
        # By name and date of birth: found, shielded, with no location, and whom to ask.
        hits = await _search(node, node.practitioner, given_name=copy.given_name,
                             family_name=copy.family_name, dob=copy.dob)
        hit = next(h for h in hits if h["local_id"] == copy.local_id)
        assert hit["shielded"] is True and hit["postcode_district"] is None, (how, hit)
        assert hit["contact"] == [{"council": ESX, "team": "index team"}]
        # ... and its score does not use the postcode: a query with the right one and a
        # query with a wrong one rank and score alike
        right = await _search(node, node.practitioner, given_name=copy.given_name,
                              family_name=copy.family_name, dob=copy.dob,
                              postcode=copy.postcode)
        wrong = await _search(node, node.practitioner, given_name=copy.given_name,
                              family_name=copy.family_name, dob=copy.dob, postcode="ZE1 0AA")
        assert right == wrong, how

        # Its view: identity only, location withheld, whom to contact.
        for who in (node.practitioner,):
            view = await _view(node, who, copy.local_id)
            assert view["shielded"] is True and view["withheld"] is True, (how, view)
            assert view["contact"] == [{"council": ESX, "team": "index team"}]
            text = json.dumps(view)
            for secret in (copy.postcode, district, copy.address, copy.pointer, "Dana Smith"):
                assert not shows(text, secret), (how, secret)
            assert not {"address_line", "postcode", "upn", "parent_carer",
                        "involvements"} & set(view), (how, view)
        status, page = await _call(node, "GET", f"/children/{copy.local_id}",
                                   node.practitioner, params={"purpose": PURPOSE})
        assert status == 200 and 'data-shielded="withheld"' in page
        assert "contact the" in page and "index team" in page
        for secret in (copy.postcode, copy.address, copy.pointer, "Dana Smith"):
            assert not shows(page, secret), (how, secret)

        # The council's index team sees it all, and that the child is shielded.
        full = await _view(node, node.index_team, copy.local_id)
        assert full["shielded"] is True and "withheld" not in full
        assert full["postcode"] == copy.postcode and full["address_line"] == copy.address
        assert copy.pointer in json.dumps(full["involvements"])
        status, page = await _call(node, "GET", f"/children/{copy.local_id}", node.index_team,
                                   params={"purpose": PURPOSE})
        assert 'data-shielded="shown"' in page and "Shielded child" in page
        assert copy.postcode in page and copy.pointer in page
        team_hits = await _search(node, node.index_team, dob=copy.dob, postcode=copy.postcode)
        team_hit = next(h for h in team_hits if h["local_id"] == copy.local_id)
        assert team_hit["shielded"] is True and team_hit["postcode_district"] == district

    # The search page answers alike: no district, no row for a location-only search.
    maya = copies["in review with"]
    status, page = await _call(node, "POST", "/search", node.practitioner,
                               data={"dob": maya.dob, "postcode": maya.postcode,
                                     "purpose": PURPOSE})
    assert status == 200 and "No child matches." in page, page
    assert "/children/" not in page  # (the form shows the postcode the user typed)
    status, page = await _call(node, "POST", "/search", node.practitioner,
                               data={"given_name": maya.given_name, "dob": maya.dob,
                                     "family_name": maya.family_name, "purpose": PURPOSE})
    assert status == 200 and maya.local_id in page and "shielded" in page
    assert not shows(page, "TN22") and not shows(page, "BN1")


async def test_archiving_or_purging_the_shielded_record_lifts_nothing(
        node: Node, tmp_path: Path) -> None:
    """The services record (shielded) turns 18 and is archived, then purged six years
    on; the school record of the same child (a day–month swap in its date of birth,
    so still a child for a while) stays shielded throughout."""
    await _ingest(node, tmp_path, "education",
                  "source_ref,given_name,family_name,dob,sex,address_line,postcode\n"
                  "E9,Leo,Marsh,2008-10-01,M,3 Mill Lane,TN22 1AB\n")
    await _ingest(node, tmp_path, "services",
                  "source_ref,given_name,family_name,dob,sex,postcode,service_type,shielded\n"
                  "S9,Leo,Marsh,2008-01-10,M,BN2 3CD,social_care,Y\n")
    school, shielded = (await _id_of(node.pool, "education", "E9"),
                        await _id_of(node.pool, "services", "S9"))
    assert school != shielded
    assert [i["candidate_id"] for i in await review_service(node.pool).open_items()] == [school]
    by_location = {"dob": "2008-10-01", "postcode": "TN22 1AB"}
    retention = retention_service(node.pool, node_config(ESX, "", tmp_path, None))

    report = await retention.run(date(2026, 6, 1))
    assert report.archived == [shielded]
    hits = await _search(node, node.practitioner, **by_location)
    assert school not in {h["local_id"] for h in hits}
    assert (await _view(node, node.practitioner, school))["withheld"] is True

    # Six years on the shielded record is purged (and the school record archived: only
    # the index team and the view by id still reach it). Its mark stays.
    report = await retention.run(date(2032, 6, 1))
    assert report.purged == [shielded] and report.archived == [school]
    view = await _view(node, node.practitioner, school)
    assert view["withheld"] is True and "postcode" not in view
    assert (await _view(node, node.index_team, school))["shielded_via"] == shielded


async def test_nobody_learns_that_a_sensitive_service_exists(node: Node, tmp_path: Path) -> None:
    """The practitioner's answers — search, child view as JSON and as a page — are the
    same before and after a sensitive service is recorded for a child; only the
    council's index team sees it."""
    header = ("source_ref,nhs_number,given_name,family_name,dob,sex,postcode,service_type,"
              "service_name,professional_name,sensitive,consent\n")
    await _ingest(node, tmp_path, "services",
                  header + "S1,4010232137,Oliver,Smith,2014-02-05,M,TN2 2BB,early_help,"
                           "Early Help,Jo Bell,N,\n")
    child = await _id_of(node.pool, "services", "S1")

    async def answers(who: dict[str, str]) -> tuple[Any, ...]:
        hits = await _search(node, who, nhs_number="4010232137")
        view = await _view(node, who, child)
        _, page = await _call(node, "GET", f"/children/{child}", who,
                              params={"purpose": PURPOSE})
        return hits, view, page

    before = {name: await answers(who) for name, who in (("practitioner", node.practitioner),)}
    await _ingest(node, tmp_path, "services",
                  header + "S2,4010232137,Oliver,Smith,2014-02-05,M,TN2 2BB,sexual_health,"
                           "Clinic,Sam Lee,Y,N\n")
    assert await _id_of(node.pool, "services", "S2") == child
    for name, who in (("practitioner", node.practitioner),):
        after = await answers(who)
        assert after == before[name], name
        assert "sexual_health" not in json.dumps(after[1]) and "sensitive" not in after[2]
    team = await _view(node, node.index_team, child)
    assert {i["service_type"] for i in team["involvements"]} == {"early_help", "sexual_health"}
