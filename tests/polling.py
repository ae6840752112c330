"""Waiting for state that nothing signals (rows in a database, a process's progress):
the one polling helper of the tests. It fails with what it waited for, never hangs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def until(predicate: Callable[[], Awaitable[object]], what: str, *,
                limit: float = 60.0, interval: float = 0.05,
                tolerate: tuple[type[Exception], ...] = ()) -> None:
    """Return once ``predicate()`` is true; fail after ``limit`` seconds naming ``what``.

    ``tolerate``: exceptions that mean "not yet" (a database restarting, a key being
    rotated), not a failure.
    """
    deadline = time.monotonic() + limit
    while True:
        try:
            if await predicate():
                return
        except tolerate:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit:g} s waiting for {what}")
        await asyncio.sleep(interval)
