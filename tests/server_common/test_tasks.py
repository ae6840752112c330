"""server_common.tasks: the one background-job helper and its error policy, on a real
PostgreSQL; and the regression it was made for, the audit checkpoint loop outliving a
closed pool (it used to end for good on InterfaceError('pool is closed'))."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from national_hub.app import PACKAGE as HUB_PACKAGE
from protocol import keys
from protocol.errors import NotFoundError
from server_common.audit.entry import AuditEntry
from server_common.audit.service import AuditLog
from server_common.tasks import background, run_every
from tests.conftest import DatabaseFactory
from tests.hub_harness import upgrade
from tests.polling import until

# Generous: these waits end as soon as the job has run; the bound only stops a hang.
WAIT = 10.0


@pytest.fixture
async def url(make_database: DatabaseFactory) -> str:
    url = await make_database()
    await upgrade(url, HUB_PACKAGE)
    return url


@contextlib.asynccontextmanager
async def handler_calls() -> AsyncIterator[list[dict[str, Any]]]:
    """What reaches the running loop's exception handler inside the block (and only
    that: the test's own failing handler is put back after)."""
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    calls: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: calls.append(context))
    try:
        yield calls
    finally:
        loop.set_exception_handler(previous)


def counting(outcomes: list[Callable[[], Awaitable[None]]]
             ) -> tuple[Callable[[], Awaitable[None]], asyncio.Queue[int]]:
    """A job that plays ``outcomes`` in turn (the last one for ever) and puts the number
    of each finished or failed run on the queue."""
    runs: asyncio.Queue[int] = asyncio.Queue()
    count = 0

    async def job() -> None:
        nonlocal count
        count += 1
        try:
            await outcomes[min(count, len(outcomes)) - 1]()
        finally:
            runs.put_nowait(count)

    return job, runs


async def runs_reach(runs: asyncio.Queue[int], n: int) -> None:
    async def reached() -> None:
        while await runs.get() < n:
            pass
    await asyncio.wait_for(reached(), WAIT)


async def test_a_closed_pool_is_retried_and_the_loop_goes_on(url: str,
        caplog: pytest.LogCaptureFixture) -> None:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    assert pool is not None
    await pool.close()

    async def query() -> None:
        async with pool.acquire() as conn:  # InterfaceError: pool is closed
            await conn.fetchval("SELECT 1")

    job, runs = counting([query])
    caplog.set_level(logging.WARNING, "server_common.tasks")
    async with handler_calls() as calls, background(run_every("probe", job, 0.01)):
        await runs_reach(runs, 3)
    assert calls == []  # the database being away is not a bug
    assert any("the database is unavailable" in r.getMessage() for r in caplog.records)


async def test_a_postgres_refusal_and_a_signpost_error_are_logged_and_retried(
        url: str, caplog: pytest.LogCaptureFixture) -> None:
    conn = await asyncpg.connect(url)

    async def refused() -> None:
        await conn.execute("SELECT * FROM no_such_table")

    async def signpost() -> None:
        raise NotFoundError("nothing here")

    async def fine() -> None:
        await conn.fetchval("SELECT 1")

    job, runs = counting([refused, signpost, fine])
    caplog.set_level(logging.WARNING, "server_common.tasks")
    try:
        async with handler_calls() as calls, background(run_every("probe", job, 0.01)):
            await runs_reach(runs, 4)
    finally:
        await conn.close()
    assert calls == []
    failures = [r for r in caplog.records if r.getMessage() == "probe failed"]
    assert [getattr(r, "code", None) for r in failures] == ["not_found"]
    assert any(r.exc_info and isinstance(r.exc_info[1], asyncpg.UndefinedTableError)
               for r in caplog.records)


async def test_a_bug_reaches_the_loop_handler_and_the_job_runs_again() -> None:
    async def bug() -> None:
        raise KeyError("oops")

    async def fine() -> None:
        pass

    job, runs = counting([bug, fine])
    async with handler_calls() as calls, background(run_every("probe", job, 0.01)) :
        await runs_reach(runs, 3)
    assert len(calls) == 1 and isinstance(calls[0]["exception"], KeyError)
    assert "probe failed" in calls[0]["message"]


async def test_wake_starts_the_next_run_early() -> None:
    wake = asyncio.Event()

    async def nothing() -> None:
        pass

    job, runs = counting([nothing])
    async with background(run_every("probe", job, 3600, wake=wake)):
        await runs_reach(runs, 1)
        wake.set()  # not the hour's interval: the wake-up
        await runs_reach(runs, 2)


async def test_background_cancels_its_loops_on_leaving() -> None:
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    loop = run_every("forever", forever, 1)
    async with background(loop):
        await asyncio.wait_for(started.wait(), WAIT)
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert tasks and all(t.done() for t in tasks)


async def test_checkpoint_loop_outlives_a_closed_pool_and_checkpoints_again(
        url: str, caplog: pytest.LogCaptureFixture) -> None:
    """The hub's checkpoint loop (AuditLog.checkpoint_periodically, as create_app runs
    it) meets InterfaceError('pool is closed'), keeps running, and signs a checkpoint
    of the grown log once it has a pool again."""
    first = await asyncpg.create_pool(url, min_size=1, max_size=2)
    assert first is not None
    audit = AuditLog(first, keys.generate())
    async with handler_calls() as calls, background(audit.checkpoint_periodically(0.01)):
        await until(equals(lambda: checkpoint_size(url), 0), "the empty head's checkpoint",
                    limit=WAIT, interval=0.01)  # signed once
        caplog.set_level(logging.WARNING, "server_common.tasks")
        await first.close()

        async def failures() -> int:  # runs that met the closed pool
            return min(2, sum("audit checkpoint failed" in r.getMessage()
                              for r in caplog.records))
        await until(equals(failures, 2), "two runs meeting the closed pool", limit=WAIT,
                    interval=0.01)
        second = await asyncpg.create_pool(url, min_size=1, max_size=2)
        assert second is not None
        try:
            audit.pool = second  # the pool, reopened (the checkpoints read through it)
            # the log grows: an entry recorded as by another replica of the hub
            replica = AuditLog(second, audit.signing_key)
            await replica.record(AuditEntry("amelia", "practitioner", "E10000011",
                                            "section 47 enquiry", "search", {}, ("N1",)))
            await until(equals(lambda: checkpoint_size(url), 1),
                        "a checkpoint of the grown log", limit=WAIT, interval=0.01)
        finally:
            await second.close()
    assert calls == []


async def checkpoint_size(url: str) -> int | None:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(
            "SELECT max(tree_size) FROM audit_checkpoints")
    finally:
        await conn.close()


def equals(value: Callable[[], Awaitable[object]], wanted: object
           ) -> Callable[[], Awaitable[bool]]:
    """A predicate for tests.polling.until: ``value()`` is ``wanted`` (the database or the
    log: nothing to wait on)."""
    async def check() -> bool:
        return await value() == wanted
    return check
