"""What anti-entropy costs for one council (docs/PROTOCOL.md §12.1).

Fills a hub database with N records of one council (246,000 by default: synthetic
rows written by SQL, each with its record bytes, digest and column fingerprint), then
times the hub's side of a reconcile as the real store runs it: the bucket digests of
the whole council, the node's own digests of the same N records (Python), and, after
damaging some rows, the drill-down into the differing buckets. Prints seconds and the
size of each answer on the wire.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import click

from national_hub.app import PACKAGE as HUB_PACKAGE
from national_hub.storage.anti_entropy import AntiEntropyStore
from protocol.anti_entropy import (
    BucketRecords,
    DigestSummary,
    choose_bits,
    differing_buckets,
    summarise,
)
from server_common import database, embedded_pg

COUNCIL = "E10000011"


async def _fill(url: str, n: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await database.upgrade(conn, HUB_PACKAGE)
        await conn.execute("TRUNCATE records, councils CASCADE")
        await conn.execute("INSERT INTO councils (code, name) VALUES ($1, 'Bench')", COUNCIL)
        # ~330-byte records, like a published child with an involvement or two
        await conn.execute(
            """
            INSERT INTO records (council_code, local_id, version, record, digest, batch_seq,
                                 given_name, family_name, dob, sex, postcode, shielded,
                                 fingerprint)
            SELECT $1, l, 1 + i % 3, rec, encode(sha256(rec), 'hex'), 1, 'Given' || i,
                   'Family' || (i % 5000), date '2008-01-01' + (i % 6000), i % 3, 'BN1 1AA',
                   false, record_fingerprint('Given' || i, 'Family' || (i % 5000),
                                             date '2008-01-01' + (i % 6000),
                                             (i % 3)::smallint, 'BN1 1AA', NULL, NULL,
                                             false, NULL, NULL, NULL)
            FROM generate_series(1, $2) AS i,
                 LATERAL (SELECT 'L' || lpad(i::text, 9, '0') AS l,
                                 convert_to(repeat(md5(i::text), 10), 'UTF8') AS rec) x
            """, COUNCIL, n)
        await conn.execute("ANALYZE records")
    finally:
        await conn.close()


async def _measure(url: str, damage: int) -> None:
    store = AntiEntropyStore()
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT local_id, version, digest FROM records"
                                " WHERE council_code = $1", COUNCIL)
        node = {r["local_id"]: (r["version"], r["digest"]) for r in rows}
        bits = choose_bits(len(node))

        started = time.perf_counter()
        ours = summarise(node, bits)
        node_seconds = time.perf_counter() - started

        started = time.perf_counter()
        buckets = await store.bucket_digests(conn, COUNCIL, bits)
        hub_seconds = time.perf_counter() - started
        summary = DigestSummary(COUNCIL, bits, len(node), tuple(buckets))
        assert differing_buckets(ours, summary.by_bucket()) == [], "digests disagree"

        await conn.execute("UPDATE records SET given_name = 'X' WHERE local_id IN"
                           " (SELECT local_id FROM records ORDER BY local_id LIMIT $1)", damage)
        theirs = {b.bucket: b for b in await store.bucket_digests(conn, COUNCIL, bits)}
        differing = differing_buckets(ours, theirs)
        started = time.perf_counter()
        held = await store.bucket_records(conn, COUNCIL, bits, differing)
        drill_seconds = time.perf_counter() - started
        answer = BucketRecords(COUNCIL, bits, tuple(held))
    finally:
        await conn.close()
    click.echo(f"\n== anti-entropy, one council of {len(node):,} records ({bits} bits, "
               f"{len(buckets):,} buckets)\n"
               f"hub bucket digests   {hub_seconds:.2f} s, answer "
               f"{len(summary.encode()) / 1024:,.0f} KiB\n"
               f"node bucket digests  {node_seconds:.2f} s\n"
               f"{damage} damaged rows  → {len(differing)} differing buckets; drill-down "
               f"{drill_seconds:.2f} s, {len(held):,} rows, "
               f"{len(answer.encode()) / 1024:,.0f} KiB")


@click.command(help=__doc__)
@click.option("--records", default=246_000, show_default=True)
@click.option("--damage", default=100, show_default=True)
@click.option("--data-dir", default=".data/bench", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
def main(records: int, damage: int, data_dir: Path) -> None:
    base = embedded_pg.start(data_dir / "pg")

    async def go() -> None:
        url = await embedded_pg.ensure_database(base, "bench_anti_entropy")
        started = time.perf_counter()
        await _fill(url, records)
        click.echo(f"filled {records:,} records in {time.perf_counter() - started:.1f} s")
        await _measure(url, damage)

    asyncio.run(go())


if __name__ == "__main__":
    main()
