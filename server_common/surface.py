"""The middlewares both servers run, in their one order (outermost first):

1. request metrics (``HttpMetrics``): sees the status the client gets;
2. :func:`~server_common.headers.security_headers_middleware`: CSP, framing, caching
   headers on every answer, errors and redirects included;
3. :func:`~server_common.refusals.refusal_audit_middleware`: a refused attempt on a
   protected route is written to the audit log;
4. :func:`~server_common.web.error_middleware`: exceptions become answers (one place);
5. :func:`~server_common.ratelimit.address_limit_middleware`: the per-address allowance,
   *before* any credential is looked at;
6. :func:`~server_common.accounts.accounts_middleware`: who is asking, and CSRF;
7. :func:`~server_common.access.access_middleware`: deny by default;
8. :func:`~server_common.ratelimit.user_limit_middleware`: a signed-in user's allowance.

    app = web.Application(middlewares=surface.middlewares(HttpMetrics(registry, PACKAGE)))
"""

from __future__ import annotations

from aiohttp.typedefs import Middleware

from server_common.access import access_middleware
from server_common.accounts.web import accounts_middleware
from server_common.headers import security_headers_middleware
from server_common.metrics import HttpMetrics
from server_common.ratelimit import address_limit_middleware, user_limit_middleware
from server_common.refusals import refusal_audit_middleware
from server_common.web import error_middleware


def middlewares(metrics: HttpMetrics) -> list[Middleware]:
    return [metrics.middleware, security_headers_middleware, refusal_audit_middleware,
            error_middleware, address_limit_middleware, accounts_middleware,
            access_middleware, user_limit_middleware]
