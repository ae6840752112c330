"""``national-hub``: serve the hub and administer it (DESIGN §8)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import click

from national_hub.app import PACKAGE, create_app, open_pool
from national_hub.config import ENV_PREFIX, HubConfig
from national_hub.health_table import format_table
from national_hub.services.councils import CouncilService
from national_hub.services.health import FederationHealth, HealthService
from national_hub.services.links import export_links
from national_hub.storage.councils import CouncilStore
from national_hub.storage.heartbeats import HeartbeatStore
from national_hub.storage.records import RecordStore
from server_common import cli as common
from server_common import database, logs


class Context:
    def __init__(self, config: HubConfig) -> None:
        self.config = config

    def councils(self, pool: asyncpg.Pool) -> CouncilService:
        return CouncilService(pool, CouncilStore(), HeartbeatStore())


@click.group(help="The Signpost national hub.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              envvar="NATIONAL_HUB_CONFIG", help="TOML configuration file.")
@click.option("--database-url", envvar="NATIONAL_HUB_DATABASE_URL",
              help="PostgreSQL URL; without it an embedded server is used.")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None, database_url: str | None) -> None:
    logs.setup("national-hub", "WARNING")  # serve raises this to INFO
    ctx.obj = Context(common.load_config(HubConfig, ENV_PREFIX, config_path,
                                         {"database": {"url": database_url}}))


@main.command(help="Run the hub's HTTP server.")
@click.option("--host", default=None, help="Listen address (default from config).")
@click.option("--port", type=int, default=None, help="Listen port (default from config).")
@click.pass_obj
def serve(obj: Context, host: str | None, port: int | None) -> None:
    async def check() -> None:
        async with open_pool(obj.config) as pool, pool.acquire() as conn:
            await database.check_current(conn, PACKAGE)

    common.run(check())
    server = obj.config.server
    common.serve(create_app(obj.config), host or server.host, port or server.port,
                 "national-hub")


@main.group(help="Database schema.")
def db() -> None:
    pass


@db.command(help="Apply missing schema migrations.")
@click.pass_obj
def upgrade(obj: Context) -> None:
    async def go() -> list[database.Migration]:
        async with open_pool(obj.config) as pool, pool.acquire() as conn:
            return await database.upgrade(conn, PACKAGE)

    applied = common.run(go())
    click.echo(f"applied {len(applied)} migration(s)"
               + "".join(f"\n  {m.version:03d} {m.name}" for m in applied))


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
        async with open_pool(obj.config) as pool:
            return await obj.councils(pool).enrol(code, name, pem, expires)

    kid = common.run(go())
    click.echo(f"enrolled {code} ({name}) with key {kid}"
               + (f", expiring {expires:%Y-%m-%d %H:%M:%S %Z}" if expires else ""))


@councils.command("list", help="List councils, cursors and keys.")
@click.pass_obj
def councils_list(obj: Context) -> None:
    async def go():
        async with open_pool(obj.config) as pool:
            return await obj.councils(pool).list_all()

    click.echo(f"{'code':<10} {'seq':>8}  {'state':<8} name / keys")
    for council, keys in common.run(go()):
        state = "FORKED" if council.forked_at else "ok"
        click.echo(f"{council.code:<10} {council.cursor_seq:>8}  {state:<8} {council.name}")
        for key in keys:
            status = "revoked" if key.revoked_at else "active"
            if key.not_after is not None:
                status += (" expired " if key.not_after <= datetime.now(UTC) else " expires ") \
                    + f"{key.not_after:%Y-%m-%d %H:%M:%S}Z"
            click.echo(f"{'':<30}key {key.kid} {status}")


@councils.command("unflag", help="Clear a council's fork flag after the node is repaired.")
@click.argument("code")
@click.pass_obj
def councils_unflag(obj: Context, code: str) -> None:
    async def go() -> None:
        async with open_pool(obj.config) as pool:
            await obj.councils(pool).clear_fork(code)

    common.run(go())
    click.echo(f"cleared the fork flag of {code}")


@main.group(help="Council keys.")
def keys() -> None:
    pass


@keys.command("revoke", help="Revoke a council key: anything it signs from now on is refused.")
@click.argument("kid")
@click.pass_obj
def keys_revoke(obj: Context, kid: str) -> None:
    async def go():
        async with open_pool(obj.config) as pool:
            return await obj.councils(pool).revoke_key(kid)

    key = common.run(go())
    click.echo(f"revoked key {key.kid} of {key.council_code} at {key.revoked_at:%Y-%m-%d %H:%M:%S}")


@main.group(help="National links.")
def links() -> None:
    pass


@links.command("export", help="Write council,local_id,national_id,status as CSV.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def links_export(obj: Context, out: Path) -> None:
    async def go() -> int:
        async with open_pool(obj.config) as pool:
            return await export_links(pool, RecordStore(), out)

    click.echo(f"wrote {common.run(go())} links to {out}")


@main.command(help="Show each council's health: sync state, heartbeat, keys, records, and "
                   "every reason it is not GOOD (thresholds from the [health] config section).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the snapshot as JSON, as GET /v1/federation/health answers it.")
@click.pass_obj
def status(obj: Context, as_json: bool) -> None:
    async def go() -> FederationHealth:
        async with open_pool(obj.config) as pool:
            async with pool.acquire() as conn:
                await database.check_current(conn, PACKAGE)
            return await HealthService(pool, obj.config.health).snapshot()

    snapshot = common.run(go())
    # Exit status 0 whatever the health: this command reports, alerting is Prometheus's.
    click.echo(json.dumps(snapshot.to_dict(), indent=2) if as_json else format_table(snapshot))
