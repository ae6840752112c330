"""Where a record's intake time goes (``python -m bench.intake_profile``): the same
signed batches as ``bench.intake``, applied one after another by the hub's own batch
intake in this process (no HTTP, no pipelining), each storage call timed: wall, the
CPU of this process during it (building and encoding its arguments) and the CPU of the
PostgreSQL backend that ran it (read from the operating system), and the CPU of
validating the ops (decoding, blocking keys) before the council's lock.

Sequential on purpose: each figure is one part's own, not hidden behind another's."""

from __future__ import annotations

import asyncio
import functools
import gc
import shutil
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import click
import psutil

import synthetic
from bench.intake import council_records, signed_batches
from bench.publish import COUNCIL, upgraded_database
from national_hub.app import PACKAGE as HUB_PACKAGE
from national_hub.config import HubConfig
from national_hub.services.batch_intake import BatchIntake, CheckedOps
from national_hub.services.container import HubServices
from protocol import keys
from protocol.batch import Batch
from protocol.retention import RetentionPolicy
from server_common import embedded_pg
from server_common.audit.entry import Actor

# part → [wall s, this process's CPU s, the backend's CPU s]
Parts = dict[str, list[float]]


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _timed(parts: Parts, label: str,
           method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def timed(conn: asyncpg.Connection, *args: Any, **kwargs: Any) -> Any:
        backend = psutil.Process(conn.get_server_pid())
        wall, own, theirs = time.perf_counter(), time.process_time(), _cpu(backend)
        try:
            return await method(conn, *args, **kwargs)
        finally:
            part = parts[label]
            part[0] += time.perf_counter() - wall
            part[1] += time.process_time() - own
            part[2] += _cpu(backend) - theirs
    return timed


def instrument(intake: BatchIntake, parts: Parts) -> None:
    """Time every storage call batch intake makes, and its validation of the ops."""
    stores: dict[object, tuple[str, ...]] = {
        intake.councils: ("get", "get_key", "advance_cursor"),
        intake.batches: ("insert",), intake.records: ("held", "upsert", "tombstone"),
        intake.integrity: ("damaged",), intake.resolution: ("sync_keys", "replace_keys"),
        intake.shielding: ("refresh",), intake.queue: ("enqueue",)}
    for store, names in stores.items():
        for name in names:
            label = f"{type(store).__name__}.{name}"
            setattr(store, name, _timed(parts, label, getattr(store, name)))
    check = intake._check_ops

    def checked(batch: Batch, policy: RetentionPolicy) -> CheckedOps:
        wall, own = time.perf_counter(), time.process_time()
        try:
            return check(batch, policy)
        finally:
            part = parts["validating the ops (decode, keys)"]
            part[0] += time.perf_counter() - wall
            part[1] += time.process_time() - own
    intake._check_ops = checked  # type: ignore[method-assign]


async def profile(base: str, children: int, batch_size: int, seed: int) -> tuple[int, float,
                                                                                 Parts]:
    population = synthetic.generate_population([COUNCIL], children, seed, movers_fraction=0)
    records = council_records(population)
    del population
    key = keys.generate()
    batches = signed_batches(COUNCIL, key, records, batch_size)
    count = len(records)
    del records
    # What this process built to send (the signed batches) is not the hub's to scan: a
    # server holds none of it, and with it in the collector's older generations every
    # collection intake triggers rescanned it, charging the part that allocated most
    # (copying the keys: 22 us a record of its 40) for a cost the server never pays.
    gc.collect()
    gc.freeze()
    url = await upgraded_database(base, "bench_intake_profile", HUB_PACKAGE)
    parts: Parts = defaultdict(lambda: [0.0, 0.0, 0.0])
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    assert pool is not None
    try:
        services = HubServices(HubConfig(), pool, hub_key=keys.generate(),
                               actor=Actor("cli:bench", "operator", "bench"))
        await services.councils.enrol(COUNCIL, "East Sussex", keys.public_pem(key.public_key()))
        intake = services.intake
        instrument(intake, parts)
        started, own = time.perf_counter(), time.process_time()
        for envelope, _ in batches:
            await intake.receive(COUNCIL, envelope)
        seconds, own = time.perf_counter() - started, time.process_time() - own
        parts["the rest (unpacking, signature, receipt, loop)"][1] += own - sum(
            part[1] for part in parts.values())
        return count, seconds, parts
    finally:
        await pool.close()
        gc.unfreeze()


def report(count: int, seconds: float, parts: Parts) -> None:
    click.echo(f"\n== where intake's time goes ({count:,} records, one batch at a time)")
    click.echo(f"total wall           {seconds:.2f} s ({count / seconds:,.0f} records/s)")
    click.echo(f"{'part':48} {'wall µs':>8} {'hub CPU µs':>10} {'pg CPU µs':>10}  a record")
    for label, (wall, own, theirs) in sorted(parts.items(), key=lambda p: -p[1][1] - p[1][2]):
        click.echo(f"{label:48} {wall / count * 1e6:8.1f} {own / count * 1e6:10.1f}"
                   f" {theirs / count * 1e6:10.1f}")


@click.command(help=__doc__)
@click.option("--children", default=20_000, show_default=True)
@click.option("--batch-size", default=5000, show_default=True)
@click.option("--seed", default=10, show_default=True)
@click.option("--data-dir", default=".data/bench-intake-profile", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
def main(children: int, batch_size: int, seed: int, data_dir: Path) -> None:
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    base = embedded_pg.start(data_dir / "pg")
    report(*asyncio.run(profile(base, children, batch_size, seed)))


if __name__ == "__main__":
    main()
