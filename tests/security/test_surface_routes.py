"""Deny by default (docs/conventions.md §13): every route of the hub and of a node, walked
from the router, refuses an anonymous caller unless it is on the reviewed anonymous
list; the node-protocol routes refuse a request that is not signed; a route someone
adds without ``require_roles`` publishes nothing; and the lists are exactly these, so
adding to them is a reviewed change (this file)."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer

from national_hub.app import create_app as create_hub
from server_common import access
from server_common.access import ACCESS
from server_common.accounts import Role
from tests.conftest import DatabaseFactory
from tests.hub_harness import hub_config, running_hub
from tests.security.surface import bearer, node_with_child, send

ANONYMOUS_BOTH = {"GET /healthz", "GET /readyz", "GET /login", "POST /login",
                  "GET /static/{name}"}
HUB_ANONYMOUS = ANONYMOUS_BOTH | {"GET /openapi.json", "GET /v1/hub/key"}
NODE_ANONYMOUS = ANONYMOUS_BOTH
NODE_POSTED_PAGES = {"POST /search", "POST /children/{local_id}"}
HUB_NODE_SIGNED = {
    "POST /v1/councils/{code}/batches", "GET /v1/councils/{code}/cursor",
    "POST /v1/councils/{code}/keys", "POST /v1/councils/{code}/heartbeats",
    "POST /v1/councils/{code}/digests", "POST /v1/councils/{code}/digests/records",
    "GET /v1/councils/{code}/audit/checkpoint", "POST /v1/councils/{code}/audit/cosignatures",
    "POST /v1/councils/{code}/audit/refusals", "GET /v1/councils/{code}/shielded",
    "GET /v1/councils/{code}/notices", "GET /v1/councils/{code}/audit/node-log",
    "POST /v1/councils/{code}/audit/node-log",
}
# Pages for signed-in users only (the walk below refuses them anonymously): each new
# one is named here, so adding a page is a reviewed change too.
REVIEW_AND_AUDIT_PAGES = {"GET /audit", "GET /audit/export.csv"}
HUB_USER_PAGES = REVIEW_AND_AUDIT_PAGES | {
    "GET /review", "GET /review/{review_id}", "POST /review/{review_id}",
    "POST /review/{review_id}/undo", "GET /ops"}
NODE_USER_PAGES = REVIEW_AND_AUDIT_PAGES | {
    "GET /review", "GET /review/{item_id}", "POST /review/{item_id}",
    "POST /review/{item_id}/undo"}
# a value for every path parameter a route has
_PARAMETERS = {"code": "E10000011", "council": "E10000011", "name": "app.css"}
_PARAMETER = re.compile(r"\{(\w+)\}")


def _routes(app: web.Application) -> list[tuple[str, str]]:
    """(method, canonical path) of every route the app serves, HEAD included."""
    return sorted({(route.method, route.resource.canonical)
                   for route in app.router.routes() if route.resource is not None})


def _concrete(canonical: str) -> str:
    return _PARAMETER.sub(lambda m: _PARAMETERS.get(m.group(1), "1"), canonical)


def _key(method: str, canonical: str) -> str:
    return f"{'GET' if method == 'HEAD' else method} {canonical}"


async def _walk(base: str, app: web.Application, anonymous: set[str],
                node_signed: set[str]) -> set[str]:
    """Send every route an anonymous request; assert the refusals; return the keys that
    answered anyway."""
    answered = set()
    for method, canonical in _routes(app):
        key, path = _key(method, canonical), _concrete(canonical)
        status, body, resp = await send(base, method, path,
                                        data=b"" if method == "POST" else None)
        where = f"{method} {path}: {status} {body}"
        if key in node_signed:
            assert status == 401, where
            if method != "HEAD":  # a HEAD answer has no body
                assert body["error"]["code"] == "auth_missing", where
        elif key not in anonymous:
            if canonical.startswith("/v1/") or method not in ("GET", "HEAD"):
                assert status == 401, where
                if method != "HEAD":
                    assert body["error"]["code"] == "not_authenticated", where
            else:  # a page: to the login form, and back here after it
                assert status == 303, where
                assert resp.headers["Location"].startswith("/login?next="), where
        else:
            assert status != 401 and not (
                status == 303 and resp.headers["Location"].startswith("/login")), where
            answered.add(key)
    return answered


async def test_every_hub_route_refuses_anonymous_callers(make_database: DatabaseFactory,
                                                         tmp_path: Path) -> None:
    async with running_hub(await make_database(), tmp_path) as hub:
        app = hub.server.app
        policy = app[ACCESS]
        assert policy.anonymous == HUB_ANONYMOUS
        assert policy.node_signed == HUB_NODE_SIGNED
        keys = {_key(m, c) for m, c in _routes(app)}
        assert HUB_ANONYMOUS | HUB_NODE_SIGNED <= keys  # no stale entries either
        assert HUB_USER_PAGES <= keys - HUB_ANONYMOUS - HUB_NODE_SIGNED
        answered = await _walk(hub.url, app, HUB_ANONYMOUS, HUB_NODE_SIGNED)
        assert answered == HUB_ANONYMOUS
        # the way back after signing in carries the path, never a search's details
        status, _, resp = await send(hub.url, "GET", "/", params={
            "given_name": "Amelia", "dob": "2015-03-14", "purpose": "s47"})
        assert status == 303 and resp.headers["Location"] == "/login?next=/"
        # a path that matches no route has nothing behind it: 404 (or 405) for anyone
        assert (await send(hub.url, "GET", "/v1/no/such/thing"))[0] == 404
        assert (await send(hub.url, "GET", "/no-such-page"))[0] == 404
        assert (await send(hub.url, "DELETE", "/v1/search"))[0] == 405
        # /metrics stays an operator's
        assert (await send(hub.url, "GET", "/metrics"))[0] == 303
        practitioner = await hub.as_role(Role.PRACTITIONER)
        assert (await send(hub.url, "GET", "/metrics", headers=practitioner))[0] == 403
        assert (await send(hub.url, "GET", "/metrics", headers=await hub.operator()))[0] == 200


async def test_every_node_route_refuses_anonymous_callers(make_database: DatabaseFactory,
                                                          tmp_path: Path) -> None:
    async with node_with_child(await make_database(), tmp_path) as node:
        status, me, _ = await send(node.base, "GET", "/v1/me", headers=bearer(node.token))
        assert status == 200 and me["role"] == "practitioner"
        assert node.app[ACCESS].anonymous == NODE_ANONYMOUS
        assert node.app[ACCESS].node_signed == frozenset()
        assert NODE_USER_PAGES <= {_key(m, c) for m, c in _routes(node.app)} - NODE_ANONYMOUS
        # the pages a form posts to (a search, a child opened from the results) are a
        # signed-in user's like every other route
        assert NODE_POSTED_PAGES <= {_key(m, c) for m, c in _routes(node.app)}
        assert await _walk(node.base, node.app, NODE_ANONYMOUS, set()) == NODE_ANONYMOUS
        assert (await send(node.base, "GET", "/v1/no/such/thing"))[0] == 404
        # /metrics stays an operator's
        assert (await send(node.base, "GET", "/metrics", headers=bearer(node.token)))[0] == 403


async def test_a_route_without_require_roles_publishes_nothing(make_database: DatabaseFactory,
                                                               tmp_path: Path) -> None:
    """Someone adds endpoints and forgets the decorator: still only for signed-in users."""
    url = await make_database()
    async with running_hub(url, tmp_path) as hub:
        app = create_hub(hub_config(url, tmp_path))

        async def forgotten(request: web.Request) -> web.Response:
            return web.json_response({"children": ["everything"]})

        app.router.add_get("/v1/forgotten", forgotten)
        app.router.add_get("/forgotten-page", forgotten)
        app.router.add_post("/v1/councils/{code}/forgotten", forgotten)
        # listed as node-signed, but its handler never verifies a signature: a bug the
        # access middleware catches (the answer is withheld)
        app.router.add_get("/v1/councils/{code}/unverified", forgotten)
        access.install(app, anonymous=HUB_ANONYMOUS - ANONYMOUS_BOTH,
                       node_signed=HUB_NODE_SIGNED | {"GET /v1/councils/{code}/unverified"})
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            base = str(server.make_url("")).rstrip("/")
            status, body, _ = await send(base, "GET", "/v1/forgotten")
            assert (status, body["error"]["code"]) == (401, "not_authenticated")
            status, _, resp = await send(base, "GET", "/forgotten-page")
            assert status == 303 and resp.headers["Location"] == "/login?next=/forgotten-page"
            # under the node prefix but not a listed node-signed route: a user's, too
            status, body, _ = await send(base, "POST", "/v1/councils/E10000011/forgotten")
            assert status == 401
            status, body, _ = await send(base, "GET", "/v1/councils/E10000011/unverified")
            assert (status, body["error"]["code"]) == (500, "internal")
            assert "everything" not in str(body)
            signed_in = await hub.as_role(Role.PRACTITIONER)
            status, body, _ = await send(base, "GET", "/v1/forgotten", headers=signed_in)
            assert status == 200
        finally:
            await server.close()
