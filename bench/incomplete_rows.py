"""Incomplete rows at a council's node: what loading them instead of
refusing them is worth.

Generates one council of synthetic children, writes its three feeds, then blanks one
of given name, family name or date of birth (or makes the date impossible, e.g.
``2015-02-30``) in a share of rows, as feeds from real systems arrive. Loads the feeds
into a node (the real ingest and local matching) and prints, against the ground truth:
rows refused and rows loaded incomplete; pairwise precision and recall of the node's
children over all source rows; and the recall the node would have had if it refused
those rows, as it did before (their pairs are simply lost then).

    python -m bench.incomplete_rows --children 5000 --blank-share 0.08
"""

from __future__ import annotations

import asyncio
import csv
import random
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import click

import synthetic
from local_node.app import PACKAGE as NODE_PACKAGE
from local_node.app import ingest_service
from local_node.storage.children import ChildStore
from server_common import database, embedded_pg

COUNCIL = "E10000011"
FEEDS = ("education", "health", "services")
CORE = ("given_name", "family_name", "dob")


@dataclass(frozen=True, slots=True)
class Figures:
    rows: int
    blanked: int
    refused: int
    loaded_incomplete: int
    children: int
    children_incomplete: int
    precision: float
    recall: float
    recall_if_refused: float
    ingest_seconds: float

    def lines(self) -> list[str]:
        return [
            f"rows {self.rows:,}: {self.blanked:,} with a blank or invalid name or DOB; "
            f"{self.refused:,} refused; {self.loaded_incomplete:,} loaded incomplete",
            f"children {self.children:,}, {self.children_incomplete:,} flagged incomplete",
            f"pairwise precision {self.precision:.4f}, recall {self.recall:.4f} "
            f"(refusing those rows: recall {self.recall_if_refused:.4f})",
            f"ingest {self.ingest_seconds:.1f} s",
        ]


def blank_cells(feeds_dir: Path, share: float, seed: int) -> set[tuple[str, str]]:
    """Blank or spoil one core cell in ``share`` of the rows; return their (feed, ref)."""
    rng = random.Random(seed)
    spoilt: set[tuple[str, str]] = set()
    for feed in FEEDS:
        path = feeds_dir / COUNCIL / f"{feed}.csv"
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            header, rows = list(reader.fieldnames or []), list(reader)
        for row in rows:
            if rng.random() >= share:
                continue
            column = rng.choice(CORE)
            row[column] = (f"{row['dob'][:4]}-02-30" if column == "dob" and rng.random() < 0.5
                           else "")
            spoilt.add((feed, row["source_ref"]))
        with path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, header)
            writer.writeheader()
            writer.writerows(rows)
    return spoilt


def _pairs(counts: Counter[Any]) -> int:
    return sum(n * (n - 1) // 2 for n in counts.values())


async def measure(url: str, children: int, share: float, seed: int, work: Path) -> Figures:
    """Run the measurement on an empty database at ``url``."""
    population = synthetic.generate_population([COUNCIL], children, seed=seed)
    feeds_dir = work / "feeds"
    shutil.rmtree(feeds_dir, ignore_errors=True)
    synthetic.write_feeds(population, feeds_dir)
    spoilt = blank_cells(feeds_dir, share, seed)
    conn = await asyncpg.connect(url)
    try:
        await database.upgrade(conn, NODE_PACKAGE)
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
    assert pool is not None
    try:
        service = ingest_service(pool)
        started = time.perf_counter()
        reports = [await service.ingest_file(feed, feeds_dir / COUNCIL / f"{feed}.csv")
                   for feed in FEEDS]
        seconds = time.perf_counter() - started
        async with pool.acquire() as conn:
            placed = {(r["source"], r["source_ref"]): r["local_id"] for r in await conn.fetch(
                "SELECT source, source_ref, local_id FROM source_records")}
            count = await ChildStore().count(conn)
            incomplete, _ = await ChildStore().count_incomplete(conn)
    finally:
        await pool.close()
    person = {(t.source, t.source_ref): t.person_id for t in population.truth}
    true_pairs = _pairs(Counter(person.values()))
    found = Counter(placed.values())
    both = Counter((person[k], v) for k, v in placed.items())
    kept = Counter((person[k], v) for k, v in placed.items() if k not in spoilt)
    return Figures(
        rows=sum(r.rows_read for r in reports), blanked=len(spoilt),
        refused=sum(len(r.errors) for r in reports),
        loaded_incomplete=sum(r.rows_incomplete for r in reports),
        children=count, children_incomplete=incomplete,
        precision=_pairs(both) / max(1, _pairs(found)),
        recall=_pairs(both) / max(1, true_pairs),
        recall_if_refused=_pairs(kept) / max(1, true_pairs),
        ingest_seconds=seconds,
    )


async def _run(children: int, share: float, seed: int, data_dir: Path) -> Figures:
    base = await asyncio.to_thread(embedded_pg.start, data_dir / "pg")
    name = f"bench_incomplete_{seed}_{children}"
    conn = await asyncpg.connect(embedded_pg.with_database(base, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')  # a fresh index each run
    finally:
        await conn.close()
    url = await embedded_pg.ensure_database(base, name)
    return await measure(url, children, share, seed, data_dir)


@click.command(help=__doc__)
@click.option("--children", default=5_000, show_default=True)
@click.option("--blank-share", default=0.08, show_default=True,
              help="Share of rows with one blank or invalid name or date of birth.")
@click.option("--seed", default=14, show_default=True)
@click.option("--data-dir", default=".data/bench-incomplete", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
def main(children: int, blank_share: float, seed: int, data_dir: Path) -> None:
    figures = asyncio.run(_run(children, blank_share, seed, data_dir))
    click.echo(f"== incomplete rows at a node ({children:,} children, "
               f"{blank_share:.0%} of rows spoilt, seed {seed})")
    for line in figures.lines():
        click.echo(line)


if __name__ == "__main__":
    main()
