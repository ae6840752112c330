"""Rate limits run before authentication and per client address across path values
(docs/architecture.md "Rate limits"): an outsider's wrong tokens, wrong logins, unsigned and forged
node requests and invented council codes all spend one allowance, and are then
refused 429 without being checked. Signed-in users and verified council nodes do not
spend it: they have their own. Behind a proxy, only a configured trusted proxy may say
who the client is."""

from __future__ import annotations

from pathlib import Path

from protocol import keys, request_auth
from tests.conftest import DatabaseFactory
from tests.national_hub.helpers import Client
from tests.security.surface import (
    ESX,
    HUB_QUERY,
    PURPOSE,
    Role,
    audit_entries,
    hub_with_child,
    send,
    served_hub,
)

WSX = "E10000032"


async def test_an_outsider_is_limited_before_credentials_whatever_the_path(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    limits = {"per_address": 6, "per_user": 100, "per_council": 100}
    async with hub_with_child(await make_database(), tmp_path,
                              rate_limits=limits) as (hub, esx, _):
        # people who prove who they are do not spend the address's allowance ...
        practitioner = await hub.as_role(Role.PRACTITIONER)
        for _ in range(8):
            status, _, _ = await send(hub.url, "GET", "/v1/search", headers=practitioner,
                                      params={**HUB_QUERY, "purpose": PURPOSE})
            assert status == 200
        # ... nor does a council node whose requests verify
        for _ in range(8):
            assert (await esx.send(b"", method="GET", tail="cursor"))[0] == 200

        # an outsider at the same address, trying everything, varying every path value
        forged = request_auth.sign_request(keys.generate(), "GET",
                                           f"/v1/councils/{ESX}/cursor", b"", ESX)
        attempts = [
            ("GET", "/v1/search", {"Authorization": "Bearer guess-1"}, 401),
            ("GET", "/v1/children/N1", {"Authorization": "Bearer guess-2"}, 401),
            ("GET", "/v1/councils/E10000099/cursor", {}, 401),
            ("GET", "/v1/councils/E06000020/cursor", {}, 401),
            ("GET", f"/v1/councils/{ESX}/cursor", forged, 401),
            ("POST", "/login", {}, 403),  # a login without its form token
        ]
        for method, path, headers, expected in attempts:
            status, body, _ = await send(hub.url, method, path, headers=headers,
                                         data=b"" if method == "POST" else None)
            assert status == expected, (path, body)
        # spent: now refused before any token, signature or password is looked at
        more = [("GET", "/v1/councils/E10000001/cursor", {}, 0),
                ("GET", "/v1/me", {"Authorization": "Bearer guess-3"}, 0)]
        for method, path, headers, _ in [*attempts, *more]:
            status, body, resp = await send(hub.url, method, path, headers=headers,
                                            data=b"" if method == "POST" else None)
            assert status == 429, (path, body)
            if method == "GET":
                assert body["error"]["code"] == "rate_limited"
                assert 1 <= int(resp.headers["Retry-After"]) <= 60
        # the refusals the limiter admitted are on record; the 429s are not (a flood)
        refused = await audit_entries(hub.pool, "refused")
        assert [e["parameters"]["status"] for e in refused] == [401] * 5
        assert all(e["who"] == "anonymous" for e in refused)


async def test_a_verified_council_has_its_own_allowance(make_database: DatabaseFactory,
                                                        tmp_path: Path) -> None:
    limits = {"per_address": 100, "per_user": 100, "per_council": 3}
    async with hub_with_child(await make_database(), tmp_path,
                              rate_limits=limits) as (hub, esx, _):
        # the batch hub_with_child sent was in the minute too: two calls left
        for _ in range(2):
            assert (await esx.send(b"", method="GET", tail="cursor"))[0] == 200
        status, body, _ = await esx.send(b"", method="GET", tail="cursor")
        assert status == 429 and b"rate_limited" in body
        # a stranger naming the council spends their own allowance, not the council's
        status, answer, _ = await send(hub.url, "GET", f"/v1/councils/{ESX}/cursor")
        assert (status, answer["error"]["code"]) == (401, "auth_missing")
        # and another council is unaffected
        wsx = keys.generate()
        await hub.enrol(WSX, keys.public_pem(wsx.public_key()))
        assert (await Client(hub, WSX, wsx).send(b"", method="GET", tail="cursor"))[0] == 200
        # the council's first refusal this minute is on record, as the council
        refused = await audit_entries(hub.pool, "refused")
        assert [(e["who"], e["parameters"]["status"]) for e in refused] == [
            (f"node:{ESX}", 429), ("anonymous", 401)]


async def test_only_a_trusted_proxy_says_who_the_client_is(make_database: DatabaseFactory,
                                                           tmp_path: Path) -> None:
    url = await make_database()
    limits = {"per_address": 2}
    # no trusted proxies (the default): X-Forwarded-For is the client's own invention
    async with served_hub(url, tmp_path, rate_limits=limits) as hub:
        for n in range(2):
            headers = {"X-Forwarded-For": f"203.0.113.{n}"}
            assert (await send(hub.url, "GET", "/v1/me", headers=headers))[0] == 401
        status, _, _ = await send(hub.url, "GET", "/v1/me",
                                  headers={"X-Forwarded-For": "203.0.113.77"})
        assert status == 429
    # behind a proxy we list (here: loopback), each client has its own allowance
    async with served_hub(url, tmp_path, rate_limits=limits,
                          trusted_proxies="127.0.0.1/32, 10.0.0.0/8") as hub:
        amy = {"X-Forwarded-For": "198.51.100.7, 10.1.2.3"}  # through two of ours
        for _ in range(2):
            assert (await send(hub.url, "GET", "/v1/me", headers=amy))[0] == 401
        assert (await send(hub.url, "GET", "/v1/me", headers=amy))[0] == 429
        bob = {"X-Forwarded-For": "198.51.100.8"}
        assert (await send(hub.url, "GET", "/v1/me", headers=bob))[0] == 401
        # what a client prepends is not believed: the nearest untrusted hop counts
        spoof = {"X-Forwarded-For": "192.0.2.1, 198.51.100.7"}
        assert (await send(hub.url, "GET", "/v1/me", headers=spoof))[0] == 429
        # an IPv6 client has one allowance for its whole /64 (it could pick any address)
        for n in (1, 2):
            headers = {"X-Forwarded-For": f"2001:db8:1:2::{n}"}
            assert (await send(hub.url, "GET", "/v1/me", headers=headers))[0] == 401
        headers = {"X-Forwarded-For": "2001:db8:1:2:ffff:ffff:ffff:9"}
        assert (await send(hub.url, "GET", "/v1/me", headers=headers))[0] == 429
        headers = {"X-Forwarded-For": "2001:db8:1:3::1"}  # the next /64
        assert (await send(hub.url, "GET", "/v1/me", headers=headers))[0] == 401
        # the audit log has each client's own address
        refused = await audit_entries(hub.pool, "refused")
        assert {e["parameters"]["address"] for e in refused} >= {
            "198.51.100.7", "198.51.100.8", "2001:db8:1:2::1", "2001:db8:1:3::1"}
