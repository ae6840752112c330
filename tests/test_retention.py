"""Retention (docs/design.md §3) at node and hub, with the clock moved by giving the job a date:
archive at 18 (25 for a care leaver with consent), a year after death if sooner, purge 6
years later; purges are audited and reach the hub as deletes through signed batches, and
the hub purges on its own what a silent council never withdrew."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import pty
from datetime import date
from pathlib import Path

from aiohttp.test_utils import TestServer

from local_node.app import create_app as node_app
from local_node.app import reconciler
from local_node.app import retention_service as node_retention
from local_node.services.projection import Projector
from local_node.services.retention import RetentionReport
from local_node.services.search import SearchQuery, SearchService
from local_node.storage.children import ChildStore
from local_node.storage.outbox import OutboxStore
from national_hub.app import create_app as hub_app
from national_hub.services.container import HubServices
from national_hub.services.retention import HubRetentionReport
from national_hub.storage.search import SearchStore
from server_common.audit.service import AuditLog
from server_common.config import Duration
from server_common.retention_config import RetentionConfig
from tests.conftest import DatabaseFactory
from tests.federation import Hub, Node, running_hub, running_node
from tests.polling import until
from tests.processes import script

ESX = "E10000011"
FEED = (
    "source_ref,nhs_number,given_name,family_name,dob,sex,postcode,service_type,"
    "service_name,sensitive,consent,shielded\n"
    "S1,,Ada,Okonkwo,2008-05-01,F,BN1 1AA,social_care,Team A,N,N,N\n"
    "S2,,Ben,Okonkwo,2008-05-01,M,BN1 1AA,leaving_care,Leaving Care,N,Y,N\n"  # care leaver
    "S3,,Cal,Okonkwo,2008-05-01,M,BN1 1AA,leaving_care,Leaving Care,N,N,N\n"  # no consent
    "S4,,Dee,Okonkwo,2015-01-01,F,BN1 1AA,social_care,Team A,N,N,N\n"  # dies 2020-06-30
    "S5,,Eve,Okonkwo,2022-03-14,F,BN1 1AA,social_care,Team A,N,N,N\n"
)


async def _ids(node: Node) -> dict[str, str]:
    async with node.pool.acquire() as conn:
        rows = await conn.fetch("SELECT given_name, local_id FROM children")
    return {r["given_name"]: r["local_id"] for r in rows}


async def _hub_rows(hub: Hub) -> dict[str, tuple[int, bool, date | None]]:
    async with hub.pool.acquire() as conn:
        rows = await conn.fetch("SELECT local_id, version, record IS NOT NULL AS live,"
                                " archived_on FROM records WHERE council_code = $1", ESX)
    return {r["local_id"]: (r["version"], r["live"], r["archived_on"]) for r in rows}


async def _run_node(node: Node, day: str) -> RetentionReport:
    return await node_retention(node.pool, node.config).run(date.fromisoformat(day))


async def _run_hub(hub: Hub, day: str) -> HubRetentionReport:
    return await HubServices(hub.config, hub.pool).retention.run(date.fromisoformat(day))


async def _cli(env: dict[str, str], *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(*args, env=dict(os.environ) | env,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode() + out.decode()
    return out.decode()


async def test_archive_at_18_purge_six_years_later_and_the_hub_follows(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    feed = tmp_path / "services.csv"
    feed.write_text(FEED, encoding="utf-8")
    async with running_hub(await make_database(), tmp_path) as hub, \
            running_node(ESX, await make_database(), tmp_path, hub) as node:
        assert (await node.ingest("services", feed)).errors == []
        ids = await _ids(node)
        ada, ben, cal, dee, eve = (ids[n] for n in ("Ada", "Ben", "Cal", "Dee", "Eve"))
        # Dee died (no feed carries deaths yet: set at the node, projected as ingest does)
        async with node.pool.acquire() as conn, conn.transaction():
            await conn.execute("UPDATE children SET date_of_death = '2020-06-30'"
                               " WHERE local_id = $1", dee)
            await Projector(ChildStore(), OutboxStore()).publish_changes(conn, [dee])
        await node.publish()
        await hub.resolved()  # search reads only resolved records (below)
        published = await node.projection()
        assert set(published) == {ada, ben, cal, dee, eve}

        # The day before Ada's 18th birthday only Dee (dead over a year) is archived.
        report = await _run_node(node, "2026-04-30")
        assert (report.archived, report.purged) == ([dee], [])
        report = await _run_node(node, "2026-05-01")
        assert sorted(report.archived) == sorted([ada, cal])  # Ben: a care leaver, to 25
        hub_report = await _run_hub(hub, "2026-05-01")
        # The hub archives what is due by the day a record arrives (the real date, past
        # Ada's and Cal's birthdays): the job archives whatever intake did not.
        by_job = hub_report.councils.get(ESX)
        assert set(by_job.archived if by_job else ()) <= {ada, cal, dee}
        held = await _hub_rows(hub)
        assert held[ada][2] == date(2026, 5, 1) and held[dee][2] == date(2021, 6, 30)
        assert held[ben][2] is None and held[eve][2] is None
        # ... and the hub's practitioner search no longer reaches archived records.
        async with hub.pool.acquire() as conn:
            keys = [r["key"] for r in await conn.fetch(
                "SELECT key FROM record_keys WHERE local_id = ANY($1::text[])", [ada, ben])]
            reached = {c.local_id for c in await SearchStore().candidates(conn, keys, 200)}
        assert ben in reached and ada not in reached

        # Archived children leave practitioner search; the others are still found.
        search = SearchService(node.pool, ChildStore(), ESX)
        found = {h.child.local_id for h in await search.search(SearchQuery.parse(
            {"family_name": "Okonkwo", "postcode": "BN1 1AA", "given_name": "Ada"}))}
        assert ada not in found
        found = {h.child.local_id for h in await search.search(SearchQuery.parse(
            {"family_name": "Okonkwo", "given_name": "Eve", "dob": "2022-03-14"}))}
        assert eve in found
        # Archiving changes nothing the hub holds: the records stay published.
        assert await node.fetchval("SELECT count(*) FROM outbox WHERE batch_seq IS NULL") == 0

        # Six years after Dee's archive date: purged at the node, withdrawn from the hub.
        published_version = await node.fetchval(
            "SELECT published_version FROM children WHERE local_id = $1", dee)
        node_env = {
            "LOCAL_NODE__DATABASE__URL": str(node.config.database.url),
            "LOCAL_NODE__COUNCIL__CODE": ESX,
            "LOCAL_NODE__COUNCIL__KEY_FILE": str(node.config.key_file),
            "LOCAL_NODE__HUB__URL": hub.url,
            "LOCAL_NODE__HUB__PUBLIC_KEY_FILE": str(hub.public_key_file),
        }
        out = await _cli(node_env, script("local-node"), "retention", "run",
                         "--today", "2027-06-30", "--allow-future")
        assert "0 archived, 0 un-archived, 1 purged (1 deletes queued for the hub)" in out
        for table in ("children", "source_records", "involvements", "child_blocking_keys"):
            assert await node.fetchval(
                f"SELECT count(*) FROM {table} WHERE local_id = $1", dee) == 0
        assert await node.fetchval("SELECT count(*) FROM outbox WHERE local_id = $1"
                                   " AND record IS NOT NULL", dee) == 0
        await node.publish()
        assert (await _hub_rows(hub))[dee] == (published_version + 1, False, None)

        # The purge is in the node's audit log, naming the child (subject access).
        node_audit = AuditLog(node.pool, None, origin=node.config.audit_origin)
        actions = [(r.entry.action, r.entry.who) for r in
                   await node_audit.entries_for_child(dee)]
        assert actions == [("retention.archive", "retention"), ("retention.purge", "retention")]

        # Ada and Cal six years after 18; Ben still live (archived at 25, in 2033).
        report = await _run_node(node, "2032-05-01")
        assert sorted(report.purged) == sorted([ada, cal]) and report.archived == []
        await node.publish()
        held = await _hub_rows(hub)
        assert not held[ada][1] and not held[cal][1] and held[ben][1] and held[eve][1]

        # A council gone quiet: the hub purges Ben itself at 31, audited at the hub.
        await hub.resolved()
        national_id = await hub.fetchval("SELECT national_id FROM records WHERE local_id = $1",
                                         ben)
        version = (await _hub_rows(hub))[ben][0]
        hub_env = {"NATIONAL_HUB__DATABASE__URL": str(hub.config.database.url),
                   "NATIONAL_HUB__HUB__KEY_FILE": str(hub.config.hub.key_file)}
        out = await _cli(hub_env, script("national-hub"), "retention", "run",
                         "--today", "2039-05-01", "--allow-future")
        assert f"{ESX}: 0 archived, 1 purged: {ben}" in out
        assert (await _hub_rows(hub))[ben] == (version, False, None)  # tombstone, same version
        assert await hub.fetchval("SELECT count(*) FROM record_keys WHERE local_id = $1",
                                  ben) == 0
        hub_audit = AuditLog(hub.pool, None, origin=hub.config.audit.origin)
        purges = [r.entry for r in await hub_audit.entries_for_child(national_id)
                  if r.entry.action == "retention.purge"]
        assert len(purges) == 1 and purges[0].parameters["local_ids"] == [ben]
        # When the council does run its job, its delete still applies (a newer version).
        report = await _run_node(node, "2039-05-01")
        assert report.purged == [ben] and report.withdrawn == [ben]
        await node.publish()
        assert (await _hub_rows(hub))[ben] == (version + 1, False, None)
        assert await node.fetchval(
            "SELECT count(*) FROM sent_batches WHERE receipt IS NULL OR applied <> op_count") == 0

        # Node and hub agree afterwards: anti-entropy finds nothing to repair.
        async with node.publisher() as publisher:
            again = await reconciler(node.pool, publisher).reconcile()
        assert again.buckets_differing == 0 and again.node_records == 1  # Eve


async def test_serve_runs_the_job_on_its_schedule_at_node_and_hub(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """With the real clock: born 2000, purged since 2024; born 2007, archived since 2025."""
    feed = tmp_path / "services.csv"
    feed.write_text(FEED.split("\n")[0] + "\n"
                    "S1,,Old,Okonkwo,2000-01-01,F,BN1 1AA,social_care,Team A,N,N,N\n"
                    "S2,,Adult,Okonkwo,2007-01-01,F,BN1 1AA,social_care,Team A,N,N,N\n",
                    encoding="utf-8")
    daily = RetentionConfig(interval=Duration(86400))
    async with running_hub(await make_database(), tmp_path) as hub, \
            running_node(ESX, await make_database(), tmp_path, hub) as node:
        assert (await node.ingest("services", feed)).errors == []
        ids = await _ids(node)
        await node.publish()
        servers = [TestServer(hub_app(dataclasses.replace(hub.config, retention=daily)),
                              host="127.0.0.1"),
                   TestServer(node_app(dataclasses.replace(node.config, retention=daily),
                                       publish=False), host="127.0.0.1")]
        for server in servers:
            await server.start_server()
        try:
            async def done() -> bool:
                held = await _hub_rows(hub)
                return (await node.fetchval("SELECT count(*) FROM children") == 1
                        and not held[ids["Old"]][1] and held[ids["Adult"]][2] is not None
                        and await node.fetchval("SELECT archived_on FROM children"
                                                " WHERE local_id = $1", ids["Adult"])
                        == date(2025, 1, 1))
            await until(done, "node and hub applied retention", limit=30, interval=0.1)
        finally:
            for server in servers:
                await server.close()
        # the node's purge waits in its outbox for the publisher (serve ran without it)
        assert await node.fetchval("SELECT op FROM outbox WHERE batch_seq IS NULL"
                                   " AND local_id = $1", ids["Old"]) == "delete"


async def test_a_run_as_of_a_future_day_is_asked_about_at_a_terminal(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """``retention run --today 2062-05-01`` (2026 mistyped) archived and purged, for good,
    every child due by then, at the node and at the hub, and said so only afterwards.
    Now an operator at a terminal is asked first, and "no" does nothing; a script (no
    terminal to ask) is warned on stderr, and ``--allow-future`` says it is meant."""
    feed = tmp_path / "services.csv"
    feed.write_text(FEED, encoding="utf-8")
    async with running_hub(await make_database(), tmp_path) as hub, \
            running_node(ESX, await make_database(), tmp_path, hub) as node:
        assert (await node.ingest("services", feed)).errors == []
        await node.publish()
        children = await node.fetchval("SELECT count(*) FROM children")
        live_at_hub = await hub.fetchval("SELECT count(*) FROM records WHERE record IS NOT NULL"
                                         " AND archived_on IS NULL")
        assert children >= 3 and live_at_hub >= 3
        runs = [({"LOCAL_NODE__DATABASE__URL": str(node.config.database.url),
                  "LOCAL_NODE__COUNCIL__CODE": ESX,
                  "LOCAL_NODE__COUNCIL__KEY_FILE": str(node.config.key_file)}, "local-node"),
                ({"NATIONAL_HUB__DATABASE__URL": str(hub.config.database.url),
                  "NATIONAL_HUB__HUB__KEY_FILE": str(hub.config.hub.key_file)}, "national-hub")]
        for env, command in runs:
            operator, terminal = pty.openpty()  # the command's stdin is a terminal
            try:
                proc = await asyncio.create_subprocess_exec(
                    script(command), "retention", "run", "--today", "2062-05-01",
                    env=dict(os.environ) | env, stdin=terminal,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
                os.write(operator, b"n\n")
                out, err = await proc.communicate()
            finally:
                os.close(operator)
                os.close(terminal)
            assert proc.returncode == 1, out.decode() + err.decode()
            assert "--today 2062-05-01 is in the future" in err.decode()
            assert "Nothing was done" in err.decode() and "Traceback" not in err.decode()
        assert await node.fetchval("SELECT count(*) FROM children") == children
        assert await hub.fetchval("SELECT count(*) FROM records WHERE record IS NOT NULL"
                                  " AND archived_on IS NULL") == live_at_hub
        # a script is warned, and the run goes on
        proc = await asyncio.create_subprocess_exec(
            script("national-hub"), "retention", "run", "--today", "2062-05-01",
            env=dict(os.environ) | runs[1][0], stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        assert proc.returncode == 0 and "warning: --today 2062-05-01 is in the future" \
            in err.decode(), err.decode()
        assert await hub.fetchval("SELECT count(*) FROM records WHERE record IS NOT NULL"
                                  " AND archived_on IS NULL") == 0
        # with --allow-future it runs (a copy of the database, to see what a date does)
        ran = await _cli(runs[0][0], script("local-node"), "retention", "run",
                         "--today", "2062-05-01", "--allow-future")
        assert f"{children} purged" in ran
