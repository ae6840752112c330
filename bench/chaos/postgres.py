"""A PostgreSQL server of the run's own (pgserver's binaries) that can be SIGKILLed.

Never the session's shared test server: killing that would break everyone else's
tests. ``kill()`` SIGKILLs the postmaster and every backend at once, as the kernel's
OOM killer or a lost machine would; ``start()`` brings it back on the same data folder
and PostgreSQL replays its WAL (crash recovery). ``synchronous_commit`` stays on, so a
commit a client saw survives the kill; ``fsync`` is off because the kernel (which keeps
the page cache) is not what is being killed here.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psutil

from bench.chaos import reaper
from server_common import embedded_pg
from tests.replica import _bin, _run


class KillablePostgres:
    def __init__(self) -> None:
        import pgserver

        self.root = Path(tempfile.mkdtemp(prefix="signpost-chaos-pg-"))
        self.root.chmod(0o755)  # PostgreSQL runs as another user when we are root
        self.data = self.root / "pg"
        reaper.track_dir(self.root)  # stopped and removed even if the run is killed
        reaper.track_postgres(self.data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = pgserver.get_server(self.data, cleanup_mode=None)
        self.base_url: str = server.get_uri()
        self.socket_dir = parse_qs(urlsplit(self.base_url).query)["host"][0]
        server.psql("ALTER SYSTEM SET fsync = off;")
        server.psql("ALTER SYSTEM SET max_connections = 200;")
        self._ctl("stop", "-m", "fast")
        self.start()

    def url(self, database: str) -> str:
        return embedded_pg.with_database(self.base_url, database)

    async def database(self, name: str) -> str:
        """Database ``name`` on this server (created if missing); its URL."""
        return await embedded_pg.ensure_database(self.base_url, name)

    def _ctl(self, *args: str) -> None:
        _run([_bin("pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.data / "chaos-run.log"),
              "-o", f"-h '' -k {self.socket_dir}", *args])

    def start(self) -> None:
        self._ctl("start")

    def processes(self) -> list[psutil.Process]:
        """The postmaster and its children (backends, walwriter, checkpointer…)."""
        return reaper.postgres_processes(self.data)

    def kill(self) -> None:
        """SIGKILL every PostgreSQL process at once."""
        reaper.kill_all(self.processes())

    def rss(self) -> int:
        total = 0
        for proc in self.processes():
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        return total

    def close(self) -> None:
        try:
            self._ctl("stop", "-m", "immediate")
        except RuntimeError:
            self.kill()
        shutil.rmtree(self.root, ignore_errors=True)
        reaper.untrack_postgres(self.data)
        reaper.untrack_dir(self.root)
