"""The node's notice metrics (docs/notices.md), read at each scrape:

* ``signpost_node_notices`` — notices held; ``signpost_node_notices_unread`` — inbox
  entries not yet read
* ``signpost_node_notice_emails_due`` — emails waiting to be sent;
  ``signpost_node_notice_emails_failing`` — of them, those whose last attempt failed
  (alert ``SignpostNoticeEmailsFailing``)
* ``signpost_node_notice_email_failures_total`` — failed sends by this process
* ``signpost_node_notices_received_total`` — new or newer notices fetched by it
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from local_node.services.notices import NoticeService

_GAUGES = {
    "notices": ("signpost_node_notices", "Notices from the hub held here."),
    "unread": ("signpost_node_notices_unread", "Inbox entries not yet read."),
    "emails_due": ("signpost_node_notice_emails_due", "Notice emails waiting to be sent."),
    "emails_failing": ("signpost_node_notice_emails_failing",
                       "Notice emails due whose last attempt failed."),
}
_COUNTERS = {
    "email_failures_total": ("signpost_node_notice_email_failures",
                             "Notice emails that failed to send (this process)."),
    "received_total": ("signpost_node_notices_received",
                       "Notices fetched from the hub that were new or newer (this process)."),
}


class NodeNoticeCollector:
    def __init__(self) -> None:
        self.values: dict[str, int] | None = None

    async def refresh(self, service: NoticeService) -> None:
        async with service.pool.acquire() as conn:
            row = await service.store.counts(conn)
        self.values = {k: int(row[k]) for k in _GAUGES} | {
            "email_failures_total": service.email_failures_total,
            "received_total": service.received_total}

    def describe(self) -> Iterator[Metric]:
        for name, text in _GAUGES.values():
            yield GaugeMetricFamily(name, text)
        for name, text in _COUNTERS.values():
            yield CounterMetricFamily(name, text)

    def collect(self) -> Iterator[Metric]:
        values = self.values
        if values is None:
            return
        for key, (name, text) in _GAUGES.items():
            yield GaugeMetricFamily(name, text, value=values[key])
        for key, (name, text) in _COUNTERS.items():
            yield CounterMetricFamily(name, text, value=values[key])
