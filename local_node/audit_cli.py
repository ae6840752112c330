"""``local-node audit``: the node's own signed audit log, and its witness of the hub's
(docs/audit.md)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from local_node.app import open_services
from local_node.config import NodeConfig
from local_node.keyfile import KeyFile
from local_node.services.container import NodeServices
from local_node.services.status import Kept
from local_node.services.witness import Outcome
from local_node.transport import connect
from protocol import keys as protocol_keys
from protocol.errors import SignpostError
from server_common import cli as common
from server_common.audit.checkpoint import Checkpoint
from server_common.audit.cli import unseal_command
from server_common.audit.service import AuditLog, VerifyReport
from server_common.audit.witnessing import Verdict, judge
from server_common.cli import cli_actor
from server_common.config import ConfigError

TRUST = click.option(
    "--trust", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Another council public key (PEM) whose checkpoints are accepted, e.g. one "
         "retired by rotation. Repeatable.")


def _council_key(config: NodeConfig) -> protocol_keys.Ed25519PrivateKey:
    if not config.key_file.exists():
        raise click.ClickException(f"no council key at {config.key_file}: run "
                                   "'local-node keys generate'")
    return protocol_keys.load_private_key(config.key_file)


@click.group(help="The node's tamper-evident audit log, and its witness of the hub's "
                  "(docs/audit.md).")
def audit() -> None:
    pass


@audit.command("verify", help="Recompute every entry's leaf hash and every checkpoint's "
                              "root, and check the council's signatures on them. Exit 0 "
                              "when everything verifies; otherwise 1, naming each problem.")
@TRUST
@click.pass_obj
def audit_verify(config: NodeConfig, trust: tuple[Path, ...]) -> None:
    try:
        trusted: list[Ed25519PublicKey] = [_council_key(config).public_key()] + [
            protocol_keys.load_public_key(p.read_bytes(), str(p)) for p in trust]
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc

    async def at_hub(services: NodeServices) -> tuple[int | None, str | None, str | None]:
        """(size the hub kept, problem, why the hub could not be asked)."""
        try:
            async with connect(config.hub, config.council.code,
                               KeyFile(config.key_file)) as client:
                return (*await services.witness(client, []).own_log_at_hub(
                    services.audit, trusted), None)
        except SignpostError as exc:
            return None, None, str(exc)

    async def go() -> tuple[VerifyReport, int, tuple[int | None, str | None, str | None]]:
        async with open_services(config, checked=True, trusted_keys=trusted) as services:
            log = services.audit
            return (await log.verify_all(), await log.store_latest_size(),
                    await at_hub(services))

    report, covered, (held, differs, unreachable) = common.run(go())
    for problem in report.problems:
        click.echo(f"FAIL {problem}", err=True)
    if differs is not None:
        click.echo(f"FAIL against the hub's copy: {differs}", err=True)
        sys.exit(1)
    if not report.ok:
        click.echo(f"audit log does NOT verify: {len(report.problems)} problem(s) in "
                   f"{report.entries} entries and {report.checkpoints} checkpoints", err=True)
        sys.exit(1)
    click.echo(f"audit log verified: {report.entries} entries, {report.checkpoints} "
               "signed checkpoints")
    if held is not None:
        click.echo(f"consistent with the checkpoint of {held} entries the hub kept of it")
    elif unreachable is not None:
        click.echo(f"note: the hub could not be asked for its copy ({unreachable}): removing "
                   "the newest entries with their checkpoints would not be caught here")
    if report.entries > covered:
        click.echo(f"note: {report.entries - covered} newest entries are not yet covered by "
                   "a signed checkpoint ('local-node audit checkpoint' signs one)")


@contextlib.asynccontextmanager
async def _audit_log(config: NodeConfig) -> AsyncIterator[AuditLog]:
    async with open_services(config, checked=True) as services:
        yield services.audit


audit.add_command(unseal_command(_audit_log, lambda config: cli_actor(config.council.code)))


@audit.command("checkpoint", help="Sign a checkpoint of the node's audit log now, with the "
                                  "council key, and print it.")
@click.pass_obj
def audit_checkpoint(config: NodeConfig) -> None:
    key = _council_key(config)

    async def go() -> Checkpoint:
        async with open_services(config, checked=True, signing=key) as services:
            return await services.audit.checkpoint()

    click.echo(common.run(go()).note, nl=False)


@audit.command("verify-hub", help="Check the hub's latest audit checkpoint against the last "
                                  "one this council cosigned (kept in the node's database): "
                                  "exit 1, saying why, on a truncated, rewritten or forked "
                                  "log or a checkpoint not signed by the hub.")
@click.pass_obj
def audit_verify_hub(config: NodeConfig) -> None:
    if config.hub.public_key_file is None or not config.hub.public_key_file.exists():
        raise click.ClickException("hub.public_key_file must name the hub's public key (PEM)")
    hub_key = protocol_keys.load_public_key(config.hub.public_key_file.read_bytes(),
                                            str(config.hub.public_key_file))
    _council_key(config)

    async def go() -> tuple[Kept | None, Verdict]:
        async with open_services(config, checked=True) as services:
            kept = await services.status.cosigned()
            async with connect(config.hub, config.council.code,
                               KeyFile(config.key_file)) as client:
                offer = await client.get_audit_checkpoint(kept.tree_size if kept else 0)
        return kept, judge(kept, offer, [hub_key])

    kept, verdict = common.run(go())
    if verdict.reason is not None:
        click.echo(f"FAIL the hub's audit log: {verdict.reason}", err=True)
        sys.exit(1)
    assert verdict.checkpoint is not None
    if kept is None:
        click.echo(f"the hub's checkpoint of {verdict.checkpoint.size} entries is signed by "
                   "the hub; this council has cosigned none yet, so there is nothing to "
                   "compare it with")
        return
    click.echo(f"the hub's audit log is consistent with the checkpoint of {kept.tree_size} "
               f"entries this council cosigned (the hub's latest: "
               f"{verdict.checkpoint.size} entries)")


@audit.command("accept-hub", help="After an incident the council was told of (e.g. the hub "
                                  "restored from a backup that lost audit entries): accept "
                                  "the hub's current checkpoint as the new baseline, cosign "
                                  "it and tell the hub. Recorded, with the reason, in the "
                                  "node's own audit log.")
@click.option("--reason", required=True, help="Why (the incident's reference); audited.")
@click.pass_obj
def audit_accept_hub(config: NodeConfig, reason: str) -> None:
    if config.hub.public_key_file is None or not config.hub.public_key_file.exists():
        raise click.ClickException("hub.public_key_file must name the hub's public key (PEM)")
    if len(reason.strip()) < 10:
        raise click.ClickException("--reason: say why in at least 10 characters")
    hub_key = protocol_keys.load_public_key(config.hub.public_key_file.read_bytes(),
                                            str(config.hub.public_key_file))
    _council_key(config)

    async def go() -> Outcome:
        async with open_services(config, checked=True) as services, \
                connect(config.hub, config.council.code, KeyFile(config.key_file)) as client:
            witness = services.witness(client, [hub_key])
            return await witness.accept(reason, cli_actor(config.council.code), services.audit)

    outcome = common.run(go())
    if not outcome.cosigned:
        click.echo(f"FAIL {outcome.reason}", err=True)
        sys.exit(1)
    click.echo(f"accepted and cosigned the hub's checkpoint of {outcome.tree_size} entries")
