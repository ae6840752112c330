"""Blocking keys made again when the code makes other keys (``KEY_SCHEME``): the hub.

A hub upgraded from scheme 1 holds its records' ``fy:`` keys (family name + birth year
+ initial), which scheme 2 no longer makes; a new record would never meet an old one
through ``fg:`` and ``fd:``; one upgraded from scheme 2 lacks scheme 3's keys (a surname
without its particle, a name in another script transliterated). ``db upgrade`` makes
every record's keys again, a shield mark still dropping a record's location keys, and
until it has, the hub refuses to serve as it does while a migration is missing.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import asyncpg
import pytest

from national_hub.app import PACKAGE
from national_hub.services.linking import identity_of
from national_hub.storage import key_sets
from national_hub.storage.resolution import ResolutionStore
from protocol.disclosure import LOCATION_KEY_PREFIXES
from protocol.matching import blocking_keys
from protocol.matching.blocking import KEY_SCHEME
from server_common import database
from tests.conftest import DatabaseFactory
from tests.hub_harness import upgrade_until
from tests.national_hub.helpers import key_tables_disagree
from tests.national_hub.test_review import child, state
from tests.processes import Process, free_port, script, wait_ready
from tests.security.test_audit_sealed_location import hub_cli
from tests.security.test_hub_council_trail import trail
from tests.security.test_hub_shielding import (  # noqa: F401 (attack: a fixture)
    ESX,
    TFW,
    WSX,
    Attack,
    attack,
)

BEFORE = 19  # the last migration before the scheme was recorded


async def scheme_of(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT scheme FROM blocking_key_scheme"))


async def test_a_hub_holding_keys_is_marked_as_keyed_by_scheme_one(
        make_database: DatabaseFactory) -> None:
    conn = await asyncpg.connect(await make_database())
    try:
        await upgrade_until(conn, PACKAGE, BEFORE)
        await key_sets.copy(conn, ESX, {"A1": {"fy:HRT:2016:l", "d:2016-02-09:HRT"}})
        await database.upgrade(conn, PACKAGE)
        assert await scheme_of(conn) == 1
        with pytest.raises(database.SchemaError, match=r"scheme 1.*run 'db upgrade'"):
            await database.check_current(conn, PACKAGE)
    finally:
        await conn.close()


async def test_an_empty_hub_is_keyed_by_the_codes_scheme(make_database: DatabaseFactory) -> None:
    conn = await asyncpg.connect(await make_database())
    try:
        await database.upgrade(conn, PACKAGE)
        assert await scheme_of(conn) == KEY_SCHEME == 3
        await database.check_current(conn, PACKAGE)
    finally:
        await conn.close()


async def expected_keys(conn: asyncpg.Connection) -> dict[tuple[str, str], set[str]]:
    """Each live record's keys as this code makes them, less the location keys of a
    record holding a shield mark."""
    marked = {(r["council_code"], r["local_id"])
              for r in await conn.fetch("SELECT council_code, local_id FROM shield_marks")}
    out = {}
    for council in (ESX, TFW, WSX):
        for r in await ResolutionStore().live_identities(conn, council):
            keys = blocking_keys(identity_of(r))
            if (council, r["local_id"]) in marked:
                keys = {k for k in keys if not k.startswith(LOCATION_KEY_PREFIXES)}
            out[(council, r["local_id"])] = keys
    return out


async def test_db_upgrade_makes_every_records_keys_again_and_links_stay(
        attack: Attack) -> None:  # noqa: F811
    await trail(attack)  # a shielded child, a record linked to it, a grey match of both
    await attack.councils[WSX].send(child("w-2", given="Oscar", family="Nowak"))
    linked = await state(attack.hub)
    async with attack.hub.pool.acquire() as conn:
        want = await expected_keys(conn)
        assert {k for ks in want.values() for k in ks if k.startswith(("fg:", "fd:"))}
        assert any(not any(k.startswith(LOCATION_KEY_PREFIXES) for k in ks)
                   for ks in want.values())  # a marked record's location keys are gone
        # the hub as scheme 1 left it: fy: keys, no fg: or fd:
        have = await key_sets.read(conn, list(want), lock=False)
        old = {rk: {k for k in ks if not k.startswith(("fg:", "fd:"))} | {f"fy:X:{rk[1]}"}
               for rk, ks in have.items()}
        async with conn.transaction():
            await key_sets.change(conn, have, old)
            await conn.execute("UPDATE blocking_key_scheme SET scheme = 1")

    refused = await hub_cli(attack, "status")
    assert refused.returncode != 0
    assert "blocking keys held were made by scheme 1" in refused.stderr, refused.stderr
    assert "run 'db upgrade'" in refused.stderr

    upgraded = await hub_cli(attack, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"made the blocking keys of {len(want)} record(s) again (scheme {KEY_SCHEME})" \
        in upgraded.stdout, upgraded.stdout
    assert "(3 of 3 councils)" in upgraded.stderr, upgraded.stderr

    async with attack.hub.pool.acquire() as conn:
        assert await key_sets.read(conn, list(want)) == want
        assert await key_tables_disagree(conn) == []
        assert await conn.fetchval("SELECT count(*) FROM record_keys"
                                   " WHERE key LIKE 'fy:%'") == 0
        assert await scheme_of(conn) == KEY_SCHEME
        await database.check_current(conn, PACKAGE)
    assert await state(attack.hub) == linked
    again = await hub_cli(attack, "db", "upgrade")
    assert again.returncode == 0 and "blocking keys" not in again.stdout, again.stdout
    assert (await hub_cli(attack, "status")).returncode == 0


async def test_a_hub_holding_scheme_two_keys_is_keyed_again_and_serves(
        attack: Attack, tmp_path: Path) -> None:  # noqa: F811
    """Scheme 3 keys a surname without its particle and a name in another script
    transliterated: a hub whose records hold scheme 2's keys lacks them, and a new
    "Brien" or "Ivan Petrov" would never meet its O'Brien or Иван Петров."""
    await attack.councils[ESX].send(child("e-3", given="Amelia", family="O'Brien"))
    await attack.councils[WSX].send(child("w-3", given="Иван", family="Петров"))
    async with attack.hub.pool.acquire() as conn:
        want = await expected_keys(conn)
        new = {k for ks in want.values() for k in ks if "BRN" in k or "PTRF" in k
               or k.endswith((":ivan", ":i")) or ":ivan:" in k}
        assert new, "scheme 3 gives these records keys scheme 2 did not"
        have = await key_sets.read(conn, list(want), lock=False)
        async with conn.transaction():  # the hub as scheme 2 left it
            await key_sets.change(conn, have, {rk: ks - new for rk, ks in have.items()})
            await conn.execute("UPDATE blocking_key_scheme SET scheme = 2")

    port = free_port()
    config = attack.hub.config
    env = dict(os.environ) | {
        "NATIONAL_HUB__DATABASE__URL": str(config.database.url),
        "NATIONAL_HUB__HUB__KEY_FILE": str(config.hub.key_file),
        "NATIONAL_HUB__ACCOUNTS__SECRET_KEY_FILE": str(config.accounts.secret_key_file.resolve())}
    refused = await asyncio.to_thread(subprocess.run, [
        script("national-hub"), "serve", "--port", str(port)], env=env, text=True,
        capture_output=True, timeout=120)
    assert refused.returncode != 0
    assert "blocking keys held were made by scheme 2" in refused.stderr, refused.stderr

    upgraded = await hub_cli(attack, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"made the blocking keys of {len(want)} record(s) again (scheme 3)" \
        in upgraded.stdout, upgraded.stdout
    async with attack.hub.pool.acquire() as conn:
        assert await key_sets.read(conn, list(want)) == want
        assert await key_tables_disagree(conn) == []
        assert await scheme_of(conn) == KEY_SCHEME == 3
    server = Process([script("national-hub"), "serve", "--port", str(port)], env,
                     tmp_path / "hub.log").start()
    try:
        await asyncio.to_thread(wait_ready, f"http://127.0.0.1:{port}")
    finally:
        server.kill()
