"""Local ingest, feed by feed (target ≥ 5,000 rows/s per feed; docs/feeds.md).

Generates one council of synthetic children, loads its three feeds into a fresh node
database on the embedded PostgreSQL through the node's ingest service, and prints for
each feed its rows per second of wall time and per CPU-second: the CPU time of this
process and of its PostgreSQL backends together, which does not depend on what else
the machine is running. Then local matching's precision and recall against the
generator's truth, so a faster load is seen to place the same rows.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import time
from pathlib import Path

import asyncpg
import click

import synthetic
from bench.db import plan_cache_mode_option, reported_plan_cache_mode, set_plan_cache_mode
from bench.publish import COUNCIL, _local_matching_quality, upgraded_database
from local_node.app import PACKAGE as NODE_PACKAGE
from local_node.app import ingest_service
from local_node.feed_kinds import FEEDS
from server_common import embedded_pg

_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (a PostgreSQL backend on this machine)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(stat[11]) + int(stat[12])) / _TICKS


async def _ingest(base: str, feeds: Path, mode: str) -> tuple[
        list[str], dict[tuple[str, str], str], int, str, str]:
    url = await upgraded_database(base, "bench_ingest", NODE_PACKAGE)
    await set_plan_cache_mode(url, mode)  # before the pool opens its connections
    pool = await asyncpg.create_pool(url, min_size=2, max_size=2)
    assert pool is not None
    try:
        async with pool.acquire() as a, pool.acquire() as b:
            backends = [a.get_server_pid(), b.get_server_pid()]
            planned = {await reported_plan_cache_mode(a), await reported_plan_cache_mode(b)}
        service = ingest_service(pool)
        lines = []
        for feed in FEEDS:
            wall, own = time.perf_counter(), time.process_time()
            db = sum(map(_cpu_seconds, backends))
            report = await service.ingest_file(feed, feeds / f"{feed}.csv")
            wall, own = time.perf_counter() - wall, time.process_time() - own
            db = sum(map(_cpu_seconds, backends)) - db
            n = report.rows_loaded
            lines.append(f"{feed:<9} {n:>9,} rows  {n / wall:>7,.0f} rows/s  "
                         f"{n / (own + db):>7,.0f} rows/cpu-s  (python {own:.1f} s, "
                         f"postgres {db:.1f} s, wall {wall:.1f} s)")
        async with pool.acquire() as conn:
            placed = {(r["source"], r["source_ref"]): r["local_id"] for r in await conn.fetch(
                "SELECT source, source_ref, local_id FROM source_records")}
            reviews = int(await conn.fetchval("SELECT count(*) FROM review_items"))
            outbox = hashlib.sha256()
            for r in await conn.fetch("SELECT local_id, version, op, digest FROM outbox"
                                      " ORDER BY id"):
                outbox.update(f"{r['local_id']} {r['version']} {r['op']} {r['digest']}\n"
                              .encode())
        return lines, placed, reviews, outbox.hexdigest(), ", ".join(sorted(planned))
    finally:
        await pool.close()


@click.command()
@click.option("--children", default=50_000, show_default=True)
@click.option("--seed", default=10, show_default=True)
@plan_cache_mode_option("the node's database")
@click.option("--data-dir", default=".data/bench-ingest", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
def main(children: int, seed: int, plan_cache_mode: str, data_dir: Path) -> None:
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    base = embedded_pg.start(data_dir / "pg")
    population = synthetic.generate_population([COUNCIL], children, seed, movers_fraction=0)
    synthetic.write_feeds(population, data_dir / "feeds")
    del population
    lines, placed, reviews, outbox, planned = asyncio.run(
        _ingest(base, data_dir / "feeds" / COUNCIL, plan_cache_mode))
    click.echo(f"== local ingest, one council of {children:,} children "
               f"(target ≥ 5,000 rows/s per feed; plan_cache_mode {planned})")
    click.echo("\n".join(lines))
    click.echo(_local_matching_quality(data_dir / "feeds" / "truth.csv", placed, reviews))
    click.echo(f"outbox digest {outbox}")


if __name__ == "__main__":
    main()
