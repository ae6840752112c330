"""The cyclic collector paused around bulk work, and always running again after it."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest
from aiohttp import web

from server_common import logs
from server_common.cli import serve
from server_common.gc_pause import freeze_startup_heap, paused_gc


@pytest.fixture(autouse=True)
def collector_running() -> Iterator[None]:
    gc.enable()
    yield
    gc.enable()


def test_the_collector_is_paused_inside_and_runs_again_after() -> None:
    with paused_gc():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_cyclic_garbage_made_while_paused_is_collected_after() -> None:
    class Node:
        other: Node | None = None

    collected: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            collected.append(info["collected"])

    gc.collect()
    gc.callbacks.append(count)
    try:
        with paused_gc():
            for _ in range(100):
                a, b = Node(), Node()
                a.other, b.other = b, a
            del a, b
            assert collected == []          # nothing collected while paused
        assert sum(collected) >= 200        # the 100 cycles, freed as the pause ends
    finally:
        gc.callbacks.remove(count)


def test_nested_pauses_end_with_the_outermost() -> None:
    with paused_gc():
        with paused_gc():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_failure_inside_still_ends_the_pause() -> None:
    with pytest.raises(RuntimeError), paused_gc():
        raise RuntimeError("the chunk failed")
    assert gc.isenabled()


def test_a_collector_disabled_before_stays_disabled() -> None:
    gc.disable()
    with paused_gc():
        pass
    assert not gc.isenabled()


def test_pauses_interleaved_between_tasks_end_with_the_last_one() -> None:
    """Two asyncio tasks each pause around their own work, ending in the other order
    from the one they began in: the collector runs again only when both have ended."""
    first_in, second_in, first_may_end = asyncio.Event(), asyncio.Event(), asyncio.Event()
    states: list[tuple[str, bool]] = []

    async def first() -> None:
        with paused_gc():
            first_in.set()
            await first_may_end.wait()
        states.append(("first ended", gc.isenabled()))

    async def second() -> None:
        await first_in.wait()
        with paused_gc():
            second_in.set()
            await asyncio.sleep(0)
            first_may_end.set()
            await asyncio.sleep(0.01)   # the first task ends meanwhile
            states.append(("second still in", gc.isenabled()))
        states.append(("second ended", gc.isenabled()))

    async def both() -> None:
        await asyncio.gather(first(), second())

    asyncio.run(both())
    assert states == [("first ended", False), ("second still in", False),
                      ("second ended", True)]


def test_a_pause_that_outlasts_its_limit_lets_the_collector_run_again(
        caplog: pytest.LogCaptureFixture) -> None:
    """In a server, requests are answered while a resolver chunk runs: a chunk stuck
    behind a lock must not hold their cyclic garbage for ever."""
    states: list[bool] = []

    async def stuck() -> None:
        with paused_gc(limit=0.05):
            states.append(gc.isenabled())
            await asyncio.sleep(0.3)          # the limit passes meanwhile
            states.append(gc.isenabled())
            with paused_gc():                 # a pause begun now pauses nothing
                states.append(gc.isenabled())
        states.append(gc.isenabled())
        with paused_gc():                     # and the next pause is a pause again
            states.append(gc.isenabled())

    with caplog.at_level("INFO", logger="server_common.gc_pause"):
        asyncio.run(stuck())
    assert states == [False, True, True, True, False]
    assert gc.isenabled()
    assert [r.getMessage() for r in caplog.records] == [
        "cyclic garbage collector resumed: bulk work held it paused"]


def test_a_pause_within_its_limit_is_not_cut_short() -> None:
    async def quick() -> bool:
        with paused_gc(limit=5):
            await asyncio.sleep(0.05)
            return gc.isenabled()

    assert asyncio.run(quick()) is False
    assert gc.isenabled()


def test_a_served_app_freezes_what_startup_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve`` appends the freeze after the app's own startup hooks; once it has run,
    what existed at startup is out of the collector's reach, and what requests make
    afterwards is still collected."""
    served: list[web.Application] = []
    monkeypatch.setattr(web, "run_app", lambda app, **_: served.append(app))
    monkeypatch.setattr(logs, "setup", lambda *_: None)  # not this test process's logging
    app = web.Application()
    opened: list[int] = []

    async def open_pools(app: web.Application) -> None:
        opened.append(gc.get_freeze_count())  # the app's own startup runs first
    app.on_startup.append(open_pools)
    serve(app, "127.0.0.1", 0, "test")
    assert served == [app] and app.on_startup[-1] is freeze_startup_heap

    async def start() -> None:
        for hook in app.on_startup:
            await hook(app)
    try:
        before = gc.get_freeze_count()
        asyncio.run(start())
        assert opened == [before]
        assert gc.get_freeze_count() > before
        assert gc.get_count()[2] == 0  # the full collection before freezing

        class Node:
            other: Node | None = None
        a, b = Node(), Node()
        a.other, b.other = b, a
        del a, b
        assert gc.collect() >= 2  # made after the freeze: still collected
    finally:
        gc.unfreeze()
