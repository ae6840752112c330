"""A node request is judged on its signature headers before its body is read (docs/
PROTOCOL.md §9): a request from an unknown key, with a stale timestamp or a spent
nonce is refused at once, without the hub waiting for (or holding) a body it claims;
a genuine one whose body trickles in is cut off after ``hub.node_body_timeout`` with
408 ``request_timeout``. The signature is still checked over the exact body bytes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from yarl import URL

from protocol import encoding, keys, request_auth
from tests.conftest import DatabaseFactory
from tests.hub_harness import Hub
from tests.national_hub.helpers import Client, error_code
from tests.security.surface import ESX, hub_with_child

HEARTBEAT = f"/v1/councils/{ESX}/heartbeats"
BODY = encoding.pack({"head_seq": 1, "outbox_depth": 0})


async def claim(hub: Hub, headers: dict[str, str], length: int,
                sent: bytes = b"") -> tuple[int, bytes]:
    """POST a heartbeat whose head says ``length`` bytes follow, send only ``sent`` of
    them, and wait (at most 10 s) for the answer: (status, the rest of the answer)."""
    url = URL(hub.url)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        head = [f"POST {HEARTBEAT} HTTP/1.1", f"Host: {url.host}:{url.port}",
                "Content-Type: application/msgpack", f"Content-Length: {length}",
                *(f"{k}: {v}" for k, v in headers.items()), "", ""]
        writer.write("\r\n".join(head).encode() + sent)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=10)
        rest = await asyncio.wait_for(reader.read(4096), timeout=10)
        return int(status_line.split()[1]), rest
    finally:
        writer.close()


async def nonces(hub: Hub) -> int:
    return int(await hub.fetchval("SELECT count(*) FROM request_nonces"))


@pytest.mark.parametrize("case", ["unknown_key", "stale_timestamp", "replayed_nonce",
                                  "origin_mismatch"])
async def test_what_the_headers_settle_is_refused_before_the_body(
        make_database: DatabaseFactory, tmp_path: Path, case: str) -> None:
    async with hub_with_child(await make_database(), tmp_path) as (hub, esx, _):
        if case == "unknown_key":
            headers = request_auth.sign_request(keys.generate(), "POST", HEARTBEAT, BODY, ESX)
        elif case == "stale_timestamp":
            headers = request_auth.sign_request(esx.key, "POST", HEARTBEAT, BODY, ESX,
                                                now=time.time() - 3600)
        elif case == "origin_mismatch":
            headers = request_auth.sign_request(esx.key, "POST", HEARTBEAT, BODY,
                                                "E10000032")
        else:
            status, _, headers = await esx.send(BODY, tail="heartbeats")
            assert status == 200
        before = await nonces(hub)
        # the body it signed is claimed, never sent: the answer comes from the headers
        status, rest = await claim(hub, headers, len(BODY))
        expected = {"unknown_key": (401, "unknown_key"),
                    "stale_timestamp": (401, "auth_stale_timestamp"),
                    "replayed_nonce": (401, "auth_replayed_nonce"),
                    "origin_mismatch": (403, "auth_origin_mismatch")}[case]
        assert (status, error_code(rest[rest.index(b"{"):])) == expected
        assert await nonces(hub) == before


async def test_a_body_that_trickles_in_is_cut_off(make_database: DatabaseFactory,
                                                  tmp_path: Path) -> None:
    async with hub_with_child(await make_database(), tmp_path,
                              node_body_timeout="1s") as (hub, esx, _):
        before = await nonces(hub)
        headers = request_auth.sign_request(esx.key, "POST", HEARTBEAT, BODY, ESX)
        started = time.monotonic()
        status, rest = await claim(hub, headers, len(BODY), sent=BODY[:3])
        assert (status, error_code(rest[rest.index(b"{"):])) == (408, "request_timeout")
        assert time.monotonic() - started < 5
        assert await nonces(hub) == before  # never verified, so its nonce is not spent
        # the same request sent whole goes through: the signature covers the exact body
        status, data, _ = await Client(hub, ESX, esx.key).send(BODY, tail="heartbeats",
                                                               headers=headers)
        assert status == 200, data
