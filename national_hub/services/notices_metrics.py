"""The hub's notice metrics (docs/notices.md), read at each scrape like the health gauges:

* ``signpost_notices{council}`` — notices held for the council (one per child and day)
* ``signpost_notices_undelivered{council}`` — of them, made or coalesced since the
  council's node last fetched
* ``signpost_notices_undelivered_oldest_seconds{council}`` — how long the oldest of
  those has waited (alert ``SignpostNoticesUndelivered``)
* ``signpost_notice_changes_pending`` — changed records waiting for the notice job
* ``signpost_notices_created_total`` — notices written by this hub process
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from national_hub.services.notices import NoticeFeed, NoticeJob


class NoticeCollector:
    def __init__(self, job: NoticeJob | None = None) -> None:
        self.counts: dict[str, Any] | None = None
        self.job = job

    async def refresh(self, feed: NoticeFeed, job: NoticeJob) -> None:
        self.counts = await feed.counts()
        self.job = job

    @staticmethod
    def _families() -> dict[str, GaugeMetricFamily]:
        council = ["council"]
        return {
            "total": GaugeMetricFamily("signpost_notices",
                                       "Notices held for the council.", labels=council),
            "undelivered": GaugeMetricFamily(
                "signpost_notices_undelivered",
                "Notices made or coalesced since the council's node last fetched.",
                labels=council),
            "oldest_undelivered_seconds": GaugeMetricFamily(
                "signpost_notices_undelivered_oldest_seconds",
                "Seconds the council's oldest undelivered notice has waited.",
                labels=council),
        }

    def describe(self) -> Iterator[Metric]:
        yield from self._families().values()
        yield GaugeMetricFamily("signpost_notice_changes_pending",
                                "Changed records waiting for the notice job.")
        yield CounterMetricFamily("signpost_notices_created",
                                  "Notices written by this hub process.")

    def collect(self) -> Iterator[Metric]:
        counts = self.counts
        if counts is None:
            return
        fam = self._families()
        for code, row in sorted(counts["councils"].items()):
            for key, family in fam.items():
                family.add_metric([code], row[key])
        yield from fam.values()
        yield GaugeMetricFamily("signpost_notice_changes_pending",
                                "Changed records waiting for the notice job.",
                                value=counts["pending_changes"])
        yield CounterMetricFamily("signpost_notices_created",
                                  "Notices written by this hub process.",
                                  value=self.job.created_total if self.job else 0)
