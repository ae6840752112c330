"""aiohttp plumbing both servers use: the one error middleware, request ids, the
client's address, capped body reads and the ``/healthz`` and ``/readyz`` endpoints.

Every exception becomes an HTTP response here and nowhere else:
SignpostError → its status and stable code; aiohttp's own HTTP errors (404, 405,
413) → the matching code; database unreachable → 503 ``unavailable`` (retryable);
anything else → 500 ``internal`` with the traceback logged, never shown. A browser
asking for a page gets the same refusal as an HTML page instead (:data:`ERROR_PAGE`,
``server_common.pages``); API clients always get the JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import asyncpg
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDictProxy

from protocol import hidden_text
from protocol.errors import ErrorCode, RateLimitedError, SignpostError, TooLargeError
from server_common import database
from server_common.logs import request_id

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID_HEADER = "X-Request-Id"

_HTTP_CODES = {
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
}

# Errors meaning "the database is not there right now": the client may retry.
_UNAVAILABLE = database.UNAVAILABLE

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# The proxies ([server] trusted_proxies) whose X-Forwarded-For is believed; none by default.
TRUSTED_PROXIES: web.AppKey[tuple[Network, ...]] = web.AppKey("trusted_proxies")


@dataclass(frozen=True, slots=True)
class Refusal:
    """What a refused request was answered (status and stable code), kept on the request
    for the middleware that records refused attempts (server_common.refusals)."""

    status: int
    code: str


REFUSAL = web.RequestKey("refusal", Refusal)

# How an app answers a browser's error with a page: (request, status, code, message) →
# a page, or None for an API client. Set by server_common.pages.setup; without it, JSON.
ErrorPage = Callable[[web.Request, int, str, str], web.StreamResponse | None]
ERROR_PAGE: web.AppKey[ErrorPage] = web.AppKey("error_page")


def client_address(request: web.Request) -> str:
    """The caller's address: the peer's, unless the peer is a trusted proxy, in which
    case the nearest address in ``X-Forwarded-For`` that is not itself a trusted proxy.
    A client can write anything into that header, so only proxies we list may speak for
    it (else an attacker would pick a fresh address for each request)."""
    peer = request.remote or "unknown"
    trusted = request.app.get(TRUSTED_PROXIES, ())
    if not trusted or not _within(peer, trusted):
        return peer
    hops = [hop.strip() for value in request.headers.getall("X-Forwarded-For", ())
            for hop in value.split(",")]
    for hop in reversed(hops):  # the rightmost hops were added by our own proxies
        if not _within(hop, trusted):
            return hop[:64] if _parses(hop) else peer
    return peer


def address_bucket(address: str) -> str:
    """What one allowance covers: an IPv4 address, or an IPv6 /64 (one site's subnet:
    whoever holds one can pick any of its 2**64 addresses for each request)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # an IPv4 client on a dual-stack socket
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def client_bucket(request: web.Request) -> str:
    """What one client's allowances (rate limits, failed sign-ins) are counted against:
    :func:`client_address` bucketed by :func:`address_bucket`."""
    return address_bucket(client_address(request))


def reached_over_tls(request: web.Request) -> bool:
    """Whether the client's request came over TLS: to us directly, or to a trusted proxy
    that says so (the last ``X-Forwarded-Proto`` value, the one the nearest proxy set).
    Nobody else's header is believed."""
    if request.secure:
        return True
    trusted = request.app.get(TRUSTED_PROXIES, ())
    if not trusted or not _within(request.remote or "", trusted):
        return False
    protos = [proto.strip().lower() for value in request.headers.getall("X-Forwarded-Proto", ())
              for proto in value.split(",")]
    return bool(protos) and protos[-1] == "https"


def _parses(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _within(text: str, networks: tuple[Network, ...]) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return any(address in network for network in networks)


def whole_number(raw: str) -> int | None:
    """A query value as a whole number ≥ 0 that fits a bigint (at most 18 digits 0-9),
    or None. ``str.isdigit`` alone also takes "²" and "٣", which ``int`` then refuses.

    >>> whole_number("42"), whole_number("²"), whole_number("-1"), whole_number("9" * 19)
    (42, None, None, None)
    """
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None


def check_declared_length(request: web.Request, limit: int) -> None:
    """413 ``payload_too_large`` for a body whose ``Content-Length`` is over ``limit``,
    before a byte of it is read."""
    if request.content_length is not None and request.content_length > limit:
        raise TooLargeError(f"the body is over {limit} bytes")


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, refused 413 ``payload_too_large`` as soon as it is known to be
    over ``limit`` bytes: from ``Content-Length`` before a byte is read, else while
    reading, so no more than ``limit`` bytes are ever held (nor hashed, nor verified)."""
    check_declared_length(request, limit)
    body = bytearray()
    while chunk := await request.content.read(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise TooLargeError(f"the body is over {limit} bytes")
    return bytes(body)


@contextlib.asynccontextmanager
async def body_deadline(seconds: float) -> AsyncIterator[None]:
    """408 ``request_timeout`` (retryable) for a body not all read within ``seconds``: a
    client trickling it cannot hold a connection and its buffer for ever."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError as exc:
        raise SignpostError(f"the body was not received within {seconds:g} s",
                            code=ErrorCode.REQUEST_TIMEOUT, status=408,
                            retryable=True) from exc


async def read_form(request: web.Request
                    ) -> MultiDictProxy[str | bytes | bytearray | web.FileField]:
    """The posted form (cached by aiohttp). A body not in its stated encoding, in one
    that does not exist or a broken multipart body is the client's mistake: 400
    ``malformed_request``, never a 500."""
    try:
        return await request.post()
    # UnicodeDecodeError, a multipart part without a name (ValueError); a charset with no
    # codec (LookupError); a part's broken headers (HttpProcessingError, a 400 of
    # aiohttp's parser that is not an HTTPException)
    except (ValueError, LookupError, HttpProcessingError) as exc:
        raise SignpostError("the form could not be read",
                            code=ErrorCode.MALFORMED_REQUEST) from exc


def error_response(status: int, code: ErrorCode | str, message: str, *,
                   retryable: bool = False, detail: dict | None = None) -> web.Response:
    body: dict = {"code": str(code), "message": message, "retryable": retryable}
    if detail:
        body["detail"] = detail
    return web.json_response({"error": body}, status=status)


def shown_json(data: object) -> web.Response:
    """A JSON answer holding children's identities, as a page shows them: any character
    left in a stored value that would make a name display as another reads as U+FFFD
    (``protocol.hidden_text``), whatever program puts the answer in front of a person."""
    return web.json_response(hidden_text.reveal_within(data))


def html_response(text: str, status: int = 200) -> web.Response:
    """A server-rendered page. Its caching and framing headers, and its CSP, are set for
    every response in one place (server_common.headers)."""
    return web.Response(text=text, status=status, content_type="text/html")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    rid = request.headers.get(REQUEST_ID_HEADER, "")[:64] or secrets.token_hex(8)
    token = request_id.set(rid)
    started = time.perf_counter()
    status = 500
    try:
        try:
            response = await handler(request)
            status = response.status
        except asyncio.CancelledError:
            status = 499  # the client went away before the answer (nginx's convention)
            raise
        except web.HTTPException as exc:
            if exc.status < 400:
                status = exc.status  # a redirect
                raise
            status, response = _refused(request, exc)
        except Exception as exc:
            status, response = _refused(request, exc)
        response.headers[REQUEST_ID_HEADER] = rid
        return response
    finally:
        log.info("request", extra={"method": request.method, "path": request.path,
                                   "status": status,
                                   "ms": round((time.perf_counter() - started) * 1000, 1)})
        request_id.reset(token)


def _refused(request: web.Request, exc: Exception) -> tuple[int, web.StreamResponse]:
    """The answer to a handler's exception: (status, JSON error, or a browser's page)."""
    retryable, detail = False, None
    if isinstance(exc, SignpostError):
        status, code, message = exc.status, exc.code, exc.message
        retryable, detail = exc.retryable, exc.detail
        request[REFUSAL] = Refusal(exc.status, str(exc.code))
    elif isinstance(exc, web.HTTPException):
        status, message = exc.status, exc.reason
        code = _HTTP_CODES.get(exc.status, ErrorCode.MALFORMED_REQUEST)
        request[REFUSAL] = Refusal(exc.status, str(code))
    elif isinstance(exc, asyncpg.InterfaceError) and isinstance(exc, ValueError):
        # asyncpg's client-side DataError: our bug
        return _internal(request)
    elif isinstance(exc, (asyncpg.InterfaceError, *_UNAVAILABLE)):
        # the pool or connection is closed (shutting down), or the database went
        log.warning("database unavailable", extra={"error": type(exc).__name__})
        status, code, retryable = 503, ErrorCode.UNAVAILABLE, True
        message = "the database is unavailable; try again"
    else:
        return _internal(request)
    response = (_error_page(request, status, str(code), message)
                or error_response(status, code, message, retryable=retryable, detail=detail))
    if isinstance(exc, RateLimitedError):
        response.headers["Retry-After"] = str(exc.retry_after)
    return status, response


def _internal(request: web.Request) -> tuple[int, web.StreamResponse]:
    log.exception("unhandled error", extra={"path": request.path})
    response = error_response(500, ErrorCode.INTERNAL, "internal error", retryable=True)
    return 500, _error_page(request, 500, str(ErrorCode.INTERNAL), "internal error") or response


def _error_page(request: web.Request, status: int, code: str,
                message: str) -> web.StreamResponse | None:
    """The app's page for this error, if it makes pages and the client is a browser."""
    make = request.config_dict.get(ERROR_PAGE)
    if make is None:
        return None
    try:
        return make(request, status, code, message)
    except Exception:  # a broken error page must not hide the error: the JSON stands
        log.exception("error page failed", extra={"path": request.path})
        return None


def health_routes(pool_key: web.AppKey[asyncpg.Pool], package: str,
                  extra_check: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
                  ) -> list[web.RouteDef]:
    """``/healthz`` (the process answers) and ``/readyz`` (database and schema ready)."""

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        checks: dict[str, str] = {}
        try:
            async with request.app[pool_key].acquire(timeout=5) as conn:
                await conn.fetchval("SELECT 1")
                checks["database"] = "ok"
                await database.check_current(conn, package)
                checks["migrations"] = "ok"
                if extra_check is not None:
                    await extra_check(conn)
                    checks["writable"] = "ok"
        except database.SchemaError as exc:
            checks["migrations"] = str(exc)
            return web.json_response({"status": "not_ready", "checks": checks}, status=503)
        except (*_UNAVAILABLE, TimeoutError, asyncpg.PostgresError) as exc:
            checks.setdefault("database", f"unavailable: {type(exc).__name__}")
            return web.json_response({"status": "not_ready", "checks": checks}, status=503)
        return web.json_response({"status": "ready", "checks": checks})

    return [web.get("/healthz", healthz), web.get("/readyz", readyz)]
