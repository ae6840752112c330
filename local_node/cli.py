"""``local-node``: a council's node — ingest feeds, publish to the hub, serve.

The commands are a contract (docs/design.md §8).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import click
from tqdm import tqdm

from local_node.app import (
    PACKAGE,
    create_app,
    open_pool,
    open_publisher,
    open_services,
    rotate_key,
)
from local_node.audit_cli import audit
from local_node.config import ENV_PREFIX, NodeConfig
from local_node.feeds import FEEDS
from local_node.notices_cli import notices
from local_node.services.ingest import IngestReport
from local_node.services.model_training import StoredModel, quality_line
from local_node.services.publisher import PublishReport
from local_node.services.reconcile import ReconcileReport
from local_node.services.rekey import rekey
from local_node.services.retention import RetentionReport
from local_node.services.review import Pair
from local_node.services.status import KeyStatus, Summary
from protocol import keys as protocol_keys
from protocol.disclosure import Viewer
from protocol.matching.training import EM_ITERATIONS
from server_common import cli as common
from server_common import files, key_scheme_store, logs
from server_common.accounts.cli import users_group
from server_common.accounts.principal import Role

# ``incomplete``: the child lacks a name or its date of birth, and why ("" if complete);
# ``model_version``: the matching model that placed the row ("" when a rule did).
INDEX_COLUMNS = ("local_id", "source", "source_ref", "incomplete", "model_version")


@click.group(cls=common.Group, help="A council's Signpost node. Settings come from the "
                                     "--config file, then LOCAL_NODE__SECTION__KEY "
                                     "variables, then these options.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              envvar="LOCAL_NODE_CONFIG", help="TOML configuration file.")
@click.option("--database-url",
              help="PostgreSQL URL (LOCAL_NODE__DATABASE__URL); without it an embedded "
                   "server is used.")
@click.option("--council", "council_code",
              help="Council code, e.g. E10000011 (LOCAL_NODE__COUNCIL__CODE).")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None, database_url: str | None,
         council_code: str | None) -> None:
    logs.setup("local-node", "WARNING")  # serve and publish raise this to INFO
    ctx.obj = common.load_config(NodeConfig, ENV_PREFIX, config_path,
                                 {"database": {"url": database_url},
                                  "council": {"code": council_code}})


@main.command(help="Run the node: health endpoints and the publisher in the background.")
@click.option("--host", default=None)
@click.option("--port", type=common.PORT, default=None)
@click.option("--no-publish", is_flag=True, help="Serve without publishing to the hub.")
@click.pass_obj
def serve(config: NodeConfig, host: str | None, port: int | None, no_publish: bool) -> None:
    common.check_schema(open_pool, config, PACKAGE)
    common.serve(create_app(config, publish=not no_publish), host or config.server.host,
                 port or config.server.port, f"local-node {config.council.code}",
                 config.tls)


async def _rekey(config: NodeConfig) -> int | None:
    """``db upgrade``'s last step: every child's blocking keys made again if their
    scheme is not the code's (``local_node.services.rekey``)."""
    async with open_pool(config) as pool, pool.acquire() as conn:
        if not await key_scheme_store.stale(conn):
            return None  # (the usual case: no services built)
    async with open_services(config) as services:
        return await rekey(services.pool, services.stores.children)


main.add_command(common.db_group(PACKAGE, open_pool, rekey=_rekey))


@main.group(help="The council's signing keys.")
def keys() -> None:
    pass


@keys.command("generate", help="Create the council's Ed25519 key (enrol its .pub.pem at the hub).")
@click.option("--force", is_flag=True, help="Overwrite an existing key.")
@click.pass_obj
def keys_generate(config: NodeConfig, force: bool) -> None:
    config.require_council()
    path = config.key_file
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; use --force to replace it")
    key = protocol_keys.generate()
    protocol_keys.write_private_key(key, path)
    click.echo(f"key {protocol_keys.key_id(key.public_key())}\n"
               f"private: {path}\npublic:  {protocol_keys.public_path_for(path)}")


@keys.command("rotate", help="Make a new key, announce it to the hub signed by the old and "
                             "the new key, and switch to it once the hub enrolled it. The old "
                             "key is kept as <key>.<kid>.pem; the hub accepts it for an "
                             "overlap (7 days by default) for batches already signed. A "
                             "running publisher picks up the new key by itself. If it is "
                             "interrupted, run it again: it resumes with the same new key.")
@click.option("--expires", callback=common.parse_expiry, metavar="DATE",
              help="Ask the hub to expire the new key then: an ISO date (00:00 UTC) or "
                   "date-time. Default: no expiry.")
@click.pass_obj
def keys_rotate(config: NodeConfig, expires: datetime | None) -> None:
    config.require_council()
    if not config.key_file.exists():
        raise click.ClickException(f"{config.key_file} not found: run 'local-node keys generate'")
    outcome = common.run(rotate_key(config, expires))
    if outcome.already_done:
        click.echo(f"key {outcome.new_kid} is already in use; cleared the rotation's leftovers")
        return
    click.echo(f"rotated {'(resumed) ' if outcome.resumed else ''}"
               f"key {outcome.old_kid} -> {outcome.new_kid}\n"
               f"old key kept as {outcome.archived}; the hub accepts it until "
               f"{outcome.old_not_after or '-'}\n"
               f"new key {config.key_file}, expires {outcome.new_not_after or 'never'}")


@main.command(help="Load a source feed (CSV) into the local index. A feed of at least "
                   "matching.retrain_rows rows (10,000 by default) into a node with no "
                   "trained model, or whose children grew by more than half since the last "
                   "training, retrains the local matching model afterwards ('model train').")
@click.option("--feed", required=True, type=click.Choice(FEEDS))
@click.option("--no-train", is_flag=True,
              help="Do not retrain after a bulk load; print the command to run instead.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def ingest(config: NodeConfig, feed: str, file: Path, no_train: bool) -> None:
    async def go() -> tuple[IngestReport, str | None, StoredModel | None]:
        # checked: a feed matched against children keyed by another scheme would miss
        # them through the keys that changed, and make duplicates
        async with open_services(config, checked=True) as services:
            with tqdm(desc=f"ingest {feed}", unit="row", leave=False) as bar:
                report = await services.ingest.ingest_file(feed, file, bar.update)
            due = await services.model_trainer.retrain_due(report.rows_loaded,
                                                           config.matching.retrain_rows)
            if due is None or no_train:
                return report, due, None
            click.echo(f"retraining the matching model: {due}", err=True)
            return report, due, await services.model_trainer.train(
                random_pairs=config.matching.random_pairs,
                candidate_pairs_wanted=config.matching.candidate_pairs,
                progress=lambda m: click.echo(m, err=True))

    report, due, trained = common.run(go())
    for error in report.errors:
        click.echo(f"{file}: {error}", err=True)
    for warning in report.warnings:
        click.echo(f"{file}: warning: {warning}", err=True)
    if report.refused:
        raise click.ClickException(f"{file}: the file is refused, nothing is loaded "
                                   "(why is above)")
    click.echo(f"{feed}: {report.rows_loaded} of {report.rows_read} rows loaded, "
               f"{len(report.errors)} rejected; {report.children_created} children created, "
               f"{report.children_updated} updated; {report.outbox_entries} to publish"
               + (f"; {report.rows_incomplete} incomplete (loaded without a name or date "
                  "of birth)" if report.rows_incomplete else "")
               + (f"; {report.identifier_conflicts} identifier conflicts kept apart"
                  if report.identifier_conflicts else "")
               + f"; matched by model {report.model_version}")
    if trained is not None:
        _print_trained(trained)
    elif due is not None:
        click.echo(f"the matching model is due for training ({due}): run "
                   "'local-node model train'")


@main.command(help="Publish the outbox to the hub (forever, or --once until it is empty).")
@click.option("--once", is_flag=True, help="Send what is pending, then exit.")
@click.pass_obj
def publish(config: NodeConfig, once: bool) -> None:
    logs.setup(f"local-node {config.council.code}")

    async def go() -> PublishReport:
        async with open_services(config) as services, \
                open_publisher(config, services.pool, max_attempts=6 if once else None,
                               services=services) as publisher:
            if not once:
                await publisher.run_forever(config.publisher.interval,
                                            config.publisher.heartbeat_interval)
            report = await publisher.publish_all()
            await publisher.heartbeat()
            return report

    report = common.run(go())
    click.echo(f"sent {report.batches_sent} batch(es), {report.records_sent} records"
               f" ({report.records_rejected} rejected by the hub);"
               f" resent {report.batches_resent} batch(es)")


@main.command(help="Compare what the hub holds for this council with the node's published "
                   "projection (bucket digests, then only the buckets that differ) and "
                   "republish exactly what differs: records the hub lacks, holds damaged, "
                   "older or different, and deletes for records it should no longer hold.")
@click.pass_obj
def reconcile(config: NodeConfig) -> None:
    logs.setup(f"local-node {config.council.code}")

    async def go() -> ReconcileReport:
        async with open_services(config) as services, \
                open_publisher(config, services.pool, max_attempts=6,
                               services=services) as publisher:
            return await services.reconciler(publisher).reconcile()

    report = common.run(go())
    click.echo(f"compared {report.node_records} records at the node with {report.hub_records} "
               f"at the hub in {report.buckets} buckets ({report.bits} bits): "
               f"{report.buckets_differing} differ, {report.records_checked} records checked")
    for repair in report.repairs:
        click.echo(f"  {repair.op} {repair.local_id} version {repair.version} ({repair.reason})")
    counts = ", ".join(f"{n} {reason}" for reason, n in sorted(report.counts().items()))
    if report.waited:
        click.echo(f"waited {report.waited} s for the hub's anti-entropy allowance")
    click.echo(f"republished {len(report.repairs)} record(s)" + (f": {counts}" if counts else ""))
    if report.refused:
        click.echo(f"not sent again: {len(report.refused)} record(s) the hub rejected as "
                   "invalid (see publish_rejections): " + " ".join(report.refused[:20]))
    if report.skipped:
        click.echo(f"skipped {len(report.skipped)} changed meanwhile or still on their way: "
                   + " ".join(report.skipped[:20]))


@main.group(help="Retention (docs/design.md §3): archive at 18 (25 for care leavers "
                  "with consent, a year after death if sooner), purge 6 years later; "
                  "see [retention].")
def retention() -> None:
    pass


@retention.command("run", help="Archive and purge what is due today (or on --today), once. "
                               "Purges are audited and queued for the hub as deletes; "
                               "'publish' (or a running 'serve') sends them.")
@common.retention_options
@click.pass_obj
def retention_run(config: NodeConfig, today: datetime | None, allow_future: bool) -> None:
    day = common.retention_day(today, allow_future)

    async def go() -> RetentionReport:
        async with open_services(config, checked=True) as services:
            return await services.retention.run(day)

    report = common.run(go())
    click.echo(f"retention as of {report.today}: {len(report.archived)} archived, "
               f"{len(report.unarchived)} un-archived, {len(report.purged)} purged "
               f"({len(report.withdrawn)} deletes queued for the hub)")
    for label, ids in (("archived", report.archived), ("purged", report.purged)):
        if ids:
            click.echo(f"  {label}: " + " ".join(ids[:50]) + (" …" if len(ids) > 50 else ""))


@main.group(help="The local index.")
def index() -> None:
    pass


@index.command("export", help="Write local_id,source,source_ref,incomplete,model_version "
                              "for every source row as CSV (model_version: the matching "
                              "model that placed the row, blank when a rule did).")
@click.option("--out", required=True, metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="The CSV to create, owner-only (0600).")
@click.option("--overwrite", is_flag=True,
              help="Replace FILE if it exists (otherwise an existing file is refused).")
@click.pass_obj
def index_export(config: NodeConfig, out: Path, overwrite: bool) -> None:
    async def go() -> int:
        files.refuse_existing(out, overwrite=overwrite)  # before the export's work
        async with open_services(config) as services:
            rows = await services.status.source_rows()
        # as held, to reconcile against the source systems' own ids: a spreadsheet
        # should open this file as text (docs/feeds.md)
        files.write_csv(out, INDEX_COLUMNS, ([r[c] for c in INDEX_COLUMNS] for r in rows),
                        overwrite=overwrite)
        return len(rows)

    click.echo(f"wrote {common.run(go())} rows to {out}")


@main.command(help="Show the index size and the publishing state (--json: for scripts "
                   "and monitoring, as 'national-hub status --json').")
@click.option("--json", "as_json", is_flag=True, help="Print it as one JSON object.")
@click.pass_obj
def status(config: NodeConfig, as_json: bool) -> None:
    kid = (protocol_keys.key_id(protocol_keys.load_private_key(config.key_file).public_key())
           if config.key_file.exists() else None)

    async def go() -> Summary:
        async with open_services(config) as services:
            return await services.status.summary(kid)

    summary = common.run(go())
    count, s, key = summary.children, summary.outbox, summary.key
    witness, incomplete = summary.witness, summary.incomplete
    if as_json:
        last = s["last_receipt_at"]
        click.echo(json.dumps({
            "council": config.council.code, "children": count,
            "incomplete": {"children": incomplete[0], "lacking": incomplete[1]},
            "outbox": {"depth": s["outbox_depth"], "head_seq": s["head_seq"],
                       "receipted_seq": s["receipted_seq"],
                       "awaiting_receipt": s["awaiting_receipt"],
                       "rejected_records": s["rejected_records"],
                       "last_receipt_at": last.isoformat() if last else None},
            "key": {"kid": kid, "reported": key is not None,
                    "not_after": (key.not_after.isoformat()
                                  if key is not None and key.not_after else None)},
            "hub_audit_log": {"witnessing": witness.ok, "description": witness.describe()},
        }, indent=2))
        return
    click.echo(f"council          {config.council.code}\n"
               f"children         {count}\n"
               f"incomplete       {_incomplete(incomplete)}\n"
               f"outbox depth     {s['outbox_depth']}\n"
               f"head seq         {s['head_seq']}\n"
               f"receipted seq    {s['receipted_seq']}\n"
               f"awaiting receipt {s['awaiting_receipt']}\n"
               f"rejected records {s['rejected_records']}\n"
               f"last receipt     {s['last_receipt_at'] or '-'}\n"
               f"key id           {kid or '- (no key file)'}\n"
               f"key expires      {_key_expiry(key)}\n"
               f"hub audit log    {witness.describe()}")


def _incomplete(counts: tuple[int, dict[str, int]]) -> str:
    """"3 (dob 2, given_name 1)": children lacking a name or date of birth, and how
    many lack each (a child may lack two, so the parts can add up to more)."""
    total, by_field = counts
    if not total:
        return "0"
    return f"{total} ({', '.join(f'{name} {n}' for name, n in by_field.items())})"


def _key_expiry(key: KeyStatus | None) -> str:
    """The key's expiry as the hub last reported it (with each cursor read)."""
    if key is None:
        return "not reported by the hub yet"
    if key.not_after is None:
        return "never"
    days = (key.not_after - datetime.now(UTC)).total_seconds() / 86400
    when = f"{key.not_after:%Y-%m-%d %H:%M:%S}Z"
    return f"{when} (EXPIRED)" if days <= 0 else f"{when} (in {days:.1f} days)"


@main.group(help="The review list: pairs of children that may be one child.")
def review() -> None:
    pass


@review.command("list", help="Show the open review items, most likely first.")
@click.pass_obj
def review_list(config: NodeConfig) -> None:
    async def go() -> list[Pair]:
        async with open_services(config, checked=True) as services:
            return await services.review.looked_at(
                common.cli_actor(config.council.code), Viewer(str(Role.OPERATOR), None),
                config.council.code)

    pairs = common.run(go())
    if not pairs:
        click.echo("no open review items")
    for pair in pairs:
        item = pair.item
        click.echo(f"#{item['id']}  score {item['score']:+.1f}  "
                   f"(model {item['model_version'] or '-'})")
        for side, id_column in (("a", "local_id"), ("b", "candidate_id")):
            postcode = (item[f"{side}_postcode"] or "-") if pair.location_shown \
                else "postcode withheld (shielded)"
            click.echo(f"    {item[id_column]}: {item[f'{side}_given'] or '-'} "
                       f"{item[f'{side}_family'] or '-'}, "
                       f"{item[f'{side}_dob'] or 'DOB not known'}, {postcode}")


@review.command("accept", help="They are one child: merge the newer into the older.")
@click.argument("item_id", type=common.ROW_ID)
@click.option("--by", "decided_by", default=lambda: os.environ.get("USER", "index-team"),
              help="Who decided (recorded with the decision).")
@click.pass_obj
def review_accept(config: NodeConfig, item_id: int, decided_by: str) -> None:
    async def go() -> str:
        # audited as the operating-system user, as the hub audits ``review link``;
        # ``--by`` is recorded beside it
        async with open_services(config, checked=True) as services:
            return await services.review.accept(
                item_id, decided_by, actor=common.cli_actor(config.council.code))

    click.echo(f"merged: the child is now {common.run(go())}")


@review.command("reject", help="They are different children: never ask about this pair again.")
@click.argument("item_id", type=common.ROW_ID)
@click.option("--by", "decided_by", default=lambda: os.environ.get("USER", "index-team"),
              help="Who decided (recorded with the decision).")
@click.pass_obj
def review_reject(config: NodeConfig, item_id: int, decided_by: str) -> None:
    async def go() -> None:
        async with open_services(config, checked=True) as services:
            await services.review.reject(
                item_id, decided_by, actor=common.cli_actor(config.council.code))

    common.run(go())
    click.echo(f"recorded: review item {item_id} are different children")


@main.group(help="The local matching model: weights estimated from the council's records.")
def model() -> None:
    pass


def _print_trained(stored: StoredModel) -> None:
    click.echo(f"stored model {stored.version}: {quality_line(stored.summary)}")
    click.echo(json.dumps(stored.summary))


@model.command("train", help="Estimate m by EM on candidate pairs and u by random sampling "
                             "from the council's source rows, and store the result as a new "
                             "version, which ingest uses from its next feed on (children "
                             "already placed stay where they are).")
@click.option("--random-pairs", type=common.PAIRS, default=None,
              help="Random row pairs for u (default: matching.random_pairs, 100,000).")
@click.option("--candidate-pairs", type=common.PAIRS, default=None,
              help="Blocked pairs for EM, a random sample of them (default: "
                   "matching.candidate_pairs, 100,000).")
@click.option("--iterations", type=common.ITERATIONS, default=EM_ITERATIONS,
              show_default=True, help="EM iterations in each training session.")
@click.option("--seed", type=common.SEED, default=None, help="Seed of the random pair sample.")
@click.pass_obj
def model_train(config: NodeConfig, random_pairs: int | None, candidate_pairs: int | None,
                iterations: int, seed: int | None) -> None:
    async def go() -> StoredModel:
        async with open_services(config, checked=True) as services:
            return await services.model_trainer.train(
                random_pairs=random_pairs or config.matching.random_pairs,
                candidate_pairs_wanted=candidate_pairs or config.matching.candidate_pairs,
                iterations=iterations, seed=seed, progress=lambda m: click.echo(m, err=True))

    _print_trained(common.run(go()))


@model.command("list", help="Stored model versions, oldest first; the last is in use.")
@click.option("--json", "as_json", is_flag=True, help="Print each version's parameters too.")
@click.pass_obj
def model_list(config: NodeConfig, as_json: bool) -> None:
    async def go() -> list[StoredModel]:
        async with open_services(config) as services:
            return await services.model_trainer.list()

    stored = common.run(go())
    if as_json:
        click.echo(json.dumps([{"version": s.version, "trained_at": s.trained_at.isoformat(),
                                "children": s.children, "summary": s.summary,
                                "parameters": s.parameters} for s in stored], indent=2))
        return
    if not stored:
        click.echo("no stored model: local matching uses the built-in default")
    for s in stored:
        click.echo(f"{s.version}\t{s.trained_at:%Y-%m-%d %H:%M:%S}\t{s.children} children\t"
                   f"{s.summary.get('candidate_pairs', 0)} candidate pairs\t"
                   f"{s.summary.get('random_pairs', 0)} random pairs")


main.add_command(audit)
main.add_command(notices)
main.add_command(users_group(PACKAGE, open_pool, lambda config: config.accounts,
                             "Signpost council node",
                             lambda config: config.audit_origin,
                             lambda config: config.council.code))
