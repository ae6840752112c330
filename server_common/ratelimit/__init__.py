"""Rate limits for every endpoint (docs/architecture.md "Rate limits"), counted in
PostgreSQL so that all replicas of a server share them (docs/design.md §9).

- ``config``: the ``[rate_limits]`` section (per address, per user, per council node).
- ``store``: the counter SQL; ``schema/``: its table, a shared migration track.
- ``web``: the middlewares (per address before authentication, per user after it),
  :func:`count_node` for verified node requests, and :func:`install`.
"""

from server_common.ratelimit.config import RateLimitConfig
from server_common.ratelimit.web import (
    address_limit_middleware,
    count_node,
    install,
    user_limit_middleware,
)

__all__ = ["RateLimitConfig", "address_limit_middleware", "count_node", "install",
           "user_limit_middleware"]
