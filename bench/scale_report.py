"""What ``bench.scale`` prints: each stage's figures, then the table of stages and how
each cost grew per × children."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import click

from bench.publish import Published
from bench.search import Measured, latency_line, ms

MIB = 2 ** 20


@dataclass(frozen=True, slots=True)
class Storage:
    children: int
    records: int
    database: int  # bytes
    audit_entries: int
    audit_bytes: int
    largest: list[tuple[str, str, int]]  # (name, table|index, bytes), largest first


@dataclass(frozen=True, slots=True)
class Stage:
    target: int
    grow_seconds: float
    storage: Storage
    search: Measured
    publish: Published
    pending: int  # entries in the new council's outbox before publishing
    linked: int  # its records resolved to a child another council holds (movers)
    load_after: float  # 1-minute load average at the end of the stage
    load_before: float

    @property
    def searches_per_second(self) -> float:
        return len(self.search.run.latencies) / self.search.run.seconds

    @property
    def applied_per_second(self) -> float:
        t = self.publish.timings
        return t.applied / t.applied_seconds

    @property
    def resolved_per_second(self) -> float:
        t = self.publish.timings
        return t.applied / t.resolved_seconds

    @property
    def resolver_ms_per_record(self) -> float:
        return 1000 * self.publish.resolver_seconds / self.publish.timings.applied

    @property
    def bytes_per_record(self) -> float:
        return self.storage.database / self.storage.records

    @property
    def audit_bytes_per_entry(self) -> float:
        return self.storage.audit_bytes / max(1, self.storage.audit_entries)

    @property
    def hub_rss(self) -> int:
        return max(self.search.peak_rss, self.publish.hub_peak)


def print_stage(stage: Stage, seconds: float) -> None:
    s, run, t = stage.storage, stage.search.run, stage.publish.timings
    done = len(run.latencies)
    click.echo(f"grown          in {stage.grow_seconds:.0f} s (COPY and indexing)")
    click.echo(f"storage        {s.children:,} children, {s.records:,} records, database "
               f"{s.database / MIB:,.0f} MiB ({stage.bytes_per_record:,.0f} bytes/record); "
               f"audit {s.audit_entries:,} entries, {s.audit_bytes / MIB:,.1f} MiB "
               f"({stage.audit_bytes_per_entry:,.0f} bytes/entry)")
    click.echo("largest        " + ", ".join(
        f"{name}{' (index)' if kind == 'index' else ''} {size / MIB:,.0f} MiB"
        for name, kind, size in s.largest))
    click.echo(f"search         {done:,} in {seconds:.0f} s, {stage.searches_per_second:,.0f}/s, "
               f"{latency_line(run.latencies)}; child first {run.first / done:.1%}, "
               f"errors {run.errors or 0}; hub peak {stage.search.peak_rss / MIB:,.0f} MiB")
    click.echo(f"publish        {t.applied:,} records ({stage.pending:,} outbox entries) in "
               f"{t.batches} batches: hub-applied {stage.applied_per_second:,.0f} records/s "
               f"({t.applied_seconds:.1f} s), applied and resolved "
               f"{stage.resolved_per_second:,.0f} records/s ({t.resolved_seconds:.1f} s); "
               f"resolver busy {stage.publish.resolver_seconds:.1f} s in "
               f"{stage.publish.resolver_chunks} chunks "
               f"({stage.resolver_ms_per_record:.2f} ms/record); hub peak "
               f"{stage.publish.hub_peak / MIB:,.0f} MiB, node peak "
               f"{stage.publish.node_peak / MIB:,.0f} MiB")
    click.echo(f"movers         {stage.linked:,} of the new council's records linked to a "
               "child another council holds")
    click.echo(f"load average   {stage.load_before:.1f} at the start, {stage.load_after:.1f} "
               "at the end")


# (heading, width, value of a stage, format); every figure is a cost or a rate
COLUMNS: list[tuple[str, int, Callable[[Stage], float], str]] = [
    ("children", 11, lambda s: s.storage.children, ",.0f"),
    ("records", 11, lambda s: s.storage.records, ",.0f"),
    ("DB MiB", 8, lambda s: s.storage.database / MIB, ",.0f"),
    ("B/rec", 7, lambda s: s.bytes_per_record, ",.0f"),
    ("B/audit", 8, lambda s: s.audit_bytes_per_entry, ",.0f"),
    ("search/s", 9, lambda s: s.searches_per_second, ",.0f"),
    ("p50 ms", 7, lambda s: ms(s.search.run.latencies, 0.5), ".1f"),
    ("p95 ms", 7, lambda s: ms(s.search.run.latencies, 0.95), ".1f"),
    ("p99 ms", 7, lambda s: ms(s.search.run.latencies, 0.99), ".1f"),
    ("applied/s", 10, lambda s: s.applied_per_second, ",.0f"),
    ("resolved/s", 11, lambda s: s.resolved_per_second, ",.0f"),
    ("resolve ms/rec", 15, lambda s: s.resolver_ms_per_record, ".2f"),
    ("hub MiB", 8, lambda s: s.hub_rss / MIB, ",.0f"),
    ("load", 5, lambda s: s.load_before, ".1f"),
]
GROWTH = ["records", "DB MiB", "B/rec", "search/s", "p99 ms", "applied/s", "resolved/s",
          "resolve ms/rec", "hub MiB"]


def _growth(a: Stage, b: Stage) -> str:
    """How each cost changed from stage a to stage b, and the exponent k of
    cost ∝ children^k that change implies."""
    ratio = b.storage.children / a.storage.children
    parts = []
    for heading, _width, value, _fmt in COLUMNS:
        if heading not in GROWTH:
            continue
        before, after = value(a), value(b)
        change = after / before if before else math.inf
        k = math.log(change) / math.log(ratio) if change > 0 and ratio > 1 else math.nan
        parts.append(f"{heading} ×{change:.2f} (k {k:+.2f})")
    return f"children ×{ratio:.1f} → " + ", ".join(parts)


def print_table(stages: list[Stage], *, clients: int, hubs: int, publish_children: int) -> None:
    click.echo(f"\n== scale: one hub grown in stages ({clients} clients searching "
               f"{hubs} hub process(es); a new council of {publish_children:,} children "
               "published at each stage)")
    click.echo(" ".join(f"{h:>{w}}" for h, w, _v, _f in COLUMNS))
    for stage in stages:
        click.echo(" ".join(f"{value(stage):>{w}{fmt}}" for _h, w, value, fmt in COLUMNS))
    if len(stages) < 2:
        return
    click.echo("\ngrowth per × children (k: the exponent of cost ∝ children^k; "
               "0 flat, 1 linear)")
    for a, b in itertools.pairwise(stages):
        click.echo(_growth(a, b))
    if len(stages) > 2:
        click.echo("first → last: " + _growth(stages[0], stages[-1]))
