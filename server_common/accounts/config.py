"""The ``[accounts]`` config section, the same on hub and node."""

from __future__ import annotations

from dataclasses import dataclass

from server_common.config import ConfigError, Duration


@dataclass(frozen=True, slots=True)
class AccountsConfig:
    # A web session ends this long after login, or after this long without a request.
    session_lifetime: Duration = Duration(8 * 3600)
    session_idle_timeout: Duration = Duration(30 * 60)
    # After this many failed logins in a row an account is locked for lockout_duration.
    lockout_threshold: int = 5
    lockout_duration: Duration = Duration(15 * 60)
    # Bearer tokens made without --expires last this long.
    token_lifetime: Duration = Duration(30 * 86400)
    # "auto": the cookie is Secure when the request came over TLS (directly or as a
    # proxy's X-Forwarded-Proto, which aiohttp honours only if configured to);
    # "always" / "never" force it.
    cookie_secure: str = "auto"

    def __post_init__(self) -> None:
        if self.lockout_threshold < 1:
            raise ConfigError("accounts.lockout_threshold must be at least 1")
        for name in ("session_lifetime", "session_idle_timeout", "lockout_duration",
                     "token_lifetime"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"accounts.{name} must be positive")
        if self.cookie_secure not in ("auto", "always", "never"):
            raise ConfigError("accounts.cookie_secure must be auto, always or never")
