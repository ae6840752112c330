"""The node's Prometheus metrics.

* ``signpost_node_outbox_depth`` — records waiting for a batch
* ``signpost_node_head_seq`` — the newest batch built
* ``signpost_node_receipted_seq`` — the newest batch with the hub's signed receipt
* ``signpost_node_rejected_records_total`` — records the hub rejected, ever (counted
  from the stored receipts, so it survives restarts)
* ``signpost_node_publish_errors_total{code}`` — failed calls to the hub, by error
  code (``unavailable`` when the hub cannot be reached); one per failed attempt

* ``signpost_node_audit_witness_ok`` — 1 while the node cosigns the hub's audit
  checkpoints, 0 once it refused one (truncation, rewrite, fork: see the node's log);
  absent before its first cosignature
* ``signpost_node_audit_witness_cosigned_size`` — entries of the hub's log it last cosigned

The first four are read from the outbox at each scrape (``refresh`` runs in the
``/metrics`` handler, because a collector's ``collect()`` cannot await).
"""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from local_node.storage.outbox import OutboxStore
from local_node.storage.witness import WitnessState, WitnessStore


class OutboxCollector:
    """Exports the last outbox summary read; ``NodeMetrics.refresh`` reads a new one."""

    def __init__(self) -> None:
        self.summary: dict[str, int] | None = None

    @staticmethod
    def _families() -> dict[str, GaugeMetricFamily | CounterMetricFamily]:
        return {
            "outbox_depth": GaugeMetricFamily(
                "signpost_node_outbox_depth", "Records in the outbox waiting for a batch."),
            "head_seq": GaugeMetricFamily(
                "signpost_node_head_seq", "Seq of the newest batch built."),
            "receipted_seq": GaugeMetricFamily(
                "signpost_node_receipted_seq",
                "Seq of the newest batch the hub has receipted."),
            "rejected_records": CounterMetricFamily(
                "signpost_node_rejected_records",
                "Records the hub rejected, counted from its stored receipts."),
        }

    def describe(self) -> Iterator[Metric]:
        yield from self._families().values()

    def collect(self) -> Iterator[Metric]:
        summary = self.summary
        if summary is None:
            return
        for key, family in self._families().items():
            family.add_metric([], summary[key])
            yield family


class WitnessCollector:
    """Exports the witness state last read; ``NodeMetrics.refresh`` reads a new one."""

    def __init__(self) -> None:
        self.state: WitnessState | None = None

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (GaugeMetricFamily("signpost_node_audit_witness_ok",
                                  "1: cosigning the hub's audit checkpoints; 0: refused one."),
                GaugeMetricFamily("signpost_node_audit_witness_cosigned_size",
                                  "Entries of the hub's audit log this node last cosigned."))

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        state = self.state
        if state is None or state.ok is None:
            return
        ok, size = self._families()
        ok.add_metric([], 1 if state.ok else 0)
        yield ok
        if state.kept is not None:
            size.add_metric([], state.kept.tree_size)
            yield size


class NodeMetrics:
    """The node's own metrics, on the app's registry; also the publisher's observer."""

    def __init__(self, registry: CollectorRegistry, outbox: OutboxStore) -> None:
        self.outbox = outbox
        self.publish_errors = Counter(
            "signpost_node_publish_errors", "Failed calls to the hub, by error code.",
            ["code"], registry=registry)
        self.collector = OutboxCollector()
        registry.register(self.collector)
        self.witness = WitnessCollector()
        registry.register(self.witness)

    async def refresh(self, pool: asyncpg.Pool) -> None:
        """Read the outbox for the next ``collect()``; a failure fails the scrape."""
        async with pool.acquire() as conn:
            row = await self.outbox.summary(conn)
            self.witness.state = await WitnessStore().state(conn)
        self.collector.summary = {key: int(row[key]) for key in
                                  ("outbox_depth", "head_seq", "receipted_seq",
                                   "rejected_records")}

    def publish_error(self, code: str) -> None:
        self.publish_errors.labels(code).inc()
