"""Command-line plumbing shared by ``national-hub`` and ``local-node``: config
loading with clear errors, running coroutines, and serving an aiohttp app."""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from aiohttp import web

from protocol.errors import SignpostError
from server_common import config as config_module
from server_common import database, logs
from server_common.audit.entry import Actor
from server_common.config import TlsConfig
from server_common.tls import server_context

T = TypeVar("T")


def load_config(cls: type[T], prefix: str, path: Path | None,
                overrides: dict[str, dict[str, Any]]) -> T:
    try:
        return config_module.load(cls, prefix, path, overrides)
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
    except (OSError, ConnectionError) as exc:
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
    web.run_app(app, host=host, port=port, ssl_context=context, print=None,
                access_log=None, handle_signals=True, shutdown_timeout=5)


def parse_expiry(ctx: click.Context, param: click.Parameter,
                 value: str | None) -> datetime | None:
    """Click callback for ``--expires DATE``: an ISO date (meaning 00:00 UTC that day)
    or an ISO date-time (UTC unless it gives an offset)."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"not an ISO date or date-time: {value!r}") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def exit_with(message: str) -> None:
    click.echo(message, err=True)
    sys.exit(1)
