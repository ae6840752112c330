"""How the hub's costs grow with the children it holds (docs/scaling.md).

Grows one hub database in stages (``--stages``, children in the hub at each) and at
each stage measures, through the real interfaces:

- storage: the database's size, its largest tables and indexes, bytes per record,
  bytes per audit entry;
- search: fresh hub processes (``national-hub serve``) on the grown database, 32
  clients searching over HTTP with bearer tokens and a purpose, each search audited
  (the practitioner search of ``bench.search``): p50/p95/p99, searches/s, the hubs'
  peak memory;
- publish: a new council's node, loaded from its feeds, published by the real
  publisher (``local-node publish --once``) to the real hub with its background
  resolver (as ``bench.publish``): hub-applied and applied-and-resolved records/s,
  the resolver's busy time. Some of the council's children moved from a council
  already in the hub, so resolution has true candidates to find as well as the
  crowd of blocking-key neighbours the stage has grown.

Each stage's growth is copied in the way ``bench.search`` loads (COPY, ``record_keys``
indexed once at the end), including the records of the council the new one's movers
came from. At the end it prints one row per stage and how each cost grew per ×
children. The machine's load average is printed with every stage: on a shared
machine, figures are lower bounds.

    python -m bench.scale                           # 100k, 300k, 1M (30–40 minutes)
    python -m bench.scale --stages 5000,15000 --publish-children 500 --seconds 3
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import asyncpg
import click
from tqdm import tqdm

import synthetic
from bench.db import fetchval
from bench.publish import ingest_council, publish_council, upgraded_database
from bench.scale_report import Stage, Storage, print_stage, print_table
from bench.search import COUNCILS, Loader, bulk_load, practitioner_tokens, prepare_hub, search_run
from local_node.app import PACKAGE as NODE_PACKAGE
from national_hub.services.linking import TERM_KEYS
from national_hub.storage.resolution_terms import TermCountStore
from server_common import embedded_pg

ROUND = 50_000  # children per council per generated round: bounds the loader's memory
# The new council of each stage (codes no loaded council uses; the generator gives
# them generic areas).
NEW_COUNCILS = [f"E06000{n:03d}" for n in range(901, 1000)]


def _stages(_ctx: click.Context, _param: click.Parameter, value: str) -> list[int]:
    try:
        stages = [int(v.replace("_", "")) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise click.BadParameter(f"not a list of numbers: {value!r}") from exc
    if not stages or stages != sorted(set(stages)) or stages[0] <= 0:
        raise click.BadParameter(f"need increasing positive numbers of children: {value!r}")
    if len(stages) > len(NEW_COUNCILS):
        raise click.BadParameter(f"at most {len(NEW_COUNCILS)} stages")
    return stages


class GrowingHub:
    """The one hub database, grown stage by stage by COPY."""

    def __init__(self, url: str, seed: int) -> None:
        self.url = url
        self.seed = seed
        self.rounds = 0
        self.loader: Loader | None = None

    async def grow(self, target: int, partner: synthetic.Population, partner_code: str
                   ) -> float:
        """Copy in the partner council's records, then generated rounds until the hub
        holds ``target`` children. Returns the seconds it took."""
        started = time.perf_counter()
        conn = await asyncpg.connect(self.url)
        try:
            if self.loader is None:
                self.loader = Loader(conn, self.seed)
            loader = self.loader
            loader.conn = conn
            have = await _children(conn)
            async with bulk_load(conn):
                before = loader.children
                await loader.load_population(partner, only=frozenset({partner_code}))
                with tqdm(total=max(0, target - have), desc="children", unit="child") as bar:
                    bar.update(loader.children - before)
                    while (now := have + loader.children - before) < target:
                        pair = [COUNCILS[(2 * self.rounds + i) % len(COUNCILS)] for i in (0, 1)]
                        per_council = min(ROUND, max(1, (target - now) // 2))
                        was = loader.children
                        await loader.load_round(pair, per_council, self.seed + 1000 + self.rounds)
                        self.rounds += 1
                        bar.update(loader.children - was)
            # The term counts of the records copied in, as the resolver's first chunk
            # would fold them (once, as after the migration that introduced them): the
            # publish measured next pays only for its own records.
            async with conn.transaction():
                await TermCountStore().fold(conn, TERM_KEYS)
            return time.perf_counter() - started
        finally:
            await conn.close()


async def _children(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval(
        "SELECT count(DISTINCT national_id) FROM records WHERE record IS NOT NULL"))


async def _storage(url: str) -> Storage:
    conn = await asyncpg.connect(url)
    try:
        largest = [(r["relname"], "index" if r["relkind"] == "i" else "table",
                    int(r["bytes"])) for r in await conn.fetch(
            "SELECT relname, relkind, pg_total_relation_size(oid) AS bytes FROM pg_class"
            " WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'i')"
            " ORDER BY bytes DESC LIMIT 8")]
        return Storage(
            await _children(conn),
            int(await conn.fetchval("SELECT count(*) FROM records WHERE record IS NOT NULL")),
            int(await conn.fetchval("SELECT pg_database_size(current_database())")),
            int(await conn.fetchval("SELECT next_seq FROM audit_head")),
            int(await conn.fetchval("SELECT pg_total_relation_size('audit_log')")),
            largest)
    finally:
        await conn.close()


async def _linked(url: str, council: str) -> int:
    """The council's records the resolver linked to a child another council holds."""
    return int(await fetchval(
        url, "SELECT count(*) FROM records r WHERE r.council_code = $1 AND EXISTS ("
        " SELECT 1 FROM records o WHERE o.national_id = r.national_id"
        " AND o.council_code <> r.council_code)", council))


def _new_council(base: str, population: synthetic.Population, code: str, work: Path
                 ) -> tuple[str, int]:
    """A fresh node for the stage's new council, its feeds ingested; its URL and the
    entries in its outbox."""
    synthetic.write_feeds(population, work / "feeds")
    node_db = asyncio.run(upgraded_database(base, f"bench_scale_{code.lower()}", NODE_PACKAGE))
    ingested = asyncio.run(ingest_council(node_db, work / "feeds" / code))
    return node_db, ingested.pending


@click.command(help=__doc__)
@click.option("--stages", default="100000,300000,1000000", show_default=True,
              callback=_stages, help="Children in the hub at each stage, increasing.")
@click.option("--publish-children", default=8000, show_default=True,
              help="Children of each stage's new council (5% of them movers).")
@click.option("--batch-size", default=5000, show_default=True)
@click.option("--clients", default=32, show_default=True)
@click.option("--hubs", default=2, show_default=True,
              help="Hub processes searched (clients spread over them).")
@click.option("--seconds", default=20.0, show_default=True, help="Measured search time.")
@click.option("--warmup", default=5.0, show_default=True)
@click.option("--port", default=8500, show_default=True,
              help="First port: the search hubs take --hubs from it, the publish hub the next.")
@click.option("--seed", default=12, show_default=True)
@click.option("--data-dir", default=".data/bench-scale", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
def main(stages: list[int], publish_children: int, batch_size: int, clients: int, hubs: int,
         seconds: float, warmup: float, port: int, seed: int, data_dir: Path) -> None:
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    base = embedded_pg.start(data_dir / "pg")
    hub_db = asyncio.run(embedded_pg.ensure_database(base, "bench_scale_hub"))
    asyncio.run(prepare_hub(hub_db))
    tokens = asyncio.run(practitioner_tokens(hub_db, clients))
    hub = GrowingHub(hub_db, seed)
    hub_key = data_dir / "hub" / "hub_key.pem"
    done: list[Stage] = []
    for n, target in enumerate(stages):
        work = data_dir / f"stage-{n + 1}"
        work.mkdir()
        load = os.getloadavg()
        click.echo(f"\n== stage {n + 1}: {target:,} children (load average "
                   f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f})")
        code, partner = NEW_COUNCILS[n], COUNCILS[n % len(COUNCILS)]
        population = synthetic.generate_population([partner, code], publish_children,
                                                    seed + 500 + n)
        grown = asyncio.run(hub.grow(target, population, partner))
        node_db, pending = _new_council(base, population, code, work)
        del population
        assert hub.loader is not None
        measured = search_run(hub_db, work, tokens, hub.loader.queries, hubs=hubs,
                              seconds=seconds, warmup=warmup, base_port=port,
                              hub_key_file=hub_key)
        storage = asyncio.run(_storage(hub_db))  # after searching: the audit log has grown
        published = publish_council(hub_db, node_db, code, f"New council {n + 1}", work,
                                    hub_key, batch_size=batch_size, port=port + hubs)
        stage = Stage(target, grown, storage, measured, published, pending,
                      asyncio.run(_linked(hub_db, code)), os.getloadavg()[0], load[0])
        print_stage(stage, seconds)
        done.append(stage)
    print_table(done, clients=clients, hubs=hubs, publish_children=publish_children)


if __name__ == "__main__":
    main()
