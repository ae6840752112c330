"""Notices (docs/notices.md): how fast the hub makes them during a council's bulk load, that
the load makes them for true movers only, and the delay from publish to email.

A hub and two councils' nodes (``tests.federation``: the real apps, real PostgreSQL
from the ``pgserver`` wheel, real HTTP and Ed25519) and a real SMTP server on loopback
(aiosmtpd). Synthetic children (``synthetic``) live in council A and council B; a
fraction moved between them and appear in both councils' feeds.

1. **Bulk load**: A's feeds are loaded and published, then B's (``--children`` each,
   40,000 by default, plus the movers). The hub's notice job runs in the background
   as in ``serve``; printed: notices created, the changed records it handled and both
   per second of its busy time and of the load's wall time, and for the notices' children
   how many are true movers (ground truth of the synthetic population) — precision
   must be 1 — and what share of the movers got one (recall, bounded by resolution's).
2. **Delay**: both nodes run as ``local-node serve`` does (publisher, notice fetch and
   email loops at their default intervals: publisher 1 s, hub notice job 1 s, node
   notices 2 s). One at a time, a child known to A with a lead professional moves to
   B: B's one-row feed is loaded; timed until the lead professional's email reaches
   the SMTP server. Printed: p50/p95/max.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from aiohttp.test_utils import TestServer

import synthetic
from bench.chaos.postgres import KillablePostgres
from bench.chaos.searchers import percentile
from local_node.app import create_app as create_node_app
from local_node.config import NoticesSection
from national_hub.app import NOTICE_JOB
from tests.federation import Hub, Node, running_hub, running_node
from tests.smtp import Inbox, smtp_server

A, B = "E10000011", "E06000020"
FEEDS = ("education", "health", "services")
SERVICES = ("source_ref,nhs_number,given_name,family_name,dob,sex,postcode,service_type,"
            "service_name,professional_role,professional_phone,professional_email,"
            "lead_professional\n")


def nhs_number(rng: random.Random) -> str:
    """A random NHS number with a valid mod-11 check digit."""
    while True:
        digits = [rng.randrange(10) for _ in range(9)]
        check = 11 - sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        if check == 10:
            continue
        return "".join(map(str, digits)) + str(0 if check == 11 else check)


async def _load(node: Node, feeds: Path) -> None:
    for feed in FEEDS:
        path = feeds / node.code / f"{feed}.csv"
        if path.exists():
            await node.ingest(feed, path)


async def _people_of(node: Node, truth: dict[tuple[str, str, str], str],
                     local_ids: list[str]) -> set[str]:
    rows = await node.pool.fetch(
        "SELECT source, source_ref FROM source_records WHERE local_id = ANY($1::text[])",
        local_ids)
    return {truth[(node.code, r["source"], r["source_ref"])] for r in rows
            if (node.code, r["source"], r["source_ref"]) in truth}


async def bulk(hub: Hub, a: Node, b: Node, feeds: Path, population: Any,
               say: Callable[[str], None]) -> dict[str, float]:
    job = hub.server.app[NOTICE_JOB]
    await _load(a, feeds)
    await a.publish()
    await hub.resolved()
    await job.drain()
    say("council A published; loading council B's feeds")
    await _load(b, feeds)
    created, changes, busy = job.created_total, job.changes_total, job.busy_seconds
    started = time.perf_counter()
    await b.publish()
    await hub.resolved()
    await job.drain()
    wall = time.perf_counter() - started
    created, changes = job.created_total - created, job.changes_total - changes
    busy = job.busy_seconds - busy
    truth = {(t.council, t.source, t.source_ref): t.person_id for t in population.truth}
    movers = {p.person_id for p in population.movers}
    told: set[str] = set()
    wrong = 0
    for row in await hub.pool.fetch("SELECT council_code, local_ids FROM notices"):
        node = a if row["council_code"] == a.code else b
        people = await _people_of(node, truth, list(row["local_ids"]))
        told |= people
        if not people <= movers:
            wrong += 1  # a link resolution made between two different children
            say(f"  a notice to {row['council_code']} about {sorted(row['local_ids'])}: "
                f"people {sorted(people)}, not all of whom moved")
    return {"created": created, "changes": changes, "busy": busy, "wall": wall,
            "movers": len(movers), "told": len(told & movers), "wrong": wrong}


async def _caught_up(node: Node, target: int) -> bool:
    cursor = await node.fetchval("SELECT coalesce(max(after_seq), 0) FROM notice_cursor")
    due = await node.fetchval("SELECT count(*) FROM notice_deliveries WHERE email_due")
    return bool(cursor >= target and not due)


async def delays(hub: Hub, a: Node, b: Node, work: Path, samples: int, seed: int,
                 mail: Inbox, port: int, say: Callable[[str], None]) -> list[float]:
    rng = random.Random(seed)
    settings = NoticesSection(smtp_host="127.0.0.1", smtp_port=port,
                              base_url="https://signpost.example")
    servers = [TestServer(create_node_app(replace(n.config, notices=settings)),
                          host="127.0.0.1") for n in (a, b)]
    for s in servers:
        await s.start_server()
    seconds = []
    try:
        # first the nodes catch up with what the bulk load made (fetch, route, email)
        started = time.monotonic()
        target = await hub.fetchval("SELECT coalesce(max(seq), 0) FROM notices"
                                    " WHERE council_code = $1", a.code)
        while not await _caught_up(a, target):  # noqa: ASYNC110 (polls the node's database)
            await asyncio.sleep(0.1)
        held = await a.fetchval("SELECT count(*) FROM notices")
        say(f"catch-up: council A's node fetched, routed and emailed {held} notices in "
            f"{time.monotonic() - started:.1f} s")
        for i in range(samples):
            nhs = nhs_number(rng)
            dob = (f"20{rng.randrange(10, 20)}-{rng.randrange(1, 13):02d}"
                   f"-{rng.randrange(1, 29):02d}")
            name = f"Delay{i}"
            lead = f"lead{i}@a.example.gov.uk"
            who = f"{nhs},{name},Moverton,{dob},F"
            path = work / f"a-{i}.csv"
            path.write_text(SERVICES + f"D{i},{who},BN1 1AA,social_care,CSC,Social worker,"
                            f"01273 000000,{lead},Y\n", encoding="utf-8")
            await a.ingest("services", path)
            while not await hub.fetchval(  # noqa: ASYNC110 (polls the hub's database)
                    "SELECT national_id FROM records WHERE nhs_number = $1", nhs):
                await asyncio.sleep(0.05)
            path = work / f"b-{i}.csv"
            path.write_text(SERVICES + f"D{i},{who},TF1 2AB,school,School,,,,N\n",
                            encoding="utf-8")
            started = time.monotonic()
            await b.ingest("services", path)
            while not mail.to(lead):
                if time.monotonic() - started > 60:
                    raise RuntimeError(f"no email to {lead} within 60 s")
                await asyncio.sleep(0.02)
            seconds.append(mail.to(lead)[0][0] - started)
            say(f"  move {i + 1}/{samples}: {seconds[-1]:.2f} s")
    finally:
        for s in servers:
            await s.close()
    return seconds


async def _run(children: int, movers: float, samples: int, seed: int,
               say: Callable[[str], None]) -> tuple[dict[str, float], list[float]]:
    with tempfile.TemporaryDirectory(prefix="signpost-notices-") as tmp:
        work = Path(tmp)
        population = synthetic.generate_population([A, B], children, seed=seed,
                                                   movers_fraction=movers)
        synthetic.write_feeds(population, work / "feeds")
        pg = await asyncio.to_thread(KillablePostgres)
        try:
            with smtp_server() as (mail, port):
                async with running_hub(await pg.database("hub"), work) as hub, \
                        running_node(A, await pg.database("node_a"), work, hub) as a, \
                        running_node(B, await pg.database("node_b"), work, hub) as b:
                    figures = await bulk(hub, a, b, work / "feeds", population, say)
                    say(f"delay: {samples} movers, one at a time")
                    seconds = await delays(hub, a, b, work, samples, seed, mail, port, say)
        finally:
            await asyncio.to_thread(pg.close)
    return figures, seconds


@click.command(help=__doc__)
@click.option("--children", default=40_000, show_default=True,
              help="Children living in each council (B's bulk load is these plus movers).")
@click.option("--movers", default=0.05, show_default=True,
              help="Fraction of each council's children who moved to the other.")
@click.option("--delays", "samples", default=20, show_default=True,
              help="Movers timed from publish to email.")
@click.option("--seed", default=7, show_default=True)
def main(children: int, movers: float, samples: int, seed: int) -> None:
    figures, seconds = asyncio.run(_run(children, movers, samples, seed, click.echo))
    f = figures
    click.echo(f"\n== notices during council B's bulk load ({children:,} children each, "
               f"{f['movers']:.0f} true movers)")
    click.echo(f"notices created: {f['created']:.0f} from {f['changes']:.0f} changed records "
               f"in {f['wall']:.1f} s of load; notice job busy {f['busy']:.1f} s: "
               f"{f['created'] / max(f['busy'], 1e-9):,.0f} notices/s, "
               f"{f['changes'] / max(f['busy'], 1e-9):,.0f} changes/s")
    click.echo(f"movers told: {f['told']:.0f} of {f['movers']:.0f} "
               f"(recall {f['told'] / max(f['movers'], 1):.3f}); "
               f"notices about a child who did not move: {f['wrong']:.0f}")
    click.echo(f"publish → email: {len(seconds)} movers: p50 {percentile(seconds, 50):.2f} s, "
               f"p95 {percentile(seconds, 95):.2f} s, max {max(seconds):.2f} s")


if __name__ == "__main__":
    main()
