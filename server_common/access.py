"""Deny by default (docs/conventions.md §13): who may call each route is decided here, in one
middleware, for every route of both apps.

Every route (method and canonical path, ``HEAD`` counting as ``GET``) is in one of
three classes:

- **anonymous**: an explicit, reviewed list: :data:`ANONYMOUS` (the probes, the login
  form, the static assets the login page needs) plus what an app adds when it calls
  :func:`install` (the hub: ``/openapi.json`` and its public key). Nothing else.
- **node-signed**: the hub's node-protocol routes (``/v1/councils/{code}/…``), which a
  council node calls with a signed request rather than as a user. They are listed
  explicitly too, and their handler must verify the signature before anything else
  (``national_hub.handlers.federation``) and say so with :func:`mark_node_verified`.
  A node-signed handler that answers without having done so is a bug: the answer is
  withheld (500) and the bug logged.
- **everything else**, including any route added later: a signed-in user only
  (session or bearer token, resolved by ``accounts_middleware``). Anonymous callers
  get 401 ``not_authenticated`` under ``/v1/`` and for anything but GET/HEAD, and a
  redirect to ``/login`` for pages.

A path that matches no route is answered 404 (or 405) for anyone: there is nothing
behind it, and which routes exist is no secret (``/openapi.json``). Such refusals are
still recorded (server_common.refusals).

So a handler without ``require_roles`` publishes nothing: ``require_roles`` only
decides which roles a signed-in user needs. A test walks every route of both apps
(tests/security/test_surface_routes.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote

from aiohttp import web

from protocol.errors import AuthError, ErrorCode, SignpostError
from server_common.accounts.web import API_PREFIX, PRINCIPAL
from server_common.web import REFUSAL, Handler, Refusal

log = logging.getLogger(__name__)

# The anonymous routes both servers have. Adding one is a reviewed change (the route
# walk test lists them too).
ANONYMOUS = frozenset({
    "GET /healthz", "GET /readyz",  # probes: "alive" and "ready", no data
    "GET /login", "POST /login",  # the login form and its submission
    "GET /static/{name}",  # the login page's style sheet (server_common.headers)
})
_SAFE_METHODS = frozenset({"GET", "HEAD"})


class RouteClass(StrEnum):
    ANONYMOUS = "anonymous"
    NODE_SIGNED = "node_signed"
    USER = "user"
    UNMATCHED = "unmatched"  # no route: the router answers 404 or 405


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    anonymous: frozenset[str]
    node_signed: frozenset[str]

    def classify(self, request: web.Request) -> RouteClass:
        key = route_key(request)
        if key is None:
            return RouteClass.UNMATCHED
        if key in self.anonymous:
            return RouteClass.ANONYMOUS
        if key in self.node_signed:
            return RouteClass.NODE_SIGNED
        return RouteClass.USER


ACCESS = web.AppKey("access_policy", AccessPolicy)
# Set by a node-signed handler once the request's signature verified: the council.
NODE_VERIFIED = web.RequestKey("node_verified", str)


def route_key(request: web.Request) -> str | None:
    """``"METHOD /canonical/{path}"`` of the route that matched, None if none did."""
    route = request.match_info.route
    if route.resource is None:  # no route matched: 404 or 405
        return None
    method = "GET" if route.method == "HEAD" else route.method
    return f"{method} {route.resource.canonical}"


def install(app: web.Application, *, anonymous: Iterable[str] = (),
            node_signed: Iterable[str] = ()) -> AccessPolicy:
    """Set the app's policy: :data:`ANONYMOUS` plus ``anonymous``, and the node-signed
    routes. Without a policy every route needs a signed-in user."""
    policy = AccessPolicy(ANONYMOUS | frozenset(anonymous), frozenset(node_signed))
    app[ACCESS] = policy
    return policy


def classify(request: web.Request) -> RouteClass:
    policy = request.app.get(ACCESS)
    if policy is None:  # no policy installed: every route needs a user
        return RouteClass.UNMATCHED if route_key(request) is None else RouteClass.USER
    return policy.classify(request)


def mark_node_verified(request: web.Request, council: str) -> None:
    request[NODE_VERIFIED] = council


def _refuse_anonymous(request: web.Request) -> None:
    if request.path.startswith(API_PREFIX) or request.method not in _SAFE_METHODS:
        raise AuthError("sign in or send a bearer token", code=ErrorCode.NOT_AUTHENTICATED,
                        status=401)
    # a page: off to the login form, and back to this path after it (a refusal all the
    # same). The path only: a query may hold a search's names and dates of birth, which
    # have no place in a login URL (browser history, proxy logs).
    request[REFUSAL] = Refusal(401, str(ErrorCode.NOT_AUTHENTICATED))
    raise web.HTTPSeeOther("/login?next=" + quote(request.path, safe="/"))


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Put it right after ``accounts_middleware`` (which resolves the principal)."""
    kind = classify(request)
    if kind in (RouteClass.ANONYMOUS, RouteClass.UNMATCHED):
        return await handler(request)
    if kind is RouteClass.NODE_SIGNED:
        response = await handler(request)
        if NODE_VERIFIED not in request:
            log.error("a node-signed handler answered without verifying the signature",
                      extra={"path": request.path, "method": request.method})
            raise SignpostError("internal error", code=ErrorCode.INTERNAL, status=500)
        return response
    if request.get(PRINCIPAL) is None:
        _refuse_anonymous(request)
    return await handler(request)
