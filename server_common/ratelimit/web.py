"""The rate-limit middlewares and their wiring.

Wiring (in ``create_app``, after the ``cleanup_ctx`` that opens the pool)::

    app = web.Application(middlewares=[..., error_middleware, address_limit_middleware,
                                       accounts_middleware, access_middleware,
                                       user_limit_middleware])
    ratelimit.install(app, POOL, config.rate_limits)

Three allowances a minute (``[rate_limits]``):

1. **Per address, before anything else.** Every request but the probes counts against
   its client's address (``server_common.web.client_address``: the peer, or what a
   configured trusted proxy says; an IPv6 client's whole /64), whatever its path and
   before its credentials are looked at. An attacker's wrong passwords, bad tokens,
   unsigned or forged node requests and invented council codes all spend that one
   allowance; once it is spent they are refused without being checked.
2. **Per user**, once a request proves who it is (session or bearer token): the request
   is given back to its address and counted against the user instead, so the staff of
   an office that share one address are not limited as one caller.
3. **Per council**, once a node request's signature verifies (:func:`count_node`,
   called by the hub's node-protocol handlers): given back to the address, counted
   against the council.

Over a limit: 429 ``rate_limited``, retryable, with ``Retry-After`` (seconds to the next
minute). A user's first refusal in a minute is recorded in the audit log
(server_common.refusals); the rest, and every anonymous one, only in the request
metrics, so a flood cannot fill the audit log.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
from aiohttp import web

from protocol.errors import RateLimitedError
from server_common.accounts.web import PRINCIPAL
from server_common.ratelimit.config import RateLimitConfig
from server_common.ratelimit.store import Hit, RateLimitStore
from server_common.tasks import background, run_every
from server_common.web import Handler, client_address

log = logging.getLogger(__name__)

EXEMPT = frozenset({"/healthz", "/readyz"})
_PURGE_EVERY = 60.0

# The address's count of this request, until it is moved to a user or council.
_COUNTED = web.RequestKey("rate_limit_counted", Hit)
# Set on the first refusal of a known caller in a minute: that one is audited.
AUDIT_RATE_LIMITED = web.RequestKey("rate_limit_audited", bool)


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

    async def admit(self, request: web.Request) -> None:
        """Before authentication: count the request against its address."""
        allowed = self.config.per_address
        if allowed == 0:
            return
        async with self.pool.acquire() as conn:
            hit = await self.store.hit(conn, f"address:{address_bucket(client_address(request))}")
        request[_COUNTED] = hit
        if hit.hits > allowed:
            raise _refusal(hit, allowed)

    async def charge(self, request: web.Request, key: str, allowed: int) -> None:
        """The request proved who it is (``key``): count it there, not at its address."""
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


LIMITER = web.AppKey("rate_limiter", RateLimiter)


@web.middleware
async def address_limit_middleware(request: web.Request,
                                   handler: Handler) -> web.StreamResponse:
    """Before ``accounts_middleware``: the per-address allowance."""
    limiter = request.app.get(LIMITER)
    if limiter is not None and request.path not in EXEMPT:
        await limiter.admit(request)
    return await handler(request)


@web.middleware
async def user_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """After ``accounts_middleware``: a signed-in user's own allowance."""
    limiter = request.app.get(LIMITER)
    who = request.get(PRINCIPAL)
    if limiter is not None and who is not None:
        await limiter.charge(request, f"user:{who.user}", limiter.config.per_user)
    return await handler(request)


async def count_node(request: web.Request, council: str) -> None:
    """A node request's signature verified: count it against ``council``'s allowance."""
    limiter = request.app.get(LIMITER)
    if limiter is not None:
        await limiter.charge(request, f"council:{council}", limiter.config.per_council)


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
