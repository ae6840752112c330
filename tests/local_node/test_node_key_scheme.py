"""Blocking keys made again when the code makes other keys (``KEY_SCHEME``): the node.

A node upgraded from scheme 1 holds its children's ``fy:`` keys, which scheme 2 no
longer makes: a new row would never meet an old child through ``fg:`` and ``fd:``. One
upgraded from scheme 2 lacks scheme 3's keys of a surname without its particle and of a
name in another script transliterated.
``local-node db upgrade`` makes every keyed child's keys again; until it has, the node
refuses to load a feed, as it does while a migration is missing.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import asyncpg

import synthetic
from local_node.app import PACKAGE
from local_node.services.ingest import child_fields, keys_for
from local_node.storage.children import ChildStore
from protocol.matching.blocking import KEY_SCHEME
from server_common import database
from tests.conftest import DatabaseFactory
from tests.hub_harness import upgrade_until
from tests.processes import Process, free_port, script, wait_ready

ESX = "E10000011"
BEFORE = 9  # the last migration before the scheme was recorded


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([script("local-node"), *args], env=env, text=True,
                          capture_output=True, timeout=300)


async def held_keys(conn: asyncpg.Connection) -> set[tuple[str, str]]:
    return {(r["key"], r["local_id"])
            for r in await conn.fetch("SELECT key, local_id FROM child_blocking_keys")}


async def test_a_node_holding_keys_is_marked_as_keyed_by_scheme_one(
        make_database: DatabaseFactory) -> None:
    conn = await asyncpg.connect(await make_database())
    try:
        await upgrade_until(conn, PACKAGE, BEFORE)
        await conn.execute("INSERT INTO child_blocking_keys (key, local_id)"
                           " VALUES ('fy:HRT:2016:l', 'L1')")
        await database.upgrade(conn, PACKAGE)
        assert await conn.fetchval("SELECT scheme FROM blocking_key_scheme") == 1
    finally:
        await conn.close()


async def test_db_upgrade_makes_every_childs_keys_again(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    url = await make_database()
    env = dict(os.environ) | {"LOCAL_NODE__DATABASE__URL": url,
                              "LOCAL_NODE__COUNCIL__CODE": ESX,
                              "LOCAL_NODE__COUNCIL__KEY_FILE": str(tmp_path / "key.pem")}
    assert run(["db", "upgrade"], env).returncode == 0
    population = synthetic.generate_population([ESX], 120, seed=5)
    synthetic.write_feeds(population, tmp_path / "feeds")
    feed = tmp_path / "feeds" / ESX / "health.csv"
    loaded = run(["ingest", "--feed", "health", str(feed)], env)
    assert loaded.returncode == 0, loaded.stderr

    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT scheme FROM blocking_key_scheme") == KEY_SCHEME
        children = await ChildStore().holding_keys(conn)
        want = {(key, c.local_id) for c in children for key in keys_for(child_fields(c))}
        assert await held_keys(conn) == want
        assert any(key.startswith(("fg:", "fd:")) for key, _ in want)
        # the node as scheme 1 left it: each child's fg: and fd: keys an fy: key instead
        await conn.execute("DELETE FROM child_blocking_keys WHERE key LIKE 'fg:%'"
                           " OR key LIKE 'fd:%'")
        await conn.execute("INSERT INTO child_blocking_keys (key, local_id)"
                           " SELECT DISTINCT 'fy:' || local_id, local_id FROM children")
        await conn.execute("UPDATE blocking_key_scheme SET scheme = 1")
    finally:
        await conn.close()

    refused = run(["ingest", "--feed", "health", str(feed)], env)
    assert refused.returncode != 0
    assert "blocking keys held were made by scheme 1" in refused.stderr, refused.stderr

    upgraded = run(["db", "upgrade"], env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert (f"made the blocking keys of {len({lid for _, lid in want})} record(s) again"
            f" (scheme {KEY_SCHEME})") in upgraded.stdout, upgraded.stdout
    conn = await asyncpg.connect(url)
    try:
        assert await held_keys(conn) == want
        assert await conn.fetchval("SELECT scheme FROM blocking_key_scheme") == KEY_SCHEME
    finally:
        await conn.close()
    again = run(["db", "upgrade"], env)
    assert again.returncode == 0 and "blocking keys" not in again.stdout
    assert run(["ingest", "--feed", "health", str(feed)], env).returncode == 0


async def test_a_node_holding_scheme_two_keys_is_keyed_again_and_serves(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """A node upgraded from scheme 2: its O'Brien lacks the key of Brien, its Иван Петров
    those of Ivan Petrov, so a row written otherwise at the next load never meets them.
    ``db upgrade`` makes them; until then the node refuses to load or serve."""
    url = await make_database()
    env = dict(os.environ) | {"LOCAL_NODE__DATABASE__URL": url,
                              "LOCAL_NODE__COUNCIL__CODE": ESX,
                              "LOCAL_NODE__COUNCIL__KEY_FILE": str(tmp_path / "key.pem")}
    assert run(["db", "upgrade"], env).returncode == 0
    feed = tmp_path / "health.csv"
    feed.write_text("source_ref,nhs_number,given_name,family_name,dob,sex,postcode\n"
                    "H1,,Amelia,O'Brien,2015-03-14,F,BN1 1AA\n"
                    "H2,,Иван,Петров,2014-06-20,M,BN2 4AB\n", encoding="utf-8")
    loaded = run(["ingest", "--feed", "health", str(feed)], env)
    assert loaded.returncode == 0, loaded.stderr

    conn = await asyncpg.connect(url)
    try:
        want = await held_keys(conn)
        new = {(k, lid) for k, lid in want if "BRN" in k or "PTRF" in k or "ivan" in k}
        assert new, "scheme 3 gives these children keys scheme 2 did not"
        await conn.execute("DELETE FROM child_blocking_keys WHERE key LIKE '%BRN%'"
                           " OR key LIKE '%PTRF%' OR key LIKE '%ivan%'")
        await conn.execute("UPDATE blocking_key_scheme SET scheme = 2")
    finally:
        await conn.close()

    port = free_port()
    serve = [script("local-node"), "serve", "--no-publish", "--port", str(port)]
    refused = await asyncio.to_thread(subprocess.run, serve, env=env, text=True,
                                      capture_output=True, timeout=120)
    assert refused.returncode != 0
    assert "blocking keys held were made by scheme 2" in refused.stderr, refused.stderr

    upgraded = run(["db", "upgrade"], env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "made the blocking keys of 2 record(s) again (scheme 3)" in upgraded.stdout
    conn = await asyncpg.connect(url)
    try:
        assert await held_keys(conn) == want
        assert await conn.fetchval("SELECT scheme FROM blocking_key_scheme") == KEY_SCHEME == 3
    finally:
        await conn.close()
    server = Process(serve, env, tmp_path / "node.log").start()
    try:
        await asyncio.to_thread(wait_ready, f"http://127.0.0.1:{port}")
    finally:
        server.kill()
