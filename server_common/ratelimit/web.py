"""The rate-limit middlewares and their wiring.

Wiring (in ``create_app``, after the ``cleanup_ctx`` that opens the pool)::

    app = web.Application(middlewares=[..., error_middleware, address_limit_middleware,
                                       accounts_middleware, access_middleware,
                                       user_limit_middleware])
    ratelimit.install(app, POOL, config.rate_limits)

Three allowances a minute (``[rate_limits]``):

1. **Per address, before credentials are checked.** A request without credentials
   counts against its client's address (``server_common.web.client_address``: the
   peer, or what a configured trusted proxy says; an IPv6 client's whole /64),
   whatever its path, before anything else, so before any password or node signature
   is checked. A request with a bearer token or a session is first refused if its
   address has spent its allowance (a read), then counted once its credentials are
   known: against its user if they prove who it is, else against its address, on its
   way out if it was refused before the handler (an unknown bearer token, a bad CSRF
   token, a route it may not use), and answered 429 instead if that spent the
   allowance. An attacker's wrong passwords, bad tokens, unsigned or forged node
   requests and invented council codes all spend that one allowance; once it is spent
   they are refused without being checked.
2. **Per user**, once a request proves who it is (session or bearer token): counted
   against the user only, wherever they connect from, so the staff of an office that
   share one address are not limited as one caller. One write a request: the address
   is not counted first and given back.
3. **Per council**, once a node request's signature verifies (:func:`count_node`,
   called by the hub's node-protocol handlers): given back to the address, counted
   against the council.

Over a limit: 429 ``rate_limited``, retryable, with ``Retry-After`` (seconds to the next
minute). A user's first refusal in a minute is recorded in the audit log
(server_common.refusals); the rest, and every anonymous one, only in the request
metrics, so a flood cannot fill the audit log.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
from aiohttp import web

from protocol.errors import RateLimitedError
from server_common.accounts.web import PRINCIPAL, offers_credentials
from server_common.ratelimit.config import RateLimitConfig
from server_common.ratelimit.store import Hit, RateLimitStore
from server_common.tasks import background, run_every
from server_common.web import Handler, client_bucket

log = logging.getLogger(__name__)

EXEMPT = frozenset({"/healthz", "/readyz"})
_PURGE_EVERY = 60.0

# The address's count of this request, until it is moved to a council.
_COUNTED = web.RequestKey("rate_limit_counted", Hit)
# Set once the request has been counted (or was exempt from counting) somewhere.
_SETTLED = web.RequestKey("rate_limit_settled", bool)
# Set on the first refusal of a known caller in a minute: that one is audited.
AUDIT_RATE_LIMITED = web.RequestKey("rate_limit_audited", bool)


def _refusal(hit: Hit, allowed: int) -> RateLimitedError:
    kind, who = hit.key.split(":", 1)
    return RateLimitedError(
        f"more than {allowed} requests a minute from {kind} {who}: "
        f"wait {hit.remaining:.0f} s", retry_after=max(1, round(hit.remaining)))


@dataclass(frozen=True, slots=True)
class RateLimiter:
    pool: asyncpg.Pool
    config: RateLimitConfig
    store: RateLimitStore

    async def refuse_if_spent(self, request: web.Request) -> None:
        """Before its credentials are looked at: refuse a request whose address has
        spent its allowance, without counting it (it is counted once its credentials
        are known: against its user, or else here)."""
        allowed = self.config.per_address
        if allowed == 0:
            return
        async with self.pool.acquire() as conn:
            hit = await self.store.peek(conn, address_key(request))
        if hit.hits >= allowed:  # what counting it would make more than allowed
            raise _refusal(hit, allowed)

    async def admit(self, request: web.Request) -> None:
        """Count a request that has not proved who it is against its address."""
        request[_SETTLED] = True
        allowed = self.config.per_address
        if allowed == 0:
            return
        async with self.pool.acquire() as conn:
            hit = await self.store.hit(conn, address_key(request))
        request[_COUNTED] = hit
        if hit.hits > allowed:
            raise _refusal(hit, allowed)

    async def charge(self, request: web.Request, key: str, allowed: int) -> None:
        """The request proved who it is (``key``): count it there, and give it back to
        its address if it was counted there first (a node's request)."""
        request[_SETTLED] = True
        counted = request.pop(_COUNTED, None)
        if counted is None and allowed == 0:
            return
        async with self.pool.acquire() as conn:
            hit = (await self.store.hit(conn, key) if counted is None
                   else await self.store.move(conn, counted, key))
        if allowed and hit.hits > allowed:
            if hit.hits == allowed + 1:
                request[AUDIT_RATE_LIMITED] = True
            raise _refusal(hit, allowed)


def address_key(request: web.Request) -> str:
    return f"address:{client_bucket(request)}"


LIMITER = web.AppKey("rate_limiter", RateLimiter)


@web.middleware
async def address_limit_middleware(request: web.Request,
                                   handler: Handler) -> web.StreamResponse:
    """Before ``accounts_middleware``: a request without credentials is counted against
    its address; one with a bearer token or a session is refused if its address has
    spent its allowance, and counted once its credentials are known (its user's, in
    :func:`user_limit_middleware`, or its address's, here on the way out if it was
    refused before: an unknown bearer token, a bad CSRF token, a route it may not use)."""
    limiter = request.app.get(LIMITER)
    if limiter is None or request.path in EXEMPT:
        return await handler(request)
    if offers_credentials(request):
        await limiter.refuse_if_spent(request)
    else:
        await limiter.admit(request)
    try:
        response = await handler(request)
    except Exception:
        if not request.get(_SETTLED):
            await limiter.admit(request)  # over the allowance: 429 instead
        raise
    if not request.get(_SETTLED):
        await limiter.admit(request)
    return response


@web.middleware
async def user_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """After ``accounts_middleware`` and access, before the handler: a signed-in user's
    own allowance, or else the address's, before any password or signature is checked."""
    limiter = request.app.get(LIMITER)
    if limiter is not None and request.path not in EXEMPT:
        who = request.get(PRINCIPAL)
        if who is not None:
            await limiter.charge(request, f"user:{who.user}", limiter.config.per_user)
        elif not request.get(_SETTLED):
            await limiter.admit(request)
    return await handler(request)


async def count_node(request: web.Request, council: str) -> None:
    """A node request's signature verified: count it against ``council``'s allowance."""
    limiter = request.app.get(LIMITER)
    if limiter is not None:
        await limiter.charge(request, f"council:{council}", limiter.config.per_council)


async def count_node_digests(request: web.Request, council: str) -> None:
    """A verified digest summary request: also count it against ``council``'s own, small
    allowance for them (``per_council_digests``), each being a pass over its records."""
    limiter = request.app.get(LIMITER)
    if limiter is not None:
        await limiter.charge(request, f"digests:{council}", limiter.config.per_council_digests)


async def count_node_drilldowns(request: web.Request, council: str) -> None:
    """A verified drill-down request: also count it against ``council``'s own allowance
    for them (``per_council_drilldowns``), sized to what one reconcile asks for."""
    limiter = request.app.get(LIMITER)
    if limiter is not None:
        await limiter.charge(request, f"drilldowns:{council}",
                             limiter.config.per_council_drilldowns)


def install(app: web.Application, pool_key: web.AppKey[asyncpg.Pool],
            config: RateLimitConfig) -> None:
    """Build the limiter once ``pool_key`` is set and purge old counts in the
    background. Call it after appending the ``cleanup_ctx`` that opens the pool."""

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        limiter = RateLimiter(app[pool_key], config, RateLimitStore())
        app[LIMITER] = limiter
        async def purge() -> None:
            async with limiter.pool.acquire() as conn:
                await limiter.store.purge(conn)

        async with background(run_every("rate-limit purge", purge, _PURGE_EVERY,
                                         first_after=_PURGE_EVERY)):
            yield

    app.cleanup_ctx.append(lifecycle)
