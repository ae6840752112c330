"""Personal data out of caches and pages out of frames (docs/security.md "Personal data
out of URLs and caches"): every answer of hub and node, pages and JSON with children's
details, errors and redirects included, carries ``Cache-Control: no-store``, ``Pragma:
no-cache``, a CSP with ``frame-ancestors 'none'`` and no inline script or style,
``X-Frame-Options: DENY``, ``nosniff`` and ``Referrer-Policy: no-referrer``; only the
static style sheets and the probes may be cached. No page carries inline script or style
for the CSP to block."""

from __future__ import annotations

import re
import ssl as ssl_module
from pathlib import Path

import aiohttp

from server_common.accounts.config import AccountsConfig
from server_common.accounts.service import AccountService
from tests.conftest import DatabaseFactory
from tests.hub_harness import Hub, running_hub
from tests.security.logins_helpers import hub_serving
from tests.security.surface import (
    ESX,
    HUB_QUERY,
    NODE_QUERY,
    PURPOSE,
    Role,
    bearer,
    hub_with_child,
    node_with_child,
    send,
)
from tests.server_common.accounts_helpers import PASSWORD, code_at
from tests.test_federation_tls import Pki, pki  # noqa: F401 (pki: a fixture)

_INLINE = re.compile(r"<style|<script(?![^>]*\bsrc=)|\sstyle=|\son[a-z]+=", re.I)


def assert_protected(resp: aiohttp.ClientResponse, what: str, *, cacheable: bool = False
                     ) -> None:
    csp = resp.headers.get("Content-Security-Policy", "")
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives.get("frame-ancestors") == "'none'", (what, csp)
    assert directives.get("default-src") == "'self'", (what, csp)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, (what, csp)
    assert resp.headers.get("X-Frame-Options") == "DENY", what
    assert resp.headers.get("X-Content-Type-Options") == "nosniff", what
    assert resp.headers.get("Referrer-Policy") == "no-referrer", what
    if not cacheable:
        assert resp.headers.get("Cache-Control") == "no-store", what
        assert resp.headers.get("Pragma") == "no-cache", what


async def check(base: str, path: str, headers: dict[str, str] | None = None, *,
                status: int = 200, params: dict[str, str] | None = None,
                cacheable: bool = False) -> str:
    got, _, resp = await send(base, "GET", path, headers=headers, params=params)
    assert got == status, (path, got)
    assert_protected(resp, path, cacheable=cacheable)
    async with aiohttp.ClientSession() as http, http.get(
            base + path, headers=headers or {}, params=params, allow_redirects=False) as again:
        text = await again.text()
    if again.content_type == "text/html":
        assert not _INLINE.search(text), (path, _INLINE.search(text))
    return text


async def test_hub_answers_are_never_cached_or_framed(make_database: DatabaseFactory,
        tmp_path: Path) -> None:
    async with hub_with_child(await make_database(), tmp_path) as (hub, esx, child):
        practitioner = await hub.as_role(Role.PRACTITIONER)
        query = {**HUB_QUERY, "purpose": PURPOSE}
        # JSON with a child's details
        found = await check(hub.url, "/v1/search", practitioner, params=query)
        assert "Okafor" in found
        assert "Okafor" in await check(hub.url, f"/v1/children/{child}", practitioner,
                                       params={"purpose": PURPOSE})
        # pages with a child's details
        assert "Okafor" in await check(hub.url, "/", practitioner, params=query)
        await check(hub.url, f"/children/{child}", practitioner, params={"purpose": PURPOSE})
        # the operators' page and its data, the auditors' and index teams' pages
        operator = await hub.operator()
        ops = await check(hub.url, "/ops", operator)
        assert '<script src="/ops/ops.js">' in ops
        await check(hub.url, "/v1/federation/health", operator)
        await check(hub.url, "/audit", await hub.as_role(Role.AUDITOR))
        await check(hub.url, "/review", await hub.as_role(Role.INDEX_TEAM, ESX))
        # errors, redirects, the login page, and what nodes get
        await check(hub.url, "/v1/search", status=401)
        await check(hub.url, "/v1/children/N404", practitioner, status=404,
                    params={"purpose": PURPOSE})
        await check(hub.url, f"/children/{child}", status=303)
        login = await check(hub.url, "/login")
        assert '<link rel="stylesheet" href="/static/govuk-frontend.min.css">' in login
        assert (await esx.send(b"", method="GET", tail="cursor"))[0] == 200
        # only the style sheets and the probes may be kept
        for sheet in ("app.css", "govuk-frontend.min.css", "pages.css"):
            css = await check(hub.url, f"/static/{sheet}", cacheable=True)
            assert "font-family" in css
        assert "initAll" in await check(hub.url, "/static/app.js", cacheable=True)
        await check(hub.url, "/static/nothing.css", status=404, cacheable=True)
        await check(hub.url, "/healthz", cacheable=True)
        # a signed-in browser's 404 under /static/ is a page with its session's CSRF
        # token and who is signed in: it was sent cacheable, as the assets are
        browser = {"Cookie": f"signpost_session={await hub_session(hub)}",
                   "Accept": "text/html"}
        page = await check(hub.url, "/static/nothing.css", browser, status=404)
        assert 'name="csrf_token"' in page and "Signed in as" in page


async def hub_session(hub: Hub) -> str:
    accounts = AccountService(hub.pool, AccountsConfig())
    user = await accounts.add_user("pia", Role.PRACTITIONER, password=PASSWORD)
    return (await accounts.login("pia", PASSWORD, code_at(user.totp_secret))).id


async def test_node_answers_are_never_cached_or_framed(make_database: DatabaseFactory,
        tmp_path: Path) -> None:
    async with node_with_child(await make_database(), tmp_path) as node:
        pat = bearer(node.token)
        query = {**NODE_QUERY, "purpose": PURPOSE}
        found = await check(node.base, "/v1/search", pat, params=query)
        assert "Okonkwo-Reilly" in found
        await check(node.base, "/search", pat)  # the empty form: a search is posted
        async with aiohttp.ClientSession() as http, http.post(
                node.base + "/search", headers=pat, data=query,
                allow_redirects=False) as posted:
            assert posted.status == 200 and "Okonkwo-Reilly" in await posted.text()
            assert_protected(posted, "/search", cacheable=False)
        _, body, _ = await send(node.base, "GET", "/v1/search", headers=pat, params=query)
        local_id = body["results"][0]["local_id"]
        await check(node.base, f"/v1/children/{local_id}", pat, params={"purpose": PURPOSE})
        await check(node.base, f"/children/{local_id}", pat, params={"purpose": PURPOSE})
        await check(node.base, "/", pat)
        await check(node.base, "/v1/search", status=401)
        await check(node.base, "/search", status=303)
        await check(node.base, "/login")
        await check(node.base, "/static/pages.css", cacheable=True)


async def _hsts(url: str, headers: dict[str, str] | None = None,
                ssl: ssl_module.SSLContext | None = None) -> list[str]:
    """The Strict-Transport-Security headers of a page, an error and a probe."""
    got = []
    async with aiohttp.ClientSession() as http:
        for path in ("/login", "/no-such-page", "/healthz"):
            async with http.get(url + path, headers=headers or {}, ssl=ssl or False,
                                allow_redirects=False) as resp:
                got += resp.headers.getall("Strict-Transport-Security", [])
    return got


async def test_a_browser_that_came_over_tls_is_told_to_keep_to_it(
        make_database: DatabaseFactory, tmp_path: Path, pki: Pki) -> None:  # noqa: F811
    """HSTS (docs/security.md "Personal data out of URLs and caches"): on every answer to
    a request that came over TLS, to the hub itself or to the trusted proxy in front
    (``X-Forwarded-Proto: https``), so the browser never again asks over plain HTTP;
    never over plain HTTP, nor on the word of a proxy the hub does not trust."""
    kept = ["max-age=31536000"] * 3  # a year
    async with running_hub(await make_database(), tmp_path, tls=pki.tls) as hub:
        trusted = ssl_module.create_default_context(cafile=str(pki.ca_file))
        assert await _hsts(hub.url, ssl=trusted) == kept
    async with hub_serving(await make_database(), tmp_path,
                           trusted_proxies="127.0.0.1/32") as served:
        assert await _hsts(served.base, {"X-Forwarded-Proto": "https"}) == kept
        assert await _hsts(served.base, {"X-Forwarded-Proto": "http"}) == []
        assert await _hsts(served.base) == []
    async with hub_serving(await make_database(), tmp_path / "untrusted") as served:
        assert await _hsts(served.base, {"X-Forwarded-Proto": "https"}) == []
