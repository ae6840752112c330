"""Federation health: real nodes and hand-signed requests drive councils into each
state (synced, behind, stopped, never heard from, forked, keys expiring, revoked or
expired), and the status and every reason show in GET /v1/federation/health and in
``national-hub status``; the lag and throughput history follows them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from national_hub.config import HealthSection, HubConfig
from national_hub.services.container import HubServices
from national_hub.services.councils import CouncilService
from national_hub.services.health import span
from national_hub.storage.councils import CouncilStore
from national_hub.storage.heartbeats import HeartbeatStore
from protocol import encoding, keys
from protocol.batch import GENESIS, UpsertOp
from protocol.errors import ErrorCode, SignpostError
from server_common import config as config_module
from server_common.config import ConfigError, Duration
from server_common.web import error_response
from tests.conftest import DatabaseFactory
from tests.federation import Hub, Node, running_hub, running_node
from tests.national_hub.helpers import Client, batch_bytes, error_code, record
from tests.processes import script

SYNCED, BEHIND, STOPPED = "E10000011", "E10000032", "E06000020"
SILENT, FORKED, EXPIRING, SOON, REVOKED, EXPIRED, ROTATED = (
    "E06000001", "E06000002", "E06000003", "E06000004", "E06000005", "E06000006",
    "E06000007")
NAMES = ("Amelia", "Ben", "Cara", "Dan", "Eve", "Finn")


def write_feed(path: Path) -> Path:
    path.write_text("source_ref,given_name,family_name,dob,sex,postcode\n" + "".join(
        f"R{i},{name},Okafor,2015-03-1{i},F,BN1 1AA\n" for i, name in enumerate(NAMES)),
        encoding="utf-8")
    return path


Refusal = Callable[[web.Request], web.Response | None]


def database_down(request: web.Request) -> web.Response | None:
    """A batch answered as a hub whose database is down would (503 ``unavailable``,
    retryable); None for anything else (cursor reads, heartbeats)."""
    if not request.path.endswith("/batches"):
        return None
    return error_response(503, ErrorCode.UNAVAILABLE, "hub database unavailable",
                          retryable=True)


class RefusingProxy:
    """Stands between a node and the hub. While ``refusing``, a request ``refusal``
    answers (``database_down`` by default) gets that answer, counted in ``refused``;
    every other request passes through to the real hub."""

    def __init__(self, target: str, refusal: Refusal = database_down) -> None:
        self.target = target
        self.refusal = refusal
        self.refusing = True
        self.refused = 0
        self.server = TestServer(self._app(), host="127.0.0.1")

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    def _app(self) -> web.Application:
        async def forward(request: web.Request) -> web.Response:
            body = await request.read()
            if self.refusing and (refused := self.refusal(request)) is not None:
                self.refused += 1
                return refused
            headers = {k: v for k, v in request.headers.items()
                       if k.lower() not in ("host", "content-length", "transfer-encoding")}
            async with aiohttp.ClientSession() as session, session.request(
                    request.method, self.target + request.path_qs, data=body,
                    headers=headers) as resp:
                return web.Response(body=await resp.read(), status=resp.status,
                                    content_type=resp.content_type)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        return app


@contextlib.asynccontextmanager
async def refusing_proxy(target: str,
                         refusal: Refusal = database_down) -> AsyncIterator[RefusingProxy]:
    proxy = RefusingProxy(target, refusal)
    await proxy.server.start_server()
    try:
        yield proxy
    finally:
        await proxy.server.close()


async def hand_council(hub: Hub, code: str) -> Client:
    """A council enrolled at the hub whose requests the test signs by hand."""
    key = keys.generate()
    await hub.enrol(code, keys.public_pem(key.public_key()))
    return Client(hub, code, key)


async def beat(client: Client, head_seq: int, outbox_depth: int = 0) -> None:
    body = encoding.pack({"head_seq": head_seq, "outbox_depth": outbox_depth})
    status, data, _ = await client.send(body, tail="heartbeats")
    assert status == 200, data


async def get_json(hub: Hub, path: str) -> tuple[int, Any]:
    """GET as an operator (the only role federation health is for)."""
    async with aiohttp.ClientSession(headers=await hub.operator()) as session, \
            session.get(hub.url + path) as resp:
        return resp.status, await resp.json()


async def hub_cli(database_url: str, *args: str) -> str:
    env = dict(os.environ) | {"NATIONAL_HUB__DATABASE__URL": database_url}
    result = await asyncio.to_thread(subprocess.run, [script("national-hub"), *args],
                                     env=env, text=True, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def parse_table(text: str) -> dict[str, tuple[str, list[str]]]:
    """``national-hub status`` → council code → (status, reasons)."""
    out: dict[str, tuple[str, list[str]]] = {}
    current = None
    for line in text.splitlines()[2:]:
        if line.startswith(" "):
            assert current is not None and line.strip().startswith("- "), line
            out[current][1].append(line.strip()[2:])
        else:
            current = line.split()[0]
            status = next(word for word in line.split() if word in ("GOOD", "WARN", "BAD"))
            out[current] = (status, [])
    return out


async def set_key(hub: Hub, kid: str, sql_set: str) -> None:
    await hub.fetchval(f"UPDATE council_keys SET {sql_set} WHERE kid = $1", kid)


async def test_each_council_state_shows_with_its_reasons(make_database: DatabaseFactory,
        tmp_path: Path) -> None:
    feed = write_feed(tmp_path / "education.csv")
    hub_db = await make_database()
    async with contextlib.AsyncExitStack() as stack:
        hub = await stack.enter_async_context(running_hub(hub_db, tmp_path))
        proxy = await stack.enter_async_context(refusing_proxy(hub.url))

        async def node(code: str, **kw: Any) -> Node:
            made = await stack.enter_async_context(
                running_node(code, await make_database(), tmp_path, hub, **kw))
            await made.ingest("education", feed)
            return made

        synced, stopped = await node(SYNCED), await node(STOPPED)
        # one record a batch, all six in flight at once: six batches the hub never gets
        behind = await node(BEHIND, hub_url=proxy.url, batch_size=1, pipeline=8)
        await synced.publish()
        await stopped.publish()
        async with behind.publisher(max_attempts=1) as publisher:
            with pytest.raises(SignpostError) as refused:
                await publisher.publish_all()
            assert refused.value.code == ErrorCode.UNAVAILABLE
            await publisher.heartbeat()  # heartbeats still get through: head 6, hub 0
        # The stopped node's last heartbeat is aged in SQL rather than by sleeping 15 min.
        await hub.fetchval("UPDATE heartbeats SET received_at = now() - interval '15 minutes'"
                           " WHERE council_code = $1", STOPPED)

        await hand_council(hub, SILENT)
        forked = await hand_council(hub, FORKED)
        first, _ = batch_bytes(FORKED, 1, GENESIS, [UpsertOp.of(record("L1"), 1)], forked.key)
        other, _ = batch_bytes(FORKED, 1, GENESIS, [UpsertOp.of(record("L1"), 2)], forked.key)
        assert (await forked.send(first))[0] == 200
        status, body, _ = await forked.send(other)
        assert status == 409 and error_code(body) == "fork"
        await beat(forked, 1)

        kids = {}
        for code in (EXPIRING, SOON, REVOKED, EXPIRED, ROTATED):
            client = await hand_council(hub, code)
            await beat(client, 0)  # a key refused later cannot sign a heartbeat
            kids[code] = keys.key_id(client.key.public_key())
        await set_key(hub, kids[EXPIRING], "not_after = now() + interval '3 days'")
        await set_key(hub, kids[SOON], "not_after = now() + interval '20 days'")
        await set_key(hub, kids[EXPIRED], "not_after = now() - interval '2 days'")
        await CouncilService(hub.pool, CouncilStore(), HeartbeatStore()).revoke_key(
            kids[REVOKED])
        # Rotation leaves the old key expiring at the end of the overlap: while the new
        # key lives on, that is no reason for concern.
        new_kid = await hub.enrol(ROTATED, keys.public_pem(keys.generate().public_key()))
        await set_key(hub, kids[ROTATED], "not_after = now() + interval '1 hour'")

        status, health = await get_json(hub, "/v1/federation/health")
        assert status == 200
        councils = {c["code"]: c for c in health["councils"]}
        expected = {
            SYNCED: ("GOOD", []),
            BEHIND: ("WARN", ["lag 6 batches"]),
            STOPPED: ("BAD", ["no heartbeat for 15 min"]),
            SILENT: ("WARN", ["never sent a heartbeat"]),
            FORKED: ("BAD", ["1 batch rejected in 24 h (fork: 1)",
                             "forked: seq 1 was already applied with a different hash"]),
            EXPIRING: ("BAD", [f"key {kids[EXPIRING][:8]}… expires in 3 days"]),
            SOON: ("WARN", [f"key {kids[SOON][:8]}… expires in 20 days"]),
            REVOKED: ("BAD", ["no usable key: all revoked"]),
            EXPIRED: ("BAD", [f"no usable key: all expired (key {kids[EXPIRED][:8]}… "
                              "expired 2 days ago)"]),
            ROTATED: ("GOOD", []),
        }
        assert {code: (c["status"], c["reasons"]) for code, c in councils.items()} == expected
        assert health["status"] == "BAD"

        good = councils[SYNCED]
        assert good["name"] == "East Sussex"
        assert good["hub_seq"] == good["node_seq"] == 1 and good["lag"] == 0
        assert good["outbox_depth"] == 0 and good["records"] == len(NAMES)
        assert good["last_batch_at"] and good["seconds_since_heartbeat"] < 60
        assert good["rejected_24h"] == {} and not good["forked"]
        assert good["key_expiry_days"] is None and good["review_queue"] == 0
        assert (councils[BEHIND]["hub_seq"], councils[BEHIND]["node_seq"]) == (0, 6)
        assert councils[BEHIND]["records"] == 0
        assert councils[STOPPED]["seconds_since_heartbeat"] >= 900
        assert councils[SILENT]["node_seq"] is None and councils[SILENT]["lag"] is None
        assert councils[FORKED]["forked"] and councils[FORKED]["rejected_24h"] == {"fork": 1}
        assert councils[EXPIRING]["key_expiry_days"] == pytest.approx(3, abs=0.01)
        assert councils[EXPIRED]["key_expiry_days"] == pytest.approx(-2, abs=0.01)
        assert councils[REVOKED]["key_expiry_days"] is None
        assert councils[ROTATED]["key_expiry_days"] is None

        # the terminal table and its --json say the same
        table = parse_table(await hub_cli(hub_db, "status"))
        assert table == expected
        as_json = json.loads(await hub_cli(hub_db, "status", "--json"))
        assert {c["code"]: (c["status"], c["reasons"]) for c in as_json["councils"]} == expected

        # thresholds come from configuration
        lenient = HubServices(replace(hub.config, health=HealthSection(
            lag_warn=10, lag_bad=20, heartbeat_warn=Duration(3600),
            heartbeat_bad=Duration(7200))), hub.pool).health
        relaxed = await lenient.snapshot()
        assert [getattr(relaxed.council(code), "status", None)
                for code in (BEHIND, STOPPED)] == ["GOOD", "GOOD"]
        await hub.fetchval("UPDATE heartbeats SET received_at = now() - interval '3 minutes'"
                           " WHERE council_code = $1", STOPPED)
        stopped_now = (await HubServices(hub.config, hub.pool).health.snapshot()
                       ).council(STOPPED)
        assert stopped_now is not None
        assert (stopped_now.status, stopped_now.reasons) == ("WARN", ["no heartbeat for 3 min"])

        # after the overlap the old key has expired, and only the new key's expiry counts
        await set_key(hub, kids[ROTATED], "not_after = now() - interval '1 day'")
        await set_key(hub, new_kid, "not_after = now() + interval '5 days'")
        rotated = (await HubServices(hub.config, hub.pool).health.snapshot()
                   ).council(ROTATED)
        assert rotated is not None
        assert (rotated.status, rotated.reasons) == ("BAD",
                                                     [f"key {new_kid[:8]}… expires in 5 days"])

        # the hub stops refusing and the stopped node comes back: both are GOOD again
        proxy.refusing = False
        await behind.publish()
        await stopped.publish()
        _, health = await get_json(hub, "/v1/federation/health")
        councils = {c["code"]: c for c in health["councils"]}
        for code in (BEHIND, STOPPED):
            assert (councils[code]["status"], councils[code]["reasons"]) == ("GOOD", [])
        assert councils[BEHIND]["hub_seq"] == councils[BEHIND]["node_seq"] == 6
        assert councils[BEHIND]["records"] == len(NAMES)


async def test_history_charts_lag_and_records_applied(make_database: DatabaseFactory,
        tmp_path: Path) -> None:
    feed = write_feed(tmp_path / "education.csv")
    async with running_hub(await make_database(), tmp_path) as hub, \
            refusing_proxy(hub.url) as proxy, \
            running_node(BEHIND, await make_database(), tmp_path, hub, hub_url=proxy.url,
                         batch_size=2, pipeline=8) as node:
        await node.ingest("education", feed)
        async with node.publisher(max_attempts=1) as publisher:
            with pytest.raises(SignpostError):
                await publisher.publish_all()
            await publisher.heartbeat()

        status, body = await get_json(hub, "/v1/federation/history?hours=1")
        assert status == 200 and body["hours"] == 1 and body["bucket_seconds"] == 300
        series = body["councils"][BEHIND]
        assert len(series) in (12, 13)  # an hour of five-minute buckets
        assert series[-1] == {"t": series[-1]["t"], "lag": 3, "hub_seq": 0,
                              "records_applied": 0}
        assert {p["lag"] for p in series} == {None, 3}  # no lag known before the heartbeat

        proxy.refusing = False
        await node.publish()
        series = (await HubServices(hub.config, hub.pool).health.history(1))[BEHIND]
        assert (series[-1]["lag"], series[-1]["hub_seq"]) == (0, 3)
        assert sum(p["records_applied"] for p in series) == len(NAMES)

        # batches applied before the window still set where hub seq starts
        await hub.fetchval("UPDATE batches SET applied_at = now() - interval '2 hours'")
        series = (await HubServices(hub.config, hub.pool).health.history(1))[BEHIND]
        assert {p["hub_seq"] for p in series} == {3}
        assert sum(p["records_applied"] for p in series) == 0

        for bad in ("0", "-1", "48.5", "abc", "nan", "inf", ""):
            status, body = await get_json(hub, f"/v1/federation/history?hours={bad}")
            assert status == 400 and body["error"]["code"] == "invalid_field", bad
        assert (await get_json(hub, "/v1/federation/history?hours=48"))[0] == 200

        # each heartbeat drops the council's history older than 48 h
        for age in ("49 hours", "47 hours"):
            await hub.fetchval(
                "INSERT INTO heartbeat_history (council_code, received_at, head_seq,"
                f" outbox_depth, hub_seq) VALUES ($1, now() - interval '{age}', 0, 0, 0)",
                BEHIND)
        await node.publish()  # and heartbeat
        ages = await hub.fetchval(
            "SELECT array_agg(round(extract(epoch FROM now() - received_at) / 3600)"
            " ORDER BY received_at) FROM heartbeat_history WHERE council_code = $1", BEHIND)
        assert isinstance(ages, list) and ages[0] == 47 and 49 not in ages


def test_health_thresholds_are_validated_at_start_up() -> None:
    def load(**health: object) -> HubConfig:
        return config_module.load(HubConfig, "T", None, {"health": health}, environ={})

    assert load(heartbeat_warn="3m").health.heartbeat_warn == 180
    assert load().health.key_expiry_warn == 30 * 86400
    with pytest.raises(ConfigError, match=r"health\.lag_warn"):
        load(lag_warn=60)
    with pytest.raises(ConfigError, match="key_expiry_warn"):
        load(key_expiry_warn="1d")
    with pytest.raises(ConfigError, match=r"health\.heartbeat_bad"):
        load(heartbeat_bad="soon")


def test_spans_read_as_people_say_them() -> None:
    assert [span(s) for s in (4, 200, 720, 5 * 3600, 86400 * 1.2, 9 * 86400)] == [
        "4 s", "3 min", "12 min", "5 h", "29 h", "9 days"]


async def test_a_heartbeat_overtaken_on_the_way_does_not_replace_the_newer(hub: Hub) -> None:
    """Two heartbeats in flight at once: the one sent first arriving last kept its older
    head and outbox depth as the council's, and the status page showed the node behind
    where it was. A heartbeat is kept by when the node sent it."""
    client = await hand_council(hub, "E10000014")

    async def beat_sent(head_seq: int, sent_at: str) -> None:
        body = encoding.pack({"head_seq": head_seq, "outbox_depth": 10 - head_seq,
                              "sent_at": sent_at})
        status, data, _ = await client.send(body, tail="heartbeats")
        assert status == 200, data

    await beat_sent(7, "2026-12-07T10:00:30Z")
    await beat_sent(5, "2026-12-07T10:00:00Z")  # sent first, overtaken
    async with hub.pool.acquire() as conn:
        kept = await HeartbeatStore().get(conn, "E10000014")
    assert kept is not None and (kept["head_seq"], kept["outbox_depth"]) == (7, 3)
    assert await hub.fetchval("SELECT count(*) FROM heartbeat_history"
                              " WHERE council_code = 'E10000014'") == 1
    await beat_sent(9, "2026-12-07T10:01:00Z")  # the next one is kept as ever
    async with hub.pool.acquire() as conn:
        kept = await HeartbeatStore().get(conn, "E10000014")
    assert kept is not None and kept["head_seq"] == 9
