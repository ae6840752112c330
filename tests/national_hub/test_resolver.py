"""Resolution off the batch path: intake answers with records queued, the background
resolver links them, operators see the queue, and two resolvers on one database give
exactly the national children one gives."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import pytest

from national_hub.config import ResolverSection
from national_hub.handlers import appkeys as k
from national_hub.services.resolver import MIN_CHUNK, next_chunk_size
from national_hub.storage import key_sets
from protocol import keys
from protocol.batch import GENESIS, DeleteOp, UpsertOp
from server_common.config import ConfigError, Duration
from tests.conftest import DatabaseFactory
from tests.hub_harness import Hub, running_hub
from tests.national_hub.helpers import Client, batch_bytes, key_tables_disagree, record
from tests.national_hub.test_resolution import Sent, check, generate, hub_links, send_batches
from tests.scrape import scrape

ESX, WSX = "E10000011", "E10000032"
PAUSED = {"enabled": False}  # no background resolver: records stay queued until drained


async def rows(hub: Hub) -> dict[tuple[str, str], tuple[str | None, str | None]]:
    async with hub.pool.acquire() as conn:
        found = await conn.fetch("SELECT council_code, local_id, national_id, link_status"
                                 " FROM records WHERE record IS NOT NULL")
    return {(r[0], r[1]): (r[2], r[3]) for r in found}


async def test_intake_queues_records_and_the_resolver_links_them(make_database: DatabaseFactory,
                                                                  tmp_path: Path) -> None:
    async with running_hub(await make_database(), tmp_path, resolver=PAUSED,
                           health={"resolution_warn": "0s"}) as hub:
        key = keys.generate()
        await hub.enrol(ESX, keys.public_pem(key.public_key()))
        await hub.enrol(WSX, keys.public_pem(keys.generate().public_key()))
        body, h1 = batch_bytes(ESX, 1, GENESIS, [UpsertOp.of(record("A1"), 1),
                                                 UpsertOp.of(record("A2"), 1)], key)
        status, data, _ = await Client(hub, ESX, key).send(body)
        assert status == 200, data  # the receipt does not wait for resolution
        assert await rows(hub) == {(ESX, "A1"): (None, "pending"),
                                   (ESX, "A2"): (None, "pending")}
        assert await hub.fetchval("SELECT count(*) FROM record_keys") > 0

        health = await hub.server.app[k.HEALTH].snapshot()
        esx = health.council(ESX)
        assert esx is not None and esx.resolution_queue == 2
        assert esx.resolution_wait_seconds is not None
        assert any("waiting" in r and "national resolution" in r for r in esx.reasons)
        assert health.council(WSX).resolution_queue == 0  # type: ignore[union-attr]
        metrics = await scrape(hub.url, await hub.operator())
        assert metrics.value("signpost_resolution_queue_entries", council=ESX) == 2
        assert metrics.value("signpost_resolution_queue_entries", council=WSX) == 0
        assert (metrics.value("signpost_resolution_queue_oldest_seconds", council=ESX)
                or 0) >= 0

        assert await hub.resolved() == 2
        (a1_id, a1_status), (a2_id, _) = (await rows(hub)).values()
        assert a1_id == a2_id and a1_status == "linked"  # one batch's records link
        esx = (await hub.server.app[k.HEALTH].snapshot()).council(ESX)
        assert esx is not None and (esx.resolution_queue, esx.resolution_wait_seconds) == (
            0, None)
        assert not any("resolution" in r for r in esx.reasons)

        # an update keeps its national id while queued; a delete releases it at once
        body, _ = batch_bytes(ESX, 2, h1, [UpsertOp.of(replace(record("A1"), postcode="TF1 2AB"),
                                                       2), DeleteOp("A2", 2)], key)
        assert (await Client(hub, ESX, key).send(body))[0] == 200
        assert await rows(hub) == {(ESX, "A1"): (a1_id, "linked")}
        assert await hub.resolved() == 2
        assert await rows(hub) == {(ESX, "A1"): (a1_id, "single")}


async def test_the_background_resolver_links_what_a_batch_queued(make_database: DatabaseFactory,
                                                                 tmp_path: Path) -> None:
    async with running_hub(await make_database(), tmp_path,
                           resolver={"interval": "0.05s"}) as hub:
        key = keys.generate()
        await hub.enrol(ESX, keys.public_pem(key.public_key()))
        body, _ = batch_bytes(ESX, 1, GENESIS, [UpsertOp.of(record("A1"), 1),
                                                UpsertOp.of(record("A2"), 1)], key)
        assert (await Client(hub, ESX, key).send(body))[0] == 200
        deadline = time.monotonic() + 30
        while await hub.fetchval("SELECT count(*) FROM resolution_queue"):
            assert time.monotonic() < deadline, "the background resolver did not run"
            await asyncio.sleep(0.02)
        assert {s for _, s in (await rows(hub)).values()} == {"linked"}


async def test_a_councils_few_changes_are_resolved_before_anothers_bulk_load(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """The resolver takes a council whose whole queue fits in one chunk before one in
    the middle of a bulk load, so a day-to-day change is not held up behind another
    council's thousands; each council's records still resolve in the order sent."""
    async with running_hub(await make_database(), tmp_path,
                           resolver={"enabled": False, "chunk": 3}) as hub:
        esx_key, wsx_key = keys.generate(), keys.generate()
        await hub.enrol(ESX, keys.public_pem(esx_key.public_key()))
        await hub.enrol(WSX, keys.public_pem(wsx_key.public_key()))
        bulk = [UpsertOp.of(replace(record(f"A{i}"), given_name=f"Name{i}"), 1) for i in range(7)]
        body, _ = batch_bytes(ESX, 1, GENESIS, bulk, esx_key)
        assert (await Client(hub, ESX, esx_key).send(body))[0] == 200
        body, _ = batch_bytes(WSX, 1, GENESIS, [UpsertOp.of(record("B1"), 1)], wsx_key)
        assert (await Client(hub, WSX, wsx_key).send(body))[0] == 200

        resolver = hub.server.app[k.RESOLVER]
        assert await resolver.resolve_chunk() == 1  # West Sussex's one change first
        now = await rows(hub)
        assert now[(WSX, "B1")][0] is not None
        assert {now[(ESX, f"A{i}")][1] for i in range(7)} == {"pending"}
        assert await resolver.resolve_chunk() == 3  # then the load, in the order sent
        now = await rows(hub)
        assert [now[(ESX, f"A{i}")][0] is not None for i in range(7)] == [True] * 3 + [False] * 4
        assert await hub.resolved() == 4


Shape = tuple[frozenset[frozenset[tuple[str, str]]], dict[tuple[str, str], str | None],
              set[tuple[str, str, str, str]], tuple[int, int]]


async def shape(hub: Hub) -> Shape:
    """What resolution decided, without the random ids: which records share a national
    child, each record's status, the open review pairs, and how many national children
    were created and retired."""
    now = await rows(hub)
    children: dict[str | None, set[tuple[str, str]]] = defaultdict(set)
    for rk, (nid, _) in now.items():
        assert nid is not None
        children[nid].add(rk)
    async with hub.pool.acquire() as conn:
        reviews = {tuple(r) for r in await conn.fetch(
            "SELECT council_a, local_id_a, council_b, local_id_b FROM review_queue"
            " WHERE status = 'open'")}
        made = await conn.fetchrow("SELECT count(*) AS n, count(redirect_to) AS retired"
                                   " FROM national_children")
    return (frozenset(frozenset(m) for m in children.values()),
            {rk: status for rk, (_, status) in now.items()}, reviews,
            (made["n"], made["retired"]))


async def test_two_resolvers_draining_one_queue_give_what_one_gives(make_database: DatabaseFactory,
                                                                    tmp_path: Path) -> None:
    population = generate(tmp_path / "feeds", per_council=150, seed=7)
    # the second round: every tenth record corrected, so records are queued twice
    updates = {c: [replace(r, postcode="TF1 2AB") for r in rs[::10]]
               for c, rs in population.records.items()}
    # many small chunks, to interleave; of one fixed size (chunk_seconds 0), since how
    # the records are cut into chunks can change which pairs one chunk sees at once
    resolver = {"enabled": False, "chunk": 40, "chunk_seconds": "0s"}

    async def fill(hub: Hub) -> None:
        await send_batches(hub, population.records, batch=60, then=updates)

    async with running_hub(await make_database(), tmp_path / "one", resolver=resolver) as hub:
        await fill(hub)
        assert await hub.resolved() == len(population.person)
        alone = await shape(hub)

    url = await make_database()
    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(
            running_hub(url, tmp_path / "first", resolver=resolver))
        second = await stack.enter_async_context(
            running_hub(url, tmp_path / "second", resolver=resolver))
        await fill(first)
        queued = await first.fetchval("SELECT count(*) FROM resolution_queue")
        assert queued > len(population.person)  # corrected records are queued twice
        done = await asyncio.gather(first.resolved(), second.resolved())
        # every record resolved exactly once, by one worker or the other
        assert sum(done) == len(population.person)
        together = await shape(first)
    assert together == alone
    assert Counter(alone[1].values())["linked"] > 0



def test_the_next_chunk_is_sized_to_take_about_chunk_seconds() -> None:
    config = ResolverSection(chunk=5000, chunk_seconds=Duration(1))
    assert next_chunk_size(config, 1 / 2500) == 2500  # 2,500 records/s: 2,500 in 1 s
    assert next_chunk_size(config, 1 / 10_000) == 5000  # faster than that: the most
    assert next_chunk_size(config, 0.1) == MIN_CHUNK  # never below the least
    assert next_chunk_size(config, None) == 5000  # nothing measured yet
    fixed = ResolverSection(chunk=5000, chunk_seconds=Duration(0))
    assert next_chunk_size(fixed, 0.1) == 5000
    with pytest.raises(ConfigError, match=r"resolver\.bulk_chunk"):
        ResolverSection(bulk_chunk=0)


async def test_a_slow_chunk_makes_the_next_smaller_and_day_to_day_still_goes_first(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """A chunk that took longer than chunk_seconds (here any chunk does) shrinks the
    next to MIN_CHUNK, so a change arriving meanwhile waits behind less; a council
    with no more than ``chunk`` queued still counts as day-to-day and goes first."""
    async with running_hub(await make_database(), tmp_path, resolver={
            "enabled": False, "chunk": 1000, "chunk_seconds": 1e-6}) as hub:
        esx_key, wsx_key = keys.generate(), keys.generate()
        await hub.enrol(ESX, keys.public_pem(esx_key.public_key()))
        await hub.enrol(WSX, keys.public_pem(wsx_key.public_key()))
        ops = [UpsertOp.of(replace(record(f"A{i}", nhs=None), given_name=f"Name{i}"), 1)
               for i in range(2500)]  # still more than chunk after two chunks
        body, _ = batch_bytes(ESX, 1, GENESIS, ops, esx_key)
        assert (await Client(hub, ESX, esx_key).send(body))[0] == 200
        resolver = hub.server.app[k.RESOLVER]
        assert await resolver.resolve_chunk() == 1000
        assert resolver.chunk_size == MIN_CHUNK
        assert await resolver.resolve_chunk() == MIN_CHUNK
        ops = [UpsertOp.of(replace(record(f"B{i}", nhs=None), given_name=f"Other{i}"), 1)
               for i in range(150)]  # more than MIN_CHUNK, fewer than chunk
        body, _ = batch_bytes(WSX, 1, GENESIS, ops, wsx_key)
        assert (await Client(hub, WSX, wsx_key).send(body))[0] == 200
        assert await resolver.resolve_chunk() == MIN_CHUNK  # West Sussex's, in part
        assert await hub.fetchval("SELECT count(*) FROM resolution_queue"
                                  " WHERE council_code = $1", WSX) == 50
        assert await hub.resolved() == 2500 - 1000 - MIN_CHUNK + 50


async def test_in_bulk_each_councils_whole_load_resolves_in_one_chunk(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """``links drain --bulk`` and ``links resolve --bulk``: a council's queue, far more
    than ``chunk`` entries, in one transaction (its blocks read once), and links that
    meet the quality targets as the chunked resolver's do."""
    population = generate(tmp_path / "feeds", per_council=150, seed=7)
    sent = Sent(population.person, population.twins, 0.0)
    async with running_hub(await make_database(), tmp_path, resolver={
            "enabled": False, "chunk": 40, "chunk_seconds": "0s",
            "bulk_chunk": 10_000}) as hub:
        await send_batches(hub, population.records, batch=60)
        async with hub.pool.acquire() as conn:
            queued = {r[0]: r[1] for r in await conn.fetch(
                "SELECT council_code, count(*) FROM resolution_queue GROUP BY 1")}
        assert min(queued.values()) > 40  # every council's load is more than one chunk
        resolver = hub.server.app[k.RESOLVER]
        first = await resolver.resolve_chunk(bulk=True)
        assert first in queued.values()  # one council's whole queue at once
        assert resolver.chunk_size == 40  # bulk leaves the day-to-day size alone
        assert await resolver.drain(bulk=True) == sum(queued.values()) - first
        check(sent, await hub_links(hub), "drained in bulk")
        before = await hub_links(hub)
        for council in queued:
            assert await resolver.re_resolve(council, bulk=True) == 0  # same model
        assert (await hub_links(hub)).national == before.national


async def test_re_resolution_writes_only_the_blocking_keys_that_changed(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """After a model change every key is recomputed, but a key a record already holds
    keeps its row (same ctid); a stale key goes and a missing one comes back."""
    async with running_hub(await make_database(), tmp_path) as hub:
        key = keys.generate()
        await hub.enrol(ESX, keys.public_pem(key.public_key()))
        body, _ = batch_bytes(ESX, 1, GENESIS, [
            UpsertOp.of(record("A1"), 1),
            UpsertOp.of(replace(record("A2", nhs=None), given_name="Zofia",
                                postcode="TF1 2AB"), 1)],
            key)
        assert (await Client(hub, ESX, key).send(body))[0] == 200
        await hub.resolved()
        query = ("SELECT local_id, key, ctid::text AS at FROM record_keys"
                 " WHERE council_code = $1 ORDER BY local_id, key")
        async with hub.pool.acquire() as conn:
            held = {(r["local_id"], r["key"]): r["at"] for r in await conn.fetch(query, ESX)}
            (gone,) = [k for k in held if k[0] == "A2"][:1]
            # as an older version of the blocking keys would have left them
            have = await key_sets.read(conn, [(ESX, "A1"), (ESX, "A2")], lock=True)
            await key_sets.change(conn, have, {
                (ESX, "A1"): have[(ESX, "A1")] | {"stale:key"},
                (ESX, "A2"): have[(ESX, "A2")] - {gone[1]}})
        await hub.server.app[k.RESOLVER].re_resolve(ESX)
        async with hub.pool.acquire() as conn:
            after = {(r["local_id"], r["key"]): r["at"] for r in await conn.fetch(query, ESX)}
            assert await key_tables_disagree(conn) == []
        assert set(after) == set(held)  # the stale key gone, the missing one back
        assert {kk: at for kk, at in after.items() if kk != gone} == {
            kk: at for kk, at in held.items() if kk != gone}  # the rest untouched


async def test_following_an_initial_load_resolves_each_council_while_the_next_arrives(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """``links drain --bulk --until-idle``: started before the councils publish, it
    resolves the first council's load before the second's is sent, returns only when
    told the load is over and the queue is empty, and its links meet the targets."""
    population = generate(tmp_path / "feeds", per_council=150, seed=7)
    sent = Sent(population.person, population.twins, 0.0)
    first, *rest = population.records
    async with running_hub(await make_database(), tmp_path, resolver={
            **PAUSED, "interval": "0.05s", "bulk_chunk": 10_000}) as hub:
        resolver = hub.server.app[k.RESOLVER]
        load_over = asyncio.Event()
        follower = asyncio.create_task(resolver.follow(lambda _: load_over.is_set(), bulk=True))
        await send_batches(hub, {first: population.records[first]}, batch=60)
        for _ in range(1200):  # up to a minute: resolved by the follower, nothing else runs
            if not await hub.fetchval("SELECT count(*) FROM records WHERE national_id IS NULL"):
                break
            await asyncio.sleep(0.05)
        assert not follower.done()
        await send_batches(hub, {c: population.records[c] for c in rest}, batch=60)
        load_over.set()
        assert await follower == len(population.person)
        assert await hub.fetchval("SELECT count(*) FROM resolution_queue") == 0
        check(sent, await hub_links(hub), "followed in bulk")

        started = time.monotonic()  # nothing queued: back after the idle time asked for
        assert await resolver.follow(lambda idle: idle >= 0.3) == 0
        assert time.monotonic() - started >= 0.3


async def test_a_follower_outlasts_a_failed_chunk(make_database: DatabaseFactory,
                                                  tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The database dropping the follower's connection mid-load is logged and the chunk
    tried again; told the load is over, it still returns only once the queue is empty."""
    population = generate(tmp_path / "feeds", per_council=40, seed=7)
    async with running_hub(await make_database(), tmp_path, resolver={
            **PAUSED, "interval": "0.05s"}) as hub:
        await send_batches(hub, population.records, batch=60)
        resolver = hub.server.app[k.RESOLVER]
        real, calls = resolver.resolve_chunk, []

        async def dropped_once(**kwargs: bool) -> int | None:
            calls.append(kwargs)
            if len(calls) == 1:
                raise ConnectionResetError("connection reset by peer")
            return await real(**kwargs)

        monkeypatch.setattr(resolver, "resolve_chunk", dropped_once)
        assert await resolver.follow(lambda _: True, bulk=True) == len(population.person)
        assert len(calls) > 2  # the failure, a chunk per council, the empty look
        assert await hub.fetchval("SELECT count(*) FROM resolution_queue") == 0


async def test_a_chunk_is_planned_with_the_cyclic_collector_paused(
        make_database: DatabaseFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk's objects are freed by reference counting; the collector rescanning them
    was about a sixth of a bulk drain's CPU. It runs again once the chunk is written,
    failed or not."""
    async with running_hub(await make_database(), tmp_path, resolver=PAUSED) as hub:
        key = keys.generate()
        await hub.enrol(ESX, keys.public_pem(key.public_key()))
        body, _ = batch_bytes(ESX, 1, GENESIS, [UpsertOp.of(record("A1"), 1)], key)
        assert (await Client(hub, ESX, key).send(body))[0] == 200
        resolver = hub.server.app[k.RESOLVER]
        plan, collector_ran = resolver.linker.plan, []

        async def planned(*args: object, **kwargs: object) -> object:
            collector_ran.append(gc.isenabled())
            raise RuntimeError("the database went away")

        monkeypatch.setattr(resolver.linker, "plan", planned)
        with pytest.raises(RuntimeError):
            await resolver.resolve_chunk()
        assert collector_ran == [False] and gc.isenabled()
        monkeypatch.setattr(resolver.linker, "plan", plan)
        assert await resolver.drain() == 1
        assert gc.isenabled()
