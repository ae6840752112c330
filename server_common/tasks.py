"""The one way to run a background job: :func:`run_every`, with one error policy.

Every periodic job of both servers (nonce, session and rate-limit purges, retention,
audit checkpoints, resolution, and the node's reconcile and witness) runs through here,
started and stopped in a ``cleanup_ctx`` (:func:`background`). The policy, in order:

- the database is unavailable (``server_common.database.unavailable``, the same
  classification the error middleware answers 503 for: a closed pool or connection,
  asyncpg's InternalClientError, connection errors, OSError): a warning; run again at
  the next interval. Nothing is wrong with the job; PostgreSQL will be back.
- PostgreSQL refused a statement (``asyncpg.PostgresError``: a deadlock, a serialization
  failure, a statement timeout): logged with its traceback; run again next interval.
- a ``SignpostError`` (the job's own refusal, e.g. the audit log's integrity): logged
  with its code; run again next interval.
- anything else is a bug: it goes to the event loop's exception handler (asyncio's
  default one logs it with its traceback; the tests' handler fails the test), and the
  job **runs again** at its next interval. A bug in one run must not stop the job for
  good, silently or not: a checkpoint, purge or resolution that keeps failing shows in
  the logs and in its own alert (queue age, checkpoint age), never as a dead task.

Cancellation (the app shutting down) ends the loop at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg

from protocol.errors import SignpostError
from server_common import database

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[object]]


async def run_once(what: str, job: Job) -> bool:
    """Run ``job`` once under the policy above; True when it finished without error."""
    try:
        await job()
    except asyncio.CancelledError:
        raise
    except SignpostError as exc:
        log.error(f"{what} failed", extra={"code": str(exc.code), "error": exc.message})
    except Exception as exc:
        if database.unavailable(exc):
            log.warning(f"{what} failed: the database is unavailable; will retry",
                        extra={"error": type(exc).__name__})
        elif isinstance(exc, asyncpg.PostgresError):
            log.exception(f"{what} failed; will retry")
        else:
            asyncio.get_running_loop().call_exception_handler({
                "message": f"{what} failed with an unexpected error; will run again",
                "exception": exc,
            })
        return False
    return True


async def run_every(what: str, job: Job, interval: float, *, first_after: float = 0.0,
                    wake: asyncio.Event | None = None) -> None:
    """Run ``job`` every ``interval`` seconds, first after ``first_after``, until
    cancelled. ``wake``, when given, starts the next run early once set (the resolver:
    intake sets it when it queues records); it is cleared before each run, so a wake
    that arrives during a run is not lost."""
    await asyncio.sleep(first_after)
    while True:
        if wake is not None:
            wake.clear()
        await run_once(what, job)
        if wake is None:
            await asyncio.sleep(interval)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=interval)


@contextlib.asynccontextmanager
async def background(*loops: Awaitable[None]) -> AsyncIterator[None]:
    """Run ``loops`` (``run_every(...)`` calls) as tasks while the block runs; cancel and
    await them when it ends. Meant for the inside of a ``cleanup_ctx``."""
    tasks = [asyncio.ensure_future(loop) for loop in loops]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
