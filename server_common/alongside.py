"""Python work in a thread while the event loop waits on the database.

A bulk load alternates: Python decides a chunk, then PostgreSQL writes it, then Python
decides the next part. On a machine with a core for each, one of them is idle at any
time. Work that needs nothing the writes produce (deciding who children are, packing
their records) can run in a thread while the event loop sends the writes and waits for
them: waiting on a socket, the event loop holds no GIL, so the thread has the Python
core and PostgreSQL the other.

Both finish before :func:`alongside` returns or raises: no thread outlives the
caller's transaction, and an error of either is raised (the writes' first).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
U = TypeVar("U")


async def alongside(work: Callable[[], T], io: Awaitable[U]) -> tuple[T, U]:
    """``(work(), await io)``, ``work`` run in a thread meanwhile. ``work`` must do no I/O
    and touch nothing ``io`` reads or changes."""
    thread = asyncio.ensure_future(asyncio.to_thread(work))
    try:
        done = await io
    except BaseException:
        await asyncio.wait([thread])
        if not thread.cancelled():
            thread.exception()  # retrieved: the writes' error is the one raised
        raise
    return await thread, done
