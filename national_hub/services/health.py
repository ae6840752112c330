"""Per-council health at the hub (docs/design.md §7): what each council's node last said, how
far the hub is behind it, what the hub refused, its keys, and a status with every
reason. ``/v1/federation/health``, ``national-hub status``, ``/ops`` and the
Prometheus collector all read the one :meth:`HealthService.snapshot`.

A council is GOOD with no reason, WARN or BAD with at least one; the federation is
as bad as its worst council. Thresholds come from the ``[health]`` config section.

Example (``FederationHealth.to_dict()``, abridged)::

    {"generated_at": "2026-11-25T10:00:00+00:00", "status": "BAD",
     "councils": [{"code": "E10000011", "name": "East Sussex", "status": "BAD",
                   "reasons": ["no heartbeat for 12 min",
                               "forked: seq 7 was already applied with a different hash"],
                   "hub_seq": 7, "node_seq": 7, "lag": 0, "outbox_depth": 0, ...}]}
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import asyncpg

from national_hub.config import HealthSection
from national_hub.storage.health import (
    CouncilState,
    HealthStore,
    WitnessHealthStore,
    WitnessState,
)
from national_hub.storage.heartbeats import HISTORY_KEEP_SECONDS
from national_hub.storage.notices import NoticeStore
from national_hub.storage.resolution_queue import QueueDepth, ResolutionQueueStore

REJECTED_WINDOW_SECONDS = 24 * 3600.0
HISTORY_BUCKET_SECONDS = 300
MAX_HISTORY_HOURS = HISTORY_KEEP_SECONDS / 3600


class Status(StrEnum):
    GOOD = "GOOD"
    WARN = "WARN"
    BAD = "BAD"


_RANK = {Status.GOOD: 0, Status.WARN: 1, Status.BAD: 2}


def worst(statuses: Iterable[str]) -> Status:
    return max((Status(s) for s in statuses), key=_RANK.__getitem__, default=Status.GOOD)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True, slots=True)
class CouncilHealth:
    code: str
    name: str
    status: str
    reasons: list[str]
    hub_seq: int                    # the last batch the hub applied
    node_seq: int | None            # the node's head seq, from its last heartbeat
    lag: int | None                 # node_seq − hub_seq (never below 0)
    outbox_depth: int | None
    last_batch_at: datetime | None
    seconds_since_heartbeat: float | None
    rejected_24h: dict[str, int]    # error code → batches refused
    forked: bool
    # Days until the council's last usable key expires (< 0: since it did); None when
    # a key never expires, or all are revoked. A key superseded by rotation, which
    # expires at the end of the overlap, does not count while a later key lives on.
    key_expiry_days: float | None
    records: int                    # live records held at the hub
    review_queue: int               # records in an open pair of the review queue
    # Entries of the council's records waiting for the resolver, and how long the
    # oldest has waited (None: none waiting).
    resolution_queue: int = 0
    resolution_wait_seconds: float | None = None
    # The council's node as a witness of the hub's audit log: GOOD/WARN/BAD on its
    # own (its reasons are among ``reasons``) and the size it last cosigned.
    audit_witness: str = "GOOD"
    audit_cosigned_size: int | None = None
    # The council node's own audit log as the hub witnesses it (docs/PROTOCOL.md §18):
    # BAD when the hub refused its latest checkpoint (truncated, rewritten, forked).
    node_audit_log: str = "GOOD"
    # Notices made for the council that its node has not fetched yet, and how long the
    # oldest has waited (docs/notices.md; alert SignpostNoticesUndelivered).
    notices_undelivered: int = 0
    notices_wait_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code, "name": self.name, "status": str(self.status),
            "reasons": list(self.reasons), "hub_seq": self.hub_seq, "node_seq": self.node_seq,
            "lag": self.lag, "outbox_depth": self.outbox_depth,
            "last_batch_at": _iso(self.last_batch_at),
            "seconds_since_heartbeat": self.seconds_since_heartbeat,
            "rejected_24h": dict(self.rejected_24h), "forked": self.forked,
            "key_expiry_days": self.key_expiry_days, "records": self.records,
            "review_queue": self.review_queue, "resolution_queue": self.resolution_queue,
            "resolution_wait_seconds": self.resolution_wait_seconds,
            "audit_witness": self.audit_witness,
            "node_audit_log": self.node_audit_log,
            "audit_cosigned_size": self.audit_cosigned_size,
            "notices_undelivered": self.notices_undelivered,
            "notices_wait_seconds": self.notices_wait_seconds,
        }


@dataclass(frozen=True, slots=True)
class FederationHealth:
    generated_at: datetime
    status: str
    councils: list[CouncilHealth]

    def council(self, code: str) -> CouncilHealth | None:
        return next((c for c in self.councils if c.code == code), None)

    def to_dict(self) -> dict[str, Any]:
        return {"generated_at": _iso(self.generated_at), "status": str(self.status),
                "councils": [c.to_dict() for c in self.councils]}


def span(seconds: float) -> str:
    """A duration as people say it: "45 s", "12 min", "5 h", "9 days"."""
    seconds = abs(seconds)
    if seconds < 90:
        return f"{round(seconds)} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    if seconds < 48 * 3600:
        return f"{round(seconds / 3600)} h"
    days = round(seconds / 86400)
    return f"{days} day" if days == 1 else f"{days} days"


def _batches(n: int) -> str:
    return "1 batch" if n == 1 else f"{n} batches"


def _grade(value: float, warn: float, bad: float) -> Status | None:
    if value >= bad:
        return Status.BAD
    if value >= warn:
        return Status.WARN
    return None


def assess(state: CouncilState, now: datetime, rejected: dict[str, int],
           limits: HealthSection, queued: QueueDepth | None = None
           ) -> list[tuple[Status, str]]:
    """Every reason the council is not GOOD, each with the status it earns."""
    found: list[tuple[Status, str]] = []

    def note(status: Status | None, reason: str) -> None:
        if status is not None:
            found.append((status, reason))

    if state.heartbeat_at is None:
        note(Status.WARN, "never sent a heartbeat")
    else:
        silent = (now - state.heartbeat_at).total_seconds()
        note(_grade(silent, limits.heartbeat_warn, limits.heartbeat_bad),
             f"no heartbeat for {span(silent)}")
    if state.head_seq is not None:
        lag = max(0, state.head_seq - state.hub_seq)
        note(_grade(lag, limits.lag_warn, limits.lag_bad), f"lag {_batches(lag)}")
    if state.outbox_depth is not None and state.outbox_depth >= limits.outbox_warn > 0:
        note(Status.WARN, f"outbox {state.outbox_depth} records waiting")
    total = sum(rejected.values())
    if total:
        codes = ", ".join(f"{code}: {n}" for code, n in sorted(rejected.items()))
        note(_grade(total, limits.rejected_warn, limits.rejected_bad),
             f"{_batches(total)} rejected in 24 h ({codes})")
    if state.forked_at is not None:
        note(Status.BAD, f"forked: {state.fork_detail or 'since ' + state.forked_at.isoformat()}")
    if queued is not None and queued.oldest is not None:
        waited = max(0.0, (now - queued.oldest).total_seconds())
        note(_grade(waited, limits.resolution_warn, limits.resolution_bad),
             f"records waiting {span(waited)} for national resolution "
             f"({queued.entries} queued)")
    key = f"key {(state.last_kid or '')[:8]}…"
    left = None if state.last_ends is None else (state.last_ends - now).total_seconds()
    if state.keys == 0:
        note(Status.BAD, "no key enrolled")
    elif state.keys_usable == 0:
        if state.keys_revoked == state.keys:
            note(Status.BAD, "no usable key: all revoked")
        elif state.keys_revoked == 0 and left is not None:
            note(Status.BAD, f"no usable key: all expired ({key} expired {span(left)} ago)")
        else:
            note(Status.BAD, "no usable key: revoked or expired")
    elif left is not None and not state.keys_forever:
        grade = (Status.BAD if left <= limits.key_expiry_bad
                 else Status.WARN if left <= limits.key_expiry_warn else None)
        note(grade, f"{key} expires in {span(left)}")
    return found


def witness_reasons(state: WitnessState | None, now: datetime,
                    limits: HealthSection) -> list[tuple[Status, str]]:
    """Why the council's witnessing of the audit log is not GOOD: it refused to cosign
    (BAD), the log no longer agrees with what it cosigned (BAD), or the hub's
    checkpoints have gone uncosigned by it for ``witness_warn`` (WARN)."""
    if state is None:
        return []
    found: list[tuple[Status, str]] = []
    if state.alarm is not None:
        found.append((Status.BAD, f"audit witness refused to cosign: {state.alarm}"))
    size = state.cosigned_size
    if size is not None and size > state.log_size:
        found.append((Status.BAD, f"audit log truncated: it holds {state.log_size} entries, "
                                  f"the council cosigned {size}"))
    elif size is not None and state.signed_root != state.cosigned_root:
        found.append((Status.BAD, (
            f"audit log inconsistent with the council's cosigned checkpoint of {size} "
            "entries: " + ("the hub's checkpoint is gone" if state.signed_root is None
                           else "the hub's checkpoint has another root"))))
    if state.behind_since is not None and limits.witness_warn > 0:
        behind = (now - state.behind_since).total_seconds()
        if behind >= limits.witness_warn:
            found.append((Status.WARN, f"has not cosigned the audit log for {span(behind)}"))
    return found


def node_log_reasons(state: WitnessState | None) -> list[tuple[Status, str]]:
    """Why the council node's own audit log is not GOOD: the hub refused its latest
    checkpoint (BAD), until a checkpoint of it is kept again."""
    if state is None or state.node_log_alarm is None:
        return []
    return [(Status.BAD, f"the node's own audit log: {state.node_log_alarm}")]


class HealthService:
    def __init__(self, pool: asyncpg.Pool, limits: HealthSection, store: HealthStore, *,
                 queue: ResolutionQueueStore, witnesses: WitnessHealthStore,
                 notices: NoticeStore | None = None) -> None:
        self.pool = pool
        self.limits = limits
        self.store = store
        self.queue = queue
        self.witness_store = witnesses
        self.notices = notices  # None: the snapshot counts no notices

    async def snapshot(self) -> FederationHealth:
        # One read-only snapshot, so every figure is of the same moment (now()).
        async with self.pool.acquire() as conn, conn.transaction(
                isolation="repeatable_read", readonly=True):
            now = await self.store.now(conn)
            states = await self.store.councils(conn)
            held = await self.store.records_held(conn)
            review = await self.store.awaiting_review(conn)
            rejected = await self.store.rejections(conn, REJECTED_WINDOW_SECONDS)
            queued = await self.queue.depth(conn)
            witnesses = {w.code: w for w in await self.witness_store.witnesses(conn)}
            notices = ((await self.notices.counts(conn))["councils"]
                       if self.notices is not None else {})
        councils = [self._with_notices(
                        self._council(s, now, held.get(s.code, 0), rejected.get(s.code, {}),
                                      review.get(s.code, 0), queued.get(s.code),
                                      witnesses.get(s.code)),
                        notices.get(s.code))
                    for s in states]
        return FederationHealth(now, worst(c.status for c in councils), councils)

    @staticmethod
    def _with_notices(council: CouncilHealth, counts: dict[str, Any] | None) -> CouncilHealth:
        if not counts or not counts["undelivered"]:
            return council
        return replace(council, notices_undelivered=int(counts["undelivered"]),
                       notices_wait_seconds=round(counts["oldest_undelivered_seconds"], 3))

    def _council(self, state: CouncilState, now: datetime, records: int,
                 rejected: dict[str, int], review_queue: int = 0,
                 queued: QueueDepth | None = None,
                 witness: WitnessState | None = None) -> CouncilHealth:
        witnessing = witness_reasons(witness, now, self.limits)
        node_log = node_log_reasons(witness)
        found = assess(state, now, rejected, self.limits, queued) + witnessing + node_log
        heard = state.heartbeat_at
        expiry = None if state.keys_forever else state.last_ends
        return CouncilHealth(
            code=state.code, name=state.name, status=worst(s for s, _ in found),
            reasons=[reason for _, reason in found], hub_seq=state.hub_seq,
            node_seq=state.head_seq,
            lag=None if state.head_seq is None else max(0, state.head_seq - state.hub_seq),
            outbox_depth=state.outbox_depth, last_batch_at=state.last_batch_at,
            seconds_since_heartbeat=(None if heard is None
                                     else max(0.0, (now - heard).total_seconds())),
            rejected_24h=dict(sorted(rejected.items())), forked=state.forked_at is not None,
            key_expiry_days=(None if expiry is None
                             else round((expiry - now).total_seconds() / 86400, 2)),
            records=records, review_queue=review_queue,
            resolution_queue=queued.entries if queued else 0,
            resolution_wait_seconds=(
                None if queued is None or queued.oldest is None
                else round(max(0.0, (now - queued.oldest).total_seconds()), 3)),
            audit_witness=worst(s for s, _ in witnessing),
            audit_cosigned_size=witness.cosigned_size if witness else None,
            node_audit_log=worst(s for s, _ in node_log),
        )

    async def history(self, hours: float) -> dict[str, list[dict[str, Any]]]:
        """Per council, one point per 5 minutes over the last ``hours`` (at most 48):
        ``{"t": bucket start, "lag": batches behind at the bucket's end (None before
        the first heartbeat), "hub_seq": hub seq at the bucket's end,
        "records_applied": records applied in the bucket}``."""
        if not 0 < hours <= MAX_HISTORY_HOURS:
            raise ValueError(f"hours must be in (0, {MAX_HISTORY_HOURS:g}]")
        async with self.pool.acquire() as conn, conn.transaction(
                isolation="repeatable_read", readonly=True):
            now = await self.store.now(conn)
            since = now - timedelta(hours=hours)
            before = await self.store.state_before(conn, since)
            buckets = await self.store.buckets(conn, since, HISTORY_BUCKET_SECONDS)
        by_key = {(b.council, int(b.start.timestamp())): b for b in buckets}
        step = HISTORY_BUCKET_SECONDS
        first = int(since.timestamp()) // step * step
        grid = range(first, int(now.timestamp()) // step * step + 1, step)
        out: dict[str, list[dict[str, Any]]] = {}
        for code in sorted(before):
            hub_seq, head_seq = before[code]
            series = []
            for start in grid:
                bucket = by_key.get((code, start))
                applied = 0
                if bucket is not None:
                    if bucket.hub_seq is not None:
                        hub_seq = max(hub_seq, bucket.hub_seq)
                    if bucket.head_seq is not None:
                        head_seq = bucket.head_seq
                    applied = bucket.records_applied
                series.append({
                    "t": datetime.fromtimestamp(start, UTC).isoformat(),
                    # the node's head is never below what the hub holds from it
                    "lag": None if head_seq is None else max(0, head_seq - hub_seq),
                    "hub_seq": hub_seq, "records_applied": applied,
                })
            out[code] = series
        return out
