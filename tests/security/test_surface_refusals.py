"""Refused attempts leave a trace (docs/security.md "The audit log and its witnesses"):
a 400, 401, 403, 404 or 405 on a protected route, at hub and node, is written to the
audit log with who (or "anonymous" and the address), method, path, status and code, and
the names of the query parameters but never their values nor the body. Anonymous floods
stay bounded: a 429 is only counted in the metrics (a signed-in user's first one a
minute is kept). Failing to write the entry never turns the refusal into a 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import DatabaseFactory
from tests.national_hub.helpers import Client
from tests.security.surface import (
    ESX,
    HUB_QUERY,
    NODE_QUERY,
    PURPOSE,
    Role,
    audit_entries,
    bearer,
    hub_with_child,
    node_with_child,
    send,
)

SECRETS = ("Amelia", "Okafor", "2015-03-14", "9434765919", "Isabella", "Okonkwo")


def summary(entry: dict[str, Any]) -> tuple[Any, ...]:
    p = entry["parameters"]
    return (entry["who"], p["method"], p["path"], p["status"], p["code"])


async def test_hub_records_refused_attempts_without_personal_data(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    async with hub_with_child(await make_database(), tmp_path) as (hub, esx, child):
        practitioner = await hub.as_role(Role.PRACTITIONER)
        operator = await hub.operator()
        before = len(await audit_entries(hub.pool, "refused"))
        query = {**HUB_QUERY, "nhs_number": "9434765919", "purpose": PURPOSE}
        attempts = [
            ({}, "GET", "/v1/search", query, 401),  # anonymous, with a child's details
            ({"Authorization": "Bearer stolen?"}, "GET", f"/v1/children/{child}", {}, 401),
            ({}, "GET", f"/children/{child}", {"purpose": PURPOSE}, 303),  # to the login
            (practitioner, "GET", "/v1/federation/health", {}, 403),
            (operator, "GET", "/v1/search", query, 403),
            (practitioner, "GET", "/v1/children/N0000", {"purpose": PURPOSE}, 404),
            (practitioner, "GET", "/v1/search", {"given_name": "Amelia"}, 400),  # no purpose
            (practitioner, "DELETE", "/v1/search", {}, 405),
            ({}, "POST", f"/v1/councils/{ESX}/batches", {}, 401),  # unsigned node call
        ]
        for headers, method, path, params, status in attempts:
            got, body, _ = await send(hub.url, method, path, headers=headers, params=params,
                                      data=b"given_name=Amelia" if method == "POST" else None)
            assert got == status, (path, body)
        refused = (await audit_entries(hub.pool, "refused"))[before:]
        assert [summary(e) for e in refused] == [
            ("anonymous", "GET", "/v1/search", 401, "not_authenticated"),
            ("anonymous", "GET", f"/v1/children/{child}", 401, "not_authenticated"),
            ("anonymous", "GET", f"/children/{child}", 401, "not_authenticated"),
            ("test-practitioner-all", "GET", "/v1/federation/health", 403, "forbidden"),
            ("test-operator-all", "GET", "/v1/search", 403, "forbidden"),
            ("test-practitioner-all", "GET", "/v1/children/N0000", 404, "not_found"),
            ("test-practitioner-all", "GET", "/v1/search", 400, "invalid_field"),
            ("test-practitioner-all", "DELETE", "/v1/search", 405, "method_not_allowed"),
            ("anonymous", "POST", f"/v1/councils/{ESX}/batches", 401, "auth_missing"),
        ]
        assert refused[0]["parameters"]["query_names"] == [
            "dob", "family_name", "given_name", "nhs_number", "purpose"]
        assert refused[0]["parameters"]["address"] == "127.0.0.1"
        assert refused[0]["role"] == "anonymous"
        assert refused[3]["role"] == "practitioner"
        # the names, dates of birth and NHS numbers tried appear nowhere in those entries
        written = b"\n".join(str(e).encode() for e in refused)
        assert not [s for s in SECRETS if s.encode() in written]

        # a refusal after the node's signature verified is the council's
        status, _, _ = await Client(hub, ESX, esx.key).send(b"\xc1junk")
        assert status == 400
        last = (await audit_entries(hub.pool, "refused"))[-1]
        assert (last["who"], last["role"], last["parameters"]["status"]) == (
            f"node:{ESX}", "node", 400)

        # anonymous routes are not "protected": a refused login is the login's business
        assert (await send(hub.url, "POST", "/login", data=b""))[0] == 403
        assert (await audit_entries(hub.pool, "refused"))[-1] == last


async def test_floods_are_counted_not_written(make_database: DatabaseFactory,
        tmp_path: Path) -> None:
    limits = {"per_address": 3, "per_user": 2}
    async with hub_with_child(await make_database(), tmp_path,
                              rate_limits=limits) as (hub, _, _):
        size = len(await audit_entries(hub.pool))
        practitioner = await hub.as_role(Role.PRACTITIONER)
        for expected in (200, 429, 429, 429):  # hub_with_child's search used one
            got, _, _ = await send(hub.url, "GET", "/v1/me", headers=practitioner)
            assert got == expected
        for expected in (401, 401, 401, 429, 429, 429, 429):
            assert (await send(hub.url, "GET", "/v1/search"))[0] == expected
        refused = (await audit_entries(hub.pool))[size:]
        # the user's first 429 of the minute, and the three anonymous 401s; no more
        assert [(e["who"], e["parameters"]["status"]) for e in refused] == [
            ("test-practitioner-all", 429)] + [("anonymous", 401)] * 3
        # the rest are counted in the request metrics. (The operator scrapes a minute
        # later: this address has no allowance left in this one.)
        async with hub.pool.acquire() as conn:
            await conn.execute("DELETE FROM rate_limit_hits")
        async with aiohttp.ClientSession() as http, http.get(
                hub.url + "/metrics", headers=await hub.operator()) as resp:
            assert resp.status == 200
            lines = (await resp.text()).splitlines()
        limited = sum(float(line.rsplit(" ", 1)[1]) for line in lines
                      if line.startswith(_COUNT) and 'status="429"' in line)
        assert limited == 7


_COUNT = "signpost_http_request_duration_seconds_count{"


async def test_a_failed_audit_write_does_not_turn_a_refusal_into_a_500(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    async with hub_with_child(await make_database(), tmp_path) as (hub, _, _):
        async with hub.pool.acquire() as conn:
            await conn.execute("ALTER TABLE audit_log ADD CONSTRAINT broken CHECK (false)"
                               " NOT VALID")
        status, body, _ = await send(hub.url, "GET", "/v1/search",
                                     params={**HUB_QUERY, "purpose": PURPOSE})
        assert (status, body["error"]["code"]) == (401, "not_authenticated")


async def test_node_records_refused_attempts(make_database: DatabaseFactory,
        tmp_path: Path) -> None:
    async with node_with_child(await make_database(), tmp_path) as node:
        query = {**NODE_QUERY, "purpose": PURPOSE}
        assert (await send(node.base, "GET", "/v1/search", params=query))[0] == 401
        assert (await send(node.base, "GET", "/v1/children/L404", headers=bearer(node.token),
                           params={"purpose": PURPOSE}))[0] == 404
        refused = await audit_entries(node.pool, "refused")
        assert [summary(e) for e in refused] == [
            ("anonymous", "GET", "/v1/search", 401, "not_authenticated"),
            ("pat", "GET", "/v1/children/L404", 404, "not_found"),
        ]
        assert refused[0]["parameters"]["query_names"] == [
            "dob", "family_name", "given_name", "purpose"]
        assert not [s for s in SECRETS if s in str(refused)]
