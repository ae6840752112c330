"""How the one error middleware answers when the database goes away mid-request.

Found by the fault runs (bench/chaos): PostgreSQL SIGKILLed while a hub served node
batches left a pooled connection mid-protocol, and its next use raised asyncpg's
``InternalClientError`` ("cannot switch to state 12; another operation (2) is in
progress"), which the hub answered as a 500 ``internal``. The database being gone
is the designed 503 ``unavailable`` (retryable), whichever way asyncpg reports it;
a client-side data error of ours stays a 500.
"""

from __future__ import annotations

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from server_common.web import error_middleware


def make_app(exc: BaseException) -> web.Application:
    async def broken(request: web.Request) -> web.Response:
        raise exc

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/broken", broken)
    return app


@pytest.mark.parametrize("exc", [
    asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in "
                                "progress"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.CannotConnectNowError("the database system is in recovery mode"),
    ConnectionRefusedError(111, "Connection refused"),
], ids=lambda e: type(e).__name__)
async def test_database_gone_is_unavailable(aiohttp_client: AiohttpClient,
                                            exc: BaseException) -> None:
    client: TestClient = await aiohttp_client(make_app(exc))
    resp = await client.get("/broken")
    assert resp.status == 503
    assert (await resp.json())["error"] == {
        "code": "unavailable", "message": "the database is unavailable; try again",
        "retryable": True}


async def test_our_data_error_stays_internal(aiohttp_client: AiohttpClient) -> None:
    client: TestClient = await aiohttp_client(make_app(
        asyncpg.DataError("invalid input for query argument $1")))
    resp = await client.get("/broken")
    assert resp.status == 500
    assert (await resp.json())["error"]["code"] == "internal"
