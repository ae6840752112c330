"""Change at a node → visible in hub search (docs/design.md §10: p95 < 2 s).

Real processes on a PostgreSQL of their own (``bench.chaos.federation``): the hub
(``national-hub serve`` with its background resolver), and two councils' publishers
(``local-node publish``, the loop a node's ``serve`` runs, one batch per
``publisher.interval``). Council A's children are loaded and published first. Then,
one at a time, a child of A changes surname: a one-row education feed loaded with
``local-node ingest``, as the council's nightly feed would bring it. A practitioner
searches the hub for the child by the new surname (given name, new surname, date of
birth; every search audited) every 50 ms until a result carries it.

The change's time is its outbox entry's ``created_at`` at the node (the ingest
transaction's start, a little before its commit, so the figure errs long); it is
visible when the first search shows it. Two phases:

- **quiet**: nothing else is arriving;
- **bulk**: council B's initial publish (``--bulk-children``, loaded into its node
  while its publisher was stopped) is sent and resolved at the same time: its
  batches arrive faster than they are resolved, so the hub's queue holds thousands
  of B's records, the case a first-in, first-out queue made slow. A change counts
  here only if B still had records unsent or waiting to be resolved when it
  became visible.

Prints p50/p95/max per phase against the target.
"""

from __future__ import annotations

import asyncio
import csv
import random
import string
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import click

import synthetic
from bench.chaos.federation import Federation
from bench.chaos.load import quiet
from bench.chaos.postgres import KillablePostgres
from bench.chaos.searchers import percentile
from bench.db import fetchval

COUNCIL_A, COUNCIL_B = "E10000011", "E06000020"
POLL = 0.05  # seconds between a practitioner's searches for the change
GIVE_UP = 60.0  # a change not visible by then is counted as this long and reported
TARGET_P95 = 2.0


@dataclass
class Phase:
    name: str
    seconds: list[float] = field(default_factory=list)
    not_seen: int = 0

    def line(self) -> str:
        if not self.seconds:
            return f"{self.name:<6} no changes measured"
        p50, p95 = percentile(self.seconds, 50), percentile(self.seconds, 95)
        verdict = "met" if p95 < TARGET_P95 and not self.not_seen else "NOT met"
        return (f"{self.name:<6} {len(self.seconds)} changes: p50 {p50:.2f} s, "
                f"p95 {p95:.2f} s, max {max(self.seconds):.2f} s"
                f"{f', {self.not_seen} never seen' if self.not_seen else ''} "
                f"(target p95 < {TARGET_P95:.0f} s: {verdict})")


def _surname(n: int) -> str:
    """A surname no child has, unique per change: Freshwater + letters."""
    letters = ""
    n += 26
    while n:
        n, r = divmod(n, 26)
        letters = string.ascii_lowercase[r] + letters
    return f"Freshwater{letters}"


class Changes:
    """Council A's education rows, and one-row feeds that change a child's surname."""

    def __init__(self, feed: Path, workdir: Path, seed: int) -> None:
        with feed.open(newline="") as fh:
            reader = csv.DictReader(fh)
            self.header = list(reader.fieldnames or [])
            self.rows = [row for row in reader if row["given_name"] and row["dob"]]
        self.rng = random.Random(seed)
        self.workdir = workdir
        self.count = 0

    def next(self) -> tuple[Path, dict[str, str]]:
        row = dict(self.rng.choice(self.rows))
        row["family_name"] = _surname(self.count)
        self.count += 1
        path = self.workdir / f"change-{self.count}.csv"
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, self.header)
            writer.writeheader()
            writer.writerow(row)
        return path, row


async def _visible_at(http: aiohttp.ClientSession, hub: str, row: dict[str, str],
                      deadline: float) -> float | None:
    """Search until a result carries the new surname; the wall-clock time it did."""
    params = {"given_name": row["given_name"], "family_name": row["family_name"],
              "dob": row["dob"], "purpose": "freshness benchmark"}
    while time.monotonic() < deadline:
        async with http.get(f"{hub}/v1/search", params=params) as resp:
            if resp.status == 200:
                found = await resp.json()
                if any(r["family_name"] == row["family_name"] for r in found["results"]):
                    return time.time()
            elif resp.status >= 500:
                raise click.ClickException(f"search answered {resp.status}: {await resp.text()}")
        await asyncio.sleep(POLL)
    return None


async def _changed_at(node_db: str, source_ref: str) -> float:
    """When the node's ingest wrote the change to its outbox (epoch seconds)."""
    stamp = await fetchval(
        node_db, "SELECT max(o.created_at) FROM outbox o JOIN source_records s"
        " ON s.local_id = o.local_id WHERE s.source = 'education' AND s.source_ref = $1",
        source_ref)
    if stamp is None:
        raise click.ClickException(f"the node has no outbox entry for {source_ref}")
    return float(stamp.timestamp())


async def _b_waiting(fed: Federation) -> int:
    """B's records not yet resolved: unsent at its node, or queued at the hub."""
    unsent = await fetchval(fed.nodes[COUNCIL_B].database_url,
                            "SELECT count(*) FROM outbox WHERE batch_seq IS NULL")
    queued = await fetchval(fed.hub_db, "SELECT count(*) FROM resolution_queue"
                            " WHERE council_code = $1", COUNCIL_B)
    return int(unsent) + int(queued)


async def _measure(fed: Federation, http: aiohttp.ClientSession, changes: Changes,
                   phase: Phase, rng: random.Random, *, bulk: bool = False) -> bool:
    """One change: ingest it, wait until search shows it. False if it did not count:
    in the bulk phase, B had nothing left to send or resolve when it became visible."""
    await asyncio.sleep(rng.uniform(0.2, 1.5))  # land anywhere in the publisher's interval
    path, row = changes.next()
    hub = fed.hub_urls[0]
    watch = asyncio.create_task(_visible_at(http, hub, row, time.monotonic() + GIVE_UP))
    await fed.ingest(COUNCIL_A, "education", path)
    seen = await watch
    if bulk and not await _b_waiting(fed):
        return False
    if seen is None:
        phase.not_seen += 1
        phase.seconds.append(GIVE_UP)
        return True
    phase.seconds.append(seen - await _changed_at(fed.nodes[COUNCIL_A].database_url,
                                                  row["source_ref"]))
    return True


async def _run(children: int, bulk_children: int, changes_per_phase: int, seed: int,
               say: Callable[[str], None]) -> list[Phase]:
    with tempfile.TemporaryDirectory(prefix="signpost-freshness-") as tmp:
        work = Path(tmp)
        for code, n, s in ((COUNCIL_A, children, seed), (COUNCIL_B, bulk_children, seed + 1)):
            synthetic.write_feeds(synthetic.generate_population([code], n, seed=s,
                                                                movers_fraction=0.0),
                                  work / "feeds")
        pg = await asyncio.to_thread(KillablePostgres)
        fed = Federation(pg, work, [COUNCIL_A, COUNCIL_B], hubs=1, seed=seed, say=say,
                         hub_env_extra={"NATIONAL_HUB__RATE_LIMITS__PER_USER": "0"})
        rng = random.Random(seed)
        calm, busy = Phase("quiet"), Phase("bulk")
        try:
            await fed.setup()
            await fed.start()
            feeds = work / "feeds"
            b_publisher = f"node-{COUNCIL_B}"
            fed.processes()[b_publisher].kill()  # B's node loads first, publishes later
            await asyncio.gather(
                fed.ingest(COUNCIL_A, "education", feeds / COUNCIL_A / "education.csv"),
                fed.ingest(COUNCIL_B, "education", feeds / COUNCIL_B / "education.csv",
                           limit=3600))
            while not await quiet(fed.hub_db, settle=2.0):  # noqa: ASYNC110 (polls the hub)
                await asyncio.sleep(0.5)
            say(f"council A published ({children:,} children); quiet phase")
            changes = Changes(feeds / COUNCIL_A / "education.csv", work, seed)
            async with aiohttp.ClientSession(
                    headers=await fed.practitioner_headers(),
                    timeout=aiohttp.ClientTimeout(total=30)) as http:
                for _ in range(changes_per_phase):
                    await _measure(fed, http, changes, calm, rng)
                say(f"bulk phase: council B publishes its {bulk_children:,} children meanwhile")
                await fed.restart(b_publisher)
                while len(busy.seconds) < changes_per_phase:
                    if not await _measure(fed, http, changes, busy, rng, bulk=True):
                        break  # B's load is resolved: the rest would be quiet again
        finally:
            await fed.close()
            await asyncio.to_thread(pg.close)
    return [calm, busy]


@click.command(help=__doc__)
@click.option("--children", default=5_000, show_default=True,
              help="Council A's children, whose surnames change.")
@click.option("--bulk-children", default=40_000, show_default=True,
              help="Council B's initial publish during the bulk phase.")
@click.option("--changes", default=40, show_default=True, help="Changes per phase.")
@click.option("--seed", default=7, show_default=True)
def main(children: int, bulk_children: int, changes: int, seed: int) -> None:
    started = time.perf_counter()
    phases = asyncio.run(_run(children, bulk_children, changes, seed, click.echo))
    click.echo(f"\n== change at a node → visible in hub search "
               f"(1 hub, publisher interval 1 s; {time.perf_counter() - started:.0f} s)")
    for phase in phases:
        click.echo(phase.line())
    if len(phases[1].seconds) < changes:
        click.echo(f"(the bulk load was resolved after {len(phases[1].seconds)} changes: "
                   "raise --bulk-children for more)")


if __name__ == "__main__":
    main()
