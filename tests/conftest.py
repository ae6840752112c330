"""Shared fixtures: one real PostgreSQL per test session, a fresh database per test,
and a hub served over real HTTP on loopback; every asyncio test runs on a loop whose
exception handler fails the test (a background task that dies, or a ``run_every`` job
that meets a bug, must not pass unnoticed).

PostgreSQL is the embedded ``pgserver`` one unless TEST_DATABASE_URL names a
server (any database on it; tests create and drop their own).
"""

from __future__ import annotations

import asyncio
import gc
import os
import secrets
import shutil
import tempfile
import warnings
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import asyncpg
import pytest

import synthetic
from protocol import keys
from server_common import embedded_pg
from tests import hang_report
from tests.hang_report import pytest_runtest_protocol  # noqa: F401  (a hook of this file)
from tests.hub_harness import Hub, running_hub
from tests.national_hub.helpers import Client

# Browser fixtures (chromium, browser) for every test that drives a page.
pytest_plugins = ("tests.browser",)

# What the test loops' exception handler met: checked, then cleared, around each test;
# and how many checked loops were made (a test that made none needs no collection).
_LOOP_ERRORS: list[dict[str, Any]] = []
_LOOPS_MADE = [0]


def _record_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    loop.default_exception_handler(context)  # logged as in production
    # A transport's error is a peer hanging up (TLS tests, fault runs): the connection's
    # business, not a dead task. Everything else with an exception is one.
    if context.get("exception") is not None and not (
            "transport" in context or "protocol" in context):
        _LOOP_ERRORS.append(context)


def _checked_loop() -> asyncio.AbstractEventLoop:
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(_record_loop_error)
    hang_report.LOOPS.add(loop)
    _LOOPS_MADE[0] += 1
    return loop


def pytest_asyncio_loop_factories(config: pytest.Config,
                                  item: pytest.Item) -> Mapping[str, Any]:
    """Every asyncio test's loop is a checked one (one factory: test ids unchanged)."""
    return {"checked": _checked_loop}


@pytest.fixture(autouse=True)
def fail_on_loop_errors() -> Iterator[None]:
    """Fail the test when its loop's exception handler was called with an exception: a
    task died unretrieved or a background job met a bug. Torn down after the loop is
    closed; the collection finds tasks whose exception nobody retrieved."""
    _LOOP_ERRORS.clear()
    made = _LOOPS_MADE[0]
    yield
    if _LOOPS_MADE[0] != made:  # ~40 ms: only after an asyncio test
        gc.collect()
    errors, _LOOP_ERRORS[:] = list(_LOOP_ERRORS), []
    if errors:
        pytest.fail("unhandled exceptions in the event loop: " + "; ".join(
            f"{c.get('message')}: {c['exception']!r}" for c in errors), pytrace=False)


@pytest.fixture(scope="session")
def pg_base_url() -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        hang_report.DATABASE_URL[:] = [url]
        yield url
        return
    import pgserver

    # Not under pytest's own temp folder: pytest resets that folder to mode 0700 on
    # every run, and as root pgserver runs PostgreSQL as another user who must reach it.
    data_dir = Path(tempfile.mkdtemp(prefix="signpost-test-pg-"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(data_dir, cleanup_mode="stop")
    # Many test databases and process tests open many connections.
    server.psql("ALTER SYSTEM SET max_connections = 300;")
    server.psql("ALTER SYSTEM SET fsync = off;")  # test data is throwaway
    server.psql("ALTER SYSTEM SET synchronous_commit = off;")
    server.cleanup()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(data_dir, cleanup_mode="stop")
    hang_report.DATABASE_URL[:] = [server.get_uri()]
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(data_dir, ignore_errors=True)


async def _create_database(base_url: str) -> str:
    name = "t_" + secrets.token_hex(6)
    conn = await asyncpg.connect(embedded_pg.with_database(base_url, "postgres"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return embedded_pg.with_database(base_url, name)


async def _drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1].split("?", 1)[0]
    conn = await asyncpg.connect(embedded_pg.with_database(url, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


class DatabaseFactory:
    """Makes fresh, empty databases on the test server; drops them afterwards."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.made: list[str] = []

    async def __call__(self) -> str:
        url = await _create_database(self.base_url)
        self.made.append(url)
        return url

    async def drop_all(self) -> None:
        for url in self.made:
            await _drop_database(url)


@pytest.fixture
async def make_database(pg_base_url: str) -> AsyncIterator[DatabaseFactory]:
    factory = DatabaseFactory(pg_base_url)
    yield factory
    await factory.drop_all()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
async def hub(make_database: DatabaseFactory, tmp_path: Path) -> AsyncIterator[Hub]:
    """A hub served over real HTTP on loopback, on a database of its own (a module that
    needs another hub defines its own ``hub``)."""
    async with running_hub(await make_database(), tmp_path) as served:
        yield served


@pytest.fixture
async def esx(hub: Hub) -> Client:
    """East Sussex, enrolled at ``hub`` with a key of its own, as a raw signed client."""
    key = keys.generate()
    await hub.enrol("E10000011", keys.public_pem(key.public_key()))
    return Client(hub, "E10000011", key)


@pytest.fixture(scope="module")
def feeds(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic feed files of the module's population, written once per module, as
    ``pytestmark = pytest.mark.feeds([councils], children, seed=N)`` asks:
    ``feeds / council / "education.csv"`` and so on."""
    marker = request.node.get_closest_marker("feeds")
    if marker is None:
        raise pytest.UsageError(f"{request.node.name} uses `feeds` without "
                                "pytest.mark.feeds(councils, children, seed=N)")
    councils, children = marker.args
    out = tmp_path_factory.mktemp("feeds")
    synthetic.write_feeds(synthetic.generate_population(list(councils), children,
                                                        seed=marker.kwargs["seed"]), out)
    return out
