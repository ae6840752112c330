"""Anti-entropy at the node: find where the hub's copy differs, republish exactly that.

1. Publish what is pending (so only settled state is compared).
2. Ask the hub for its bucket digests (``protocol.anti_entropy``) and compare them
   with the node's own, computed from each child's last published (version, digest).
   The bits are chosen for the larger of the two counts (a node that lost its
   records still asks in buckets of ~32 of the hub's), and raised to the hub's
   ``min_bits`` if it refuses too few.
   The hub holds each council to an allowance of summaries and of drill-downs a
   minute (``rate_limits.per_council_digests``, ``per_council_drilldowns``): a 429
   is waited out as its Retry-After says and the request sent again, up to
   ``reconcile.max_wait`` of waiting in all, past which the reconcile stops with
   ``rate_limited`` (nothing half done: repairs are only queued after every answer).
3. Ask for the rows of the differing buckets only, and decide per local id
   (:func:`plan_repair`): an upsert for a record the hub lacks, holds damaged, holds
   older or holds differently; a delete for a record the hub holds live that the node
   no longer publishes.
4. Put those ops in the outbox, in one transaction that locks the children concerned
   and skips any that changed or have ops on their way meanwhile, and publish them
   through the normal signed batch path.

Versions: a republish keeps the version the node published when that is enough (the
hub lacks the record, holds an older version, or holds this version *damaged*, which
the hub accepts, PROTOCOL §8.2). When the hub holds this version with other content,
a tombstone at it, or a newer version (a node restored from an old backup), the
version goes above both sides' highest and the child's published version follows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

import asyncpg

from local_node.services.publisher import Publisher, PublishReport
from local_node.storage.outbox import OutboxStore
from local_node.storage.reconcile import ReconcileStore
from protocol import encoding
from protocol.anti_entropy import (
    DAMAGED,
    DELETED,
    LIVE,
    MAX_BITS,
    DigestSummary,
    HeldEntry,
    bucket_of,
    choose_bits,
    differing_buckets,
    summarise,
)
from protocol.errors import ErrorCode, SignpostError

log = logging.getLogger(__name__)

# Buckets asked for per drill-down request (the hub allows up to 1024).
DRILL_CHUNK = 256
# The longest one 429 is waited out, whatever its Retry-After says: the hub's
# allowances are per minute.
MAX_RETRY_AFTER = 60

T = TypeVar("T")


def retry_after(exc: SignpostError) -> int | None:
    """Seconds to wait before asking again, for a 429 ``rate_limited`` refusal (from its
    ``detail.retry_after``, which the hub sends with the Retry-After header, kept to 1 …
    ``MAX_RETRY_AFTER``); None for any other error.

    >>> retry_after(SignpostError("x", code=ErrorCode.RATE_LIMITED, detail={"retry_after": 7}))
    7
    >>> retry_after(SignpostError("x", code=ErrorCode.RATE_LIMITED))  # no figure: a minute
    60
    >>> retry_after(SignpostError("x", code=ErrorCode.INVALID_FIELD)) is None
    True
    """
    if exc.code != ErrorCode.RATE_LIMITED:
        return None
    told = exc.detail.get("retry_after")
    if isinstance(told, bool) or not isinstance(told, int | float):
        return MAX_RETRY_AFTER
    return min(max(1, round(told)), MAX_RETRY_AFTER)


@dataclass(frozen=True, slots=True)
class Repair:
    local_id: str
    op: str  # upsert | delete
    version: int
    # missing | deleted | damaged | stale (hub older) | differs (same version, other
    # content) | ahead (hub newer) | extra (hub holds what the node does not publish)
    reason: str


def plan_repair(mine: tuple[int, str] | None, theirs: HeldEntry | None,
                highest_used: int) -> Repair | None:
    """What to send for one local id, given the node's (version, digest) if it publishes
    it, the hub's row if it has one, and the highest version the node ever used for it.
    The Repair's local_id is filled in by the caller."""
    if mine is not None:
        version, digest = mine
        if theirs is None:
            return Repair("", "upsert", version, "missing")
        if theirs.state == LIVE and theirs.version == version and theirs.digest == digest:
            return None
        reason = {LIVE: "stale", DAMAGED: "damaged", DELETED: "deleted"}[theirs.state]
        if theirs.version < version or (theirs.version == version and theirs.state == DAMAGED):
            return Repair("", "upsert", version, reason)
        if theirs.version > version:
            reason = "ahead"
        elif theirs.state == LIVE:
            reason = "differs"
        return Repair("", "upsert", max(theirs.version, highest_used) + 1, reason)
    if theirs is None or theirs.state == DELETED:
        return None
    return Repair("", "delete", max(theirs.version, highest_used) + 1, "extra")


@dataclass(slots=True)
class ReconcileReport:
    bits: int = 0
    node_records: int = 0
    hub_records: int = 0
    buckets: int = 0
    buckets_differing: int = 0
    records_checked: int = 0
    repairs: list[Repair] = field(default_factory=list)
    # changed at the node while this ran, or with ops still on their way: left to the
    # publisher (and the next reconcile)
    skipped: list[str] = field(default_factory=list)
    # the hub rejected the version the node published (see publish_rejections): left
    # for the index team to fix at source, not sent again
    refused: list[str] = field(default_factory=list)
    published: PublishReport | None = None
    # seconds waited out for the hub's anti-entropy allowance (429 Retry-After)
    waited: int = 0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.repairs:
            out[r.reason] = out.get(r.reason, 0) + 1
        return out


class Reconciler:
    def __init__(self, pool: asyncpg.Pool, store: ReconcileStore, outbox: OutboxStore,
                 publisher: Publisher, *, max_wait: float = 600.0) -> None:
        self.pool = pool
        self.max_wait = max_wait
        self.store = store
        self.outbox = outbox
        self.publisher = publisher
        self.client = publisher.client

    async def reconcile(self) -> ReconcileReport:
        await self.publisher.publish_all()
        async with self.pool.acquire() as conn:
            expected = await self.store.expected(conn)
        report = ReconcileReport(node_records=len(expected))
        summary = await self._summary(report, choose_bits(len(expected)))
        if choose_bits(summary.records) > summary.bits:  # the hub holds far more
            summary = await self._summary(report, choose_bits(summary.records))
        report.bits = summary.bits
        report.hub_records = summary.records
        ours = summarise(expected, report.bits)
        theirs = summary.by_bucket()
        report.buckets = len(set(ours) | set(theirs))
        differing = differing_buckets(ours, theirs)
        report.buckets_differing = len(differing)
        if not differing:
            return report
        held: dict[str, HeldEntry] = {}
        for start in range(0, len(differing), DRILL_CHUNK):
            answer = await self._patiently(report, partial(
                self.client.post_digest_records, report.bits,
                differing[start:start + DRILL_CHUNK]))
            held.update((e.local_id, e) for e in answer.records)
        wanted = set(differing)
        candidates = sorted({lid for lid in expected if bucket_of(lid, report.bits) in wanted}
                            | {lid for lid, e in held.items() if e.state != DELETED})
        report.records_checked = len(candidates)
        await self._enqueue(report, candidates, expected, held)
        if report.repairs:
            report.published = await self.publisher.publish_all()
        log.info("reconciled with the hub", extra={
            "records": report.node_records, "buckets_differing": report.buckets_differing,
            "republished": len(report.repairs), **report.counts()})
        return report

    async def _summary(self, report: ReconcileReport, bits: int) -> DigestSummary:
        """The hub's bucket digests at ``bits``, or at the fewest it accepts if more."""
        try:
            return await self._patiently(report, partial(self.client.post_digests, bits))
        except SignpostError as exc:
            needed = exc.detail.get("min_bits")
            if (exc.code != ErrorCode.INVALID_FIELD or isinstance(needed, bool)
                    or not isinstance(needed, int) or not bits < needed <= MAX_BITS):
                raise
        return await self._patiently(report, partial(self.client.post_digests, needed))

    async def _patiently(self, report: ReconcileReport,
                         ask: Callable[[], Awaitable[T]]) -> T:
        """``ask()``, asked again after each 429 as long as its Retry-After says, while
        the reconcile's waiting stays within ``max_wait``; then ``rate_limited``, so a
        hub that keeps refusing ends the reconcile rather than holding it for ever."""
        while True:
            try:
                return await ask()
            except SignpostError as exc:
                wait = retry_after(exc)
                if wait is None:
                    raise
                if report.waited + wait > self.max_wait:
                    raise SignpostError(
                        f"the hub still refuses this council's anti-entropy requests as "
                        f"over its allowance after {report.waited} s of waiting "
                        f"(reconcile.max_wait {self.max_wait:g} s); nothing was "
                        f"republished: reconcile again later",
                        code=ErrorCode.RATE_LIMITED, status=429, retryable=True,
                        detail={"waited": report.waited}) from exc
                log.info("the hub's anti-entropy allowance is spent; waiting",
                         extra={"retry_after": wait, "waited": report.waited})
                await asyncio.sleep(wait)
                report.waited += wait

    async def _enqueue(self, report: ReconcileReport, candidates: list[str],
                       expected: dict[str, tuple[int, str]],
                       held: dict[str, HeldEntry]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            now = await self.store.lock_published(conn, candidates)
            busy = await self.store.unsettled(conn, candidates)
            used = await self.store.highest_versions(conn, candidates)
            refused = await self.store.refused(conn, candidates)
            repairs: list[Repair] = []
            for local_id in candidates:
                version, digest = now.get(local_id, (0, None))
                current = (version, digest) if digest is not None else None
                if local_id in busy or current != expected.get(local_id):
                    report.skipped.append(local_id)
                    continue
                if current is not None and local_id in refused:
                    report.refused.append(local_id)
                    continue
                repair = plan_repair(current, held.get(local_id), used.get(local_id, 0))
                if repair is not None:
                    repairs.append(Repair(local_id, repair.op, repair.version, repair.reason))
            data = await self.store.published_bytes(
                conn, [r.local_id for r in repairs if r.op == "upsert"])
            entries: list[tuple[str, int, str, bytes | None, str | None]] = []
            for r in repairs:
                if r.op == "delete":
                    entries.append((r.local_id, r.version, "delete", None, None))
                    report.repairs.append(r)
                    continue
                record = data.get(r.local_id)
                if record is None or encoding.sha256_hex(record) != expected[r.local_id][1]:
                    # The node's own copy of what it published is gone or damaged: the
                    # next change of the child republishes it from the index.
                    log.error("cannot republish: the node's published bytes are missing "
                              "or do not match their digest", extra={"local_id": r.local_id})
                    report.skipped.append(r.local_id)
                    continue
                entries.append((r.local_id, r.version, "upsert", record,
                                expected[r.local_id][1]))
                report.repairs.append(r)
            await self.outbox.add(conn, entries)
            await self.store.set_versions(conn, [
                (r.local_id, r.version) for r in report.repairs
                if r.local_id in now and r.version > now[r.local_id][0]])
