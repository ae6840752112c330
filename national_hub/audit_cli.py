"""``national-hub audit``: the hub's tamper-evident log, its witnesses' evidence and the
hub's witness of each node's own log (docs/audit.md)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from national_hub.app import load_or_create_hub_key
from protocol import keys as protocol_keys
from server_common import cli as common
from server_common.audit.checkpoint import Checkpoint
from server_common.audit.cli import unseal_command
from server_common.audit.entry import Actor
from server_common.audit.service import AuditLog, VerifyReport

if TYPE_CHECKING:  # the command's context object; national_hub.cli imports this module
    from national_hub.cli import Context


def cli_actor() -> Actor:
    """Who an administrative command of ``national-hub`` is audited as: the
    operating-system user."""
    return common.cli_actor("national-hub")


@click.group(help="The tamper-evident audit log (docs/audit.md).")
def audit() -> None:
    pass


def _hub_public_keys(obj: Context, trust: tuple[Path, ...]) -> list[Ed25519PublicKey]:
    key_file = obj.config.hub.key_file
    if key_file.exists():
        found = [protocol_keys.load_private_key(key_file).public_key()]
    elif protocol_keys.public_path_for(key_file).exists():
        found = [protocol_keys.load_public_key(
            protocol_keys.public_path_for(key_file).read_bytes())]
    else:
        raise click.ClickException(f"no hub key at {key_file}: checkpoints cannot be checked")
    return found + [protocol_keys.load_public_key(p.read_bytes(), str(p)) for p in trust]


@audit.command("verify", help="Recompute every entry's leaf hash and every signed "
                              "checkpoint's root, check the signatures, and check the log "
                              "against each witness's (council's) latest cosigned "
                              "checkpoint. Exit 0 when everything verifies; otherwise 1, "
                              "naming each problem.")
@click.option("--trust", multiple=True, type=click.Path(exists=True, dir_okay=False,
                                                         path_type=Path),
              help="Another hub public key (PEM) whose checkpoints are accepted, e.g. one "
                   "retired by rotation. Repeatable.")
@click.pass_obj
def audit_verify(obj: Context, trust: tuple[Path, ...]) -> None:
    trusted = _hub_public_keys(obj, trust)

    async def go() -> tuple[VerifyReport, int]:
        async with obj.services(checked=True, trusted_keys=trusted) as services:
            log = services.audit
            latest = await log.store_latest_size()
            return await log.verify_all(), latest

    report, covered = common.run(go())
    for problem in report.problems:
        click.echo(f"FAIL {problem}", err=True)
    if not report.ok:
        click.echo(f"audit log does NOT verify: {len(report.problems)} problem(s) in "
                   f"{report.entries} entries and {report.checkpoints} checkpoints", err=True)
        sys.exit(1)
    click.echo(f"audit log verified: {report.entries} entries, {report.checkpoints} "
               f"signed checkpoints, consistent with {report.witnesses} witnesses' "
               f"cosigned checkpoints")
    if report.entries > covered:
        click.echo(f"note: {report.entries - covered} newest entries are not yet covered by "
                   f"a signed checkpoint ('national-hub audit checkpoint' signs one)")
    if not report.witnesses:
        click.echo("note: no council has cosigned a checkpoint yet: a superuser who removes "
                   "the newest entries and checkpoints would not be caught here")


@audit.command("checkpoint", help="Sign a checkpoint of the audit log now and print it.")
@click.pass_obj
def audit_checkpoint(obj: Context) -> None:
    key = load_or_create_hub_key(obj.config.hub.key_file)

    async def go() -> Checkpoint:
        async with obj.services(checked=True, hub_key=key) as services:
            return await services.audit.checkpoint()

    click.echo(common.run(go()).note, nl=False)


@contextlib.asynccontextmanager
async def _audit_log(obj: Context) -> AsyncIterator[AuditLog]:
    async with obj.services(checked=True) as services:
        yield services.audit


audit.add_command(unseal_command(_audit_log, lambda obj: cli_actor()))


@audit.command("accept-node", help="After an incident the council reported (e.g. its node "
                                   "restored from a backup that lost audit entries): accept "
                                   "the checkpoint of its node's own log the hub last refused "
                                   "as the new baseline. Audited, with the reason.")
@click.argument("council")
@click.option("--reason", required=True, help="Why (the incident's reference); audited.")
@click.pass_obj
def audit_accept_node(obj: Context, council: str, reason: str) -> None:
    async def go() -> int:
        async with obj.services(checked=True) as services:
            held = await services.node_logs.accept(council, reason, cli_actor())
            return held.tree_size

    size = common.run(go())
    click.echo(f"accepted {council}'s node log checkpoint of {size} entries as the new "
               "baseline")
