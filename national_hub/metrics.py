"""The hub's Prometheus metrics: what batch intake did, and each council's health.

Counters (``BatchIntake`` reports to ``HubMetrics`` as its observer):

* ``signpost_batches_total{council,outcome}`` — applied | replayed | refused
* ``signpost_batch_refusals_total{council,code}`` — refused batches by error code
* ``signpost_records_total{council,result}`` — ops applied | rejected | stale

Gauges, read from ``HealthService.snapshot()`` at each scrape (``refresh`` runs in
the ``/metrics`` handler, because a collector's ``collect()`` cannot await):

* ``signpost_federation_status`` and ``signpost_council_status{council}``:
  0 GOOD, 1 WARN, 2 BAD
* ``signpost_council_lag_batches``, ``signpost_council_outbox_depth`` (absent until
  the council's first heartbeat)
* ``signpost_council_heartbeat_age_seconds`` (+Inf for a council never heard from,
  so "no heartbeat" alerts fire for it too)
* ``signpost_council_key_expiry_seconds`` (the soonest expiry among usable keys;
  absent when none expires)
* ``signpost_council_records``, ``signpost_review_queue_size``
* ``signpost_audit_witness_status{council}``: the council's node as a witness of the
  audit log, 0 GOOD, 1 WARN (not cosigned for long), 2 BAD (it refused to cosign, or
  the log no longer agrees with what it cosigned)
* ``signpost_node_audit_log_status{council}``: the council node's own audit log as the
  hub witnesses it, 0 GOOD, 2 BAD (the hub refused its latest checkpoint: truncated,
  rewritten or forked in the node's database)
* ``signpost_resolution_queue_entries`` (the council's records waiting for the
  background resolver) and ``signpost_resolution_queue_oldest_seconds`` (how long the
  oldest has waited; 0 when none waits)

Refusals counted here are those batch intake makes (signature, chain, fork, …);
a request refused by request authentication never reaches intake.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily

from national_hub.services.health import FederationHealth, HealthService
from protocol.batch import APPLIED, REJECTED, STALE
from server_common.audit.service import AuditLog

STATUS_VALUES = {"GOOD": 0, "WARN": 1, "BAD": 2}


class HealthCollector:
    """Exports the last health snapshot taken; ``HubMetrics.refresh`` takes a new one."""

    def __init__(self) -> None:
        self.snapshot: FederationHealth | None = None

    @staticmethod
    def _families() -> dict[str, GaugeMetricFamily]:
        council = ["council"]
        return {
            "status": GaugeMetricFamily(
                "signpost_council_status", "Council health: 0 GOOD, 1 WARN, 2 BAD.",
                labels=council),
            "lag": GaugeMetricFamily(
                "signpost_council_lag_batches",
                "Batches the node has built (its last heartbeat) that the hub has not applied.",
                labels=council),
            "outbox": GaugeMetricFamily(
                "signpost_council_outbox_depth",
                "Records waiting in the node's outbox (its last heartbeat).", labels=council),
            "heartbeat": GaugeMetricFamily(
                "signpost_council_heartbeat_age_seconds",
                "Seconds since the node's last heartbeat; +Inf if it never sent one.",
                labels=council),
            "key_expiry": GaugeMetricFamily(
                "signpost_council_key_expiry_seconds",
                "Seconds until the soonest expiry among the council's usable keys.",
                labels=council),
            "records": GaugeMetricFamily(
                "signpost_council_records", "Live records the hub holds for the council.",
                labels=council),
            "review": GaugeMetricFamily(
                "signpost_review_queue_size", "The council's records awaiting review.",
                labels=council),
            "witness": GaugeMetricFamily(
                "signpost_audit_witness_status",
                "The council's node as a witness of the audit log: 0 GOOD, 1 WARN, 2 BAD.",
                labels=council),
            "node_log": GaugeMetricFamily(
                "signpost_node_audit_log_status",
                "The council node's own audit log, as the hub witnesses it: 0 GOOD, 2 BAD.",
                labels=council),
            "resolution": GaugeMetricFamily(
                "signpost_resolution_queue_entries",
                "The council's records queued for national resolution.", labels=council),
            "resolution_wait": GaugeMetricFamily(
                "signpost_resolution_queue_oldest_seconds",
                "Seconds the council's oldest record queued for resolution has waited "
                "(0: none waiting).", labels=council),
        }

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("signpost_federation_status",
                                "Worst council status: 0 GOOD, 1 WARN, 2 BAD.")
        yield from self._families().values()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snapshot = self.snapshot
        if snapshot is None:
            return
        yield GaugeMetricFamily("signpost_federation_status",
                                "Worst council status: 0 GOOD, 1 WARN, 2 BAD.",
                                value=STATUS_VALUES[snapshot.status])
        fam = self._families()
        for c in snapshot.councils:
            labels = [c.code]
            fam["status"].add_metric(labels, STATUS_VALUES[c.status])
            if c.lag is not None:
                fam["lag"].add_metric(labels, c.lag)
            if c.outbox_depth is not None:
                fam["outbox"].add_metric(labels, c.outbox_depth)
            fam["heartbeat"].add_metric(labels, math.inf if c.seconds_since_heartbeat is None
                                        else c.seconds_since_heartbeat)
            if c.key_expiry_days is not None:
                fam["key_expiry"].add_metric(labels, c.key_expiry_days * 86400)
            fam["records"].add_metric(labels, c.records)
            fam["review"].add_metric(labels, c.review_queue)
            fam["witness"].add_metric(labels, STATUS_VALUES[c.audit_witness])
            fam["node_log"].add_metric(labels, STATUS_VALUES[c.node_audit_log])
            fam["resolution"].add_metric(labels, c.resolution_queue)
            fam["resolution_wait"].add_metric(labels, c.resolution_wait_seconds or 0.0)
        yield from fam.values()


class HubMetrics:
    """The hub's own metrics, on the app's registry; also batch intake's observer."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.batches = Counter("signpost_batches", "Batches received, by outcome.",
                               ["council", "outcome"], registry=registry)
        self.refusals = Counter("signpost_batch_refusals", "Batches refused, by error code.",
                                ["council", "code"], registry=registry)
        self.records = Counter("signpost_records", "Ops in applied batches, by result.",
                               ["council", "result"], registry=registry)
        self.health = HealthCollector()
        registry.register(self.health)
        self.audit_size = Gauge("signpost_audit_log_size", "Entries in the audit log.",
                                registry=registry)
        self.audit_unsigned = Gauge(
            "signpost_audit_uncheckpointed_entries",
            "Audit entries newer than the latest signed checkpoint.", registry=registry)
        self.audit_age = Gauge(
            "signpost_audit_checkpoint_age_seconds",
            "Seconds since the latest signed audit checkpoint (+Inf: none yet).",
            registry=registry)

    async def refresh(self, health: HealthService, audit: AuditLog | None = None) -> None:
        """Take the snapshot the next ``collect()`` exports. A failure (database down)
        fails the scrape, which Prometheus reports as ``up == 0``, rather than
        exporting a stale picture."""
        self.health.snapshot = await health.snapshot()
        if audit is not None:
            size = await audit.size()
            latest = await audit.latest_checkpoint()
            self.audit_size.set(size)
            self.audit_unsigned.set(size - (latest.size if latest else 0))
            self.audit_age.set((datetime.now(UTC) - latest.time).total_seconds()
                               if latest else math.inf)

    # --- batch intake's observer -------------------------------------------------

    def applied(self, council: str, counts: Mapping[str, int]) -> None:
        self.batches.labels(council, "applied").inc()
        for result in (APPLIED, REJECTED, STALE):
            self.records.labels(council, result).inc(counts.get(result, 0))

    def replayed(self, council: str) -> None:
        self.batches.labels(council, "replayed").inc()

    def refused(self, council: str, code: str) -> None:
        self.batches.labels(council, "refused").inc()
        self.refusals.labels(council, code).inc()
