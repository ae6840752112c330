"""A real PostgreSQL primary and a hot-standby streaming replica of it, both from the
``pgserver`` wheel's binaries: the replica is made with ``pg_basebackup -R`` and
streams WAL from the primary, exactly as a production read replica does.

The pair is its own (not the session's shared test server), so a test may pause the
replica's replay without disturbing anyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import asyncpg

from server_common import embedded_pg

# As root, pgserver runs PostgreSQL as this user; the replica must run as it too.
PG_USER = "pgserver" if os.geteuid() == 0 else None


def _bin(name: str) -> str:
    from pgserver._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _with_socket(url: str, socket_dir: Path) -> str:
    parts = urlsplit(url)
    query = parse_qs(parts.query) | {"host": [str(socket_dir)]}
    return urlunsplit((parts.scheme, parts.netloc, parts.path,
                       urlencode(query, doseq=True), parts.fragment))


def _run(args: list[str]) -> None:
    result = subprocess.run(args, user=PG_USER, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{args[0]} failed: {result.stderr}{result.stdout}")


@dataclass
class ReplicatedDatabase:
    primary_url: str
    replica_url: str

    async def wait_caught_up(self, within: float = 30.0) -> None:
        """Until the replica has replayed everything the primary has written so far."""
        primary = await asyncpg.connect(self.primary_url)
        replica = await asyncpg.connect(self.replica_url)
        try:
            target = await primary.fetchval("SELECT pg_current_wal_lsn()")
            async with asyncio.timeout(within):
                while True:
                    if await replica.fetchval("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn",
                                              target):
                        return
                    await asyncio.sleep(0.05)
        finally:
            await primary.close()
            await replica.close()

    async def pause_replay(self, paused: bool) -> None:
        conn = await asyncpg.connect(self.replica_url)
        try:
            await conn.execute("SELECT pg_wal_replay_pause()" if paused
                               else "SELECT pg_wal_replay_resume()")
        finally:
            await conn.close()


def _new_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="signpost-replica-"))
    root.chmod(0o755)  # PostgreSQL runs as another user when we are root
    return root


def _owned_dir(path: Path) -> None:
    """A folder PostgreSQL's user may write (the replica's data folder's parent too)."""
    path.mkdir()
    if PG_USER:
        shutil.chown(path, PG_USER)
        shutil.chown(path.parent, PG_USER)


@contextlib.asynccontextmanager
async def replicated_database(name: str) -> AsyncIterator[ReplicatedDatabase]:
    """A primary with database ``name`` and a streaming replica; URLs of both."""
    import pgserver

    root = _new_root()
    replica_dir, replica_socket = root / "replica", root / "replica-socket"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        primary = pgserver.get_server(root / "primary", cleanup_mode="stop")
    started = False
    try:
        base = primary.get_uri()
        primary_url = await embedded_pg.ensure_database(base, name)
        socket_dir = parse_qs(urlsplit(base).query)["host"][0]
        _owned_dir(replica_socket)
        _run([_bin("pg_basebackup"), "-h", socket_dir, "-U", "postgres", "-D",
              str(replica_dir), "-R", "-X", "stream", "-c", "fast"])
        _run([_bin("pg_ctl"), "-D", str(replica_dir), "-w", "-l", str(root / "replica.log"),
              "-o", f"-h '' -k {replica_socket} -c hot_standby=on", "start"])
        started = True
        yield ReplicatedDatabase(primary_url, _with_socket(primary_url, replica_socket))
    finally:
        if started:
            _run([_bin("pg_ctl"), "-D", str(replica_dir), "-m", "immediate", "stop"])
        primary.cleanup()
        shutil.rmtree(root, ignore_errors=True)
