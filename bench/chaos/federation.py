"""A federation of real processes on a PostgreSQL of its own, for fault and soak runs.

The hub (``national-hub serve``, one or more replicas), one ``local-node publish`` per
council talking to the hub through a :class:`FaultProxy` (and, if asked, a council's
``local-node serve`` for its practitioners), feeds loaded with
``local-node ingest`` (retried until it succeeds, as an operator would), and a
supervisor that restarts whatever died, like systemd would. The harness kills what it
likes through :meth:`Federation.kill`; a death it did not cause is counted in
``unexpected_exits`` (a server should survive its database restarting, say).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from bench.chaos.postgres import KillablePostgres
from bench.chaos.proxy import NO_FAULTS, FaultProxy, FaultRates
from protocol import keys
from server_common.accounts import AccountsConfig, Role
from server_common.accounts.service import AccountService
from tests.federation import running_hub, running_node
from tests.processes import Process, free_port, hub_process, node_env, script, wait_ready

VICTIMS = ("hub", "node", "postgres")


@dataclass
class Council:
    code: str
    database_url: str
    env: dict[str, str]
    publisher: Process


@dataclass
class Federation:
    pg: KillablePostgres
    workdir: Path
    councils: list[str]
    hubs: int = 1
    rates: FaultRates = NO_FAULTS
    seed: int = 0
    node_env_extra: dict[str, str] = field(default_factory=dict)
    hub_env_extra: dict[str, str] = field(default_factory=dict)
    hub_db: str = ""
    hub_ports: list[int] = field(default_factory=list)
    hub_processes: list[Process] = field(default_factory=list)
    nodes: dict[str, Council] = field(default_factory=dict)
    servers: dict[str, Process] = field(default_factory=dict)  # "serve-<code>": a node's web
    proxy: FaultProxy | None = None
    kills: Counter[str] = field(default_factory=Counter)
    unexpected_exits: Counter[str] = field(default_factory=Counter)
    ingest_failures: int = 0
    say: Callable[[str], None] = print
    _down: set[str] = field(default_factory=set)  # "postgres" while the harness holds it down

    # --- set-up ------------------------------------------------------------------

    async def setup(self) -> None:
        """Databases, schemas, the hub's key, council keys enrolled (in-process, once)."""
        self.hub_db = await self.pg.database("hub")
        async with running_hub(self.hub_db, self.workdir) as setup_hub:
            hub_public = keys.public_path_for(setup_hub.config.hub.key_file)
            for code in self.councils:
                url = await self.pg.database(f"node_{code.lower()}")
                async with running_node(code, url, self.workdir, setup_hub) as node:
                    env = node_env(code, url, node.config.key_file, "", hub_public)
                    self.nodes[code] = Council(code, url, env, Process([], env, Path()))

    async def database(self, name: str) -> str:
        """A new, empty database on the run's PostgreSQL; its URL."""
        return await self.pg.database(name)

    async def practitioner_headers(self, database_url: str | None = None) -> dict[str, str]:
        """A practitioner's bearer token at the hub (or the node of ``database_url``)."""
        async with asyncpg.create_pool(database_url or self.hub_db,
                                       min_size=1, max_size=1) as pool:
            accounts = AccountService(pool, AccountsConfig())
            await accounts.add_user("soak-practitioner", Role.PRACTITIONER,
                                    organisation="Soak Test")
            token, _ = await accounts.create_token("soak-practitioner")
        return {"Authorization": f"Bearer {token}"}

    # --- processes ---------------------------------------------------------------

    @property
    def hub_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.hub_ports]

    async def start(self) -> None:
        self.hub_ports = [free_port() for _ in range(self.hubs)]
        for i, port in enumerate(self.hub_ports):
            hub = hub_process(self.hub_db, port, self.workdir)
            hub.log = self.workdir / f"hub-{i}.log"
            hub.env |= self.hub_env_extra
            self.hub_processes.append(hub.start())
        for url in self.hub_urls:
            await asyncio.to_thread(wait_ready, url, 60)
        self.proxy = await FaultProxy([("127.0.0.1", p) for p in self.hub_ports],
                                      self.rates, self.seed).start()
        for council in self.nodes.values():
            council.env = council.env | {"LOCAL_NODE__HUB__URL": self.proxy.url,
                                         **self.node_env_extra}
            council.publisher = Process([script("local-node"), "publish"], council.env,
                                        self.workdir / f"node-{council.code}.log").start()

    async def serve(self, code: str, env_extra: dict[str, str] | None = None) -> str:
        """``local-node serve --no-publish`` for council ``code`` (its publisher runs
        apart); its URL once ready."""
        port = free_port()
        council = self.nodes[code]
        name = f"serve-{code}"
        self.servers[name] = Process(
            [script("local-node"), "serve", "--no-publish", "--port", str(port)],
            council.env | (env_extra or {}), self.workdir / f"{name}.log").start()
        url = f"http://127.0.0.1:{port}"
        await asyncio.to_thread(wait_ready, url, 60)
        return url

    def processes(self) -> dict[str, Process]:
        out = {f"hub-{i}": p for i, p in enumerate(self.hub_processes)}
        out |= {f"node-{c}": n.publisher for c, n in self.nodes.items()}
        return out | self.servers

    async def kill(self, victim: str, index: int) -> str:
        """SIGKILL one hub replica, one publisher or PostgreSQL; returns what died."""
        self.kills[victim] += 1
        if victim == "postgres":
            self._down.add("postgres")
            await asyncio.to_thread(self.pg.kill)
            return "postgres"
        if victim == "hub":
            name = f"hub-{index % len(self.hub_processes)}"
        else:
            name = f"node-{self.councils[index % len(self.councils)]}"
        self.processes()[name].kill()
        return name

    async def restart(self, name: str) -> None:
        if name == "postgres":
            await asyncio.to_thread(self.pg.start)
            self._down.discard("postgres")
            return
        self.processes()[name].start()

    async def supervise(self) -> None:
        """Restart any process that exited on its own (counted): systemd's job."""
        if "postgres" in self._down:
            return
        if not self.pg.processes():
            self.unexpected_exits["postgres"] += 1
            await asyncio.to_thread(self.pg.start)
        for name, proc in self.processes().items():
            if proc.proc is not None and not proc.alive():
                self.unexpected_exits[name] += 1
                self.say(f"  {name} exited by itself (status {proc.proc.returncode}): "
                         f"{_last_line(proc.log)}")
                proc.start()

    async def ingest(self, code: str, feed: str, path: Path, limit: float = 300) -> None:
        """``local-node ingest``, retried (it is idempotent) until it succeeds."""
        council = self.nodes[code]
        args = [script("local-node"), "ingest", "--feed", feed, str(path)]
        deadline = time.monotonic() + limit
        while True:
            result = await asyncio.to_thread(
                subprocess.run, args, env=council.env, capture_output=True, timeout=limit)
            if result.returncode == 0:
                return
            self.ingest_failures += 1
            self.say(f"  ingest {code} {feed} failed (retrying): "
                     f"{_last_line_of(result.stderr.decode(errors='replace'))}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"ingest {code} {feed} kept failing: "
                                   f"{result.stderr.decode()[-2000:]}")
            await asyncio.sleep(1)

    async def close(self) -> None:
        for proc in self.processes().values():
            proc.kill()
        if self.proxy:
            await self.proxy.close()

    # --- state -------------------------------------------------------------------

    async def synced(self) -> bool:
        """Every node's outbox sent and receipted, and the hub at every node's head."""
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            hub = await asyncpg.connect(self.hub_db)
            try:
                cursors = dict(await hub.fetch("SELECT code, cursor_seq FROM councils"))
                if await _queued(hub):
                    return False
            finally:
                await hub.close()
            for code, council in self.nodes.items():
                conn = await asyncpg.connect(council.database_url)
                try:
                    pending = await conn.fetchval(
                        "SELECT (SELECT count(*) FROM outbox WHERE batch_seq IS NULL)"
                        " + (SELECT count(*) FROM sent_batches WHERE receipt IS NULL)")
                    head = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM sent_batches")
                finally:
                    await conn.close()
                if pending or head != (cursors.get(code) or 0):
                    return False
            return True
        return False


def _last_line(log: Path) -> str:
    try:
        return _last_line_of(log.read_text(errors="replace"))
    except OSError:
        return "(no log)"


def _last_line_of(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1][:300] if lines else "(nothing)"


async def _queued(conn: asyncpg.Connection) -> int:
    """Records waiting for the background resolver (0 where resolution is inline)."""
    if not await conn.fetchval("SELECT to_regclass('resolution_queue') IS NOT NULL"):
        return 0
    return int(await conn.fetchval("SELECT count(*) FROM resolution_queue"))

