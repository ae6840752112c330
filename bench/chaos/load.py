"""The bounded load run: several councils publish to hub replicas while practitioners
search, for a fixed time, with no faults. Every few seconds the resident memory of
every process (hub replicas, publishers, PostgreSQL, this harness) is sampled; at the
end the search latency percentiles, error counts, records applied and each process's
memory over time are printed.

Memory is judged in a **steady phase** after the timed run: feeds stop, the councils'
last batches are applied and resolved, and the practitioners go on searching for a
while. A Python process whose memory grows through that phase is flagged. While
records keep arriving a hub's memory grows with the data it has seen (the matching
code caches a value per distinct name, number and address, up to 2^19 each), so
growth during publishing is printed but is not the leak test."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

import synthetic
from bench.chaos import reaper
from bench.chaos.federation import Federation
from bench.chaos.postgres import KillablePostgres
from bench.chaos.searchers import Searchers, percentile, queries_from
from bench.db import fetchval

COUNCILS = ("E10000011", "E10000032", "E06000020")
MB = 1024 * 1024
GROWTH_LIMIT = 0.10  # a process ending the steady phase >10% (and >15 MB) above its start


@dataclass(frozen=True)
class LoadPlan:
    seed: int = 1
    children: int = 20_000         # per council
    duration: float = 180.0
    searchers: int = 16
    hubs: int = 2
    councils: tuple[str, ...] = COUNCILS

    @property
    def steady(self) -> float:
        """Seconds of searching with no publishing, after the timed run."""
        return max(60.0, self.duration / 3)

    @property
    def sample_every(self) -> float:
        return max(2.0, self.duration / 30)  # about 30 rows of memory figures


@dataclass
class LoadReport:
    duration: float = 0.0
    searches: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    records_applied: int = 0
    memory: dict[str, list[tuple[float, int]]] = field(default_factory=dict)  # name → (t, rss)
    growing: list[str] = field(default_factory=list)
    steady_from: float | None = None  # when the steady phase began (s)

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500)

    def lines(self) -> list[str]:
        p = [percentile(self.latencies, q) * 1000 for q in (50, 95, 99)]
        out = [f"load: {self.duration:.0f} s, {self.searches} searches and child views "
               f"({self.searches / max(self.duration, 1):.0f}/s), statuses {self.statuses}, "
               f"5xx {self.server_errors}",
               f"search latency p50 {p[0]:.1f} ms, p95 {p[1]:.1f} ms, p99 {p[2]:.1f} ms",
               f"records applied at the hub during the run: {self.records_applied} "
               f"({self.records_applied / max(self.duration, 1):.0f}/s)",
               "memory (RSS, MB) over time:"]
        names = sorted(self.memory)
        out.append("   t(s) " + " ".join(f"{n[:14]:>14}" for n in names))
        samples = max(len(v) for v in self.memory.values()) if self.memory else 0
        for i in range(samples):
            t = next((v[i][0] for v in self.memory.values() if len(v) > i), 0.0)
            out.append(f"{t:7.0f} " + " ".join(
                f"{self.memory[n][i][1] / MB:14.1f}" if len(self.memory[n]) > i else " " * 14
                for n in names))
        if self.steady_from is not None:
            out.append(f"steady phase (no publishing, searches go on) from t = "
                       f"{self.steady_from:.0f} s")
        out.append("memory growth in the steady phase: "
                   + (", ".join(self.growing) if self.growing else "none (flat)"))
        return out


def _growing(name: str, series: list[tuple[float, int]], since: float) -> bool:
    """The floor (least RSS) of the steady phase's second half against its first half's:
    a leak raises the floor, while a process's own rhythm only lifts samples above it
    for a while. Medians were used first; a publisher's periodic 20 MB, caught in the
    last three of ten samples, failed a long run whose floors were equal (66.8 MB)."""
    steady = [rss for t, rss in series if t >= since]
    if len(steady) < 4 or name == "postgres":  # shared buffers fill as data grows: not a leak
        return False
    half = len(steady) // 2
    start, end = min(steady[:half]), min(steady[half:])
    return end > start * (1 + GROWTH_LIMIT) and end - start > 15 * MB


def _rss(proc: psutil.Process | None) -> int | None:
    try:
        return proc.memory_info().rss if proc else None
    except psutil.Error:
        return None


async def load_run(plan: LoadPlan, say: Callable[[str], None] = print) -> LoadReport:
    say(f"load run: {len(plan.councils)} councils of {plan.children} children, "
        f"{plan.hubs} hub replicas, {plan.searchers} practitioners searching, "
        f"{plan.duration:.0f} s")
    report = LoadReport()
    with tempfile.TemporaryDirectory(prefix="signpost-load-") as tmp:
        work = Path(tmp)
        reaper.track_dir(work)
        population = synthetic.generate_population(list(plan.councils), plan.children,
                                                   seed=plan.seed)
        synthetic.write_feeds(population, work / "feeds")
        del population
        pg = await asyncio.to_thread(KillablePostgres)
        # batches of the size a council would send (the fault runs' are small on purpose)
        fed = Federation(pg, work, list(plan.councils), plan.hubs, seed=plan.seed, say=say,
                         node_env_extra={"LOCAL_NODE__PUBLISHER__BATCH_SIZE": "500"},
                         # the searchers are a load, not people: no per-user limit (as
                         # bench.search); nodes and addresses keep theirs
                         hub_env_extra={"NATIONAL_HUB__RATE_LIMITS__PER_USER": "0"})
        searchers: Searchers | None = None
        try:
            await fed.setup()
            await fed.start()
            # the first feed is loaded before the clock starts, so there is something to find
            await asyncio.gather(*(fed.ingest(c, "education", work / "feeds" / c /
                                              "education.csv", limit=1800)
                                   for c in plan.councils))
            searchers = Searchers(fed.hub_urls, await fed.practitioner_headers(),
                                  queries_from(work / "feeds"), plan.searchers, plan.seed)
            applied_before = await _applied(fed.hub_db)
            started = time.monotonic()
            searchers.start()
            feeds = asyncio.create_task(_feed_rounds(fed, work / "feeds", plan, started))
            while (now := time.monotonic() - started) < plan.duration:
                _sample(report, fed, pg, now)
                await fed.supervise()
                await asyncio.sleep(plan.sample_every)
            feeds.cancel()
            await asyncio.gather(feeds, return_exceptions=True)
            # the steady phase: the last batches applied and resolved, then only searches
            while not await quiet(fed.hub_db):
                _sample(report, fed, pg, time.monotonic() - started)
                await fed.supervise()
                await asyncio.sleep(plan.sample_every)
            report.steady_from = time.monotonic() - started
            while (now := time.monotonic() - started) < report.steady_from + plan.steady:
                _sample(report, fed, pg, now)
                await fed.supervise()
                await asyncio.sleep(plan.sample_every)
            await searchers.stop()
            # figures over the whole time searched: the timed run and the steady phase
            report.duration = time.monotonic() - started
            report.records_applied = await _applied(fed.hub_db) - applied_before
            report.searches = sum(searchers.statuses.values())
            report.statuses = dict(sorted(searchers.statuses.items()))
            report.latencies = searchers.latencies
            report.growing = [n for n, s in report.memory.items()
                              if _growing(n, s, report.steady_from)]
            if fed.unexpected_exits:
                report.growing.append(f"unexpected exits {dict(fed.unexpected_exits)}")
        finally:
            if searchers:
                await searchers.stop()
            await fed.close()
            await asyncio.to_thread(pg.close)
    for line in report.lines():
        say(line)
    return report


def _sample(report: LoadReport, fed: Federation, pg: KillablePostgres, now: float) -> None:
    procs = {name: p.proc.pid for name, p in fed.processes().items() if p.proc}
    for name, pid in procs.items():
        rss = _rss(psutil.Process(pid)) if psutil.pid_exists(pid) else None
        if rss:
            report.memory.setdefault(name, []).append((now, rss))
    report.memory.setdefault("postgres", []).append((now, pg.rss()))
    report.memory.setdefault("harness", []).append((now, _rss(psutil.Process()) or 0))


async def _feed_rounds(fed: Federation, feeds: Path, plan: LoadPlan, started: float) -> None:
    """The health and services feeds arrive during the run: publishing never idles long."""
    for i, feed in enumerate(("health", "services"), start=1):
        await asyncio.sleep(max(0.0, started + i * plan.duration / 3 - time.monotonic()))
        for code in plan.councils:
            await fed.ingest(code, feed, feeds / code / f"{feed}.csv", limit=1800)


async def quiet(hub_db: str, settle: float = 5.0) -> bool:
    """Nothing waits to be resolved and no batch arrived for ``settle`` seconds."""
    return bool(await fetchval(
        hub_db, "SELECT NOT EXISTS (SELECT 1 FROM resolution_queue)"
        " AND coalesce(max(applied_at) < now() - make_interval(secs => $1), true)"
        " FROM batches", settle))


async def _applied(hub_db: str) -> int:
    return int(await fetchval(hub_db, "SELECT coalesce(sum(applied_count), 0) FROM batches"))
