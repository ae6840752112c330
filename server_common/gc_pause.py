"""Pausing Python's cyclic garbage collector around bulk work.

A load builds hundreds of thousands of small objects (parsed rows, children,
blocking keys, records) that are freed by reference counting, not by the cyclic
collector. Left running, the collector is triggered every 700 allocations and,
every so often, rescans every object that has survived so far: a quarter to a
third of a node's ingest time went there (docs/feeds.md). Paused for one piece
of bulk work, with a collection of the youngest generation after it, the work
costs what it costs and any cyclic garbage it made is still collected.

Pauses nest and may interleave between asyncio tasks: the collector runs again
when the last pause open ends, and never if it was disabled before the first.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_open = 0              # pauses not yet ended
_was_enabled = False   # whether the collector ran before the first of them


@contextmanager
def paused_gc() -> Iterator[None]:
    global _open, _was_enabled
    if _open == 0:
        _was_enabled = gc.isenabled()
        gc.disable()
    _open += 1
    try:
        yield
    finally:
        _open -= 1
        if _open == 0 and _was_enabled:
            gc.enable()
            # What the work left behind in cycles, without rescanning every
            # long-lived object (a full collection runs on its own schedule).
            gc.collect(0)
