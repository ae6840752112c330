"""Accounts and logins, shared by the hub and every council node (docs/design.md §6).

- ``principal``: :class:`Role` and the frozen :class:`Principal` a request runs as.
- ``credentials``: argon2id password hashes, TOTP, random ids and their sha256.
- ``passwords``: which passwords are too weak (zxcvbn); ``seeds``: TOTP seeds sealed
  with AES-GCM under the key in ``accounts.secret_key_file``; ``hashing``: password
  hashes in worker threads behind a bounded gate.
- ``store`` (SQL) → ``service`` (:class:`AccountService`: users, login with throttling
  per client address, sessions, bearer tokens; a node's own council only).
- ``web``: the aiohttp middleware (principal + CSRF), :func:`require_roles`, and the
  ``/login``, ``/logout``, ``/v1/me`` and ``/`` routes; :func:`install` wires them.
- ``cli``: the ``users`` command group both CLIs mount.
- ``schema/``: the tables, applied to every server's database as a shared migration
  track (see ``server_common.database``).
"""

from server_common.accounts.config import AccountsConfig
from server_common.accounts.principal import Principal, Role
from server_common.accounts.web import (
    accounts_middleware,
    csrf_token,
    install,
    principal,
    require_roles,
)

__all__ = ["AccountsConfig", "Principal", "Role", "accounts_middleware", "csrf_token",
           "install", "principal", "require_roles"]
