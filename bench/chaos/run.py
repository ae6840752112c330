"""One fault run: a federation of real processes publishes and resolves while it is hurt,
then heals, and the hub is checked against every node (``checks.verify``).

The run's seed decides the population, when and what is SIGKILLed (a hub replica, a
publisher, PostgreSQL), when the link is cut, and each proxied connection's faults.
Feeds arrive in rounds (education, then health, then services) during the run, so
there is always new work in flight when something dies. Practitioners search the
hub throughout, so the audit log is written across the kills too.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import synthetic
from bench.chaos import reaper
from bench.chaos.checks import Verification, verify
from bench.chaos.federation import VICTIMS, Federation
from bench.chaos.postgres import KillablePostgres
from bench.chaos.proxy import NO_FAULTS, FaultRates
from bench.chaos.reference import ResolutionComparison, compare_resolution
from bench.chaos.searchers import Searchers, queries_from

COUNCILS = ("E10000011", "E06000020")
DEFAULT_RATES = FaultRates(drop=0.02, delay=0.04, truncate_request=0.02,
                           truncate_response=0.04, duplicate=0.03, overtake=0.02,
                           max_delay=7.0)


@dataclass(frozen=True)
class Plan:
    seed: int
    children: int = 300           # per council
    duration: float = 30.0        # seconds of faults
    kills: int = 3                # SIGKILLs, at random times, victims in turn
    down_for: tuple[float, float] = (0.3, 3.0)  # how long a killed thing stays down
    cuts: int = 1                 # link cuts, at random times
    cut_for: tuple[float, float] = (2.0, 5.0)
    victims: tuple[str, ...] = VICTIMS
    rates: FaultRates = DEFAULT_RATES
    hubs: int = 1
    councils: tuple[str, ...] = COUNCILS
    heal_within: float = 180.0    # after the faults stop, time allowed to converge


@dataclass
class FaultReport:
    seed: int
    faults: Counter[str] = field(default_factory=Counter)
    verification: Verification = field(default_factory=Verification)
    resolution: ResolutionComparison = field(default_factory=ResolutionComparison)
    statuses: Counter[int] = field(default_factory=Counter)  # node traffic and searches
    unexpected_exits: Counter[str] = field(default_factory=Counter)
    searches: int = 0
    healed_in: float = 0.0

    @property
    def internal_errors(self) -> int:
        """500s: a bug, never a designed answer (503 is the designed 'unavailable')."""
        return self.statuses[500]

    @property
    def ok(self) -> bool:
        return self.verification.ok and self.resolution.ok and not self.internal_errors

    def summary(self) -> str:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items()))
        fivexx = {s: n for s, n in sorted(self.statuses.items()) if s >= 500}
        v = self.verification
        return (f"seed {self.seed}: {'OK' if self.ok else 'FAILED'}; faults: {faults}; "
                f"batches verified {v.batches_verified}, records compared "
                f"{v.records_compared}, lost {v.lost}; resolution compared "
                f"{self.resolution.records}, differences {self.resolution.differences}; "
                f"5xx {fivexx or 0}; "
                f"searches {self.searches}; unexpected exits "
                f"{dict(self.unexpected_exits) or 0}; healed in {self.healed_in:.1f} s")


def _events(plan: Plan, rng: random.Random) -> list[tuple[float, str]]:
    """(at, what) for the run, in time order: kills (each victim in turn, in an order
    of the seed's), cuts and feed rounds."""
    order = rng.sample(plan.victims, len(plan.victims))
    events = [(rng.uniform(0, plan.duration), f"kill:{order[i % len(order)]}")
              for i in range(plan.kills)]
    events += [(rng.uniform(0, plan.duration), "cut") for _ in range(plan.cuts)]
    for i, feed in enumerate(synthetic.FEEDS):
        events.append((i * plan.duration / (len(synthetic.FEEDS) + 0.5), f"feed:{feed}"))
    return sorted(events)


async def fault_run(plan: Plan, say: Callable[[str], None] = print,
                    workdir: Path | None = None) -> FaultReport:
    say(f"fault run: seed {plan.seed} ({plan.children} children per council, "
        f"{plan.duration:.0f} s of faults)")
    rng = random.Random(plan.seed)
    report = FaultReport(plan.seed)
    with tempfile.TemporaryDirectory(prefix="signpost-chaos-") as tmp:
        reaper.track_dir(Path(tmp))
        work = workdir or Path(tmp)
        feeds = work / "feeds"
        population = synthetic.generate_population(list(plan.councils), plan.children,
                                                   seed=plan.seed)
        synthetic.write_feeds(population, feeds)
        pg = await asyncio.to_thread(KillablePostgres)
        say(f"  PostgreSQL of the run: {pg.data}")
        fed = Federation(pg, work, list(plan.councils), plan.hubs, plan.rates, plan.seed,
                         say=say)
        searchers: Searchers | None = None
        try:
            await fed.setup()
            await fed.start()
            searchers = Searchers(fed.hub_urls, await fed.practitioner_headers(),
                                  queries_from(feeds), concurrency=1, seed=plan.seed,
                                  pause=0.2)  # a practitioner's pace, within their limit
            searchers.start()
            await _hurt(plan, rng, fed, feeds, say)
            assert fed.proxy is not None
            fed.proxy.rates = NO_FAULTS
            healed = time.monotonic()
            deadline = healed + plan.heal_within
            while not await fed.synced():
                await fed.supervise()
                if time.monotonic() > deadline:
                    report.verification.problem(
                        f"did not converge within {plan.heal_within:.0f} s of the faults "
                        "stopping")
                    break
                await asyncio.sleep(0.5)
            report.healed_in = time.monotonic() - healed
            calm = await _calm_errors(fed, searchers)
            await searchers.stop()
            if report.verification.ok:
                report.verification = await verify(
                    fed.hub_db, {c: n.database_url for c, n in fed.nodes.items()},
                    str(work / "hub" / "hub_key.pem"))
            if report.verification.ok:  # the same records: is their grouping the same?
                report.resolution = await compare_resolution(
                    fed.hub_db, await fed.database("reference"),
                    {c: Path(n.env["LOCAL_NODE__COUNCIL__KEY_FILE"])
                     for c, n in fed.nodes.items()}, work)
            report.faults = fed.proxy.faults + Counter(
                {f"kill_{k}": n for k, n in fed.kills.items()})
            report.statuses = fed.proxy.statuses + searchers.statuses
            report.searches = sum(searchers.statuses.values())
            report.unexpected_exits = fed.unexpected_exits
            if calm:
                report.verification.problem(
                    f"5xx after everything was back up (a broken pooled connection kept?): "
                    f"{calm}")
        finally:
            if searchers:
                await searchers.stop()
            await fed.close()
            await asyncio.to_thread(pg.close)
    say(report.summary())
    say("  " + report.resolution.line())
    for example in report.resolution.examples:
        say(f"    grouped differently: {example}")
    for problem in report.verification.problems + report.resolution.problems:
        say(f"  PROBLEM {problem}")
    return report


async def _calm_errors(fed: Federation, searchers: Searchers,
                       seconds: float = 5.0) -> dict[int, int]:
    """5xx answers in a few seconds of searches and heartbeats once all is healed: a
    server must not keep failing after its database is back."""
    assert fed.proxy is not None
    before = fed.proxy.statuses + searchers.statuses
    await asyncio.sleep(seconds)
    after = fed.proxy.statuses + searchers.statuses
    return {s: n - before[s] for s, n in after.items() if s >= 500 and n > before[s]}


async def _hurt(plan: Plan, rng: random.Random, fed: Federation, feeds: Path,
                say: Callable[[str], None]) -> None:
    """Play the run's events against the federation until ``plan.duration``."""
    assert fed.proxy is not None
    started = time.monotonic()
    ingests: list[asyncio.Task[None]] = []
    for at, what in _events(plan, rng):
        while time.monotonic() - started < at:
            await fed.supervise()
            await asyncio.sleep(min(0.2, max(0.0, at - (time.monotonic() - started))))
        if what.startswith("feed:"):
            feed = what.split(":", 1)[1]
            ingests += [asyncio.create_task(fed.ingest(code, feed, feeds / code / f"{feed}.csv"))
                        for code in plan.councils]
        elif what == "cut":
            seconds = rng.uniform(*plan.cut_for)
            say(f"  {time.monotonic() - started:6.1f} s: link cut for {seconds:.1f} s")
            fed.proxy.cut(seconds)
        else:
            name = await fed.kill(what.split(":", 1)[1], rng.randrange(1 << 16))
            down = rng.uniform(*plan.down_for)
            say(f"  {time.monotonic() - started:6.1f} s: SIGKILL {name}, down {down:.1f} s")
            await asyncio.sleep(down)
            await fed.restart(name)
    while time.monotonic() - started < plan.duration or not all(t.done() for t in ingests):
        await fed.supervise()
        await asyncio.sleep(0.2)
    await asyncio.gather(*ingests)  # raises if a feed never loaded
