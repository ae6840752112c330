"""Finding 9c: argon2 verification ran on the event loop, so twenty anonymous logins
raised ``/healthz`` latency to seconds. Now each hash runs in a worker thread through
a bounded gate, and a burst beyond the bound is refused at once (503 ``login_busy``).

Shown without timing anything: the hasher is held inside its thread until the test
lets it go. Were hashing on the event loop, nothing else could be answered meanwhile;
here ``/healthz`` answers and the extra logins are refused while it is held.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Literal

import aiohttp
import pytest
from argon2 import PasswordHasher

from server_common.accounts import credentials
from server_common.accounts.web import ACCOUNTS
from tests.conftest import DatabaseFactory
from tests.security.logins_helpers import browser_from, hub_serving
from tests.server_common.accounts_helpers import error_code_in, login


async def test_hashing_runs_in_a_worker_thread_and_a_burst_is_refused(
        make_database: DatabaseFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entered, release = threading.Event(), threading.Event()
    threads: list[int] = []

    class Held(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
            threads.append(threading.get_ident())
            entered.set()
            release.wait(60)
            return super().verify(hash, password)

    monkeypatch.setattr(credentials, "_hasher", Held())
    loop_thread = threading.get_ident()
    async with hub_serving(await make_database(), tmp_path, hash_concurrency=1,
                           hash_queue=1) as hub:
        try:
            async with browser_from() as first_http, browser_from() as second_http:
                first = asyncio.create_task(login(first_http, hub.base, "anyone", "x" * 16,
                                                  "000000"))
                assert await asyncio.to_thread(entered.wait, 30)
                second = asyncio.create_task(login(second_http, hub.base, "anyone2",
                                                   "x" * 16, "000000"))  # waits its turn
                gate = hub.app[ACCOUNTS].gate
                for _ in range(3000):
                    if gate.admitted == 2:
                        break
                    await asyncio.sleep(0.01)
                assert gate.admitted == 2
                burst = []
                for i in range(5):
                    async with browser_from() as http:
                        response = await login(http, hub.base, f"burst{i}", "x" * 16, "000000")
                        burst.append((response.status, error_code_in(await response.text()),
                                      response.headers.get("Retry-After")))
                assert burst == [(503, "login_busy", "5")] * 5
                async with aiohttp.ClientSession() as http, \
                        http.get(hub.base + "/healthz") as health:
                    assert health.status == 200
                assert not first.done() and not second.done()
                release.set()
                assert (await first).status == 401 and (await second).status == 401
        finally:
            release.set()
    assert threads and loop_thread not in threads
    # the refused burst was never hashed, nor counted towards anyone's throttling
    assert len(threads) == 2
