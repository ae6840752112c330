"""The node's key lifecycle: the key file is re-read when replaced, ``keys rotate``
announces a new key and switches only after the hub enrolled it, an interrupted
rotation resumes with the same key, and a node rotates while publishing in another
process with nothing refused or lost."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from local_node.app import rotate_key
from local_node.keyfile import KeyFile, archive_path, pending_path
from local_node.transport import HubClient
from protocol import keys
from protocol.key_announcement import KeyAnnouncement
from tests.conftest import DatabaseFactory
from tests.federation import Hub, Node, running_hub, running_node
from tests.polling import until
from tests.processes import Process, node_env, script

ESX = "E10000011"


# the `feeds` fixture (tests/conftest.py) writes this population once
pytestmark = pytest.mark.feeds([ESX], 800, seed=23)


def kid_of(path: Path) -> str:
    return keys.key_id(keys.load_private_key(path).public_key())


async def hub_kids(hub: Hub) -> list[str]:
    """The kid that signed each batch the hub applied, in seq order."""
    return list(await hub.fetchval("SELECT coalesce(array_agg(kid ORDER BY seq), '{}')"
                                   " FROM batches") or [])


def test_key_file_follows_an_atomic_replacement(tmp_path: Path) -> None:
    path = tmp_path / "council_key.pem"
    first, second = keys.generate(), keys.generate()
    keys.write_private_key(first, path)
    source = KeyFile(path)
    assert keys.key_id(source().public_key()) == keys.key_id(first.public_key())
    keys.write_private_key(second, path)  # a new inode: seen even within the same mtime tick
    assert keys.key_id(source().public_key()) == keys.key_id(second.public_key())
    assert source.kid == keys.key_id(keys.load_public_key(
        keys.public_path_for(path).read_bytes()))
    assert (path.stat().st_mode & 0o777) == 0o600
    path.unlink()  # an operator moved it away: keep signing with the key in hand
    assert keys.key_id(source().public_key()) == keys.key_id(second.public_key())


async def test_rotate_switches_after_the_hub_enrols_and_publishing_goes_on(
        make_database: DatabaseFactory, tmp_path: Path, feeds: Path) -> None:
    async with running_hub(await make_database(), tmp_path) as hub, \
            running_node(ESX, await make_database(), tmp_path, hub) as node:
        await node.ingest("education", feeds / ESX / "education.csv")
        await node.publish()
        key_file = node.config.key_file

        outcome = await rotate_key(node.config)
        assert (outcome.old_kid, outcome.resumed) == (node.kid, False)
        assert kid_of(key_file) == outcome.new_kid != node.kid
        assert outcome.archived == archive_path(key_file, node.kid)
        assert kid_of(outcome.archived) == node.kid
        assert not pending_path(key_file).exists()
        assert outcome.new_not_after is None and outcome.old_not_after is not None
        assert await hub.fetchval("SELECT council_code FROM council_keys WHERE kid = $1",
                                  outcome.new_kid) == ESX
        # what the hub said about each key is kept for `local-node status`
        assert await node.fetchval("SELECT not_after IS NULL FROM key_status WHERE kid = $1",
                                   outcome.new_kid) is True
        assert await node.fetchval("SELECT not_after IS NOT NULL FROM key_status"
                                   " WHERE kid = $1", node.kid) is True

        before = len(await hub_kids(hub))
        await node.ingest("health", feeds / ESX / "health.csv")
        assert (await node.publish()).records_rejected == 0
        kids = await hub_kids(hub)
        assert len(kids) > before and set(kids[before:]) == {outcome.new_kid}
        assert await hub.digests(ESX) == await node.projection()


async def test_the_hub_reports_the_key_expiry_and_the_node_warns(
        make_database: DatabaseFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with running_hub(await make_database(), tmp_path) as hub, \
            running_node(ESX, await make_database(), tmp_path, hub) as node:
        await node.publish()
        assert await node.fetchval("SELECT not_after IS NULL FROM key_status WHERE kid = $1",
                                   node.kid) is True  # reported: no expiry
        soon = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
        await hub.fetchval("UPDATE council_keys SET not_after = $2 WHERE kid = $1",
                           node.kid, soon)
        with caplog.at_level(logging.WARNING, logger="local_node.services.publisher"):
            await node.publish()
        assert await node.fetchval("SELECT not_after FROM key_status WHERE kid = $1",
                                   node.kid) == soon
        warnings = [r for r in caplog.records if "expires soon" in r.getMessage()]
        assert len(warnings) == 1 and getattr(warnings[0], "days_left", None) == 3.0


async def _announce_only(node: Node, hub: Hub, new_path: Path) -> None:
    """What a rotation that stopped right after the hub's answer has done."""
    old = keys.load_private_key(node.config.key_file)
    new = keys.load_private_key(new_path)
    envelope = KeyAnnouncement.of(ESX, old, new, issued_at="2026-01-01T00:00:00Z").sign(old, new)
    async with aiohttp.ClientSession() as session:
        await HubClient(hub.url, ESX, old, session).post_key_announcement(envelope.encode(), old)


@pytest.mark.parametrize("stopped", ["before_announcing", "after_announcing", "after_switch"])
async def test_an_interrupted_rotation_resumes_with_the_same_key(
        make_database: DatabaseFactory, tmp_path: Path, stopped: str) -> None:
    async with running_hub(await make_database(), tmp_path) as hub, \
            running_node(ESX, await make_database(), tmp_path, hub) as node:
        key_file = node.config.key_file
        pending = pending_path(key_file)
        new = keys.generate()
        keys.write_private_key(new, pending)
        new_kid = keys.key_id(new.public_key())
        if stopped == "after_announcing":
            await _announce_only(node, hub, pending)
        if stopped == "after_switch":
            keys.write_private_key(new, key_file)
            outcome = await rotate_key(node.config)
            assert outcome.already_done and outcome.new_kid == new_kid
            assert not pending.exists() and kid_of(key_file) == new_kid
            return

        outcome = await rotate_key(node.config)
        assert outcome.resumed and outcome.new_kid == new_kid and kid_of(key_file) == new_kid
        assert not pending.exists()
        assert await hub.fetchval("SELECT count(*) FROM council_keys") == 2
        assert (await node.publish()).batches_sent == 0  # the new key is accepted


async def _run(args: list[str], env: dict[str, str]) -> str:
    """A CLI command as a process, without blocking this loop (the hub runs in it)."""
    proc = await asyncio.create_subprocess_exec(*args, env=env,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, (out + err).decode()
    return out.decode()


async def test_rotation_under_load_refuses_and_loses_nothing(
        make_database: DatabaseFactory, tmp_path: Path, feeds: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """``local-node publish`` runs as its own process; ``local-node keys rotate`` runs in
    another while batches are in flight. The publisher picks up the new key file by
    itself; the hub refuses nothing and ends with exactly the node's projection."""
    caplog.set_level(logging.INFO, logger="server_common.web")
    node_db = await make_database()
    # The default wait for a pipelined batch's predecessor: the test's short one could
    # turn a slow moment of a busy machine into a seq_gap retry, which is not the point here.
    async with running_hub(await make_database(), tmp_path, predecessor_wait="5s") as hub, \
            running_node(ESX, node_db, tmp_path, hub) as node:
        await node.ingest("education", feeds / ESX / "education.csv")
        env = node_env(ESX, node_db, node.config.key_file, hub.url, hub.public_key_file) | {
            "LOCAL_NODE__PUBLISHER__BATCH_SIZE": "20"}
        log = tmp_path / "publisher.log"
        publisher = Process([script("local-node"), "publish"], env, log)

        async def hub_seq() -> int:
            return int(await hub.fetchval("SELECT cursor_seq FROM councils WHERE code = $1",
                                          ESX) or 0)

        async def synced() -> bool:
            depth = await node.fetchval("SELECT count(*) FROM outbox WHERE batch_seq IS NULL")
            unreceipted = await node.fetchval(
                "SELECT count(*) FROM sent_batches WHERE receipt IS NULL")
            head = await node.fetchval("SELECT coalesce(max(seq), 0) FROM sent_batches")
            return depth == 0 and unreceipted == 0 and head == await hub_seq()

        try:
            publisher.start()
            await until(lambda: _at_least(hub_seq, 3), "publishing to start", limit=30,
                        tolerate=(Exception,))
            seq_before = await hub_seq()
            rotated = await _run([script("local-node"), "keys", "rotate"], env)
            seq_at_switch = await hub_seq()
            # more changes after the switch: these batches can only be signed by the new key
            await node.ingest("health", feeds / ESX / "health.csv")
            await until(synced, "the node to publish everything", limit=60,
                        tolerate=(Exception,))
            assert publisher.alive()
        finally:
            publisher.kill()
        status = await _run([script("local-node"), "status"], env)

        new_kid = kid_of(node.config.key_file)
        assert seq_at_switch > seq_before, "the hub kept applying batches during the rotation"
        assert f"-> {new_kid}" in rotated and new_kid != node.kid
        assert kid_of(archive_path(node.config.key_file, node.kid)) == node.kid

        # nothing lost: the hub holds exactly the node's projection, every batch once
        # with a receipt at the node
        assert await hub.digests(ESX) == await node.projection()
        async with hub.pool.acquire() as conn:
            hub_batches = [(r["seq"], r["hash"], r["kid"]) for r in await conn.fetch(
                "SELECT seq, hash, kid FROM batches ORDER BY seq")]
            hub_rejected = await conn.fetchval("SELECT count(*) FROM rejected_batches")
        async with node.pool.acquire() as conn:
            node_batches = [(r["seq"], r["hash"]) for r in await conn.fetch(
                "SELECT seq, hash FROM sent_batches WHERE receipt IS NOT NULL ORDER BY seq")]
            assert await conn.fetchval("SELECT count(*) FROM publish_rejections") == 0
        assert [(s, h) for s, h, _ in hub_batches] == node_batches
        # the old key signed the first batches, the new key every one after the switch
        kids = [k for _, _, k in hub_batches]
        switch = kids.index(new_kid)
        assert switch >= 3 and kids[:switch] == [node.kid] * switch
        assert kids[switch:] == [new_kid] * (len(kids) - switch) and len(kids) > seq_at_switch

        # nothing refused: no error answer from the hub, no retry at the node
        answers = [(getattr(r, "status", None), getattr(r, "path", None))
                   for r in caplog.records
                   if r.name == "server_common.web" and r.getMessage() == "request"]
        assert len(answers) > len(hub_batches)  # every batch, cursor read and heartbeat
        # (499: a request in flight when the test killed the publisher, not a refusal)
        assert [(s, p) for s, p in answers if s is None or (s >= 400 and s != 499)] == [] \
            and hub_rejected == 0
        publisher_log = log.read_text()
        assert "retrying" not in publisher_log and "refused publishing" not in publisher_log
        assert "signing key changed" in publisher_log

        assert f"key id           {new_kid}" in status
        assert "key expires      never" in status


async def _at_least(fn: Callable[[], Awaitable[int]], n: int) -> bool:
    return bool(await fn() >= n)
