"""``users …``: the account commands both ``national-hub`` and ``local-node`` mount.

Each CLI passes how to open its pool, find its config and name its audit log from
click's context object. Every command that changes an account (add, disable, enable,
unlock, token, revoke-tokens) is an admin action (docs/design.md §6): it is written to the
server's audit log first, as the operating-system user who ran it, and if that write
fails the command fails and changes nothing; a refused command (say, a name already
taken) adds a second entry, ``<action>.refused`` with the error code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import click

from protocol.errors import SignpostError
from server_common import cli as common
from server_common import database
from server_common.accounts.config import AccountsConfig
from server_common.accounts.principal import Role
from server_common.accounts.service import AccountService
from server_common.audit.entry import AuditEntry
from server_common.audit.service import AuditLog
from server_common.config import ConfigError, Duration

PoolOpener = Callable[[Any], contextlib.AbstractAsyncContextManager[asyncpg.Pool]]
ConfigOf = Callable[[Any], AccountsConfig]
AuditOriginOf = Callable[[Any], str]
CouncilOf = Callable[[Any], str | None]
PURPOSE = "administration"


def users_group(package: str, open_pool: PoolOpener, config_of: ConfigOf,
                issuer: str, audit_origin_of: AuditOriginOf,
                council_of: CouncilOf | None = None) -> click.Group:
    """The ``users`` group; ``open_pool(obj)``, ``config_of(obj)``,
    ``audit_origin_of(obj)`` and ``council_of(obj)`` (a node's own council, so that
    other councils' index-team accounts are refused) take ``ctx.obj``."""

    def run(obj: Any, work: Callable[[AccountService], Any],
            audited: tuple[str, dict[str, Any]] | None = None) -> Any:
        """Run ``work``; an admin action ``(action, parameters)`` is audited before it."""
        async def go() -> Any:
            async with open_pool(obj) as pool:
                async with pool.acquire() as conn:
                    await database.check_current(conn, package)
                service = AccountService(pool, config_of(obj), issuer=issuer,
                                         council=council_of(obj) if council_of else None)
                await service.seal_plain_seeds()  # accounts schema 002, if not done yet
                if audited is None:
                    return await work(service)
                action, parameters = audited
                audit, actor = AuditLog(pool, None, origin=audit_origin_of(obj)), \
                    common.cli_actor(issuer)
                await audit.record(AuditEntry.by(actor, action, PURPOSE, parameters))
                try:
                    return await work(service)
                except SignpostError as exc:  # the attempt is on record: so is its refusal
                    await audit.record(AuditEntry.by(actor, action + ".refused", PURPOSE,
                                                     parameters | {"code": str(exc.code)}))
                    raise
        try:
            return common.run(go())
        except ConfigError as exc:
            raise click.ClickException(f"configuration: {exc}") from exc

    @click.group(help="People's accounts: add, list, disable, unlock, API tokens.")
    def users() -> None:
        pass

    @users.command("add", help="Add an account. Prompts for the password (or generates one "
                               "with --generate-password) and prints the TOTP secret and "
                               "provisioning URI once: load it into an authenticator app.")
    @click.argument("name")
    @click.option("--role", required=True, type=click.Choice([str(r) for r in Role]))
    @click.option("--council", default=None, help="Council code (index_team accounts only).")
    @click.option("--organisation", default="", help="The person's organisation.")
    @click.option("--generate-password", is_flag=True,
                  help="Generate a random password and print it once instead of prompting.")
    @click.pass_obj
    def add(obj: Any, name: str, role: str, council: str | None, organisation: str,
            generate_password: bool) -> None:
        password = None if generate_password else click.prompt(
            "Password (at least 12 characters; weak or common ones are refused)",
            hide_input=True,
            confirmation_prompt=True, err=True)
        new = run(obj, lambda s: s.add_user(name, role, council=council,
                                            organisation=organisation, password=password),
                  ("users.add", {"name": name, "role": role, "council": council,
                                 "organisation": organisation}))
        click.echo(f"added {new.name} ({new.role})")
        if generate_password:
            click.echo(f"password: {new.password}")
        click.echo(f"totp secret: {new.totp_secret}\ntotp uri: {new.provisioning_uri}\n"
                   "(shown once: they are not printed again)")

    @users.command("list", help="List accounts, roles and whether each is usable.")
    @click.pass_obj
    def list_(obj: Any) -> None:
        rows = run(obj, lambda s: s.list_users())
        click.echo(f"{'name':<24} {'role':<13} {'council':<10} state / organisation")
        for u in rows:
            state = "disabled" if u.disabled else "active"
            click.echo(f"{u.name:<24} {u.role!s:<13} {u.council or '-':<10} "
                       f"{state} / {u.organisation or '-'}")

    @users.command("disable", help="Refuse every login of an account, end its sessions and "
                                   "revoke its tokens (enabling it again brings none back).")
    @click.argument("name")
    @click.pass_obj
    def disable(obj: Any, name: str) -> None:
        run(obj, lambda s: s.set_disabled(name, True), ("users.disable", {"name": name}))
        click.echo(f"disabled {name}")

    @users.command("enable", help="Let a disabled account log in again (and be given new "
                                  "tokens).")
    @click.argument("name")
    @click.pass_obj
    def enable(obj: Any, name: str) -> None:
        run(obj, lambda s: s.set_disabled(name, False), ("users.enable", {"name": name}))
        click.echo(f"enabled {name}")

    @users.command("unlock", help="Stop an account's earlier failed logins from counting "
                                  "towards throttling (from every address).")
    @click.argument("name")
    @click.pass_obj
    def unlock(obj: Any, name: str) -> None:
        run(obj, lambda s: s.unlock(name), ("users.unlock", {"name": name}))
        click.echo(f"unlocked {name}")

    @users.command("token", help="Create a bearer token for the JSON API and print it once "
                                 "(send it as 'Authorization: Bearer TOKEN').")
    @click.argument("name")
    @click.option("--expires", callback=common.parse_expiry, metavar="DATE",
                  help="When it stops working: an ISO date (00:00 UTC) or date-time, as "
                       "every --expires. Default: after accounts.token_lifetime.")
    @click.option("--lifetime", default=None, metavar="DURATION",
                  help="Or how long it works, such as 30d or 12h.")
    @click.pass_obj
    def token(obj: Any, name: str, expires: datetime | None, lifetime: str | None) -> None:
        if expires is not None and lifetime is not None:
            raise click.UsageError("give --expires or --lifetime, not both")
        seconds: float | None
        try:
            seconds = Duration.parse(lifetime, "--lifetime") if lifetime else None
        except ConfigError as exc:
            raise click.BadParameter(str(exc)) from exc
        if expires is not None:
            seconds = (expires - datetime.now(UTC)).total_seconds()
            if seconds <= 0:
                raise click.BadParameter("--expires is in the past")
        if seconds is not None and seconds <= 0:
            raise click.BadParameter("--lifetime must be positive")
        value, expires_at = run(obj, lambda s: s.create_token(name, seconds),
                                ("users.token", {"name": name, "lifetime": lifetime,
                                                 "expires": expires and expires.isoformat()}))
        click.echo(f"token for {name}, expires {expires_at:%Y-%m-%d %H:%M:%S}Z "
                   f"(shown once):\n{value}")

    @users.command("revoke-tokens", help="Revoke every bearer token of an account.")
    @click.argument("name")
    @click.pass_obj
    def revoke_tokens(obj: Any, name: str) -> None:
        count = run(obj, lambda s: s.revoke_tokens(name),
                    ("users.revoke-tokens", {"name": name}))
        click.echo(f"revoked {count} token(s) of {name}")

    return users
