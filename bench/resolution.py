"""National resolution against Splink, side by side on one generated population
(docs/design.md §10).

Generates the councils' children once (movers between councils, surname changes,
hyphenated and double-barrelled names, nicknames, typos, day–month swaps, missing
identifiers, twins and siblings at one address, common and rare names), takes each
council's records as the hub would hold them (``bench.resolution_data``), then runs

* **Signpost**: the hub's own intake and resolver on the embedded PostgreSQL, the
  queue drained in bulk beside the load as an operator runs an initial one
  (``links drain --bulk --until-idle``, started first; ``--serial``: drained after
  the last batch), then
  ``model train`` and ``links resolve --bulk`` (``bench.resolution_hub``);
* **Splink 5** with DuckDB, configured with comparable blocking rules and comparisons
  and trained by EM (``bench.resolution_splink``),

each in a process of its own, and prints pairwise precision, recall and F1 against
the truth, the number of twin pairs merged, wall time and peak memory. Needs the
``bench`` extra (``pip install '.[bench]'``).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import click

import synthetic
from bench import resolution_hub, resolution_splink
from bench.db import plan_cache_mode_option
from bench.resolution_data import (
    Quality,
    pairwise_quality,
    read_persons,
    twin_pairs,
    write_records,
)
from server_common import embedded_pg

COUNCILS = ["E10000011", "E10000032", "E06000020", "E06000043", "E06000051", "E08000025",
            "E09000033", "E10000015"]
TODAY = date(2026, 6, 1)


def _in_own_process(fn: Any, *args: Any) -> Any:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def _row(name: str, q: Quality, seconds: float, memory: float | None) -> str:
    mem = f"{memory:,.0f}" if memory is not None else "-"
    return (f"{name:<44} {q.precision:>9.4f} {q.recall:>7.4f} {q.f1:>7.4f} "
            f"{q.predicted_pairs - q.true_positives:>7,} {q.merged_twins:>6,} "
            f"{seconds:>9.1f} {mem:>9}")


@click.command(help=__doc__)
@click.option("--children", default=50_000, show_default=True,
              help="Children living in each council (movers appear in two).")
@click.option("--councils", default=4, show_default=True, type=click.IntRange(2, len(COUNCILS)))
@click.option("--movers", default=0.15, show_default=True, help="Share of children who moved.")
@click.option("--seed", default=11, show_default=True)
@click.option("--batch-size", default=5000, show_default=True)
@click.option("--splink-u-pairs", default=5e6, show_default=True,
              help="Pairs Splink samples to estimate u.")
@click.option("--splink/--no-splink", "with_splink", default=True, show_default=True,
              help="Run Splink beside ours (needs the bench extra; make test's smoke run "
                   "goes without where it is not installed).")
@click.option("--serial", is_flag=True,
              help="Drain only after the last batch, not beside the load from its start.")
@plan_cache_mode_option("the hub's database")
@click.option("--data-dir", default=".data/bench-resolution", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
def main(children: int, councils: int, movers: float, seed: int, batch_size: int,
         splink_u_pairs: float, with_splink: bool, serial: bool, plan_cache_mode: str,
         data_dir: Path) -> None:
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    codes = COUNCILS[:councils]
    started = time.perf_counter()
    population = synthetic.generate_population(codes, children, seed, movers_fraction=movers,
                                               today=TODAY)
    synthetic.write_feeds(population, data_dir / "feeds")
    records_csv = data_dir / "records.csv"
    count = write_records(population, data_dir / "feeds", records_csv)
    twins = twin_pairs(population)
    del population
    persons = read_persons(records_csv)
    truth = pairwise_quality({}, persons, twins)
    click.echo(f"generated {count:,} hub records of {len(set(persons.values())):,} children "
               f"in {len(codes)} councils ({truth.true_pairs:,} true pairs, {len(twins):,}"
               f" twin pairs) in {time.perf_counter() - started:.1f} s")

    base = embedded_pg.start(data_dir / "pg")
    url = asyncio.run(embedded_pg.ensure_database(base, "bench_resolution"))
    ours = _in_own_process(resolution_hub.run, url, records_csv, batch_size, seed, serial,
                           plan_cache_mode)
    drain = "after the last batch" if serial else "beside the load (links drain --until-idle)"
    click.echo(f"signpost (plan_cache_mode {ours['plan_cache_mode']}): {ours['batches']} batches "
               f"applied in {ours['received_seconds']:.1f} s, resolved in bulk {drain} by "
               f"{ours['intake_seconds']:.1f} s; model {ours['model_version']} trained in "
               f"{ours['train_seconds']:.1f} s; re-resolved in {ours['resolve_seconds']:.1f} s")
    splink = (_in_own_process(resolution_splink.run, records_csv, splink_u_pairs, seed)
              if with_splink else None)
    if splink is not None:
        click.echo(f"splink: trained in {splink['train_seconds']:.1f} s, all done in "
                   f"{splink['seconds']:.1f} s; {splink['predicted_pairs']:,} pairs above "
                   f"p=0.01; prior {splink['prior']:.2e}")

    click.echo(f"\n== resolution on {count:,} records, {len(codes)} councils, "
               f"{truth.true_pairs:,} true pairs (targets: precision ≥ 0.999, recall ≥ 0.99)")
    click.echo(f"{'':<44} {'precision':>9} {'recall':>7} {'F1':>7} {'false':>7} "
               f"{'twins':>6} {'seconds':>9} {'peak MiB':>9}")
    click.echo(_row("signpost: hub intake + resolution (default)",
                    pairwise_quality(ours["after_intake"], persons, twins),
                    ours["intake_seconds"], ours["peak_rss_mib"]))
    click.echo(_row("signpost: model train + links resolve",
                    pairwise_quality(ours["after_training"], persons, twins),
                    ours["train_seconds"] + ours["resolve_seconds"], None))
    if splink is not None:
        click.echo(_row(
            f"splink 5: train+predict+cluster, w ≥ {resolution_splink.THRESHOLD_WEIGHT}",
            pairwise_quality(splink["clusters"], persons, twins), splink["seconds"],
            splink["peak_rss_mib"]))
        for p, clusters in splink["other_thresholds"].items():
            click.echo(_row(f"  splink at probability ≥ {p}", pairwise_quality(
                clusters, persons, twins), float("nan"), None))
    click.echo(f"\nsignpost peak memory is its Python process (PostgreSQL's own is apart); "
               f"{ours['open_reviews']:,} pairs left in the review queue (not linked); "
               f"model summary {ours['model_summary']}")


if __name__ == "__main__":
    main()
