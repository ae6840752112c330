"""``national-hub``: serve the hub and administer it (docs/design.md §8)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from national_hub.app import PACKAGE, create_app, open_pool
from national_hub.audit_cli import audit, cli_actor
from national_hub.config import ENV_PREFIX, HubConfig
from national_hub.health_table import format_table
from national_hub.services.container import HubServices
from national_hub.services.councils import Council, CouncilKey
from national_hub.services.health import FederationHealth
from national_hub.services.links import export_links
from national_hub.services.model_training import (
    CANDIDATE_PAIRS,
    RANDOM_PAIRS,
    StoredModel,
)
from national_hub.services.retention import HubRetentionReport
from national_hub.services.review import Decided, ReviewRow
from protocol.disclosure import Viewer
from protocol.matching.training import EM_ITERATIONS
from server_common import cli as common
from server_common import files, key_scheme_store, logs
from server_common.accounts import Role
from server_common.accounts.cli import users_group
from server_common.audit.entry import AuditEntry


class Context:
    def __init__(self, config: HubConfig) -> None:
        self.config = config

    @contextlib.asynccontextmanager
    async def services(self, *, checked: bool = False,
                       hub_key: Ed25519PrivateKey | None = None,
                       trusted_keys: Sequence[Ed25519PublicKey] = (),
                       ) -> AsyncIterator[HubServices]:
        """The hub's services for one command, as the server builds them, over a pool
        of the command's own (its schema checked first when ``checked``); changes are
        audited as the operating-system user."""
        opened = (common.checked_pool(open_pool, self.config, PACKAGE) if checked
                  else open_pool(self.config))
        async with opened as pool:
            yield HubServices(self.config, pool, hub_key=hub_key, actor=cli_actor(),
                              trusted_keys=trusted_keys)


@click.group(cls=common.Group, help="The Signpost national hub. Settings come from the "
                                     "--config file, then NATIONAL_HUB__SECTION__KEY "
                                     "variables, then these options.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              envvar="NATIONAL_HUB_CONFIG", help="TOML configuration file.")
@click.option("--database-url",
              help="PostgreSQL URL (NATIONAL_HUB__DATABASE__URL); without it an embedded "
                   "server is used.")
@click.option("--read-database-url",
              help="A streaming replica of the database for searches and child views "
                   "(NATIONAL_HUB__DATABASE__READ_URL).")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None, database_url: str | None,
         read_database_url: str | None) -> None:
    logs.setup("national-hub", "WARNING")  # serve raises this to INFO
    ctx.obj = Context(common.load_config(
        HubConfig, ENV_PREFIX, config_path,
        {"database": {"url": database_url, "read_url": read_database_url}}))


@main.command(help="Run the hub's HTTP server.")
@click.option("--host", default=None, help="Listen address (default from config).")
@click.option("--port", type=common.PORT, default=None,
              help="Listen port (default from config).")
@click.pass_obj
def serve(obj: Context, host: str | None, port: int | None) -> None:
    common.check_schema(open_pool, obj.config, PACKAGE)
    server = obj.config.server
    common.serve(create_app(obj.config), host or server.host, port or server.port,
                 "national-hub", obj.config.tls)


async def _rekey(obj: Context) -> int | None:
    """``db upgrade``'s last step: every record's blocking keys made again if their
    scheme is not the code's (``Resolver.rekey_all``)."""
    async with open_pool(obj.config) as pool, pool.acquire() as conn:
        if not await key_scheme_store.stale(conn):
            return None  # (the usual case: no services built)
    async with obj.services() as services:
        return await services.resolver.rekey_all(lambda line: click.echo(line, err=True))


main.add_command(common.db_group(PACKAGE, open_pool, lambda obj: obj.config, rekey=_rekey))


@main.group(help="Council registry.")
def councils() -> None:
    pass


@councils.command("add", help="Enrol a council and its public key (PEM); for a council "
                              "already enrolled, add the key beside its others.")
@click.argument("code")
@click.option("--name", required=True, help="The council's name.")
@click.option("--public-key", "public_key", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--expires", callback=common.parse_expiry, metavar="DATE",
              help="When the key stops being accepted (its not_after): an ISO date, "
                   "meaning 00:00 UTC that day, or an ISO date-time. Default: never.")
@click.pass_obj
def councils_add(obj: Context, code: str, name: str, public_key: Path,
                 expires: datetime | None) -> None:
    pem = public_key.read_bytes()

    async def go() -> str:
        async with obj.services() as services:
            return await services.councils.enrol(code, name, pem, expires)

    kid = common.run(go())
    click.echo(f"enrolled {code} ({name.strip()}) with key {kid}"
               + (f", expiring {expires:%Y-%m-%d %H:%M:%S %Z}" if expires else ""))


@councils.command("list", help="List councils, cursors and keys.")
@click.pass_obj
def councils_list(obj: Context) -> None:
    async def go() -> list[tuple[Council, list[CouncilKey]]]:
        async with obj.services() as services:
            return await services.councils.list_all()

    click.echo(f"{'code':<10} {'seq':>8}  {'state':<8} name / keys")
    for council, keys in common.run(go()):
        state = "FORKED" if council.forked_at else "ok"
        click.echo(f"{council.code:<10} {council.cursor_seq:>8}  {state:<8} {council.name}")
        click.echo(f"{'':<30}index team {_contact_line(council)}")
        for key in keys:
            status = "revoked" if key.revoked_at else "active"
            if key.not_after is not None:
                status += (" expired " if key.not_after <= datetime.now(UTC) else " expires ") \
                    + f"{key.not_after:%Y-%m-%d %H:%M:%S}Z"
            click.echo(f"{'':<30}key {key.kid} {status}")


def _contact_line(council: Council) -> str:
    found = [x for x in (council.index_team_phone, council.index_team_email) if x]
    return " · ".join(found) if found else "no contact set (councils set-contact)"


@councils.command("set-contact", help="Set how to reach a council's index team, shown to "
                                      "practitioners on a shielded child's page. An option "
                                      "left out is unchanged; an empty one clears it.")
@click.argument("code")
@click.option("--email", default=None, help="The index team's email address.")
@click.option("--phone", default=None, help="The index team's phone number.")
@click.pass_obj
def councils_set_contact(obj: Context, code: str, email: str | None, phone: str | None) -> None:
    if email is None and phone is None:
        raise click.UsageError("give --email, --phone or both")

    async def go() -> Council:
        async with obj.services() as services:
            return await services.councils.set_contact(code, email=email, phone=phone)

    council = common.run(go())
    click.echo(f"index team of {council.code} ({council.name}): {_contact_line(council)}")


@councils.command("unflag", help="Clear a council's fork flag after the node is repaired.")
@click.argument("code")
@click.pass_obj
def councils_unflag(obj: Context, code: str) -> None:
    async def go() -> None:
        async with obj.services() as services:
            await services.councils.clear_fork(code)

    common.run(go())
    click.echo(f"cleared the fork flag of {code}")


@main.group(help="Council keys.")
def keys() -> None:
    pass


@keys.command("revoke", help="Revoke a council key: anything it signs from now on is refused.")
@click.argument("kid")
@click.pass_obj
def keys_revoke(obj: Context, kid: str) -> None:
    async def go() -> CouncilKey:
        async with obj.services() as services:
            return await services.councils.revoke_key(kid)

    key = common.run(go())
    click.echo(f"revoked key {key.kid} of {key.council_code} at {key.revoked_at:%Y-%m-%d %H:%M:%S}")


@main.group(help="National links.")
def links() -> None:
    pass


@links.command("export", help="Write council,local_id,national_id,status,model_version "
                               "as CSV (model_version: the model that decided the link).")
@click.option("--out", required=True, metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="The CSV to create, owner-only (0600).")
@click.option("--overwrite", is_flag=True,
              help="Replace FILE if it exists (otherwise an existing file is refused).")
@click.pass_obj
def links_export(obj: Context, out: Path, overwrite: bool) -> None:
    async def go() -> int:
        # refused before it is audited as done: nothing would be written
        files.refuse_existing(out, overwrite=overwrite)
        async with obj.services() as services:
            # every council's links, so which councils know each child: audited first
            await services.audit.record(AuditEntry.by(
                cli_actor(), "links.export", "administration", {"out": str(out)}))
            return await export_links(services.pool, services.stores.records, out,
                                      overwrite=overwrite)

    click.echo(f"wrote {common.run(go())} links to {out}")


BULK_HELP = ("Resolve in bulk: chunks of up to resolver.bulk_chunk records of one council, "
             "each block read once per chunk (an initial load, a model change); another "
             "council's change waits for the chunk in progress.")


@links.command("resolve", help="Resolve a council's records again with the current model; "
                               "human review decisions hold.")
@click.argument("council")
@click.option("--bulk", is_flag=True, help=BULK_HELP)
@click.pass_obj
def links_resolve(obj: Context, council: str, bulk: bool) -> None:
    async def go() -> int:
        async with obj.services() as services:
            return await services.resolver.re_resolve(council, bulk=bulk)

    click.echo(f"{common.run(go())} records of {council} changed national child")


@links.command("drain", help="Resolve every record waiting in the resolution queue now, "
                             "beside any running hub's background resolver, and return "
                             "when the queue is empty.")
@click.option("--bulk", is_flag=True, help=BULK_HELP)
@click.option("--until-idle", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Keep resolving as councils publish (start it before an initial load: "
                   "each council's batches are resolved while the next arrive) and return "
                   "once the queue has stayed empty this long.")
@click.pass_obj
def links_drain(obj: Context, bulk: bool, until_idle: float | None) -> None:
    async def go() -> int:
        async with obj.services(checked=True) as services:
            if until_idle is None:
                return await services.resolver.drain(bulk=bulk)
            return await services.resolver.follow(lambda idle: idle >= until_idle,
                                                  bulk=bulk)

    click.echo(f"resolved {common.run(go())} queued records; the queue is empty")


@links.command("shield", help="Carry every shielded record's shielding to each record it "
                              "is linked to, in review with, separated from or shares an "
                              "NHS number or UPN with (once after upgrading to shield "
                              "marks; the hub keeps them up to date itself after that).")
@click.pass_obj
def links_shield(obj: Context) -> None:
    async def go() -> int:
        async with obj.services(checked=True) as services:
            return await services.shielded_elsewhere.mark_all()

    click.echo(f"made {common.run(go())} shield marks")


@main.group(help="The matching model: weights estimated from the hub's records.")
def model() -> None:
    pass


@model.command("train", help="Estimate m by EM on candidate pairs and u by random sampling "
                             "from the records the hub holds, and store the result as a new "
                             "version, which resolution uses from its next batch on "
                             "('links resolve COUNCIL' re-links held records with it).")
@click.option("--random-pairs", type=common.PAIRS, default=RANDOM_PAIRS, show_default=True,
              help="Random record pairs for u.")
@click.option("--candidate-pairs", type=common.PAIRS, default=CANDIDATE_PAIRS,
              show_default=True, help="Blocked pairs for EM (a random sample of them).")
@click.option("--iterations", type=common.ITERATIONS, default=EM_ITERATIONS,
              show_default=True, help="EM iterations in each training session.")
@click.option("--seed", type=common.SEED, default=None, help="Seed of the random pair sample.")
@click.pass_obj
def model_train(obj: Context, random_pairs: int, candidate_pairs: int, iterations: int,
                seed: int | None) -> None:
    async def go() -> StoredModel:
        async with obj.services(checked=True) as services:
            return await services.model_trainer.train(
                random_pairs=random_pairs, candidate_pairs=candidate_pairs,
                iterations=iterations, seed=seed, progress=lambda m: click.echo(m, err=True))

    stored = common.run(go())
    click.echo(f"stored model {stored.version}: {json.dumps(stored.summary)}")


@model.command("list", help="Stored model versions, oldest first; the last is in use.")
@click.option("--json", "as_json", is_flag=True, help="Print each version's parameters too.")
@click.pass_obj
def model_list(obj: Context, as_json: bool) -> None:
    async def go() -> list[StoredModel]:
        async with obj.services() as services:
            return await services.model_trainer.list()

    stored = common.run(go())
    if as_json:
        click.echo(json.dumps([{"version": s.version, "trained_at": s.trained_at.isoformat(),
                                "summary": s.summary, "parameters": s.parameters}
                               for s in stored], indent=2))
        return
    if not stored:
        click.echo("no stored model: resolution uses the built-in default")
    for s in stored:
        click.echo(f"{s.version}\t{s.trained_at:%Y-%m-%d %H:%M:%S}\t"
                   f"{s.summary.get('candidate_pairs', 0)} candidate pairs\t"
                   f"{s.summary.get('random_pairs', 0)} random pairs")


@main.group(help="The review queue of national identity resolution.")
def review() -> None:
    pass


@review.command("list", help="Pairs awaiting a decision (or --status linked|separated|all).")
@click.option("--status", "status_", default="open",
              type=click.Choice(["open", "linked", "separated", "all"]))
@click.option("--limit", default=100, show_default=True, type=common.LIMIT)
@click.option("--json", "as_json", is_flag=True, help="Print each pair with its explanation.")
@click.pass_obj
def review_list(obj: Context, status_: str, limit: int, as_json: bool) -> None:
    # an operator's view: no location comparison of a pair with a shielded record
    async def go() -> Sequence[tuple[ReviewRow, dict[str, Any]]]:
        async with obj.services() as services:
            return await services.review.listed(
                Viewer(Role.OPERATOR, None), None if status_ == "all" else status_, limit)

    rows = common.run(go())
    if as_json:
        click.echo(json.dumps([{"id": r.id, "a": list(r.a), "b": list(r.b),
                                "score": why.get("total", r.score), "status": r.status,
                                "decided_by": r.decided_by, "explanation": why}
                               for r, why in rows], indent=2))
        return
    for r, why in rows:
        fields = " ".join(f"{f['field']}={f['level']}" for f in why.get("fields", []))
        click.echo(f"{r.id}\t{'/'.join(r.a)}\t{'/'.join(r.b)}"
                   f"\t{float(why.get('total', r.score)):.1f}\t{r.status}\t{fields}")


def _decide(obj: Context, review_id: int, how: str, for_council: str,
            confirmed: bool = False) -> None:
    """An operator records the decision of ``for_council``'s index team: the same rules
    as ``POST /review/N`` for that team (a council of the pair; a shielded pair separated
    only by the shielding council; a link of children holding different NHS numbers or
    UPNs only confirmed), audited as the operating-system user, role operator, acting
    for that council."""
    async def go() -> Decided:
        async with obj.services() as services:
            service, team = services.review, Viewer(Role.INDEX_TEAM, for_council)
            if how == "link":
                return await service.link(review_id, cli_actor(), team,
                                          identifier_conflict_confirmed=confirmed)
            return await service.separate(review_id, cli_actor(), team)

    decided = common.run(go())
    a_id, b_id = decided.national_ids
    click.echo(f"review {review_id}: {decided.review.status}; "
               f"{'/'.join(decided.review.a)} -> {a_id}, {'/'.join(decided.review.b)} -> {b_id}")


_FOR_COUNCIL = click.option(
    "--for-council", "for_council", required=True, metavar="CODE",
    help="The council whose index team made the decision (one of the pair's councils; "
         "for a pair with a shielded record, separating needs the shielding council).")


@review.command("link", help="The pair is one child: merge their national children. "
                             "Also reverses an earlier separation.")
@click.argument("review_id", type=common.ROW_ID)
@_FOR_COUNCIL
@click.option("--confirm-identifier-conflict", "confirmed", is_flag=True,
              help="The council checked that the two children are one although their "
                   "records hold different NHS numbers or UPNs (refused without it).")
@click.pass_obj
def review_link(obj: Context, review_id: int, for_council: str, confirmed: bool) -> None:
    _decide(obj, review_id, "link", for_council, confirmed)


@review.command("separate", help="The pair are two children: never link them. "
                                 "Also reverses an earlier link.")
@click.argument("review_id", type=common.ROW_ID)
@_FOR_COUNCIL
@click.pass_obj
def review_separate(obj: Context, review_id: int, for_council: str) -> None:
    _decide(obj, review_id, "separate", for_council)


@main.command(help="Show each council's health: sync state, heartbeat, keys, records, and "
                   "every reason it is not GOOD (thresholds from the [health] config section).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the snapshot as JSON, as GET /v1/federation/health answers it.")
@click.pass_obj
def status(obj: Context, as_json: bool) -> None:
    async def go() -> FederationHealth:
        async with obj.services(checked=True) as services:
            return await services.health.snapshot()

    snapshot = common.run(go())
    # Exit status 0 whatever the health: this command reports, alerting is Prometheus's.
    click.echo(json.dumps(snapshot.to_dict(), indent=2) if as_json else format_table(snapshot))


main.add_command(users_group(PACKAGE, lambda obj: open_pool(obj.config),
                             lambda obj: obj.config.accounts, "Signpost national hub",
                             lambda obj: obj.config.audit.origin))


main.add_command(audit)


@main.group(help="Retention (docs/design.md §3): archive at 18 (25 for care leavers "
                  "with consent, a year after death if sooner), purge 6 years later; "
                  "see [retention].")
def retention() -> None:
    pass


@retention.command("run", help="Archive and purge the records due today (or on --today), "
                               "once, every council; purges become tombstones and are "
                               "audited. Councils purge and send deletes themselves; this "
                               "is the hub's own enforcement and backstop.")
@common.retention_options
@click.pass_obj
def retention_run(obj: Context, today: datetime | None, allow_future: bool) -> None:
    day = common.retention_day(today, allow_future)

    async def go() -> HubRetentionReport:
        async with obj.services(checked=True) as services:
            return await services.retention.run(day)

    report = common.run(go())
    click.echo(f"retention as of {report.today}: {report.total('archived')} archived, "
               f"{report.total('unarchived')} un-archived, {report.total('purged')} purged")
    for code, result in sorted(report.councils.items()):
        click.echo(f"  {code}: {len(result.archived)} archived, {len(result.purged)} purged"
                   + (": " + " ".join(result.purged[:50]) if result.purged else ""))
    if report.failed:  # the other councils' runs stand; these are tried again next run
        raise click.ClickException("retention failed, nothing archived or purged, for " + "; ".join(
            f"{code} ({reason})" for code, reason in sorted(report.failed.items())))
