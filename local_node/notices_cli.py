"""``local-node notices``: where a practitioner's notices go (docs/notices.md)."""

from __future__ import annotations

import click

from local_node.app import open_services
from local_node.config import NodeConfig
from protocol.errors import ValidationError
from protocol.records import check_text
from server_common import cli as common


@click.group(help="Notices from the hub: another council or service is involved with a "
                  "child (docs/notices.md).")
def notices() -> None:
    pass


@notices.command("address", help="Give a user their work email address, so the notices for "
                                 "the lead professional an involvement names by that address "
                                 "reach their inbox, and their watches are emailed.")
@click.argument("user")
@click.argument("email")
@click.pass_obj
def notices_address(config: NodeConfig, user: str, email: str) -> None:
    if "@" not in email or (check_text(email, "email") or "") != email:
        raise click.ClickException(str(ValidationError("email", "not an email address")))

    async def go() -> None:
        async with open_services(config, checked=True) as services:
            await services.notices.set_address(user, email,
                                                common.cli_actor(config.council.code))

    common.run(go())
    click.echo(f"{user}'s notices address: {email.lower()}")
