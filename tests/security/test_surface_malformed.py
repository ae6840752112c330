"""Malformed requests get a 4xx with a stable code, never a 500 (docs/security.md).

Found by walking every route of both apps with odd bodies and values as each role:

* a form body that is not in its stated encoding (``\\xff`` as UTF-8), in an encoding
  that does not exist (``charset=klingon``) or a broken multipart body, posted to
  ``/login`` by anyone, to a page by a signed-in browser (the CSRF check reads the form
  before the handler), or to a node's "Watch this child";
* a NUL in a path or a look-up the database would be asked about: an operator's
  ``/v1/links/{council}/{local_id}/explain``, an auditor's ``?child_id=`` / ``?user=``
  (which also went into the audit entry recording the look-up; a group commit shares
  one transaction, so it failed every other reader's write beside it).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
from yarl import URL

from protocol import encoding
from server_common.accounts import Role
from server_common.accounts.config import AccountsConfig
from server_common.accounts.service import AccountService
from server_common.audit.entry import AuditEntry
from server_common.audit.service import AuditLog
from server_common.refusals import AUDIT_LOG
from tests.conftest import DatabaseFactory
from tests.hub_harness import Hub
from tests.security.surface import (
    NODE_QUERY,
    PURPOSE,
    ServedNode,
    bearer,
    hub_with_child,
    node_with_child,
    send,
)
from tests.server_common.accounts_helpers import PASSWORD, bearer_headers, code_at

FORM = "application/x-www-form-urlencoded"
UNREADABLE = ((b"name=%ff&password=\xff\xfe", FORM),
              (b"--x\r\nno headers\r\n--x--\r\n", "multipart/form-data; boundary=x"),
              # a charset Python has no codec for
              (b"name=pat&password=x", f"{FORM}; charset=klingon"))


async def _session(accounts: AccountService, name: str, role: Role, council: str | None
                   ) -> dict[str, str]:
    user = await accounts.add_user(name, role, council=council, password=PASSWORD)
    session = await accounts.login(name, PASSWORD, code_at(user.totp_secret))
    return {"Cookie": f"signpost_session={session.id}", "Accept": "application/json"}


async def _refused_400(base: str, method: str, path: str, headers: dict[str, str],
                       body: bytes, content_type: str) -> None:
    status, answer, _ = await send(base, method, path, data=body,
                                   headers={**headers, "Content-Type": content_type,
                                            "Accept": "application/json"})
    assert status == 400, (path, status, answer)
    assert answer["error"]["code"] == "malformed_request", (path, answer)


async def test_unreadable_forms_are_a_400_at_the_hub(make_database: DatabaseFactory,
                                                     tmp_path: Path) -> None:
    async with hub_with_child(await make_database(), tmp_path) as (hub, _, national_id):
        session = await _session(AccountService(hub.pool, AccountsConfig()), "pat",
                                 Role.PRACTITIONER, None)
        team = await _session(AccountService(hub.pool, AccountsConfig()), "ian",
                              Role.INDEX_TEAM, "E10000011")
        for body, content_type in UNREADABLE:
            await _refused_400(hub.url, "POST", "/login", {}, body, content_type)
            await _refused_400(hub.url, "POST", "/", session, body, content_type)
            await _refused_400(hub.url, "POST", f"/children/{national_id}", session, body,
                               content_type)
            await _refused_400(hub.url, "POST", "/review/1", team, body, content_type)
        # the session still works: nothing was half done
        status, found, _ = await send(hub.url, "GET", "/v1/me", headers=session)
        assert status == 200 and found["role"] == "practitioner"


async def test_unreadable_forms_are_a_400_at_a_node(make_database: DatabaseFactory,
                                                    tmp_path: Path) -> None:
    async with node_with_child(await make_database(), tmp_path) as node:
        accounts = AccountService(node.pool, AccountsConfig())
        session = await _session(accounts, "sam", Role.PRACTITIONER, None)
        local_id = await _a_local_id(node)
        for body, content_type in UNREADABLE:
            await _refused_400(node.base, "POST", "/login", {}, body, content_type)
            await _refused_400(node.base, "POST", "/search", session, body, content_type)
            # a bearer token needs no CSRF token: the handler reads the form itself
            await _refused_400(node.base, "POST", f"/children/{local_id}/watch",
                               bearer(node.token), body, content_type)
        status, watching, _ = await send(node.base, "GET", "/v1/notices",
                                         headers=bearer(node.token))
        assert status == 200 and watching == {"notices": []}


async def _a_local_id(node: ServedNode) -> str:
    async with node.pool.acquire() as conn:
        local_id: str = await conn.fetchval("SELECT local_id FROM children LIMIT 1")
    return local_id


async def test_a_nul_in_a_path_or_look_up_is_a_4xx(make_database: DatabaseFactory,
                                                   tmp_path: Path) -> None:
    async with hub_with_child(await make_database(), tmp_path) as (hub, _, national_id):
        operator = await hub.operator()
        for path in ("/v1/links/%00/A1/explain", "/v1/links/E10000011/A%001/explain",
                     "/v1/links/E10000011/" + "x" * 65 + "/explain"):
            status, answer, _ = await send(hub.url, "GET", path, headers=operator)
            assert status == 404 and answer["error"]["code"] == "not_found", (path, answer)
        auditor = await hub.as_role(Role.AUDITOR)
        for path in ("/v1/audit/entries", "/audit", "/audit/export.csv"):
            for name in ("child_id", "user"):
                status, answer, _ = await send(hub.url, "GET", path, params={name: "a\x00b"},
                                               headers={**auditor,
                                                        "Accept": "application/json"})
                assert status == 400, (path, name, status, answer)
        # and the auditor's look-up of the child still answers
        status, found, _ = await send(hub.url, "GET", "/v1/audit/entries",
                                      params={"child_id": national_id}, headers=auditor)
        assert status == 200 and found["entries"], found


async def test_an_entry_the_database_would_refuse_never_joins_a_group(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """Entries recorded at the same moment share one transaction: a bad one is refused on
    its own, and the practitioners' reads beside it are written and answered."""
    async with hub_with_child(await make_database(), tmp_path) as (hub, _, national_id):
        audit = _audit_log(hub)
        poisoned = AuditEntry("aud", "auditor", "org", "audit", "audit.entries", {},
                              ("a\x00b",))
        fine = [AuditEntry(f"user{i}", "practitioner", "org", PURPOSE, "view_child", {},
                           (national_id,)) for i in range(5)]
        results = await asyncio.gather(audit.record(poisoned), *map(audit.record, fine),
                                       return_exceptions=True)
        assert isinstance(results[0], Exception)
        assert getattr(results[0], "status", None) == 400
        assert all(isinstance(seq, int) for seq in results[1:]), results
        # and over HTTP, a practitioner's view beside the auditor's bad look-up answers
        practitioner = await bearer_headers(hub.pool, "pam", Role.PRACTITIONER)
        auditor = await hub.as_role(Role.AUDITOR)
        bad, view = await asyncio.gather(
            send(hub.url, "GET", "/v1/audit/entries", params={"child_id": "\x00"},
                 headers=auditor),
            send(hub.url, "GET", f"/v1/children/{national_id}",
                 params={"purpose": PURPOSE}, headers=practitioner))
        assert bad[0] == 400 and view[0] == 200, (bad[1], view[1])


def _audit_log(hub: Hub) -> AuditLog:
    return hub.server.app[AUDIT_LOG]


# "²" and "٣" are digits to str.isdigit(), and int() takes "٣" but not "²"; a day of birth
# of 10**22 is a number, and no date; the last day of year 9999 has no day after it.
ODD_NUMBERS = ("%C2%B2", "%D9%A3", "1" * 23)


async def test_odd_digits_and_far_dates_are_a_400_at_a_node(make_database: DatabaseFactory,
                                                            tmp_path: Path) -> None:
    async with node_with_child(await make_database(), tmp_path) as node:
        team = await bearer_headers(node.pool, "ian", Role.INDEX_TEAM, "E10000011")
        auditor = await bearer_headers(node.pool, "aud", Role.AUDITOR)
        for odd in ODD_NUMBERS:
            for box in ("day", "month", "year"):
                dob = {"day": "14", "month": "3", "year": "2015", box: odd}
                body = ("purpose=s17+assessment&given_name=Isabella&" + "&".join(
                    f"dob-{k}={v}" for k, v in dob.items())).encode()
                await _a_4xx(node.base, "POST", "/search", bearer(node.token), body, FORM)
            await _a_4xx(node.base, "GET", f"/review?decided={odd}", team, status=200)
            await _a_4xx(node.base, "GET", f"/review?undone={odd}", team, status=200)
            for path in (f"/v1/audit/proof/inclusion?seq={odd}&size=1",
                         f"/v1/audit/proof/consistency?first={odd}&second=1",
                         f"/audit?to-day=1&to-month={odd}&to-year=2026"):
                await _a_4xx(node.base, "GET", path, auditor)
        for path in ("/audit?to-day=31&to-month=12&to-year=9999",
                     "/audit/export.csv?to=9999-12-31&child_id=L1"):
            await _a_4xx(node.base, "GET", path, auditor, status=200)


async def test_odd_digits_and_far_dates_are_a_400_at_the_hub(make_database: DatabaseFactory,
                                                             tmp_path: Path) -> None:
    async with hub_with_child(await make_database(), tmp_path) as (hub, client, _):
        practitioner = await hub.as_role(Role.PRACTITIONER)
        team = await hub.as_role(Role.INDEX_TEAM, "E10000011")
        auditor = await hub.as_role(Role.AUDITOR)
        for odd in ODD_NUMBERS:
            body = ("purpose=s17+assessment&given_name=Amelia&dob-day=14&dob-year=2015"
                    f"&dob-month={odd}").encode()
            await _a_4xx(hub.url, "POST", "/", practitioner, body, FORM)
            await _a_4xx(hub.url, "GET", f"/review?decided={odd}", team, status=200)
            await _a_4xx(hub.url, "GET", f"/v1/audit/proof/inclusion?seq={odd}&size=1", auditor)
            status, answer, _ = await client.send(b"", method="GET",
                                                  tail=f"audit/checkpoint?from={odd}")
            assert status == 400, (odd, answer)
        await _a_4xx(hub.url, "GET", "/audit/export.csv?to=9999-12-31&child_id=x", auditor,
                     status=200)
        # a node's own log checkpoint whose size line is "²": refused as evidence, not a 500
        note = "signpost-node/E10000011\n²\n" + "A" * 43 + "=\ntime 2026-12-05T00:00:00Z\n\n— x\n"
        status, answer, _ = await client.send(
            encoding.pack({"note": note, "first": 0, "proof": None}), tail="audit/node-log")
        assert status == 200 and b"tree size" in answer, answer


async def _a_4xx(base: str, method: str, path: str, headers: dict[str, str],
                 body: bytes | None = None, content_type: str = "", *, status: int = 400
                 ) -> None:
    """Answered ``status`` (400, or 200 for a page that ignores an odd value), never 500;
    the path is sent as written (its percent-escapes are the test's)."""
    hdrs = {**headers, "Accept": "application/json"}
    if content_type:
        hdrs["Content-Type"] = content_type
    async with aiohttp.ClientSession() as http, http.request(
            method, URL(base + path, encoded=True), headers=hdrs, data=body,
            allow_redirects=False) as resp:
        assert resp.status == status, (path, resp.status, await resp.text())


async def test_a_lone_surrogate_in_a_json_search_is_a_400(make_database: DatabaseFactory,
                                                         tmp_path: Path) -> None:
    """JSON may escape half of a UTF-16 pair (``"\\ud800"``): no text can hold it (the
    audit entry could not be written), so ``POST /v1/search`` refuses it as not text."""
    async with node_with_child(await make_database(), tmp_path) as node:
        found = {**NODE_QUERY, "purpose": PURPOSE}
        for field in found:
            body = json.dumps({**found, field: found[field] + "\ud800"}).encode()
            status, answer, _ = await send(node.base, "POST", "/v1/search", data=body,
                                           headers={**bearer(node.token),
                                                    "Content-Type": "application/json"})
            assert status == 400, (field, answer)
            assert answer["error"]["code"] == "invalid_field", answer
        status, answer, _ = await send(node.base, "POST", "/v1/search",
                                       data=json.dumps(found).encode(),
                                       headers=bearer(node.token))
        assert status == 200 and answer["results"], answer
