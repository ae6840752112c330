"""The rate-limit middleware and its wiring.

Wiring (in ``create_app``, after the ``cleanup_ctx`` that opens the pool)::

    app = web.Application(middlewares=[..., error_middleware, accounts_middleware,
                                       rate_limit_middleware])
    ratelimit.install(app, POOL, config.rate_limits)

It runs after the accounts middleware, so a signed-in user is counted as themselves.
Over the limit, the request is refused before its handler runs: 429 ``rate_limited``,
retryable, with ``Retry-After`` (seconds to the next minute). Probes are never limited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
from aiohttp import web

from protocol.errors import RateLimitedError
from server_common.accounts.web import PRINCIPAL
from server_common.ratelimit.config import RateLimitConfig
from server_common.ratelimit.store import RateLimitStore
from server_common.web import Handler

log = logging.getLogger(__name__)

EXEMPT = frozenset({"/healthz", "/readyz"})
_NODE_PATH = re.compile(r"^/v1/councils/([^/]{1,16})/")
_PURGE_EVERY = 60.0


@dataclass(frozen=True, slots=True)
class RateLimiter:
    pool: asyncpg.Pool
    config: RateLimitConfig
    store: RateLimitStore

    def caller(self, request: web.Request) -> tuple[str, int]:
        """(counter key, allowed per minute) of the request's caller."""
        who = request.get(PRINCIPAL)
        if who is not None:
            return f"user:{who.user}", self.config.per_user
        address = request.remote or "unknown"
        node = _NODE_PATH.match(request.path)
        if node:  # not yet authenticated: per council *and* address, so a stranger
            # naming a council cannot use up that council's own allowance
            return f"council:{node.group(1)}:{address}", self.config.per_council
        return f"address:{address}", self.config.per_address

    async def check(self, request: web.Request) -> None:
        key, allowed = self.caller(request)
        if allowed == 0:
            return
        async with self.pool.acquire() as conn:
            hits, remaining = await self.store.hit(conn, key)
        if hits > allowed:
            raise RateLimitedError(
                f"more than {allowed} requests a minute from {key.split(':')[0]} "
                f"{key.split(':', 1)[1]}: wait {remaining:.0f} s",
                retry_after=max(1, round(remaining)))


LIMITER = web.AppKey("rate_limiter", RateLimiter)


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    limiter = request.app.get(LIMITER)
    if limiter is not None and request.path not in EXEMPT:
        await limiter.check(request)
    return await handler(request)


def install(app: web.Application, pool_key: web.AppKey[asyncpg.Pool],
            config: RateLimitConfig) -> None:
    """Build the limiter once ``pool_key`` is set and purge old counts in the
    background. Call it after appending the ``cleanup_ctx`` that opens the pool."""

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        limiter = RateLimiter(app[pool_key], config, RateLimitStore())
        app[LIMITER] = limiter
        purger = asyncio.create_task(_purge(limiter))
        yield
        purger.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await purger

    app.cleanup_ctx.append(lifecycle)


async def _purge(limiter: RateLimiter) -> None:
    while True:
        await asyncio.sleep(_PURGE_EVERY)
        try:
            async with limiter.pool.acquire() as conn:
                await limiter.store.purge(conn)
        except (OSError, asyncpg.PostgresError):
            log.warning("rate-limit purge failed; will retry", exc_info=True)
