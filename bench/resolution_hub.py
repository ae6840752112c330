"""Our side of the resolution benchmark: the hub's real code on a real PostgreSQL.

Each council is enrolled as an operator would (``CouncilService``) and sends its
records as signed batches, which the hub's ``BatchIntake`` verifies, applies and
queues. As an operator runs an initial load, ``national-hub links drain --bulk
--until-idle`` runs beside it from the start, in a process of its own (the real CLI),
and resolves each council's batches in bulk with the built-in model (no model is
stored yet) while the next council's arrive; once the last batch is in, this process
drains what is left (``Resolver.drain``), which returns when the queue is empty: the
load's wall time. With ``serial`` the drain starts only after the last batch, as
before the follower existed (the comparison docs/scaling.md gives). Then
``ModelTrainer`` estimates a model from the records (as ``national-hub model train``)
and ``Resolver.re_resolve`` re-links every council with it in bulk (as ``national-hub
links resolve --bulk``). The national ids after each
phase are the clusterings scored. Batches are signed before the clock starts:
signing is the councils' work, not the hub's.
"""

from __future__ import annotations

import asyncio
import csv
import os
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
from tqdm import tqdm

from bench.db import reported_plan_cache_mode, set_plan_cache_mode
from national_hub.app import PACKAGE
from national_hub.services.batch_intake import BatchIntake
from national_hub.services.councils import CouncilService
from national_hub.services.linking import Linker
from national_hub.services.model_training import ModelTrainer
from national_hub.services.resolver import Resolver
from national_hub.storage.batches import BatchStore
from national_hub.storage.councils import CouncilStore
from national_hub.storage.heartbeats import HeartbeatStore
from national_hub.storage.records import RecordStore
from protocol import keys
from protocol.batch import GENESIS, Batch, UpsertOp, batch_hash
from protocol.records import ChildRecord, Involvement
from protocol.signing import BATCH_TYPE, Envelope
from server_common import database

SCHOOL = (Involvement(service_type="school", organisation_code="114580"),)


def _records(path: Path) -> dict[str, list[ChildRecord]]:
    out: dict[str, list[ChildRecord]] = {}
    with path.open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            out.setdefault(r["council"], []).append(ChildRecord(
                local_id=r["local_id"], given_name=r["given_name"],
                family_name=r["family_name"], dob=date.fromisoformat(r["dob"]),
                sex=int(r["sex"]), other_given_names=r["other_given_names"] or None,
                former_family_names=(r["former_family_name"],) if r["former_family_name"]
                else (), address_line=r["address_line"] or None,
                postcode=r["postcode"] or None, nhs_number=r["nhs_number"] or None,
                upn=r["upn"] or None, involvements=SCHOOL))
    return out


def _signed_batches(council: str, records: list[ChildRecord], key: Any,
                    size: int) -> list[bytes]:
    bodies, prev = [], GENESIS
    for seq, start in enumerate(range(0, len(records), size), start=1):
        ops = tuple(UpsertOp.of(r, 1) for r in records[start:start + size])
        payload = Batch(council, seq, prev, "2026-06-01T09:00:00Z", ops).encode()
        bodies.append(Envelope.sign(BATCH_TYPE, payload, [key]).encode())
        prev = batch_hash(payload)
    return bodies


async def _national_ids(pool: asyncpg.Pool) -> dict[str, str]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT council_code, local_id, national_id FROM records"
                                " WHERE record IS NOT NULL")
    return {f"{r[0]}/{r[1]}": r[2] for r in rows}


async def _run(url: str, records_csv: Path, batch_size: int, seed: int,
               serial: bool, plan_cache_mode: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        await database.upgrade(conn, PACKAGE)
    finally:
        await conn.close()
    await set_plan_cache_mode(url, plan_cache_mode)  # every connection from here on
    by_council = _records(records_csv)
    async with asyncpg.create_pool(url, min_size=1, max_size=4) as pool:
        councils = CouncilService(pool, CouncilStore(), HeartbeatStore())
        bodies: list[tuple[str, bytes]] = []
        for council, records in by_council.items():
            key = keys.generate()
            await councils.enrol(council, council, keys.public_pem(key.public_key()))
            bodies += [(council, b) for b in _signed_batches(council, records, key,
                                                             batch_size)]
        resolver = Resolver(pool, Linker(RecordStore()))
        intake = BatchIntake(pool, CouncilStore(), BatchStore(), RecordStore(),
                             keys.generate())
        started = time.perf_counter()
        follower = None if serial else _follow(url)
        try:
            for council, body in tqdm(bodies, desc="hub: batches", unit="batch"):
                result = await intake.receive(council, body)
                assert not result.replayed
            received_seconds = time.perf_counter() - started
            await resolver.drain(bulk=True)  # what the follower has not reached yet
            intake_seconds = time.perf_counter() - started
            if follower is not None and follower.poll() is not None:
                # it cannot have idled out: a figure without it would be a serial one
                raise RuntimeError(f"links drain --until-idle exited early "
                                   f"(exit status {follower.returncode})")
        finally:
            if follower is not None:
                follower.terminate()
                follower.wait()
        after_intake = await _national_ids(pool)

        started = time.perf_counter()
        stored = await ModelTrainer(pool).train(seed=seed)
        train_seconds = time.perf_counter() - started
        started = time.perf_counter()
        for council in tqdm(by_council, desc="hub: links resolve", unit="council"):
            await resolver.re_resolve(council, bulk=True)  # links resolve --bulk
        resolve_seconds = time.perf_counter() - started
        after_training = await _national_ids(pool)
        async with pool.acquire() as conn:
            open_reviews = int(await conn.fetchval(
                "SELECT count(*) FROM review_queue WHERE status = 'open'"))
            planned = await reported_plan_cache_mode(conn)
    return {
        "records": sum(len(r) for r in by_council.values()), "batches": len(bodies),
        "intake_seconds": intake_seconds, "received_seconds": received_seconds,
        "train_seconds": train_seconds,
        "resolve_seconds": resolve_seconds, "model_version": stored.version,
        "model_summary": stored.summary, "open_reviews": open_reviews,
        "plan_cache_mode": planned,  # as the hub's connections were planning
        "after_intake": after_intake, "after_training": after_training,
        # this process's or the follower's, whichever was larger
        "peak_rss_mib": max(resource.getrusage(who).ru_maxrss for who in (
            resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024,
    }


def _follow(url: str) -> subprocess.Popen[bytes]:
    """``national-hub links drain --bulk --until-idle`` on this database, as an operator
    starts it before an initial load (its idle time longer than any run: it is stopped
    once this process has seen the queue empty)."""
    return subprocess.Popen(
        [sys.executable, "-m", "national_hub", "links", "drain", "--bulk", "--until-idle",
         "86400"], env=os.environ | {"NATIONAL_HUB__DATABASE__URL": url},
        stdout=subprocess.DEVNULL)


def run(url: str, records_csv: Path, batch_size: int, seed: int,
        serial: bool = False, plan_cache_mode: str = "auto") -> dict[str, Any]:
    """In a process of its own, so its peak memory is its own."""
    return asyncio.run(_run(url, records_csv, batch_size, seed, serial, plan_cache_mode))
