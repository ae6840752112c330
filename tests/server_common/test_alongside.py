"""server_common.alongside: a thread's work and the event loop's I/O, both awaited."""

from __future__ import annotations

import asyncio
import threading

import pytest

from server_common.alongside import alongside


async def test_both_results_and_the_work_runs_in_another_thread() -> None:
    async def io() -> str:
        await asyncio.sleep(0.01)
        return "written"

    work, done = await alongside(threading.get_ident, io())
    assert done == "written"
    assert work != threading.get_ident()


async def test_the_writes_error_is_raised_after_the_work_has_finished() -> None:
    finished = threading.Event()

    def work() -> None:
        finished.wait(1)  # still running when the writes fail
        raise ValueError("the work's error is not the one raised")

    async def io() -> None:
        raise RuntimeError("the writes failed")

    async def failing_writes_then_release() -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, finished.set)
        await alongside(work, io())

    with pytest.raises(RuntimeError, match="the writes failed"):
        await failing_writes_then_release()
    assert finished.is_set()


async def test_the_works_error_is_raised() -> None:
    def work() -> None:
        raise ValueError("bad record")

    async def io() -> int:
        return 1

    with pytest.raises(ValueError, match="bad record"):
        await alongside(work, io())
