"""Password hashing off the event loop, and bounded.

argon2id is meant to be slow (tens of milliseconds of CPU and 64 MiB each). Run on
the event loop, twenty anonymous login attempts would stall every other request of
the server for the length of twenty hashes. So each hash runs in a worker thread
(argon2-cffi releases the GIL while it works), at most ``concurrency`` at once with
``queue`` more waiting their turn; anything beyond is refused at once with 503
``login_busy`` (retryable) instead of piling up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from protocol.errors import ErrorCode, UnavailableError

T = TypeVar("T")


class HashGate:
    def __init__(self, concurrency: int, queue: int) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._limit = concurrency + queue
        self._admitted = 0  # running or waiting

    @property
    def admitted(self) -> int:
        """Hashes running or waiting now."""
        return self._admitted

    async def run(self, work: Callable[..., T], *args: object) -> T:
        """``work(*args)`` in a worker thread, or 503 ``login_busy`` if too many wait."""
        if self._admitted >= self._limit:
            raise UnavailableError("too many sign-ins at once: try again in a moment",
                                   code=ErrorCode.LOGIN_BUSY)
        self._admitted += 1
        try:
            async with self._slots:
                return await asyncio.to_thread(work, *args)
        finally:
            self._admitted -= 1
