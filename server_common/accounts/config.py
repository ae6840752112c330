"""The ``[accounts]`` config section, the same on hub and node."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from server_common.config import ConfigError, Duration


@dataclass(frozen=True, slots=True)
class AccountsConfig:
    # A web session ends this long after login, or after this long without a request.
    session_lifetime: Duration = Duration(8 * 3600)
    session_idle_timeout: Duration = Duration(30 * 60)
    # Failed logins are throttled per (client address, name) and per client address
    # over throttle_window, never per account alone: an anonymous attacker who knows a
    # name cannot lock its owner out from another address. The address is the one
    # [rate_limits] counts: the TCP peer's, or what a [server] trusted_proxies proxy
    # says, an IPv6 client's whole /64 (it may pick any address in it for each try).
    # throttle_per_address = 0 turns the per-address limit off.
    throttle_per_name: int = 5
    throttle_per_address: int = 20
    throttle_window: Duration = Duration(15 * 60)
    # Wrong TOTP codes given with the right password, from any addresses, within
    # throttle_window; past it every sign-in of the account is refused alike (only
    # someone who has the password can set it off) until `users unlock`.
    totp_guesses_per_account: int = 10
    # Refused sign-ins are kept this long for investigation (the name as typed, the
    # address, why), then purged with expired sessions: an anonymous flood of wrong
    # passwords cannot grow the table for ever. At least throttle_window.
    login_failures_kept: Duration = Duration(90 * 86400)
    # Password hashes (argon2id, ~50 ms of CPU each) run in worker threads, at most
    # hash_concurrency at once with hash_queue more waiting; more is refused at once
    # (503 login_busy), so a burst of logins cannot starve the server.
    hash_concurrency: int = 2
    hash_queue: int = 8
    # The AES-256-GCM key that seals TOTP seeds in the database; created (mode 0600)
    # at first start when missing. Keep it out of database backups.
    secret_key_file: Path = Path(".data/accounts_secret.key")
    # Bearer tokens made without --expires or --lifetime last this long.
    token_lifetime: Duration = Duration(30 * 86400)
    # "auto": the cookie is Secure when the request came over TLS (directly, or as a
    # [server] trusted_proxies proxy's X-Forwarded-Proto says); "always" / "never"
    # force it.
    cookie_secure: str = "auto"

    def __post_init__(self) -> None:
        for name in ("throttle_per_name", "totp_guesses_per_account", "hash_concurrency"):
            if getattr(self, name) < 1:
                raise ConfigError(f"accounts.{name} must be at least 1")
        for name in ("throttle_per_address", "hash_queue"):
            if getattr(self, name) < 0:
                raise ConfigError(f"accounts.{name} must not be negative")
        for name in ("session_lifetime", "session_idle_timeout", "throttle_window",
                     "token_lifetime"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"accounts.{name} must be positive")
        if self.login_failures_kept < self.throttle_window:
            # the throttle and the per-account TOTP count read the window's failures
            raise ConfigError("accounts.login_failures_kept must be at least "
                              "accounts.throttle_window")
        if self.cookie_secure not in ("auto", "always", "never"):
            raise ConfigError("accounts.cookie_secure must be auto, always or never")
