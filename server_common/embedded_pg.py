"""The embedded PostgreSQL: a real server from the ``pgserver`` wheel in a data folder.

Used when no database URL is configured. One server holds several databases (the
hub's and each council's), so a whole federation runs on one machine with no
system PostgreSQL. The server stops when the last process using it exits.
"""

from __future__ import annotations

import logging
import subprocess
import warnings
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

log = logging.getLogger(__name__)


def start(data_dir: Path, *, stop_on_exit: bool = True) -> str:
    """Start (or join) the server in ``data_dir`` and return its base URL."""
    import pgserver  # imported lazily: production never needs it

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # pgserver asks platformdirs for a runtime dir, which containers often lack;
        # the fallback it warns about is fine for us.
        warnings.simplefilter("ignore")
        server = pgserver.get_server(data_dir, cleanup_mode="stop" if stop_on_exit else None)
    url: str = server.get_uri()
    log.info("embedded postgresql running", extra={"data_dir": str(data_dir)})
    return url


def stop(data_dir: Path) -> None:
    """Stop the server in ``data_dir`` now (a fast shutdown), whoever else joined it.

    pgserver stops a server only when the last process that joined it exits normally;
    one that was killed stays on its list, and the server then outlives everything
    (the demo's, after its servers were terminated). A program that owns the server
    calls this when it is done with it."""
    import pgserver  # imported lazily: production never needs it

    # pgserver makes its command wrappers at import time (hence no attribute for mypy);
    # pg_ctl runs as pgserver's own user when we are root, as the server does
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

    data_dir = data_dir.resolve()
    if not (data_dir / "postmaster.pid").exists():
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(data_dir, cleanup_mode=None)
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=server.system_user)
    except subprocess.CalledProcessError:  # already stopped
        pass
    log.info("embedded postgresql stopped", extra={"data_dir": str(data_dir)})


def with_database(url: str, name: str) -> str:
    """Return ``url`` pointing at database ``name`` (keeps host, socket and options)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


async def ensure_database(url: str, name: str) -> str:
    """Create database ``name`` on the server at ``url`` if missing; return its URL."""
    conn = await asyncpg.connect(with_database(url, "postgres"))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            try:
                # Identifiers cannot be parameters; the name is quoted and comes from config.
                await conn.execute(f'CREATE DATABASE "{name}"')
            except asyncpg.DuplicateDatabaseError:
                pass  # another process created it between our check and create
    finally:
        await conn.close()
    return with_database(url, name)
