"""Rate limits for every endpoint (issue 7), counted in PostgreSQL so that all
replicas of a server share them (DESIGN §9).

- ``config``: the ``[rate_limits]`` section (per user, per council node, per address).
- ``store``: the counter SQL; ``schema/``: its table, a shared migration track.
- ``web``: the middleware and :func:`install`.
"""

from server_common.ratelimit.config import RateLimitConfig
from server_common.ratelimit.web import install, rate_limit_middleware

__all__ = ["RateLimitConfig", "install", "rate_limit_middleware"]
