"""Refused attempts leave a trace: a 400, 401, 403, 404, 405 or 429 answered on a
protected route (anything not on the anonymous list, server_common.access) writes an
audit entry, at hub and node.

The entry (action ``refused``) says who (the signed-in user, a verified council node
``node:<code>``, else ``anonymous``), from which address, the method and path, the
status and the stable error code, and the *names* of the query parameters, never their
values (a search's names, dates of birth and NHS numbers stay out of the log) and
never the body.

Bounded: an anonymous caller's refusals are recorded only once the per-address rate
limit has admitted the request, and its 429s never (they are counted in the request
metrics, ``signpost_http_request_duration_seconds{status="429"}``). A signed-in user's
429 is recorded once a minute (the first), the rest only counted.

Failing to write the entry never turns the refusal into a 500: it is logged and the
refusal goes out as it was.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from protocol.errors import ErrorCode
from server_common.access import NODE_VERIFIED, RouteClass, classify
from server_common.accounts.web import PRINCIPAL
from server_common.audit.entry import AuditEntry
from server_common.audit.service import AuditLog
from server_common.ratelimit.web import AUDIT_RATE_LIMITED
from server_common.web import REFUSAL, Handler, Refusal, client_address

log = logging.getLogger(__name__)

# The one key both apps keep their audit log under (the hub's handlers use it too).
AUDIT_LOG = web.AppKey("audit_log", AuditLog)
ACTION = "refused"
AUDITED = frozenset({400, 401, 403, 404, 405, 429})
# Codes for a refusal a handler rendered itself (a page with an error status).
_CODES = {400: ErrorCode.MALFORMED_REQUEST, 401: ErrorCode.NOT_AUTHENTICATED,
          403: ErrorCode.FORBIDDEN, 404: ErrorCode.NOT_FOUND,
          405: ErrorCode.METHOD_NOT_ALLOWED, 429: ErrorCode.RATE_LIMITED}
_MAX_PATH = 256
_MAX_NAMES = 32
_MAX_NAME = 64


def refusal_entry(request: web.Request, refusal: Refusal) -> AuditEntry:
    who = request.get(PRINCIPAL)
    council = request.get(NODE_VERIFIED)
    if who is not None:
        user, role, organisation = who.user, str(who.role), who.organisation
    elif council is not None:
        user, role, organisation = f"node:{council}", "node", council
    else:
        user, role, organisation = "anonymous", "anonymous", ""
    names = sorted({name[:_MAX_NAME] for name in request.query})[:_MAX_NAMES]
    parameters: dict[str, Any] = {
        "method": request.method[:16], "path": request.path[:_MAX_PATH],
        "status": refusal.status, "code": refusal.code,
        "address": client_address(request), "query_names": names,
    }
    return AuditEntry(user, role, organisation, "", ACTION, parameters)


def _to_record(request: web.Request, status: int) -> Refusal | None:
    if status not in AUDITED or classify(request) is RouteClass.ANONYMOUS:
        return None
    if status == 429 and not request.get(AUDIT_RATE_LIMITED, False):
        return None  # a flood: counted in the metrics, not written to the log
    refusal = request.get(REFUSAL)
    if refusal is None or refusal.status != status:
        refusal = Refusal(status, str(_CODES[status]))
    return refusal


async def _record(request: web.Request, refusal: Refusal) -> None:
    audit = request.app.get(AUDIT_LOG)
    if audit is None:
        log.error("refused attempt not recorded: the app has no audit log",
                  extra={"path": request.path})
        return
    try:
        await audit.record(refusal_entry(request, refusal))
    except Exception:
        log.exception("refused attempt not recorded",
                      extra={"path": request.path, "status": refusal.status})


@web.middleware
async def refusal_audit_middleware(request: web.Request,
                                   handler: Handler) -> web.StreamResponse:
    """Put it just outside ``error_middleware``: it sees every answer's final status."""
    try:
        response = await handler(request)
    except web.HTTPException:  # a redirect; to /login it is a refused attempt
        refusal = request.get(REFUSAL)
        if refusal is not None and (found := _to_record(request, refusal.status)):
            await _record(request, found)
        raise
    found = _to_record(request, response.status)
    if found is not None:
        await _record(request, found)
    return response
