"""The security headers of every response, at hub and node, set in one middleware,
and the few static assets the pages link to (``/static/…``).

Every response (pages, JSON, errors, redirects):

- ``Content-Security-Policy``: scripts, styles, images and forms from this site only,
  no inline script or style (the pages' styles are the static files below), no
  plugins, no ``<base>``, and never framed (``frame-ancestors 'none'``);
- ``X-Frame-Options: DENY`` (the same for browsers that predate frame-ancestors),
  ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` (a child's id in
  a path never leaves in a Referer);
- ``Strict-Transport-Security: max-age=31536000`` on every answer to a request that
  came over TLS (to us, or to a ``[server] trusted_proxies`` proxy that says so): for a
  year the browser goes to this host over HTTPS only, so a plain-HTTP link or a
  downgrade on the way never carries the session cookie or a page of children's
  details in clear; not ``includeSubDomains``, as a council's other hosts are not ours
  to promise;
- ``Cache-Control: no-store`` and ``Pragma: no-cache``: nearly every answer carries
  people's details or who may see them, and the simplest honest rule is that nothing is
  kept by a browser or a proxy. The exceptions carry no personal data: the static
  assets themselves (cached briefly; not an error page under ``/static/``) and the
  probes ``/healthz`` and ``/readyz``.
"""

from __future__ import annotations

import functools
from pathlib import Path

from aiohttp import web
from multidict import CIMultiDict

from server_common.web import Handler, reached_over_tls

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
STATIC_PREFIX = "/static/"
STATIC_DIR = Path(__file__).resolve().parent / "static"
# Served by name from this fixed list only: nothing a request names is opened as a path.
# name → (file under static/, type). GOV.UK Frontend is vendored by ``make frontend``.
STATIC_ASSETS = {
    "pages.css": ("pages.css", "text/css"),
    "app.css": ("app.css", "text/css"), "app.js": ("app.js", "text/javascript"),
    "govuk-frontend.min.css": ("govuk/govuk-frontend.min.css", "text/css"),
    "govuk-frontend.min.js": ("govuk/govuk-frontend.min.js", "text/javascript"),
}
_CACHEABLE = frozenset({"/healthz", "/readyz"})
HSTS = "max-age=31536000"  # a year

_ALWAYS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def secure(path: str, status: int, headers: CIMultiDict[str], *,
           over_tls: bool = False) -> None:
    """Set the security headers on one response's ``headers``. Only an asset itself may
    be kept: any other answer under ``/static/`` (a 404 page, a 429) is a page with who
    is signed in and their session's CSRF token."""
    headers.update(_ALWAYS)
    if over_tls:  # over plain HTTP a browser ignores it, and says nothing true
        headers["Strict-Transport-Security"] = HSTS
    if path in _CACHEABLE or (path.startswith(STATIC_PREFIX) and status == 200):
        return
    headers["Cache-Control"] = "no-store"
    headers["Pragma"] = "no-cache"


@web.middleware
async def security_headers_middleware(request: web.Request,
                                      handler: Handler) -> web.StreamResponse:
    """Put it outside ``error_middleware``, so error answers and redirects get them too."""
    over_tls = reached_over_tls(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # a redirect, raised past the error middleware
        secure(request.path, exc.status, exc.headers, over_tls=over_tls)
        raise
    secure(request.path, response.status, response.headers, over_tls=over_tls)
    return response


@functools.cache
def _read(name: str) -> bytes:
    return (STATIC_DIR / name).read_bytes()


async def static_asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    found = STATIC_ASSETS.get(name)
    if found is None:
        raise web.HTTPNotFound()
    return web.Response(body=_read(found[0]), content_type=found[1],
                        headers={"Cache-Control": "public, max-age=300"})


def static_routes() -> list[web.RouteDef]:
    """``GET /static/{name}``: the pages' style sheets and scripts, anonymous (the login
    page needs them before anyone has signed in)."""
    return [web.get(STATIC_PREFIX + "{name}", static_asset)]
