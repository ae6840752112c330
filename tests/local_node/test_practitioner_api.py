"""The council's own practitioners through real HTTP: logins, roles, purpose,
sensitive services, merged ids, search by POST, and every look written to the audit
log."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from local_node.app import PACKAGE, create_app, ingest_service, review_service
from server_common.accounts.config import AccountsConfig
from server_common.accounts.principal import Role
from server_common.accounts.service import AccountService
from server_common.audit.service import AuditLog
from server_common.ratelimit.config import RateLimitConfig
from server_common.search_form import WHO_MISSING
from tests.conftest import DatabaseFactory
from tests.federation import node_config
from tests.hub_harness import upgrade, with_a_minute_to_spare
from tests.server_common.accounts_helpers import (
    PASSWORD,
    browser_session,
    code_at,
    csrf_in,
    login,
)

ESX = "E10000011"
# the node fixture: its base URL, its pool, and a bearer token per user name
Served = tuple[str, asyncpg.Pool, dict[str, str]]
FEED = (
    "source_ref,nhs_number,upn,given_name,family_name,dob,sex,postcode,service_type,"
    "service_name,professional_name,professional_phone,lead_professional,caf_done,"
    "sensitive,consent\n"
    "S1,9434765919,,Isabella,Okonkwo-Reilly,2015-03-14,F,BN1 1AA,social_care,"
    "Children's Social Care,Dana Smith,01273 000001,Y,Y,N,\n"
    "S2,9434765919,,Isabella,Okonkwo-Reilly,2015-03-14,F,BN1 1AA,mental_health,"
    "CAMHS,Sam Lee,01273 000002,N,N,Y,N\n"
)


@contextlib.asynccontextmanager
async def running(url: str, tmp_path: Path, rate_limits: RateLimitConfig | None = None,
                  index_team_email: str = "", index_team_phone: str = "",
                  ) -> AsyncIterator[tuple[str, asyncpg.Pool]]:
    """The node's app, its index team reached as given."""
    await with_a_minute_to_spare(rate_limits)
    config = node_config(ESX, url, tmp_path, None)
    config = dataclasses.replace(config, council=dataclasses.replace(
        config.council, index_team_email=index_team_email, index_team_phone=index_team_phone))
    if rate_limits is not None:
        config = dataclasses.replace(config, rate_limits=rate_limits)
    server = TestServer(create_app(config, publish=False), host="127.0.0.1")
    await server.start_server()
    pool = await asyncpg.create_pool(url, min_size=1, max_size=3)
    try:
        yield str(server.make_url("")).rstrip("/"), pool
    finally:
        await pool.close()
        await server.close()


@pytest.fixture
async def node(make_database: DatabaseFactory, tmp_path: Path) -> AsyncIterator[Served]:
    url = await make_database()
    await upgrade(url, PACKAGE)
    feed = tmp_path / "services.csv"
    feed.write_text(FEED, encoding="utf-8")
    async with running(url, tmp_path) as (base, pool):
        await ingest_service(pool).ingest_file("services", feed)
        accounts = AccountService(pool, AccountsConfig())
        tokens = {}
        for name, role, council in (("pat", Role.PRACTITIONER, None),
                                    ("ian", Role.INDEX_TEAM, ESX),
                                    ("olu", Role.OPERATOR, None)):
            await accounts.add_user(name, role, council=council, organisation="ESCC")
            tokens[name] = (await accounts.create_token(name))[0]
        yield base, pool, tokens


async def get(base: str, path: str, token: str | None = None,
              **params: str) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, http.get(
            base + path, params=params, headers=headers, allow_redirects=False) as resp:
        body = await resp.json() if resp.content_type == "application/json" else {}
        return resp.status, body, resp


def token_of(tokens: dict[str, str], name: str) -> str:
    return tokens[name]


async def test_roles_purpose_and_audit(node: Served) -> None:
    base, pool, tokens = node
    pat, ian, olu = (token_of(tokens, n) for n in ("pat", "ian", "olu"))
    query = {"given_name": "Izzy", "family_name": "Okonkwo-Reilly", "dob": "2015-03-14"}

    assert (await get(base, "/v1/search", None, purpose="s17", **query))[0] == 401
    status, body, _ = await get(base, "/v1/search", olu, purpose="s17 assessment", **query)
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body, _ = await get(base, "/v1/search", pat, **query)
    assert (status, body["error"]["code"]) == (400, "invalid_field")
    assert body["error"]["detail"]["field"] == "purpose"

    status, body, _ = await get(base, "/v1/search", pat, purpose="s17 assessment", **query)
    assert status == 200 and len(body["results"]) == 1
    local_id = body["results"][0]["local_id"]
    assert "address_line" not in body["results"][0]  # only enough to tell children apart

    status, view, _ = await get(base, f"/v1/children/{local_id}", pat, purpose="s17 assessment")
    assert status == 200
    assert [i["service_type"] for i in view["involvements"]] == ["social_care"]
    # an id no local id looks like (a NUL, which PostgreSQL refuses in text) is not
    # found, rather than a database error
    status, body, _ = await get(base, f"/v1/children/{local_id}%00", pat,
                                purpose="s17 assessment")
    assert (status, body["error"]["code"]) == (404, "not_found")
    assert view["involvements"][0]["lead_professional"] and view["involvements"][0]["caf_done"]
    assert not any("sensitive" in key for key in view)  # not even that one exists
    status, full, _ = await get(base, f"/v1/children/{local_id}", ian, purpose="brokering")
    assert {i["service_type"] for i in full["involvements"]} == {"social_care", "mental_health"}

    entries = await AuditLog(pool, None).entries_for_child(local_id)
    seen = [(e.to_dict()["who"], e.to_dict()["action"], e.to_dict()["purpose"])
            for e in entries]
    assert ("pat", "search", "s17 assessment") in seen
    assert ("pat", "view_child", "s17 assessment") in seen
    assert ("ian", "view_child", "brokering") in seen


async def test_pages_need_a_login_and_merged_ids_redirect(node: Served, tmp_path: Path) -> None:
    base, pool, tokens = node
    async with aiohttp.ClientSession() as http, http.get(
            base + "/search", allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"].startswith("/login")
    # a second record of the same child, merged by the index team: its id redirects
    feed = tmp_path / "education.csv"
    feed.write_text("source_ref,upn,given_name,family_name,dob,sex,postcode\n"
                    "E1,,Bella,Okonkwo-Reilly,2015-03-14,F,TN2 2BB\n", encoding="utf-8")
    await ingest_service(pool).ingest_file("education", feed)
    items = await review_service(pool).open_items()
    # The pair must go to review (a weight change that links or splits it outright would
    # otherwise switch this test off): same family name, date of birth and sex, a
    # nickname (Bella for Isabella) and another address; an NHS number on one side only.
    assert len(items) == 1, items
    survivor = await review_service(pool).accept(items[0]["id"], "ian")
    absorbed = items[0]["local_id"]
    status, _, resp = await get(base, f"/v1/children/{absorbed}", token_of(tokens, "pat"),
                                purpose="follow-up")
    assert status == 308 and resp.headers["Location"].startswith(f"/v1/children/{survivor}")


async def test_search_by_post_keeps_people_out_of_urls(node: Served) -> None:
    """The page's form is posted with the session's CSRF token; GET /search only shows
    the form, whatever the URL says; /v1/search takes a JSON body by POST (and GET)."""
    base, pool, tokens = node
    query = {"given_name": "Izzy", "family_name": "Okonkwo-Reilly", "dob": "2015-03-14",
             "purpose": "s17 assessment"}
    user = await AccountService(pool, AccountsConfig()).add_user(
        "nadia", Role.PRACTITIONER, organisation="ESCC", password=PASSWORD)
    async with browser_session() as http:
        await login(http, base, "nadia", PASSWORD, code_at(user.totp_secret))
        async with http.get(f"{base}/search", params=query) as resp:
            page = await resp.text()
        assert resp.status == 200 and 'method="post"' in page and "Okonkwo" not in page
        token = csrf_in(page)
        async with http.post(f"{base}/search", data=query, allow_redirects=False) as resp:
            assert resp.status == 403 and (await resp.json())["error"]["code"] == "csrf_failed"
        async with http.post(f"{base}/search", data={**query, "csrf_token": token}) as resp:
            page = await resp.text()
        assert resp.status == 200 and str(resp.url) == f"{base}/search"
        # a result opens the child by a posted form: its address is the id alone
        opens = re.findall(r'<form method="post" action="(/children/[^"]*)"', page)
        assert len(opens) == 1 and re.fullmatch(r"/children/L\d{9}", opens[0]), opens
        assert 'href="/children/' not in page and "?purpose=" not in page
        async with http.post(f"{base}/search", data={"dob": "2015-03-14", "purpose": "s17",
                                                     "csrf_token": token}) as resp:
            page = await resp.text()
        assert resp.status == 400 and WHO_MISSING in page and "Okonkwo" not in page

    pat = {"Authorization": f"Bearer {token_of(tokens, 'pat')}"}
    async with aiohttp.ClientSession(headers=pat) as http:
        async with http.post(f"{base}/v1/search", json=query) as resp:
            assert resp.status == 200 and len((await resp.json())["results"]) == 1
        for body, code in ((b"{not json", "malformed_request"), (b"\xff\xfe", "malformed_request"),
                           (b"[1, 2]", "malformed_request"),
                           (b"[" * 100_000 + b"]" * 100_000, "malformed_request"),
                           (json.dumps({**query, "dob": 20150314}).encode(), "invalid_field")):
            async with http.post(f"{base}/v1/search", data=body,
                                 headers={"Content-Type": "application/json"}) as resp:
                assert resp.status == 400, body
                assert (await resp.json())["error"]["code"] == code, body
