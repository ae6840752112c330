"""Node-endpoint bodies are capped before the signature check (docs/security.md "The
attack surface"): a body over ``hub.max_node_body_bytes`` is refused 413
``payload_too_large`` as soon as that is known (from Content-Length, before a byte of it
is read; else while reading), before any hashing or verification: a forged request over
the cap is 413, not 401, and a genuine one leaves no nonce behind. People's requests
have their own, small cap."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from yarl import URL

from protocol import keys, request_auth
from protocol.batch import UpsertOp
from tests.conftest import DatabaseFactory
from tests.hub_harness import Hub
from tests.national_hub.helpers import batch_bytes, error_code, record
from tests.security.surface import ESX, hub_with_child

CAP = 64 * 1024


async def nonces(hub: Hub) -> int:
    return await hub.fetchval("SELECT count(*) FROM request_nonces")


async def test_node_bodies_over_the_cap_are_refused_before_verification(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    async with hub_with_child(await make_database(), tmp_path,
                              max_node_body_bytes=CAP) as (hub, esx, _):
        # a genuine batch under the cap is taken as ever
        body, _ = batch_bytes(ESX, 2, await hub.fetchval(
            "SELECT cursor_hash FROM councils WHERE code = $1", ESX),
            [UpsertOp.of(record("A2"), 1)], esx.key)
        assert len(body) < CAP
        assert (await esx.send(body))[0] == 200
        before = await nonces(hub)

        oversized = body + b"\x00" * CAP
        # signed by the council's own key: refused for its size, never verified (no nonce
        # is remembered, which happens only after the signature verifies)
        status, data, _ = await esx.send(oversized)
        assert (status, error_code(data)) == (413, "payload_too_large")
        assert await nonces(hub) == before
        # forged (a stranger's key): 413 too, not 401: the signature was never looked at
        status, data, _ = await esx.send(oversized, key=keys.generate())
        assert (status, error_code(data)) == (413, "payload_too_large")
        # signed, streamed without a Content-Length: refused while reading
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(4 * CAP // 4096):
                yield b"\x00" * 4096

        path = f"/v1/councils/{ESX}/heartbeats"
        async with aiohttp.ClientSession() as http, http.post(
                hub.url + path, data=chunks(),
                headers=request_auth.sign_request(esx.key, "POST", path, b"", ESX)) as resp:
            assert resp.status == 413
            assert (await resp.json())["error"]["code"] == "payload_too_large"
        # with no signature at all it is refused from its headers, before a byte is read
        async with aiohttp.ClientSession() as http, http.post(
                hub.url + path, data=chunks()) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["code"] == "auth_missing"
        assert await nonces(hub) == before
        assert await hub.fetchval("SELECT count(*) FROM records") == 2


async def test_a_claimed_huge_body_is_refused_before_it_is_sent(make_database: DatabaseFactory,
                                                                tmp_path: Path) -> None:
    """An attacker announces a gigabyte and sends a few bytes: the answer comes at once,
    from the headers alone; the hub does not wait for (or hold) the rest."""
    async with hub_with_child(await make_database(), tmp_path) as (hub, _, _):
        url = URL(hub.url)
        path = f"/v1/councils/{ESX}/batches"
        headers = request_auth.sign_request(keys.generate(), "POST", path, b"", ESX)
        reader, writer = await asyncio.open_connection(url.host, url.port)
        try:
            head = [f"POST {path} HTTP/1.1", f"Host: {url.host}:{url.port}",
                    "Content-Type: application/msgpack", f"Content-Length: {2**30}",
                    *(f"{k}: {v}" for k, v in headers.items()), "", ""]
            writer.write("\r\n".join(head).encode() + b"\x00" * 100)
            await writer.drain()
            status_line = await asyncio.wait_for(reader.readline(), timeout=10)
            assert status_line.split()[1] == b"413", status_line
            rest = await asyncio.wait_for(reader.read(4096), timeout=10)
            assert b"payload_too_large" in rest
        finally:
            writer.close()


async def test_peoples_requests_have_a_small_cap(make_database: DatabaseFactory,
        tmp_path: Path) -> None:
    async with hub_with_child(await make_database(), tmp_path) as (hub, _, _):
        form = io.BytesIO(b"name=" + b"a" * (2 * 1024 * 1024))
        async with aiohttp.ClientSession() as http, http.post(
                hub.url + "/login", data=form,
                headers={"Content-Type": "application/x-www-form-urlencoded"}) as resp:
            assert resp.status == 413
            assert (await resp.json())["error"]["code"] == "payload_too_large"
