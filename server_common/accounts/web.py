"""aiohttp integration: who is asking, CSRF, role checks, and the login pages.

Wiring (in ``create_app``, after the app's own ``cleanup_ctx`` that opens the pool)::

    app = web.Application(middlewares=[..., error_middleware, accounts_middleware])
    accounts.install(app, POOL, config.accounts, service="Signpost national hub")

and in handlers::

    @require_roles(Role.PRACTITIONER, Role.INDEX_TEAM)
    async def search(request: web.Request) -> web.Response:
        who = principal(request)     # a frozen Principal(user, role, organisation, council)

How a request is authenticated, in one place (:func:`accounts_middleware`):

- ``Authorization: Bearer …`` → the API token's user; a bad or expired token is
  401 ``not_authenticated`` at once. Bearer requests carry no ambient credential, so
  they need no CSRF token.
- otherwise the session cookie, if it names a live session. Every state-changing
  request (anything but GET, HEAD, OPTIONS) made with a live session must carry that
  session's synchronizer token (form field ``csrf_token`` or header ``X-CSRF-Token``)
  or it is refused 403 ``csrf_failed`` before the handler runs.
- ``POST /login`` has no session yet: its form carries a token that must equal the
  ``signpost_login_csrf`` cookie set by ``GET /login`` (double submit; the cookie is
  SameSite=Strict, so another site can neither read nor send it).

Whether a route needs a signed-in user at all is decided for every route by
``server_common.access`` (deny by default), not here: a handler without
:func:`require_roles` is still refused to anonymous callers. :func:`require_roles` then
decides roles: a role not listed → 403 ``forbidden``; ``require_roles()`` with no roles
admits any signed-in user. (It still refuses a missing principal, 401 or a redirect to
``/login``, should a route on the anonymous list ever carry it.)
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import quote, unquote, urlsplit

import asyncpg
from aiohttp import web

from protocol.errors import AuthError, ErrorCode, SignpostError, UnavailableError
from server_common import pages as site_pages
from server_common.accounts import credentials
from server_common.accounts.config import AccountsConfig
from server_common.accounts.principal import CSRF, PRINCIPAL, Principal, Role
from server_common.accounts.service import AccountService, LoginRefused
from server_common.tasks import background, run_every
from server_common.web import client_bucket, reached_over_tls, read_form

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ACCOUNTS = web.AppKey("accounts", AccountService)
_SERVICE_NAME = web.AppKey("accounts_service_name", str)
_CSRF = CSRF

SESSION_COOKIE = "signpost_session"
LOGIN_CSRF_COOKIE = "signpost_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
API_PREFIX = "/v1/"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_PURGE_EVERY = 600.0


def _not_authenticated(message: str = "sign in or send a bearer token") -> AuthError:
    return AuthError(message, code=ErrorCode.NOT_AUTHENTICATED, status=401)


def _csrf_failed() -> SignpostError:
    return SignpostError("missing or wrong CSRF token: reload the page and try again",
                         code=ErrorCode.CSRF_FAILED, status=403)



async def _submitted_csrf(request: web.Request) -> str | None:
    token = request.headers.get(CSRF_HEADER)
    if token:
        return token
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        value = (await read_form(request)).get(CSRF_FIELD)  # cached: the handler reads it again
        return value if isinstance(value, str) else None
    return None


def bearer_token(request: web.Request) -> str | None:
    """The bearer token the request offers (``Authorization: Bearer …``), if any."""
    authorization = request.headers.get("Authorization", "")
    return authorization[7:].strip() if authorization[:7].lower() == "bearer " else None


def offers_credentials(request: web.Request) -> bool:
    """Whether the request offers a bearer token or a session for
    :func:`accounts_middleware` to look up."""
    return bearer_token(request) is not None or SESSION_COOKIE in request.cookies


@web.middleware
async def accounts_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve the principal (bearer token or session) and enforce CSRF; see module doc."""
    if ACCOUNTS not in request.app:
        return await handler(request)
    service = request.app[ACCOUNTS]
    token = bearer_token(request)
    if token is not None:
        who = await service.principal_for_token(token)
        if who is None:
            raise _not_authenticated("the bearer token is unknown, expired or revoked")
        request[PRINCIPAL] = who
        return await handler(request)
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id and not (request.method == "POST" and request.path == "/login"):
        found = await service.session(session_id)
        if found is not None:
            request[PRINCIPAL], request[_CSRF] = found
            if request.method not in _SAFE_METHODS and not credentials.same(
                    await _submitted_csrf(request), found[1]):
                raise _csrf_failed()
    return await handler(request)


def require_roles(*roles: Role) -> Callable[[Handler], Handler]:
    """Admit only a principal with one of ``roles`` (any role if none given). The
    access middleware has already refused anonymous callers on every protected route."""
    allowed = frozenset(roles)

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            who = request.get(PRINCIPAL)
            if who is None:
                if request.path.startswith(API_PREFIX) or request.method not in _SAFE_METHODS:
                    raise _not_authenticated()
                raise web.HTTPSeeOther("/login?next=" + quote(request.path, safe="/"))
            if allowed and who.role not in allowed:
                raise SignpostError(
                    f"the {who.role} role may not do this", code=ErrorCode.FORBIDDEN,
                    status=403, detail={"allowed": sorted(str(r) for r in allowed)})
            return await handler(request)
        return wrapper
    return decorate


def principal(request: web.Request) -> Principal:
    """The principal ``require_roles`` admitted (only call it in such a handler)."""
    return request[PRINCIPAL]


def csrf_token(request: web.Request) -> str:
    """The session's synchronizer token, for every form a page renders."""
    return request.get(_CSRF, "")


def _secure(request: web.Request, config: AccountsConfig) -> bool:
    return config.cookie_secure == "always" or (config.cookie_secure == "auto"
                                                and reached_over_tls(request))


# Characters a path and query of ours may hold; anything else (controls, spaces,
# backslashes, quotes, non-ASCII) is refused rather than cleaned up.
_NEXT_CHARS = re.compile(r"[A-Za-z0-9/._~!$&'()*+,;=:@?%-]*")


def _safe_next(value: object) -> str:
    """Where to go after signing in: a path on this site, else ``/``.

    Browsers strip tabs and newlines from URLs and read ``\\`` as ``/``, so
    ``/\t/evil.example`` or ``/\\evil.example`` would become ``//evil.example``, another
    site. So only plain URL characters pass, and the value decoded (repeatedly: ``%252F``)
    must still start with a single ``/``, and hold no ``//``, backslash or control
    character anywhere."""
    if not isinstance(value, str) or not value.startswith("/") or len(value) > 2000 \
            or not _NEXT_CHARS.fullmatch(value):
        return "/"
    decoded = value
    for _ in range(4):  # %25 nests; four rounds undo any encoding a browser would undo
        decoded, previous = unquote(decoded), decoded
        if decoded == previous:
            break
    else:
        return "/"
    if "//" in decoded or "\\" in decoded or any(ord(c) < 0x20 or ord(c) == 0x7f
                                                 for c in decoded):
        return "/"
    if urlsplit(value).scheme or urlsplit(value).netloc or value.split("?")[0] == "/login":
        return "/"
    return value


def routes(config: AccountsConfig, *, landing: bool = True) -> list[web.RouteDef]:
    """``GET/POST /login``, ``POST /logout``, ``GET /v1/me``, and ``GET /`` if ``landing``."""

    def login_form(request: web.Request, status: int = 200, name: str = "",
                   error: str | None = None, code: str | None = None,
                   next_path: str = "/") -> web.Response:
        token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not credentials.is_secret_token(token):  # absent, or not one we made
            token = credentials.new_secret_token()
        response = site_pages.render(request, "login.html", {
            "title": "Sign in", "login_csrf": token, "next_path": next_path, "name": name,
            "error": error, "code": code}, status=status)
        response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="Strict",
                            secure=_secure(request, config), path="/login")
        return response

    async def get_login(request: web.Request) -> web.Response:
        return login_form(request, next_path=_safe_next(request.query.get("next")))

    async def post_login(request: web.Request) -> web.StreamResponse:
        form = await read_form(request)
        if not credentials.same(request.cookies.get(LOGIN_CSRF_COOKIE), _str(form.get(CSRF_FIELD))):
            raise _csrf_failed()
        name = _str(form.get("name")).strip().lower()
        next_path = _safe_next(form.get("next"))
        try:
            session = await request.app[ACCOUNTS].login(
                name, _str(form.get("password")), _str(form.get("totp")),
                client_bucket(request))  # the client's, as rate limits count it
        except (LoginRefused, UnavailableError) as exc:  # busy: the form again, with why
            log.info("login refused", extra={"user": name, "code": str(exc.code)})
            response = login_form(request, exc.status, name, exc.message, str(exc.code),
                                  next_path)
            if exc.status in (429, 503):
                response.headers["Retry-After"] = "5" if exc.status == 503 else str(
                    int(config.throttle_window))
            return response
        old = request.cookies.get(SESSION_COOKIE)
        if old:  # a new id at every login (no session fixation)
            await request.app[ACCOUNTS].logout(old)
        log.info("login", extra={"user": session.principal.user,
                                 "role": str(session.principal.role)})
        response = _redirect(next_path)
        response.set_cookie(SESSION_COOKIE, session.id, httponly=True, samesite="Strict",
                            secure=_secure(request, config), path="/",
                            max_age=int(config.session_lifetime))
        response.del_cookie(LOGIN_CSRF_COOKIE, path="/login")
        return response

    @require_roles()
    async def post_logout(request: web.Request) -> web.StreamResponse:
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id:  # absent when signed in with a bearer token: nothing to end
            await request.app[ACCOUNTS].logout(session_id)
        response = _redirect("/login")
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    @require_roles()
    async def me(request: web.Request) -> web.Response:
        who = principal(request)
        return web.json_response({"user": who.user, "role": str(who.role),
                                  "organisation": who.organisation, "council": who.council})

    @require_roles()
    async def home(request: web.Request) -> web.Response:
        return site_pages.render(request, "landing.html")

    found = [web.get("/login", get_login), web.post("/login", post_login),
             web.post("/logout", post_logout), web.get("/v1/me", me)]
    if landing:
        found.append(web.get("/", home))
    return found


def _redirect(location: str) -> web.Response:
    response = web.Response(status=303, headers={"Location": location})
    response.headers["Cache-Control"] = "no-store"
    return response


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def install(app: web.Application, pool_key: web.AppKey[asyncpg.Pool],
            config: AccountsConfig, *, service: str, landing: bool = True,
            council: str | None = None) -> None:
    """Add the login routes and build the AccountService once ``pool_key`` is set.

    Call it after appending the ``cleanup_ctx`` that opens the pool; the app must list
    :func:`accounts_middleware` among its middlewares (inside ``error_middleware``).
    A node passes its ``council``: other councils' index-team accounts are refused.
    At start, TOTP seeds still in plain text are sealed (accounts schema 002)."""
    app[_SERVICE_NAME] = service
    if site_pages.SITE not in app:  # an app that set up no pages of its own
        site_pages.setup(app, service=service)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        accounts = AccountService(app[pool_key], config, council=council)
        sealed = await accounts.seal_plain_seeds()
        if sealed:
            log.info("sealed plain TOTP seeds", extra={"count": sealed})
        app[ACCOUNTS] = accounts
        async with background(run_every("session purge", accounts.purge_sessions,
                                         _PURGE_EVERY, first_after=_PURGE_EVERY)):
            yield

    app.cleanup_ctx.append(lifecycle)
    app.add_routes(routes(config, landing=landing))
