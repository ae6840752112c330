"""Publishing the outbox to the hub: batch, sign, send, keep the signed receipt.

A batch is built and stored (its exact bytes, and which outbox entries it
holds) in one transaction *before* it is sent, so after any crash the node
resends the very same bytes and the hub recognises them (same seq, same hash)
instead of seeing a fork. At every start, and after any refusal about
sequence, the node reads the hub's cursor and resends what the hub lacks.

Only retryable errors are retried (and our own request refused as a replay, see
``_worth_retrying``), with capped exponential backoff and jitter (tenacity); the
backoff does not reset by itself while failures continue.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import asyncpg
import tenacity
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from local_node.keyfile import KeySource, as_key_source
from local_node.services.hub_shielding import HubShielding
from local_node.storage.key_status import KeyStatusStore
from local_node.storage.outbox import OutboxStore, SentBatch
from local_node.transport import HubClient, HubCursor
from protocol.batch import GENESIS, REJECTED, Batch, DeleteOp, Receipt, UpsertOp, batch_hash
from protocol.errors import ErrorCode, SignpostError
from protocol.key_announcement import parse_timestamp
from protocol.signing import BATCH_TYPE, RECEIPT_TYPE, Envelope
from server_common import database

log = logging.getLogger(__name__)


class PublishError(SignpostError):
    """Publishing cannot go on without a human: a fork, lost history, a bad receipt."""


@dataclass(slots=True)
class PublishReport:
    batches_sent: int = 0
    batches_resent: int = 0
    records_sent: int = 0
    records_rejected: int = 0


class PublishObserver(Protocol):
    """Told of every failed call to the hub (the node's metrics); must not block or raise."""

    def publish_error(self, code: str) -> None: ...


# Warn in the log when the signing key has less than this left (seconds).
KEY_EXPIRY_WARNING = 14 * 86400


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _worth_retrying(exc: BaseException) -> bool:
    """Retryable errors, and our own request refused as a replay: a copy of it reached
    the hub first (a duplicating proxy, say). Every attempt is signed anew with a fresh
    nonce and batches are idempotent, so sending again is safe and is what gets the
    receipt (the copy may even have applied the batch)."""
    return isinstance(exc, SignpostError) and (
        exc.retryable or exc.code == ErrorCode.AUTH_REPLAYED_NONCE)


class Publisher:
    def __init__(self, pool: asyncpg.Pool, outbox: OutboxStore, client: HubClient,
                 council: str, key: Ed25519PrivateKey | KeySource,
                 hub_public_key: Ed25519PublicKey,
                 *, batch_size: int = 5000, max_backoff: float = 60.0,
                 max_attempts: int | None = None, pipeline: int = 2,
                 observer: PublishObserver | None = None, key_status: KeyStatusStore,
                 shielding: HubShielding) -> None:
        self.pool = pool
        self.outbox = outbox
        self.client = client
        self.council = council
        # Looked up for every batch: after ``local-node keys rotate`` replaced the key
        # file, the next batch is signed with the new key (see local_node.keyfile).
        self.key = as_key_source(key)
        self.key_status = key_status
        self._expiry_warned = float("-inf")
        self._key_reported: tuple[str, datetime | None] | None = None
        self.hub_public_key = hub_public_key
        self.batch_size = batch_size
        self.max_backoff = max_backoff
        self.max_attempts = max_attempts
        self.pipeline = max(1, pipeline)
        self.observer = observer
        self._sending = asyncio.Lock()
        self.shielding = shielding

    def _observe(self, exc: SignpostError) -> None:
        if self.observer is not None:
            self.observer.publish_error(str(exc.code))

    def _retrying(self) -> tenacity.AsyncRetrying:
        stop = (tenacity.stop_after_attempt(self.max_attempts) if self.max_attempts
                else tenacity.stop_never)
        return tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception(_worth_retrying),
            wait=tenacity.wait_random_exponential(multiplier=0.2, max=self.max_backoff),
            stop=stop,
            before_sleep=lambda rs: log.warning(
                "hub call failed; retrying",
                extra={"attempt": rs.attempt_number,
                       "error": repr(rs.outcome.exception()) if rs.outcome else None}),
            reraise=True,
        )

    async def publish_all(self) -> PublishReport:
        """Catch up with the hub, then send the whole outbox; retries retryable errors."""
        report = PublishReport()
        # One sender at a time per process: the scheduled reconcile publishes too.
        async with self._sending:
            await self._publish_all(report)
        return report

    async def _publish_all(self, report: PublishReport) -> None:
        async for attempt in self._retrying():
            with attempt:
                try:
                    await self._catch_up(report)
                    await self._drain(report)
                except SignpostError as exc:
                    self._observe(exc)
                    raise

    async def _drain(self, report: PublishReport) -> None:
        """Send the outbox with up to ``pipeline`` batches in flight: the hub validates
        the next batch while it writes the previous one. Batches are built (and stored)
        strictly in seq order; the hub applies them in seq order whatever the arrival."""
        in_flight: deque[asyncio.Task[int]] = deque()
        try:
            while True:
                built = await self._build_next()
                if built is None:
                    break
                batch, size = built
                in_flight.append(asyncio.create_task(self._deliver(batch)))
                report.batches_sent += 1
                report.records_sent += size
                if len(in_flight) >= self.pipeline:
                    report.records_rejected += await in_flight.popleft()
            while in_flight:
                report.records_rejected += await in_flight.popleft()
        finally:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)

    async def _catch_up(self, report: PublishReport) -> None:
        cursor = await self.client.read_cursor()
        hub_seq, hub_hash = cursor.seq, cursor.hash
        async with self.pool.acquire() as conn:
            await self._note_key_status(conn, cursor)
            head = await self.outbox.head(conn)
            local_seq = head.seq if head else 0
            if hub_seq > local_seq:
                raise PublishError(
                    f"the hub holds seq {hub_seq} but this node only knows {local_seq}: "
                    "local history was lost (restored from an old backup?)",
                    code=ErrorCode.FORK)
            if hub_seq > 0:
                ours = await self.outbox.batch(conn, hub_seq)
                if ours is None or ours.hash != hub_hash:
                    raise PublishError(f"the hub's batch {hub_seq} is not ours: fork",
                                       code=ErrorCode.FORK)
            missing = await self.outbox.batches_after(conn, hub_seq)
            unreceipted = [b for b in await self.outbox.batches_after(conn, 0)
                           if b.receipt is None and b.seq <= hub_seq]
        for batch in unreceipted + missing:
            await self._deliver(batch)
            report.batches_resent += 1

    async def _note_key_status(self, conn: asyncpg.Connection, cursor: HubCursor) -> None:
        """Keep the key's expiry as the hub reported it; warn (hourly) when it is near."""
        try:
            not_after = (None if cursor.key_not_after is None
                         else parse_timestamp(cursor.key_not_after, "key_not_after"))
        except SignpostError:
            log.warning("the hub reported a malformed key expiry",
                        extra={"key_not_after": cursor.key_not_after})
            return
        if self._key_reported != (cursor.kid, not_after):  # a write only when it changes
            await self.key_status.record(conn, cursor.kid, not_after)
            self._key_reported = (cursor.kid, not_after)
        if not_after is None:
            return
        left = (not_after - datetime.now(UTC)).total_seconds()
        loop_time = asyncio.get_running_loop().time()
        if left < KEY_EXPIRY_WARNING and loop_time - self._expiry_warned >= 3600:
            self._expiry_warned = loop_time
            log.warning("the council's signing key expires soon: run 'local-node keys rotate'",
                        extra={"kid": cursor.kid, "not_after": cursor.key_not_after,
                               "days_left": round(left / 86400, 1)})

    async def _build_next(self) -> tuple[SentBatch, int] | None:
        """Put the next pending outbox entries in a signed batch, stored before sending."""
        async with self.pool.acquire() as conn, conn.transaction():
            # Another process may build batches too (``local-node reconcile`` or
            # ``publish`` beside ``serve``): one builder at a time, each on the other's head.
            await self.outbox.lock_for_building(conn)
            entries = await self.outbox.pending(conn, self.batch_size)
            if not entries:
                return None
            head = await self.outbox.head(conn)
            seq = (head.seq if head else 0) + 1
            prev = head.hash if head else GENESIS
            ops = tuple(
                UpsertOp(e.local_id, e.version, e.record) if e.op == "upsert" and e.record
                else DeleteOp(e.local_id, e.version)
                for e in entries
            )
            payload = Batch(self.council, seq, prev, _now(), ops).encode()
            envelope = Envelope.sign(BATCH_TYPE, payload, [self.key()]).encode()
            hash_ = batch_hash(payload)
            await self.outbox.add_batch(conn, seq, hash_, prev, envelope, len(ops))
            await self.outbox.assign(conn, [e.id for e in entries], seq)
        return SentBatch(seq, hash_, prev, envelope, None), len(entries)

    async def _deliver(self, batch: SentBatch) -> int:
        """Send one stored batch and keep its verified receipt; return rejected op count."""
        request_id = f"{self.council}-{batch.seq}-{secrets.token_hex(4)}"
        try:
            receipt_bytes = await self.client.post_batch(batch.envelope, request_id)
        except SignpostError as exc:
            if exc.code in (ErrorCode.SEQ_GAP,):
                # The hub is behind us; re-read the cursor and resend on the next attempt.
                exc.retryable = True
            raise
        envelope = Envelope.decode(receipt_bytes)
        if envelope.payload_type != RECEIPT_TYPE or not envelope.verified_by(self.hub_public_key):
            raise PublishError("receipt is not signed by the configured hub key",
                               code=ErrorCode.ENVELOPE_BAD_SIGNATURE)
        receipt = Receipt.decode(envelope.payload)
        if receipt.seq != batch.seq or receipt.batch_hash != batch.hash:
            raise PublishError(f"receipt is for seq {receipt.seq}, not {batch.seq}",
                               code=ErrorCode.ENVELOPE_BAD_SIGNATURE)
        rejections = [(r.local_id, r.code or "", r.message) for r in receipt.results
                      if r.status == REJECTED]
        async with self.pool.acquire() as conn, conn.transaction():
            await self.outbox.set_receipt(conn, batch.seq, receipt_bytes, receipt.counts())
            await self.outbox.add_rejections(conn, batch.seq, rejections)
        if rejections:
            log.warning("hub rejected records", extra={"seq": batch.seq,
                                                       "rejected": len(rejections)})
        return len(rejections)

    async def heartbeat(self) -> None:
        async with self.pool.acquire() as conn:
            summary = await self.outbox.summary(conn)
        try:
            await self.client.post_heartbeat(summary["head_seq"], summary["outbox_depth"],
                                             _now())
            # and learn which children another council shields (docs/design.md §6)
            await self.shielding.learn()
        except SignpostError as exc:
            self._observe(exc)
            raise

    async def run_forever(self, interval: float, heartbeat_interval: float) -> None:
        """Publish whenever the outbox has entries; heartbeat on a schedule. Never returns."""
        last_beat = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self.publish_all()
                if loop.time() - last_beat >= heartbeat_interval:
                    await self.heartbeat()
                    last_beat = loop.time()
            except SignpostError as exc:
                # Nothing stops here: the loop tries again at the next interval. A hub
                # that is down or cut off (retries used up) is an outage to wait out; a
                # refusal (a revoked key, a chain the hub does not know) needs a person.
                if _worth_retrying(exc):
                    log.warning("hub unreachable; publishing resumes at the next interval",
                                extra={"code": str(exc.code), "error": exc.message})
                else:
                    log.error("hub refused publishing; trying again at the next interval",
                              extra={"code": str(exc.code), "error": exc.message})
            except Exception as exc:
                # The node's own database restarting must not end publishing for good
                # (in ``serve`` nothing would restart this task): found by the fault
                # runs, which SIGKILL PostgreSQL under a running publisher.
                if not database.unavailable(exc):
                    raise
                log.warning("database unavailable; publishing resumes when it is back",
                            extra={"error": type(exc).__name__})
            await asyncio.sleep(interval)
