"""Receiving a council's signed batch: verify, check the chain, apply, sign a receipt.

Everything about one batch happens in one transaction holding the council's row
lock, so a batch is applied whole or not at all, and two hub replicas never
apply two batches of one council at once. Inside, each op has its own result:
a bad record is rejected alone and the rest apply. The applied records are queued
for national resolution in that transaction and resolved after the receipt is
returned (``services/resolver.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Protocol

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from national_hub.services.node_auth import check_key_usable
from national_hub.storage.anti_entropy import AntiEntropyStore
from national_hub.storage.batches import BatchStore
from national_hub.storage.councils import Council, CouncilStore
from national_hub.storage.records import PENDING, RecordRow, RecordStore
from national_hub.storage.resolution import ResolutionStore
from national_hub.storage.resolution_queue import ResolutionQueueStore
from national_hub.storage.shielding import ShieldingStore
from protocol import keys
from protocol.batch import (
    APPLIED,
    REJECTED,
    STALE,
    Batch,
    DeleteOp,
    MalformedOp,
    OpResult,
    Receipt,
    UpsertOp,
    batch_hash,
)
from protocol.errors import (
    AuthError,
    ConflictError,
    DecodeError,
    ErrorCode,
    SignpostError,
    ValidationError,
)
from protocol.matching import IdentityFields, blocking_keys
from protocol.record_codec import decode_record
from protocol.records import ChildRecord, check_display
from protocol.retention import RetentionPolicy
from protocol.signing import BATCH_TYPE, RECEIPT_TYPE, Envelope
from server_common.gc_pause import paused_gc

log = logging.getLogger(__name__)


# How far ahead of the hub's cursor a batch may arrive and wait for its predecessors
# (a node pipelines a few batches); how long it waits is configuration.
PIPELINE_WINDOW = 8


@dataclass(slots=True)
class CheckedOps:
    """The outcome of validating a batch's ops before any database work."""

    results: list[OpResult | None]
    latest: dict[str, tuple[int, UpsertOp | DeleteOp, ChildRecord | None]]
    superseded: dict[str, list[int]]
    # local_id → the row and the blocking keys to write for each upsert in ``latest``:
    # built before the council's lock, so this CPU work overlaps the previous batch's
    # writes (a node pipelines batches) instead of holding the lock.
    rows: dict[str, tuple[RecordRow, list[str]]]


class ForkDetected(ConflictError):
    """The council's history diverged; it is flagged once the batch's transaction ends
    (flagging inside it would wait on the council row lock the batch itself holds)."""


@dataclass(frozen=True, slots=True)
class IntakeResult:
    receipt_envelope: bytes
    replayed: bool


class IntakeObserver(Protocol):
    """Told the outcome of every batch (the hub's metrics); must not block or raise."""

    def applied(self, council: str, counts: Mapping[str, int]) -> None: ...
    def replayed(self, council: str) -> None: ...
    def refused(self, council: str, code: str) -> None: ...


def _record_row(op: UpsertOp, rec: ChildRecord, archived_on: date | None) -> RecordRow:
    """The hub's row for an upsert: the exact bytes, and the columns lookups use."""
    return RecordRow(
        local_id=op.local_id, version=op.version, record=op.record, digest=op.digest,
        given_name=rec.given_name, family_name=rec.family_name, dob=rec.dob, sex=rec.sex,
        postcode=rec.postcode, nhs_number=rec.nhs_number, upn=rec.upn,
        shielded=rec.shielded, link_status=PENDING, other_given_names=rec.other_given_names,
        former_family_names=tuple(rec.former_family_names), address_line=rec.address_line,
        archived_on=archived_on)


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class BatchIntake:
    def __init__(self, pool: asyncpg.Pool, councils: CouncilStore, batches: BatchStore,
                 records: RecordStore, hub_key: Ed25519PrivateKey,
                 *, predecessor_wait: float = 5.0,
                 observer: IntakeObserver | None = None,
                 queued: Callable[[], None] | None = None,
                 policy: RetentionPolicy | None = None) -> None:
        self.pool = pool
        self.policy = policy or RetentionPolicy()
        self.councils = councils
        self.batches = batches
        self.records = records
        self.resolution = ResolutionStore()
        self.queue = ResolutionQueueStore()
        self.shielding = ShieldingStore()
        self.queued = queued  # told after a batch queued records (wakes the resolver)
        self.hub_key = hub_key
        self.predecessor_wait = predecessor_wait
        self.observer = observer
        self.integrity = AntiEntropyStore()
        self._cursor_moved: dict[str, asyncio.Condition] = {}
        self._notifications: set[asyncio.Task[None]] = set()

    async def receive(self, council_code: str, body: bytes) -> IntakeResult:
        try:
            with paused_gc():
                result = await self._receive(council_code, body)
        except SignpostError as exc:
            if isinstance(exc, ForkDetected):
                await self._flag(council_code, exc.message)
            if exc.code != ErrorCode.UNKNOWN_COUNCIL:
                await self._note_rejection(council_code, exc)
                if self.observer is not None:
                    self.observer.refused(council_code, str(exc.code))
            raise
        if result.replayed and self.observer is not None:
            self.observer.replayed(council_code)
        return result

    async def _receive(self, council_code: str, body: bytes) -> IntakeResult:
        envelope = Envelope.decode(body)
        if envelope.payload_type != BATCH_TYPE:
            raise DecodeError(f"envelope type must be {BATCH_TYPE}",
                              code=ErrorCode.ENVELOPE_WRONG_TYPE)
        # Off the event loop too (a 5,000-op batch is tens of milliseconds of unpacking).
        batch = await asyncio.to_thread(Batch.decode, envelope.payload)
        if batch.council != council_code:
            raise AuthError(f"batch is for council {batch.council}, sent to {council_code}",
                            code=ErrorCode.BATCH_WRONG_COUNCIL, status=403)
        hash_ = batch_hash(envelope.payload)
        async with self.pool.acquire() as conn:
            known = await self.councils.get(conn, council_code)
            if known is None:
                raise SignpostError(f"council {council_code} is not enrolled",
                                    code=ErrorCode.UNKNOWN_COUNCIL, status=404)
            signer_kid = await self._verify_envelope(conn, council_code, envelope)
            # A resend, or a batch the hub would refuse for its place in the chain, is
            # answered now, before every record is validated: the cursor only moves
            # forward, so what it says here it still says under the lock below.
            if batch.seq <= known.cursor_seq:
                return await self._replay(conn, known, batch, hash_)
            self._refuse_out_of_place(known, batch, waited=False)
        # CPU work before taking the council's lock: while one batch is being written,
        # the next one (sent pipelined by the node) is validated. In a worker thread:
        # run on the event loop, its second of pure Python would hold back every
        # statement of the batch being written (PostgreSQL idle, waiting for the next
        # one to be sent); the thread lets the loop send them between its time slices.
        checked = await asyncio.to_thread(self._check_ops, batch, self.policy)
        waited_until = time.monotonic() + self.predecessor_wait
        while True:
            async with self.pool.acquire() as conn, conn.transaction():
                council = await self.councils.get(conn, council_code, for_update=True)
                assert council is not None
                if batch.seq <= council.cursor_seq:
                    return await self._replay(conn, council, batch, hash_)
                self._refuse_out_of_place(council, batch,
                                          waited=time.monotonic() > waited_until)
                if batch.seq == council.cursor_seq + 1:
                    if batch.prev != council.cursor_hash:
                        raise ForkDetected(
                            f"batch {batch.seq} prev does not match the hash of batch "
                            f"{council.cursor_seq}", code=ErrorCode.PREV_MISMATCH,
                            detail={"expected_prev": council.cursor_hash})
                    receipt_env, counts = await self._apply(conn, council_code, batch, hash_,
                                                            checked, signer_kid, body)
                    break
            # A predecessor is probably in flight: wait for it outside the transaction.
            await self._await_advance(council_code)
        self._advanced(council_code)
        if self.queued is not None and counts[APPLIED]:
            self.queued()
        if self.observer is not None:
            self.observer.applied(council_code, counts)
        log.info("batch applied", extra={"council": council_code, "seq": batch.seq,
                                         "ops": len(batch.ops), **counts})
        return IntakeResult(receipt_env, replayed=False)

    @staticmethod
    def _refuse_out_of_place(council: Council, batch: Batch, *, waited: bool) -> None:
        """Refuse a batch ahead of the cursor that cannot be applied: the council is
        flagged, or the batch leaves a gap wider than the pipeline window (or one its
        predecessors did not fill in time, once ``waited``)."""
        if council.forked_at is not None:
            raise ConflictError(
                f"council {council.code} is flagged after a fork "
                f"({council.fork_detail}); an operator must clear it",
                code=ErrorCode.COUNCIL_FLAGGED)
        gap = batch.seq - council.cursor_seq - 1
        if gap > 0 and (gap >= PIPELINE_WINDOW or waited):
            raise ConflictError(
                f"seq {batch.seq} leaves a gap: the hub expects "
                f"{council.cursor_seq + 1}", code=ErrorCode.SEQ_GAP,
                detail={"expected_seq": council.cursor_seq + 1,
                        "cursor_hash": council.cursor_hash})

    async def _apply(self, conn: asyncpg.Connection, council_code: str, batch: Batch,
                     hash_: str, checked: CheckedOps, signer_kid: str,
                     body: bytes) -> tuple[bytes, dict[str, int]]:
        results = await self._apply_ops(conn, council_code, batch, checked)
        receipt = Receipt(council_code, batch.seq, hash_, _utc_now(), tuple(results))
        receipt_env = Envelope.sign(RECEIPT_TYPE, receipt.encode(), [self.hub_key]).encode()
        counts = receipt.counts()
        await self.batches.insert(
            conn, council=council_code, seq=batch.seq, hash_=hash_, prev=batch.prev,
            kid=signer_kid, envelope=body, receipt=receipt_env, op_count=len(batch.ops),
            applied=counts[APPLIED], rejected=counts[REJECTED],
        )
        await self.councils.advance_cursor(conn, council_code, batch.seq, hash_)
        return receipt_env, counts

    def _condition(self, council: str) -> asyncio.Condition:
        return self._cursor_moved.setdefault(council, asyncio.Condition())

    async def _await_advance(self, council: str) -> None:
        """Wake when this process applies a batch of the council, or after a short poll
        interval (another hub replica may be the one applying it)."""
        condition = self._condition(council)
        async with condition:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(condition.wait(), timeout=0.05)

    def _advanced(self, council: str) -> None:
        condition = self._condition(council)

        async def notify() -> None:
            async with condition:
                condition.notify_all()

        task = asyncio.get_running_loop().create_task(notify())
        self._notifications.add(task)
        task.add_done_callback(self._notifications.discard)

    async def _verify_envelope(self, conn: asyncpg.Connection, council: str,
                               envelope: Envelope) -> str:
        """Return the kid of a usable key of this council that signed the envelope."""
        now = datetime.now(UTC)
        last_error: SignpostError | None = None
        for sig in envelope.signatures:
            if not keys.is_key_id(sig.kid):
                continue  # a hint no enrolled key has (nor the database could look up)
            key = await self.councils.get_key(conn, sig.kid)
            if key is None:
                continue
            try:
                check_key_usable(key, council, now)
            except SignpostError as exc:
                last_error = exc
                continue
            if envelope.verified_by(keys.public_from_raw(key.public_key)):
                return key.kid
        if last_error is not None:
            raise last_error
        raise AuthError("batch envelope is not signed by an enrolled key of this council",
                        code=ErrorCode.ENVELOPE_BAD_SIGNATURE)

    async def _replay(self, conn: asyncpg.Connection, council: Council, batch: Batch,
                      hash_: str) -> IntakeResult:
        stored = await self.batches.get(conn, council.code, batch.seq)
        if stored is not None and stored.hash == hash_:
            return IntakeResult(stored.receipt, replayed=True)
        raise ForkDetected(f"seq {batch.seq} was already applied with a different hash",
                           code=ErrorCode.FORK,
                            detail={"seq": batch.seq,
                                    "stored_hash": stored.hash if stored else None})

    @staticmethod
    def _check_ops(batch: Batch, policy: RetentionPolicy) -> CheckedOps:
        """Validate every op (pure CPU, no database): each bad op gets its own result.
        The last valid op per local_id wins inside one batch, as if applied in order;
        the ops it supersedes share its fate (applied, or stale against the hub)."""
        results: list[OpResult | None] = [None] * len(batch.ops)
        today = date.today()  # once a batch: a record's date of birth may not be later
        latest: dict[str, tuple[int, UpsertOp | DeleteOp, ChildRecord | None]] = {}
        superseded: dict[str, list[int]] = {}
        for i, op in enumerate(batch.ops):
            if isinstance(op, MalformedOp):
                results[i] = OpResult(op.local_id, REJECTED, ErrorCode.MALFORMED_REQUEST,
                                      op.reason)
                continue
            record = None
            if isinstance(op, UpsertOp):
                try:
                    record = decode_record(op.record, today)
                    check_display(record)  # at intake only: stored records stay readable
                    if record.local_id != op.local_id:
                        raise ValidationError("local_id", "differs from the op's local_id")
                except SignpostError as exc:
                    results[i] = OpResult(op.local_id, REJECTED, ErrorCode.INVALID_RECORD,
                                          exc.message)
                    continue
            previous = latest.get(op.local_id)
            if previous is not None:
                if op.version <= previous[1].version:
                    results[i] = OpResult(op.local_id, STALE, ErrorCode.STALE_VERSION,
                                          "an earlier op in this batch has the same or a "
                                          "higher version")
                    continue
                superseded.setdefault(op.local_id, []).append(previous[0])
            latest[op.local_id] = (i, op, record)
        # A record already past its archive date (a feed that still carries an adult, a
        # record sent again after the hub purged it) is stored archived: it is never
        # in practitioners' search or child view, not even until the retention job runs.
        utc_today = datetime.now(UTC).date()
        rows = {
            local_id: (_record_row(op, record,
                                   policy.record_archived_on(record, today=utc_today)),
                       sorted(blocking_keys(IdentityFields.from_record(record))))
            for local_id, (_, op, record) in latest.items()
            if isinstance(op, UpsertOp) and record is not None
        }
        return CheckedOps(results, latest, superseded, rows)

    async def _apply_ops(self, conn: asyncpg.Connection, council: str, batch: Batch,
                         checked: CheckedOps) -> list[OpResult]:
        results = list(checked.results)
        latest, superseded = checked.latest, checked.superseded
        held = await self.records.held(conn, council, list(latest))
        # An upsert at the very version the hub holds is a node's anti-entropy repair:
        # accepted only when the hub's own row is provably damaged (PROTOCOL §8.2, §12.1).
        repairable = await self.integrity.damaged(conn, council, [
            local_id for local_id, (_, op, _) in latest.items()
            if isinstance(op, UpsertOp) and (have := held.get(local_id)) is not None
            and have.live and have.version == op.version])
        upserts: list[RecordRow] = []
        # The blocking keys of records the hub does not hold (copied in) and of those it
        # does (synced), split as they are gathered: an initial load's are all new.
        new_keys: dict[str, list[str]] = {}
        held_keys: dict[str, list[str]] = {}
        deletes: list[tuple[str, int]] = []
        for local_id, (i, op, _) in latest.items():
            have = held.get(local_id)
            if (have is not None and have.version >= op.version
                    and not (have.version == op.version and local_id in repairable)):
                results[i] = OpResult(local_id, STALE, ErrorCode.STALE_VERSION,
                                      f"the hub holds version {have.version}")
                continue
            results[i] = OpResult(local_id, APPLIED)
            if isinstance(op, DeleteOp):
                deletes.append((local_id, op.version))
            else:
                row, row_keys = checked.rows[local_id]
                upserts.append(row)
                (held_keys if local_id in held else new_keys)[local_id] = row_keys

        def current_id(local_id: str) -> str | None:
            have = held.get(local_id)
            return have.national_id if have is not None and have.live else None

        # Resolution is the background resolver's: the records and their blocking keys
        # are written and queued here, in this transaction, so the resolver sees a
        # record's keys as soon as it sees the record. An updated record keeps its
        # national id until it is resolved again; a new one has none ("pending").
        # A record the hub does not hold gets its keys copied in, after any its local id
        # still has are dropped (a row lost or removed behind the hub's back, which
        # anti-entropy republishes, leaves them; an index probe per record when there
        # are none). The others' keys (updates, deletes, a record deleted before) are
        # synced: an update rarely changes a record's identity, and a key kept is not
        # rewritten.
        upserted = [row.local_id for row in upserts]
        known = {lid for lid in upserted if lid in held} | {lid for lid, _ in deletes}
        await self.resolution.sync_keys(conn, council, sorted(known), held_keys)
        await self.resolution.replace_keys(
            conn, council, [lid for lid in upserted if lid not in known], new_keys)
        # Under the council's lock nothing else writes its records: those ``held`` did
        # not find are inserted without a conflict check each (an initial load's all).
        await self.records.upsert(conn, council, batch.seq,
                                  [row for row in upserts if row.local_id in held])
        await self.records.upsert(conn, council, batch.seq,
                                  [row for row in upserts if row.local_id not in held],
                                  new=True)
        await self.records.tombstone(conn, council, batch.seq, deletes)
        # Shielding belongs to the child: a record shielded now, or sharing an NHS number
        # or UPN with a shielded one, is marked (and loses its location keys) before the
        # transaction ends, so no search or resolution ever sees it unmarked.
        await self.shielding.refresh(conn, [(council, local_id) for local_id in upserted])
        await self.queue.enqueue(
            conn, council, upserted + [lid for lid, _ in deletes],
            [None] * len(upserts) + [current_id(lid) for lid, _ in deletes])
        for local_id, indices in superseded.items():
            final_result = results[latest[local_id][0]]
            for index in indices:
                results[index] = final_result
        final = [r for r in results if r is not None]
        assert len(final) == len(batch.ops)
        return final

    async def _flag(self, council: str, detail: str) -> None:
        """Flag a fork in its own transaction: it must stick although the batch fails."""
        async with self.pool.acquire() as conn:
            await self.councils.flag_fork(conn, council, detail)
        log.warning("council flagged: fork", extra={"council": council, "detail": detail})

    async def _note_rejection(self, council: str, exc: SignpostError) -> None:
        try:
            async with self.pool.acquire() as conn:
                if await self.councils.get(conn, council) is not None:
                    await self.batches.record_rejection(conn, council, None, str(exc.code),
                                                        exc.message)
        except (OSError, asyncpg.PostgresError):
            log.warning("could not record a batch rejection", exc_info=True)
