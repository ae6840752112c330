"""Resolution on public benchmarks this project did not generate, against Splink.

For each of FEBRL1, FEBRL2, FEBRL3 and RLdata10000 (``bench.public_data``: records
become health feed rows at three councils, duplicates within and across councils;
FEBRL4 is reserved for an independent check and is not used here), on the embedded
PostgreSQL:

* **Signpost, the real path**: each council's node ingests its feed (the node's
  ingest service: validation, local matching, the outbox; rows the feed validation
  refuses are counted by column, as part of the recall lost), then ``local-node
  publish --once`` to a running ``national-hub serve`` (its background resolver),
  council after council, until the hub's resolution queue is empty. Predicted pairs
  are read back through the CLI: ``local-node index export`` (source record → local
  child) and ``national-hub links export`` (local child → national child). Then
  ``national-hub model train`` and ``links resolve`` for each council, and the links
  are read again.
* **Splink 5** (``bench.public_splink``) on every source record, in the same run.

Prints pairwise precision, recall and F1 against the data set's own truth, the
review queues left (hub pairs open; node items), and wall time for both.
Targets (docs/design.md §10): F1 at least Splink's, precision ≥ 0.999.
"""

from __future__ import annotations

import asyncio
import csv
import os
import shutil
import socket
import subprocess
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import asyncpg
import click

from bench import public_data, public_splink
from bench.publish import _bin, publish_council, upgraded_database
from bench.resolution_data import Quality, pairwise_quality
from local_node.app import PACKAGE as NODE_PACKAGE
from local_node.app import ingest_service
from local_node.services.ingest import IngestReport
from national_hub.app import PACKAGE as HUB_PACKAGE
from server_common import embedded_pg

COUNCILS = ["E10000011", "E10000032", "E06000020"]


@dataclass
class Outcome:
    """What one data set gave, for the summary table."""
    name: str
    records: int
    true_pairs: int
    rows: dict[str, Quality] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)
    hub_reviews: int = 0
    node_reviews: int = 0
    trained_hub_reviews: int | None = None  # hub pairs open after model train + resolve
    trained_true_reviews: int = 0           # of those, pairs of one person's records
    missed: Counter[str] = field(default_factory=Counter)  # true pairs not linked, by why
    unlinked_fields: Counter[str] = field(default_factory=Counter)  # what those disagree on
    ingest_seconds: float = 0.0    # the nodes' ingest, summed
    councils: int = len(COUNCILS)
    resolved_seconds: float = 0.0  # first batch sent → hub queue empty, summed


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _in_own_process(fn: Any, *args: Any) -> Any:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


async def _ingest(node_url: str, feed: Path) -> IngestReport:
    async with asyncpg.create_pool(node_url, min_size=1, max_size=2) as pool:
        return await ingest_service(pool).ingest_file("health", feed)


def _hub_env(hub_db: str, hub_key: Path) -> dict[str, str]:
    return dict(os.environ) | {"NATIONAL_HUB__DATABASE__URL": hub_db,
                               "NATIONAL_HUB__HUB__KEY_FILE": str(hub_key)}


def _node_env(code: str, node_db: str, work: Path) -> dict[str, str]:
    # publish_council wrote the council's key here
    return dict(os.environ) | {"LOCAL_NODE__DATABASE__URL": node_db,
                               "LOCAL_NODE__COUNCIL__CODE": code,
                               "LOCAL_NODE__COUNCIL__KEY_FILE": str(work / "node" / "key.pem")}


def _cli(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise click.ClickException(f"{' '.join(args[:3])} failed: {done.stderr[-2000:]}")
    return done.stdout.strip()


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def read_local(index_exports: dict[str, Path]) -> dict[str, tuple[str, str]]:
    """source_ref → (council, local_id), from each node's ``index export``."""
    return {r["source_ref"]: (council, r["local_id"])
            for council, path in index_exports.items() for r in _read_csv(path)}


async def _open_reviews(hub_db: str, node_dbs: dict[str, str]) -> tuple[
        int, int, set[frozenset[tuple[str, str]]]]:
    """Open review pairs at the hub and at each node, as pairs of (council, local_id)."""
    conn = await asyncpg.connect(hub_db)
    try:
        hub = [frozenset({(r[0], r[1]), (r[2], r[3])}) for r in await conn.fetch(
            "SELECT council_a, local_id_a, council_b, local_id_b FROM review_queue"
            " WHERE status = 'open'")]
    finally:
        await conn.close()
    node = []
    for code, url in node_dbs.items():
        conn = await asyncpg.connect(url)
        try:
            node += [frozenset({(code, r[0]), (code, r[1])}) for r in await conn.fetch(
                "SELECT local_id, candidate_id FROM review_items WHERE status = 'open'")]
        finally:
            await conn.close()
    return len(hub), len(node), set(hub) | set(node)


def missed_pairs(records: list[public_data.Record], local: dict[str, tuple[str, str]],
                 clusters: dict[str, str],
                 in_review: set[frozenset[tuple[str, str]]]) -> tuple[Counter[str],
                                                                      Counter[str]]:
    """Where each true pair not linked went: a record refused at its node, the two
    children left in review with each other, or neither (never compared, or scored
    below review); and, for those last, the fields the two records disagree on."""
    by_person: dict[str, list[public_data.Record]] = {}
    for r in records:
        by_person.setdefault(r.entity, []).append(r)
    out: Counter[str] = Counter()
    fields: Counter[str] = Counter()
    for refs in by_person.values():
        for i, ra in enumerate(refs):
            for rb in refs[i + 1:]:
                a, b = ra.source_ref, rb.source_ref
                if a not in local or b not in local:
                    out["refused at a node"] += 1
                elif clusters[a] == clusters[b]:
                    continue
                elif frozenset({local[a], local[b]}) in in_review:
                    out["left in review"] += 1
                else:
                    out["not linked"] += 1
                    fields.update(public_data.disagreements(ra, rb))
    return out, fields


def read_clusters(index_exports: dict[str, Path], links_export: Path) -> dict[str, str]:
    """source_ref → national child id, from each node's ``index export`` and the hub's
    ``links export``; a local child the hub does not hold stays a cluster of its own."""
    national = {(r["council"], r["local_id"]): r["national_id"]
                for r in _read_csv(links_export)}
    out = {}
    for council, path in index_exports.items():
        for r in _read_csv(path):
            local = (council, r["local_id"])
            out[r["source_ref"]] = national.get(local) or f"{council}/{r['local_id']}"
    return out


def _signpost(dataset: public_data.Dataset, base: str, work: Path, seed: int,
              batch_size: int, train: bool, say: Any, by_source: bool = False) -> Outcome:
    councils = COUNCILS[:2] if by_source else COUNCILS
    outcome = Outcome(dataset.name, len(dataset.records), dataset.true_pairs,
                      councils=len(councils))
    persons = dataset.persons()
    by_council = public_data.split(dataset.records, councils, seed, by_source)
    hub_db = asyncio.run(upgraded_database(base, f"public_{dataset.name}_hub", HUB_PACKAGE))
    hub_key = work / "hub" / "hub_key.pem"
    hub_env = _hub_env(hub_db, hub_key)
    node_dbs: dict[str, str] = {}
    started = time.perf_counter()
    for code, records in by_council.items():
        feed = work / code / "health.csv"
        public_data.write_feed(records, feed)
        node_dbs[code] = asyncio.run(upgraded_database(
            base, f"public_{dataset.name}_{code.lower()}", NODE_PACKAGE))
        ingest_started = time.perf_counter()
        report = asyncio.run(_ingest(node_dbs[code], feed))
        outcome.ingest_seconds += time.perf_counter() - ingest_started
        outcome.refused.update(e.column or "line" for e in report.errors)
        say(f"  {code}: {report.rows_loaded:,} of {report.rows_read:,} rows loaded, "
            f"{len(report.errors):,} refused; {report.children_created:,} children")
    for code in by_council:
        p = publish_council(hub_db, node_dbs[code], code, code, work / code, hub_key,
                            batch_size=batch_size, port=_free_port())
        outcome.resolved_seconds += p.timings.resolved_seconds
        say(f"  {code}: {p.timings.applied:,} records published, resolved "
            f"{p.timings.resolved_seconds:.1f} s after the first batch")
    outcome.seconds["signpost"] = time.perf_counter() - started

    exports = {}
    for code in by_council:
        exports[code] = work / code / "index.csv"
        _cli([_bin("local-node"), "index", "export", "--out", str(exports[code]),
              "--overwrite"],
             _node_env(code, node_dbs[code], work / code))
    links = work / "links.csv"
    _cli([_bin("national-hub"), "links", "export", "--out", str(links),
          "--overwrite"], hub_env)
    outcome.rows["signpost: node → hub"] = pairwise_quality(
        read_clusters(exports, links), persons, set())
    outcome.hub_reviews, outcome.node_reviews, in_review = asyncio.run(
        _open_reviews(hub_db, node_dbs))
    outcome.missed, outcome.unlinked_fields = missed_pairs(dataset.records, read_local(exports),
                                  read_clusters(exports, links), in_review)
    if train:
        started = time.perf_counter()
        say("  " + _cli([_bin("national-hub"), "model", "train", "--seed", str(seed)],
                        hub_env)[:300])
        for code in by_council:
            _cli([_bin("national-hub"), "links", "resolve", code], hub_env)
        outcome.seconds["signpost trained"] = (outcome.seconds["signpost"]
                                               + time.perf_counter() - started)
        trained = work / "links-trained.csv"
        _cli([_bin("national-hub"), "links", "export", "--out", str(trained),
              "--overwrite"], hub_env)
        outcome.rows["signpost trained"] = pairwise_quality(
            read_clusters(exports, trained), persons, set())
        outcome.trained_hub_reviews, _, open_pairs = asyncio.run(_open_reviews(hub_db, {}))
        outcome.trained_true_reviews = true_review_pairs(read_local(exports), persons,
                                                         open_pairs)
    return outcome


def true_review_pairs(local: dict[str, tuple[str, str]], persons: dict[str, str],
                      in_review: set[frozenset[tuple[str, str]]]) -> int:
    """How many of the review pairs hold one person's records (the rest are work an
    index team spends on two different people)."""
    people: dict[tuple[str, str], set[str]] = {}
    for ref, child in local.items():
        people.setdefault(child, set()).add(persons[ref])
    return sum(1 for pair in in_review if len(pair) == 2
               and set.intersection(*(people.get(c, set()) for c in pair)))


def _row(name: str, q: Quality, seconds: float | None) -> str:
    took = f"{seconds:>8.1f}" if seconds is not None else f"{'-':>8}"
    return (f"  {name:<26} {q.precision:>9.4f} {q.recall:>7.4f} {q.f1:>7.4f} "
            f"{q.predicted_pairs - q.true_positives:>6,} {took}")


def report(o: Outcome) -> str:
    lines = [f"== {o.name}: {o.records:,} records, {o.true_pairs:,} true pairs, "
             f"{o.councils} councils" + (" (by source)" if o.councils == 2 else ""),
             f"  {'':<26} {'precision':>9} {'recall':>7} {'F1':>7} {'false':>6} "
             f"{'seconds':>8}"]
    for name, q in o.rows.items():
        lines.append(_row(name, q, o.seconds.get(name.split(":")[0])))
    refused = sum(o.refused.values())
    per_10k = (o.hub_reviews + o.node_reviews) / o.records * 10_000
    by_column = ", ".join(f"{c} {n:,}" for c, n in o.refused.most_common()) or "none"
    lines.append(f"  refused by feed validation: {refused:,} of {o.records:,} rows "
                 f"({by_column}); review left: hub {o.hub_reviews:,} pairs open, nodes "
                 f"{o.node_reviews:,} items open ({per_10k:,.0f} per 10,000 records)"
                 + ("" if o.trained_hub_reviews is None else
                    f"; after training hub {o.trained_hub_reviews:,} pairs open, "
                    f"{o.trained_true_reviews:,} of them one person's "
                    f"({(o.trained_hub_reviews + o.node_reviews) / o.records * 10_000:,.0f}"
                    " per 10,000 with the nodes')"))
    missed = ", ".join(f"{why} {n:,} ({n / o.true_pairs:.1%})" for why, n in
                       sorted(o.missed.items())) if o.true_pairs else ""
    lines.append(f"  true pairs signpost missed (node → hub): {missed or 'none'}")
    if o.missed["not linked"]:
        lines.append("  the pairs not linked disagree on: " + ", ".join(
            f"{why} {n / o.missed['not linked']:.0%}"
            for why, n in o.unlinked_fields.most_common()))
    lines.append(f"  signpost seconds: ingest {o.ingest_seconds:.1f}, publish → resolved "
                 f"{o.resolved_seconds:.1f}; the rest starting processes, "
                 "enrolling and creating databases")
    return "\n".join(lines)


def run_dataset(name: str, base: str, work: Path, *, limit: int | None, seed: int,
                batch_size: int, train: bool, splink: bool, u_pairs: float,
                say: Any = click.echo, by_source: bool = False) -> Outcome:
    dataset = public_data.load(name, limit)
    say(f"{name}: {len(dataset.records):,} records, {dataset.true_pairs:,} true pairs"
        + (f", {dataset.blank_postcodes} postcodes left blank" if dataset.blank_postcodes
           else ""))
    outcome = _signpost(dataset, base, work, seed, batch_size, train, say, by_source)
    if splink:
        result = _in_own_process(public_splink.run, dataset.records, u_pairs, seed)
        outcome.rows["splink 5"] = pairwise_quality(result["clusters"], dataset.persons(),
                                                    set())
        outcome.seconds["splink 5"] = result["seconds"]
    return outcome


@click.command(help=__doc__)
@click.option("--dataset", "names", multiple=True, type=click.Choice(public_data.DATASETS),
              help="Only these (repeatable); all by default.")
@click.option("--limit", type=int, default=None, help="Only the first N records of each.")
@click.option("--seed", default=14, show_default=True)
@click.option("--batch-size", default=1000, show_default=True)
@click.option("--train/--no-train", default=True, show_default=True,
              help="Also model train + links resolve at the hub.")
@click.option("--splink/--no-splink", default=True, show_default=True)
@click.option("--splink-u-pairs", default=1e6, show_default=True)
@click.option("--by-source", is_flag=True,
              help="Two councils as two systems: each person's first record at one, the "
                   "others at the other (every FEBRL1 pair then crosses councils).")
@click.option("--data-dir", default=".data/bench-public", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
def main(names: tuple[str, ...], limit: int | None, seed: int, batch_size: int, train: bool,
         splink: bool, splink_u_pairs: float, by_source: bool, data_dir: Path) -> None:
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    base = embedded_pg.start(data_dir / "pg")
    outcomes = []
    for name in names or public_data.DATASETS:
        outcomes.append(run_dataset(name, base, data_dir / name, limit=limit, seed=seed,
                                    batch_size=batch_size, train=train, splink=splink,
                                    u_pairs=splink_u_pairs, by_source=by_source))
        click.echo(report(outcomes[-1]) + "\n")
    click.echo("\n== public benchmarks (targets: F1 ≥ Splink's, precision ≥ 0.999); "
               "seconds: ours ingest → resolved (+ train and re-resolve), Splink train → "
               "clusters")
    for o in outcomes:
        click.echo(report(o))


if __name__ == "__main__":
    main()
