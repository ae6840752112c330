"""Hub intake alone (``python -m bench.intake``): a council's records
built from the generator and signed into batches before the clock starts (no node),
posted to a real ``national-hub serve`` with its resolver off, two batches in flight as
a node pipelines them; hub intake records/s from the first send to the last receipt,
the CPU time a record costs the hub process and its PostgreSQL server (every process of
the server, ended backends included: on a shared machine the comparable figure, where
wall rates move with the load), and the CPU cost a record of the reference and the
compiled record decoders."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import subprocess
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import click
import psutil
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import synthetic
from bench.db import plan_cache_mode_option, reported_plan_cache_mode, set_plan_cache_mode
from bench.publish import (
    COUNCIL,
    PeakMemory,
    _bin,
    _py_spy,
    _stop_spy,
    upgraded_database,
)
from bench.search import _involvements
from local_node.transport import HubClient
from national_hub.app import PACKAGE as HUB_PACKAGE
from protocol import encoding, keys
from protocol.batch import GENESIS, Batch, Receipt, UpsertOp, batch_hash
from protocol.record_codec import decode_record
from protocol.records import ChildRecord
from protocol.signing import BATCH_TYPE, Envelope
from server_common import embedded_pg
from server_common.readiness import wait_ready


def council_records(population: synthetic.Population) -> list[ChildRecord]:
    """One record per child of the population's council, as a node would publish it
    (the generator's true values: intake's cost does not depend on feed noise)."""
    records: list[ChildRecord] = []
    for person in population.persons:
        for presence in person.presences:
            records.append(ChildRecord(
                local_id=f"L{len(records):08d}", given_name=person.given_name,
                family_name=presence.family_name, dob=person.dob, sex=person.sex,
                other_given_names=person.other_given_names,
                former_family_names=((presence.former_family_name,)
                                     if presence.former_family_name else ()),
                address_line=presence.address_line, postcode=presence.postcode,
                nhs_number=person.nhs_number, upn=presence.upn, shielded=presence.shielded,
                involvements=_involvements(presence)))
    return records


def signed_batches(council: str, key: Ed25519PrivateKey, records: list[ChildRecord],
                   batch_size: int) -> list[tuple[bytes, int]]:
    """The council's signed batch envelopes in seq order, each with its op count."""
    out, prev = [], GENESIS
    for seq, start in enumerate(range(0, len(records), batch_size), start=1):
        ops = tuple(UpsertOp.of(r, 1) for r in records[start:start + batch_size])
        payload = Batch(council, seq, prev, "2026-12-05T12:00:00Z", ops).encode()
        out.append((Envelope.sign(BATCH_TYPE, payload, [key]).encode(), len(ops)))
        prev = batch_hash(payload)
    return out


@dataclass(frozen=True, slots=True)
class Intake:
    records: int
    batches: int
    applied: int
    seconds: float  # first send → last receipt
    hub_peak: int
    decode_us: dict[str, float]  # decoder → CPU µs per record, in this process
    hub_cpu: float  # CPU seconds of the hub process, first send → last receipt
    pg_cpu: float  # CPU seconds of the PostgreSQL server's processes, the same span
    plan_cache_mode: str  # as a connection to the hub's database reports it
    records_digest: str  # of what the hub holds: the same whatever the plans


def process_cpu(pid: int) -> float:
    """CPU seconds of a process so far (user + system)."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def server_cpu(postmaster: int) -> float:
    """CPU seconds of a PostgreSQL server so far: the postmaster, its live processes, and
    (in the postmaster's children times) every backend that has ended and been reaped."""
    root = psutil.Process(postmaster)
    times = root.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in root.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            child_times = child.cpu_times()
            total += child_times.user + child_times.system
    return total


def postmaster_pid(pg_dir: Path) -> int:
    return int((pg_dir / "postmaster.pid").read_text().split()[0])


def decode_costs(records: list[ChildRecord]) -> dict[str, float]:
    """CPU µs per record of the reference decoder and of the compiled one (what intake
    uses), each on its first pass over the records' bytes (pointer caches cold)."""
    datas = [encoding.pack(r.to_wire()) for r in records]
    decoders = {"reference": lambda d: ChildRecord.from_wire(encoding.unpack(d)),
                "compiled": decode_record}
    out = {}
    for name, decode in decoders.items():
        started = time.process_time()
        decoded = [decode(d) for d in datas]
        out[name] = (time.process_time() - started) / len(datas) * 1e6
        assert decoded == records
    return out


async def _send_all(url: str, council: str, key: Ed25519PrivateKey,
                    batches: list[tuple[bytes, int]], pipeline: int) -> tuple[float, int]:
    """Post every batch with ``pipeline`` in flight; seconds to the last receipt, applied."""
    applied = 0
    async with aiohttp.ClientSession() as session:
        client = HubClient(url, council, key, session, timeout=600)
        in_flight: deque[asyncio.Task[bytes]] = deque()

        async def receipt() -> int:
            envelope = Envelope.decode(await in_flight.popleft())
            return Receipt.decode(envelope.payload).counts()["applied"]

        started = time.perf_counter()
        for envelope, _ in batches:
            in_flight.append(asyncio.create_task(client.post_batch(envelope)))
            if len(in_flight) >= pipeline:
                applied += await receipt()
        while in_flight:
            applied += await receipt()
        return time.perf_counter() - started, applied


async def _held(url: str) -> tuple[str, str]:
    """The plan_cache_mode a connection to the hub's database reports, and a digest of
    the records and resolution keys the hub holds."""
    conn = await asyncpg.connect(url)
    try:
        digest = hashlib.sha256()
        for r in await conn.fetch("SELECT local_id, version, digest, batch_seq, shielded"
                                  " FROM records ORDER BY council_code, local_id"):
            digest.update(f"{r[0]} {r[1]} {r[2]} {r[3]} {r[4]}\n".encode())
        for r in await conn.fetch("SELECT local_id, key FROM record_keys"
                                  " ORDER BY council_code, local_id, key"):
            digest.update(f"{r[0]} {r[1]!r}\n".encode())
        return await reported_plan_cache_mode(conn), digest.hexdigest()
    finally:
        await conn.close()


def intake_alone(base: str, data_dir: Path, children: int, batch_size: int, seed: int,
                 *, pipeline: int = 2, port: int = 8490, mode: str = "auto") -> Intake:
    """Hub intake alone: prebuilt signed batches posted to a real hub, resolver off."""
    population = synthetic.generate_population([COUNCIL], children, seed, movers_fraction=0)
    records = council_records(population)
    del population
    key = keys.generate()
    key_file = data_dir / "node" / "key.pem"
    keys.write_private_key(key, key_file)
    batches = signed_batches(COUNCIL, key, records, batch_size)
    decode_us = decode_costs(records)
    hub_db = asyncio.run(upgraded_database(base, "bench_hub", HUB_PACKAGE))
    asyncio.run(set_plan_cache_mode(hub_db, mode))  # before the hub connects
    hub_key_file = data_dir / "hub" / "hub_key.pem"
    env = dict(os.environ) | {
        "NATIONAL_HUB__DATABASE__URL": hub_db,
        "NATIONAL_HUB__HUB__KEY_FILE": str(hub_key_file),
        "NATIONAL_HUB__SERVER__PORT": str(port),
        "NATIONAL_HUB__RESOLVER__ENABLED": "false",
    }
    subprocess.run([_bin("national-hub"), "councils", "add", COUNCIL, "--name", "East Sussex",
                    "--public-key", str(keys.public_path_for(key_file))], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    hub = subprocess.Popen([_bin("national-hub"), "serve"], env=env,
                           stderr=(data_dir / "hub.log").open("wb"))
    try:
        wait_ready(f"http://127.0.0.1:{port}", timeout=60)
        hub_mem = PeakMemory(hub.pid)
        hub_mem.start()
        spy = _py_spy(hub.pid)
        postmaster = postmaster_pid(data_dir / "pg")
        hub_cpu, pg_cpu = process_cpu(hub.pid), server_cpu(postmaster)
        seconds, applied = asyncio.run(_send_all(f"http://127.0.0.1:{port}", COUNCIL, key,
                                                 batches, pipeline))
        hub_cpu, pg_cpu = process_cpu(hub.pid) - hub_cpu, server_cpu(postmaster) - pg_cpu
        hub_mem.running = False
        _stop_spy(spy)
    finally:
        hub.terminate()
        hub.wait(timeout=30)
    planned, digest = asyncio.run(_held(hub_db))
    return Intake(len(records), len(batches), applied, seconds, hub_mem.peak, decode_us,
                  hub_cpu, pg_cpu, planned, digest)


def report(i: Intake, batch_size: int) -> None:
    click.echo(f"\n== hub intake alone (target ≥ 20,000 records/s; plan_cache_mode "
               f"{i.plan_cache_mode})")
    click.echo(f"records applied      {i.applied:,} of {i.records:,} in {i.batches} "
               f"batches of ≤{batch_size}")
    click.echo(f"hub intake           {i.applied / i.seconds:,.0f} records/s "
               f"(first send → last receipt {i.seconds:.2f} s)")
    n = max(i.applied, 1)
    click.echo(f"CPU a record         {(i.hub_cpu + i.pg_cpu) / n * 1e6:,.0f} µs "
               f"(hub {i.hub_cpu / n * 1e6:,.0f} µs + postgresql {i.pg_cpu / n * 1e6:,.0f} µs;"
               f" {i.hub_cpu:.2f} s + {i.pg_cpu:.2f} s)")
    click.echo(f"peak memory          hub {i.hub_peak / 2**20:,.0f} MiB")
    click.echo("record decoding      " + ", ".join(
        f"{name} {us:.1f} µs" for name, us in i.decode_us.items())
        + " CPU a record (this process)")
    click.echo(f"records digest       {i.records_digest}")


@click.command(help=__doc__)
@click.option("--children", default=246_000, show_default=True)
@click.option("--batch-size", default=5000, show_default=True)
@click.option("--seed", default=10, show_default=True)
@click.option("--data-dir", default=".data/bench-intake", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--port", default=8490, show_default=True,
              help="The hub's port (another run on this machine may hold the default).")
@plan_cache_mode_option("the hub's database")
def main(children: int, batch_size: int, seed: int, data_dir: Path, port: int,
         plan_cache_mode: str) -> None:
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    base = embedded_pg.start(data_dir / "pg")
    report(intake_alone(base, data_dir, children, batch_size, seed, port=port,
                        mode=plan_cache_mode), batch_size)


if __name__ == "__main__":
    main()
