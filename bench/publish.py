"""Initial publish of one council to the hub, end to end (docs/design.md §10).

Generates one council of synthetic children (246,000 by default), loads its
feeds into a node, then runs the real hub (``national-hub serve``, with its background
resolver) and the real publisher (``local-node publish --once``) as separate processes
on the embedded PostgreSQL, and prints two throughputs, each with its wall time from
the first batch sent: to the last receipt stored (hub-applied: records and blocking
keys written, queued for resolution), and to the resolution queue found empty
(applied and resolved: every record has its national id), with the resolver's busy
time and the peak memory of both processes.

The hub's batch intake alone is ``python -m bench.intake``. ``BENCH_PYSPY=FILE``
records the hub process with py-spy in both.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg
import click
import psutil
from tqdm import tqdm

import synthetic
from local_node.app import PACKAGE as NODE_PACKAGE
from local_node.app import ingest_service
from national_hub.app import PACKAGE as HUB_PACKAGE
from protocol import keys
from server_common import database, embedded_pg
from server_common.readiness import wait_ready

COUNCIL = "E10000011"


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


class PeakMemory(threading.Thread):
    """Samples a process's resident memory until stopped; keeps the peak."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak = 0
        self.running = True

    def run(self) -> None:
        while self.running:
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.05)


async def upgraded_database(base: str, name: str, package: str) -> str:
    url = await embedded_pg.ensure_database(base, name)
    conn = await asyncpg.connect(url)
    try:
        await database.upgrade(conn, package)
    finally:
        await conn.close()
    return url


@dataclass(frozen=True, slots=True)
class Ingested:
    pending: int  # records in the outbox, to publish
    rates: list[str]  # one line per feed
    placed: dict[tuple[str, str], str]  # (source, source_ref) → local_id
    reviews: int


async def ingest_council(node_url: str, feeds: Path) -> Ingested:
    """Load one council's three feed files (``feeds`` is its folder) into its node."""
    pool = await asyncpg.create_pool(node_url, min_size=1, max_size=2)
    assert pool is not None
    service = ingest_service(pool)
    rates = []
    for feed in ("education", "health", "services"):
        started = time.perf_counter()
        with tqdm(desc=f"ingest {feed}", unit="row") as bar:
            report = await service.ingest_file(feed, feeds / f"{feed}.csv", bar.update)
        seconds = time.perf_counter() - started
        rates.append(f"{feed} {report.rows_loaded:,} rows in {seconds:.1f} s "
                     f"({report.rows_loaded / seconds:,.0f} rows/s)")
    async with pool.acquire() as conn:
        pending = int(await conn.fetchval("SELECT count(*) FROM outbox"))
        placed = {(r["source"], r["source_ref"]): r["local_id"] for r in await conn.fetch(
            "SELECT source, source_ref, local_id FROM source_records")}
        reviews = int(await conn.fetchval("SELECT count(*) FROM review_items"))
    await pool.close()
    return Ingested(pending, rates, placed, reviews)


async def _prepare(base: str, feeds: Path) -> tuple[str, str, int]:
    hub_url = await upgraded_database(base, "bench_hub", HUB_PACKAGE)
    node_url = await upgraded_database(base, "bench_node", NODE_PACKAGE)
    ingested = await ingest_council(node_url, feeds / COUNCIL)
    click.echo("\n== local ingest (one council)\n" + "\n".join(ingested.rates))
    click.echo(_local_matching_quality(feeds / "truth.csv", ingested.placed, ingested.reviews))
    return hub_url, node_url, ingested.pending


def _pairs(groups: dict[object, int]) -> int:
    return sum(n * (n - 1) // 2 for n in groups.values())


def _local_matching_quality(truth_csv: Path, placed: dict[tuple[str, str], str],
                            reviews: int) -> str:
    """Pairwise precision and recall of local matching against the generator's truth:
    two feed rows are a predicted pair when they landed in one child, a true pair when
    the truth says one person."""
    children: dict[object, int] = {}
    persons: dict[object, int] = {}
    both: dict[object, int] = {}
    with truth_csv.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            child = placed.get((row["source"], row["source_ref"]))
            if child is None:
                continue
            children[child] = children.get(child, 0) + 1
            persons[row["person_id"]] = persons.get(row["person_id"], 0) + 1
            both[(child, row["person_id"])] = both.get((child, row["person_id"]), 0) + 1
    true_positive, predicted, actual = _pairs(both), _pairs(children), _pairs(persons)
    precision = true_positive / predicted if predicted else 1.0
    recall = true_positive / actual if actual else 1.0
    return (f"local matching: precision {precision:.4f}, recall {recall:.4f} "
            f"({len(children):,} children for {len(persons):,} people; "
            f"{reviews:,} pairs left on the review list)")


@dataclass(frozen=True, slots=True)
class Timings:
    applied_seconds: float  # first send → last receipt
    resolved_seconds: float  # first send → the resolution queue found empty
    batches: int
    applied: int
    statuses: dict[str, int]


async def _resolved_at(hub_url: str, poll: float = 0.05) -> datetime:
    """The hub database's clock when its resolution queue is first found empty (the
    resolver deletes entries in the transaction that writes their national ids)."""
    conn = await asyncpg.connect(hub_url)
    try:
        while True:
            row = await conn.fetchrow("SELECT EXISTS (SELECT 1 FROM resolution_queue) AS busy,"
                                      " clock_timestamp() AS now")
            if not row["busy"]:
                return row["now"]
            await asyncio.sleep(poll)
    finally:
        await conn.close()


async def _timings(node_url: str, hub_url: str, resolved_at: datetime) -> Timings:
    # One PostgreSQL server holds both databases: one clock for every timestamp.
    conn = await asyncpg.connect(node_url)
    try:
        row = await conn.fetchrow(
            "SELECT min(created_at) AS first, max(receipt_at) AS last, count(*) AS batches,"
            " coalesce(sum(applied), 0) AS applied FROM sent_batches")
    finally:
        await conn.close()
    conn = await asyncpg.connect(hub_url)
    try:
        statuses = {r["s"]: int(r["n"]) for r in await conn.fetch(
            "SELECT coalesce(link_status, 'none') AS s, count(*) AS n FROM records"
            " WHERE record IS NOT NULL GROUP BY 1 ORDER BY 1")}
    finally:
        await conn.close()
    return Timings((row["last"] - row["first"]).total_seconds(),
                   (resolved_at - row["first"]).total_seconds(), int(row["batches"]),
                   int(row["applied"]), statuses)


def _resolver_busy(hub_log: Path) -> tuple[float, int]:
    """Seconds the hub's resolver spent in its chunks, and how many, from its log."""
    seconds, chunks = 0.0, 0
    for line in hub_log.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if event.get("event") == "records resolved":
                seconds += float(event.get("seconds", 0.0))
                chunks += 1
    return seconds, chunks


@dataclass(frozen=True, slots=True)
class Published:
    out: str  # the publisher's own summary
    timings: Timings
    resolver_seconds: float  # the resolver's busy time, from the hub's log
    resolver_chunks: int
    hub_peak: int  # peak resident memory, bytes
    node_peak: int


def _py_spy(pid: int) -> subprocess.Popen[bytes] | None:
    """py-spy recording the process into ``$BENCH_PYSPY`` (raw folded stacks), if set."""
    if not os.environ.get("BENCH_PYSPY"):
        return None
    return subprocess.Popen(["py-spy", "record", "-p", str(pid), "-o", os.environ["BENCH_PYSPY"],
                             "-f", "raw", "-r", "50"],
                            stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def _stop_spy(spy: subprocess.Popen[bytes] | None) -> None:
    if spy is not None:
        spy.send_signal(2)
        spy.wait()


def publish_council(hub_db: str, node_db: str, council: str, name: str, work_dir: Path,
                    hub_key_file: Path, *, batch_size: int, port: int = 8490) -> Published:
    """Enrol the council with a new key, then run the real hub (``national-hub serve``,
    its resolver in the background) and the real publisher (``local-node publish
    --once``) until the node's outbox is sent and the hub's resolution queue is empty.
    Logs go to ``work_dir``."""
    key = keys.generate()
    key_file = work_dir / "node" / "key.pem"
    keys.write_private_key(key, key_file)
    env = dict(os.environ) | {
        "NATIONAL_HUB__DATABASE__URL": hub_db,
        "NATIONAL_HUB__HUB__KEY_FILE": str(hub_key_file),
        "NATIONAL_HUB__SERVER__PORT": str(port),
        "LOCAL_NODE__DATABASE__URL": node_db, "LOCAL_NODE__COUNCIL__CODE": council,
        "LOCAL_NODE__COUNCIL__KEY_FILE": str(key_file),
        "LOCAL_NODE__HUB__URL": f"http://127.0.0.1:{port}",
        "LOCAL_NODE__HUB__PUBLIC_KEY_FILE": str(keys.public_path_for(hub_key_file)),
        "LOCAL_NODE__PUBLISHER__BATCH_SIZE": str(batch_size),
    }
    subprocess.run([_bin("national-hub"), "councils", "add", council, "--name", name,
                    "--public-key", str(keys.public_path_for(key_file))], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    hub_log = work_dir / "hub.log"
    hub = subprocess.Popen([_bin("national-hub"), "serve"], env=env,
                           stderr=hub_log.open("wb"))
    try:
        wait_ready(f"http://127.0.0.1:{port}", timeout=60)
        hub_mem = PeakMemory(hub.pid)
        hub_mem.start()
        spy = _py_spy(hub.pid)
        node = subprocess.Popen([_bin("local-node"), "publish", "--once"], env=env,
                                stdout=subprocess.PIPE, stderr=(work_dir / "node.log").open("wb"),
                                text=True)
        node_mem = PeakMemory(node.pid)
        node_mem.start()
        out, _ = node.communicate()
        node_mem.running = False
        if node.returncode != 0:
            raise click.ClickException(f"publish failed; see {work_dir}/node.log")
        resolved_at = asyncio.run(_resolved_at(hub_db))
        hub_mem.running = False
        _stop_spy(spy)
    finally:
        hub.terminate()
        hub.wait(timeout=30)
    timings = asyncio.run(_timings(node_db, hub_db, resolved_at))
    busy, chunks = _resolver_busy(hub_log)
    return Published(out.strip(), timings, busy, chunks, hub_mem.peak, node_mem.peak)


@click.command(help=__doc__)
@click.option("--children", default=246_000, show_default=True)
@click.option("--batch-size", default=5000, show_default=True)
@click.option("--seed", default=10, show_default=True)
@click.option("--data-dir", default=".data/bench", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
def main(children: int, batch_size: int, seed: int, data_dir: Path) -> None:
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    base = embedded_pg.start(data_dir / "pg")
    started = time.perf_counter()
    population = synthetic.generate_population([COUNCIL], children, seed, movers_fraction=0)
    synthetic.write_feeds(population, data_dir / "feeds")
    del population  # millions of live objects would slow every garbage collection after
    click.echo(f"generated {children:,} children in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    hub_db, node_db, pending = asyncio.run(_prepare(base, data_dir / "feeds"))
    click.echo(f"ingested into the node in {time.perf_counter() - started:.1f} s: "
               f"{pending:,} records to publish")
    p = publish_council(hub_db, node_db, COUNCIL, "East Sussex", data_dir,
                        data_dir / "hub" / "hub_key.pem", batch_size=batch_size)
    t, busy = p.timings, p.resolver_seconds
    click.echo(f"\n{p.out}")
    click.echo("\n== initial publish, one council (target ≥ 25,000 records/s applied and "
               "resolved)")
    click.echo(f"records applied      {t.applied:,} in {t.batches} batches of ≤{batch_size}")
    click.echo(f"hub-applied          {t.applied / t.applied_seconds:,.0f} records/s "
               f"(first send → last receipt {t.applied_seconds:.2f} s)")
    click.echo(f"applied and resolved {t.applied / t.resolved_seconds:,.0f} records/s "
               f"(first send → queue empty {t.resolved_seconds:.2f} s)")
    click.echo(f"resolver busy        {busy:.2f} s in {p.resolver_chunks} chunks "
               f"({t.applied / busy if busy else 0:,.0f} records/s while resolving)")
    click.echo("link status          " + ", ".join(f"{s} {n:,}" for s, n in t.statuses.items()))
    click.echo(f"peak memory          hub {p.hub_peak / 2**20:,.0f} MiB, "
               f"node {p.node_peak / 2**20:,.0f} MiB")


if __name__ == "__main__":
    main()
