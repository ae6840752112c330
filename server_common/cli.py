"""Command-line plumbing shared by ``national-hub`` and ``local-node``: config
loading with clear errors (one environment naming scheme, old names read as aliases),
running coroutines, the ``db`` commands and the schema check, ``--expires`` (always a
moment, never a duration), and serving an aiohttp app.

Environment: every setting is ``PREFIX__SECTION__KEY`` (``NATIONAL_HUB__DATABASE__URL``,
``LOCAL_NODE__COUNCIL__CODE``); the configuration file is ``PREFIX_CONFIG``. The older
single-underscore names of a few settings (``NATIONAL_HUB_DATABASE_URL``, …) are read
as aliases for one more release, with a note on stderr (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from aiohttp import web

from protocol.errors import SignpostError
from protocol.matching.blocking import KEY_SCHEME
from server_common import config as config_module
from server_common import database, logs
from server_common.audit.entry import Actor
from server_common.config import TlsConfig
from server_common.gc_pause import freeze_startup_heap
from server_common.tls import server_context

T = TypeVar("T")

# The numbers a command takes, bounded where they are read: out of range, each was a
# traceback from the database (an id or a seed past 64 bits), numpy (a negative seed)
# or the socket (a port past 65535), or work without end (a billion training pairs).
ROW_ID = click.IntRange(1, 2**63 - 1)       # a review item, as the database numbers it
SEQ = click.IntRange(0, 2**63 - 1)          # an audit entry's position in its log
SEED = click.IntRange(0, 2**32 - 1)         # a random sample's seed
PORT = click.IntRange(0, 65535)             # 0: any free port
LIMIT = click.IntRange(1, 100_000)          # rows a listing prints
PAIRS = click.IntRange(1, 10_000_000)       # pairs a training session samples
ITERATIONS = click.IntRange(1, 1_000)       # EM iterations a training session runs


# Until the next release: old environment names -> the scheme's (PREFIX__SECTION__KEY).
ENV_ALIASES: dict[str, str] = {
    "NATIONAL_HUB_DATABASE_URL": "NATIONAL_HUB__DATABASE__URL",
    "NATIONAL_HUB_READ_DATABASE_URL": "NATIONAL_HUB__DATABASE__READ_URL",
    "LOCAL_NODE_DATABASE_URL": "LOCAL_NODE__DATABASE__URL",
    "LOCAL_NODE_COUNCIL": "LOCAL_NODE__COUNCIL__CODE",
}


def environment(prefix: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment with each old name of ``prefix``'s settings read as its new one
    (set both alike and it is the same; set differently, that is a mistake to name, not
    to guess at)."""
    env = dict(os.environ if environ is None else environ)
    for old, new in ENV_ALIASES.items():
        if old not in env or not old.startswith(prefix.upper() + "_"):
            continue
        if new in env and env[new] != env[old]:
            raise click.ClickException(
                f"configuration: {old} and {new} are one setting and disagree: "
                f"unset {old} (its old name)")
        env[new] = env[old]
        click.echo(f"note: {old} is the old name of {new}, read until the next release",
                   err=True)
    return env


def load_config(cls: type[T], prefix: str, path: Path | None,
                overrides: dict[str, dict[str, Any]]) -> T:
    try:
        return config_module.load(cls, prefix, path, overrides, environment(prefix))
    except config_module.ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from exc


class Group(click.Group):
    """The commands' group: a configuration problem met while a command runs (a key
    file missing, a council code unset) is one clear line and exit 1, never a trace."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except config_module.ConfigError as exc:
            raise click.ClickException(f"configuration: {exc}") from exc


def cli_actor(organisation: str) -> Actor:
    """Who an administrative command is audited as: the operating-system user."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no USER variable and no passwd entry (containers)
        user = f"uid{os.getuid()}"
    return Actor(f"cli:{user}", "operator", organisation)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; known errors become a one-line message and exit 1."""
    try:
        return asyncio.run(coro)
    except SignpostError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc
    except database.SchemaError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        if exc.filename is not None:  # a file the command reads or writes, not a peer
            raise click.ClickException(f"{exc.filename}: {exc.strerror}") from exc
        raise click.ClickException(f"cannot reach the database or peer: {exc}") from exc


def serve(app: web.Application, host: str, port: int, service: str,
          tls: TlsConfig | None = None) -> None:
    """Serve ``app`` until SIGINT/SIGTERM: HTTPS when ``[tls]`` names a certificate."""
    try:
        context = server_context(tls) if tls is not None else None
    except config_module.ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from exc
    logs.setup(service)
    scheme = "https" if context is not None else "http"
    click.echo(f"{service} listening on {scheme}://{host}:{port}", err=True)
    app.on_startup.append(freeze_startup_heap)  # last: after the app has opened its pools
    web.run_app(app, host=host, port=port, ssl_context=context, print=None,
                access_log=None, handle_signals=True, shutdown_timeout=5)


def parse_expiry(ctx: click.Context, param: click.Parameter,
                 value: str | None) -> datetime | None:
    """Click callback for ``--expires DATE``, the one meaning of ``--expires`` in both
    commands: a moment, given as an ISO date (meaning 00:00 UTC that day) or an ISO
    date-time (UTC unless it gives an offset). A lifetime is ``--lifetime``."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        hint = ("; for a lifetime such as 30d use --lifetime"
                if value[-1:].isalpha() and value[:1].isdigit() else "")
        raise click.BadParameter(
            f"not an ISO date or date-time: {value!r}{hint}") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def retention_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--today`` and ``--allow-future`` of ``retention run``, the same at hub and node."""
    command = click.option(
        "--allow-future", is_flag=True,
        help="Let --today be after today: archive and purge, for good, what is not due "
             "yet (to see what a date would do, on a copy of the database).")(command)
    return click.option(
        "--today", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
        help="Apply the policy as of this date (YYYY-MM-DD); default: today (UTC).")(command)


def retention_day(today: datetime | None, allow_future: bool) -> date | None:
    """The day ``retention run`` applies the policy as of (None: today). A day after
    today purges records that are not due, irreversibly. An operator at a terminal is
    asked first (a mistyped year answered no: exit 1, nothing done); a script, which
    cannot be asked and may mean it (a copy of the database, a test of the policy), is
    warned on stderr and the run goes on. ``--allow-future`` says it is meant."""
    if today is None:
        return None
    day = today.date()
    if day > datetime.now(UTC).date() and not allow_future:
        what = (f"--today {day} is in the future: the run would archive and purge, for "
                "good, records that are not due yet")
        if not sys.stdin.isatty():
            click.echo(f"warning: {what}", err=True)
        elif not click.confirm(f"{what}. Run it?", default=False, err=True):
            raise click.ClickException(
                "Nothing was done. To see what that date would do, run it on a copy of "
                "the database with --allow-future.")
    return day


PoolOpener = Callable[[Any], contextlib.AbstractAsyncContextManager[Any]]


def check_schema(open_pool: PoolOpener, config: Any, package: str) -> None:
    """Refuse to go on (exit 1, saying 'run db upgrade') unless the schema is current:
    ``serve`` before it listens."""
    async def check() -> None:
        async with open_pool(config) as pool:
            await database.check_pool(pool, package)

    run(check())


def db_group(package: str, open_pool: PoolOpener,
             config_of: Callable[[Any], Any] = lambda obj: obj, *,
             rekey: Callable[[Any], Coroutine[Any, Any, int | None]] | None = None) -> click.Group:
    """``db upgrade``, alike on both servers; ``config_of`` finds the config in the
    command's context object. ``rekey`` (given the context object) makes every held
    blocking key again when the code's scheme is not the one they were made by, after
    the migrations (``server_common.key_scheme_store``): how many records it keyed, or
    None when their keys were already the code's."""

    @click.group("db", help="Database schema.")
    def db() -> None:
        pass

    @db.command(help="Apply missing schema migrations.")
    @click.pass_obj
    def upgrade(obj: Any) -> None:
        async def go() -> list[database.Migration]:
            async with open_pool(config_of(obj)) as pool, pool.acquire() as conn:
                return await database.upgrade(conn, package)

        applied = run(go())
        click.echo(f"applied {len(applied)} migration(s)"
                   + "".join(f"\n  {m.version:03d} {m.name}" for m in applied))
        if rekey is not None and (keyed := run(rekey(obj))) is not None:
            click.echo(f"made the blocking keys of {keyed} record(s) again"
                       f" (scheme {KEY_SCHEME})")

    return db


@contextlib.asynccontextmanager
async def checked_pool(open_pool: PoolOpener, config: Any,
                       package: str) -> AsyncIterator[Any]:
    """A pool whose schema has been checked: for commands that write."""
    async with open_pool(config) as pool:
        await database.check_pool(pool, package)
        yield pool


def exit_with(message: str) -> None:
    click.echo(message, err=True)
    sys.exit(1)
