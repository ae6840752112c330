"""Pausing Python's cyclic garbage collector around bulk work, and keeping a server's
startup heap out of its reach.

A load builds hundreds of thousands of small objects (parsed rows, children,
blocking keys, records) that are freed by reference counting, not by the cyclic
collector. Left running, the collector is triggered every 700 allocations and,
every so often, rescans every object that has survived so far: a sixth to a
fifth of a node's ingest CPU went there (docs/feeds.md). Paused for one piece
of bulk work, with a collection of the youngest generation after it, the work
costs what it costs and any cyclic garbage it made is still collected.

Pauses nest and may interleave between asyncio tasks: the collector runs again
when the last pause open ends, and never if it was disabled before the first.

A pause is bounded in time (``limit`` seconds, when an event loop is running): in a
server, requests go on being answered while a resolver chunk runs, and their cyclic
garbage waits for the pause to end. A chunk stuck behind a lock must not let that
grow without end, so after the limit the collector runs again, and the pause ends
having nothing to restore.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

MAX_PAUSE_SECONDS = 60.0

_open = 0              # pauses not yet ended
_was_enabled = False   # whether the collector ran before the first of them (and must again)
_watchdog: asyncio.TimerHandle | None = None


@contextmanager
def paused_gc(limit: float = MAX_PAUSE_SECONDS) -> Iterator[None]:
    global _open, _was_enabled, _watchdog
    if _open == 0:
        _was_enabled = gc.isenabled()
        gc.disable()
        _watchdog = _resume_after(limit) if _was_enabled else None
    _open += 1
    try:
        yield
    finally:
        _open -= 1
        if _open == 0:
            if _watchdog is not None:
                _watchdog.cancel()
                _watchdog = None
            if _was_enabled:
                gc.enable()
                # What the work left behind in cycles, without rescanning every
                # long-lived object (a full collection runs on its own schedule).
                gc.collect(0)


def _resume_after(limit: float) -> asyncio.TimerHandle | None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # no loop: nothing else runs while the work does
        return None
    return loop.call_later(limit, _resume, limit)


def _resume(limit: float) -> None:
    global _was_enabled, _watchdog
    _watchdog = None
    if _open and _was_enabled:
        gc.enable()
        _was_enabled = False  # running again already: the pause's end restores nothing
        log.info("cyclic garbage collector resumed: bulk work held it paused",
                 extra={"seconds": limit})


async def freeze_startup_heap(app: object) -> None:
    """An ``on_startup`` hook, appended after the app's own: what startup built (modules,
    word lists for password strength, name tables, pools) lives as long as the server,
    yet every full collection walked all of it, on the event loop: 240–430 ms each on
    a busy 2-core machine, twice in 20 s of searching, stalling every request in
    flight (a search's p99). Collected once, then frozen (``gc.freeze``), it is left
    out of every later collection; those walk only what requests made since (5,300
    objects against 77,000, 17–32 ms)."""
    gc.collect()
    gc.freeze()
