"""The node's Prometheus metrics.

* ``signpost_node_outbox_depth`` — records waiting for a batch
* ``signpost_node_head_seq`` — the newest batch built
* ``signpost_node_receipted_seq`` — the newest batch with the hub's signed receipt
* ``signpost_node_rejected_records_total`` — records the hub rejected, ever (counted
  from the stored receipts, so it survives restarts)
* ``signpost_node_publish_errors_total{code}`` — failed calls to the hub, by error
  code (``unavailable`` when the hub cannot be reached); one per failed attempt

The first four are read from the outbox at each scrape (``refresh`` runs in the
``/metrics`` handler, because a collector's ``collect()`` cannot await).
"""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from local_node.storage.outbox import OutboxStore


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


class NodeMetrics:
    """The node's own metrics, on the app's registry; also the publisher's observer."""

    def __init__(self, registry: CollectorRegistry, outbox: OutboxStore) -> None:
        self.outbox = outbox
        self.publish_errors = Counter(
            "signpost_node_publish_errors", "Failed calls to the hub, by error code.",
            ["code"], registry=registry)
        self.collector = OutboxCollector()
        registry.register(self.collector)

    async def refresh(self, pool: asyncpg.Pool) -> None:
        """Read the outbox for the next ``collect()``; a failure fails the scrape."""
        async with pool.acquire() as conn:
            row = await self.outbox.summary(conn)
        self.collector.summary = {key: int(row[key]) for key in
                                  ("outbox_depth", "head_seq", "receipted_seq",
                                   "rejected_records")}

    def publish_error(self, code: str) -> None:
        self.publish_errors.labels(code).inc()
