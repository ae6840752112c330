"""Answering a node's anti-entropy questions (docs/PROTOCOL.md §12.1): the bucket digests
of what the hub holds for its council, and the rows of the buckets that differ.

Read-only: the node republishes what differs through the normal signed batch path,
where batch intake accepts an upsert at the version the hub holds when the hub's row
is damaged (see ``BatchIntake``).
"""

from __future__ import annotations

import asyncpg

from national_hub.storage.anti_entropy import AntiEntropyStore
from national_hub.storage.records import RecordStore
from protocol.anti_entropy import (
    MAX_HELD_PER_ANSWER,
    MAX_PER_BUCKET,
    BucketRecords,
    BucketRecordsRequest,
    DigestRequest,
    DigestSummary,
    min_bits,
)
from protocol.errors import TooLargeError, ValidationError


class AntiEntropy:
    def __init__(self, pool: asyncpg.Pool, store: AntiEntropyStore,
                 records: RecordStore) -> None:
        self.pool = pool
        self.store = store
        self.record_store = records

    async def summary(self, council: str, body: bytes) -> DigestSummary:
        request = DigestRequest.decode(body)
        async with self.pool.acquire() as conn:
            await self._check_bits(conn, council, request.bits)
            buckets = await self.store.bucket_digests(conn, council, request.bits)
        return DigestSummary(council, request.bits, sum(b.count for b in buckets),
                             tuple(buckets))

    async def records(self, council: str, body: bytes) -> BucketRecords:
        request = BucketRecordsRequest.decode(body)
        async with self.pool.acquire() as conn:
            await self._check_bits(conn, council, request.bits)
            held = await self.store.bucket_records(conn, council, request.bits,
                                                   list(request.buckets),
                                                   limit=MAX_HELD_PER_ANSWER + 1)
        if len(held) > MAX_HELD_PER_ANSWER:
            raise TooLargeError(f"these buckets hold more than {MAX_HELD_PER_ANSWER} rows:"
                                " ask for fewer buckets at a time")
        return BucketRecords(council, request.bits, tuple(held))

    async def _check_bits(self, conn: asyncpg.Connection, council: str, bits: int) -> None:
        """Refuse too few bits for what the hub holds (``bits = 0`` of a large council
        would have it aggregate, hold and send every record for one request)."""
        count = await self.record_store.count(conn, council)
        needed = min_bits(count)
        if bits < needed:
            error = ValidationError(
                "bits", f"must be at least {needed} for the {count} records the hub holds "
                        f"(at most {MAX_PER_BUCKET} a bucket on average)")
            error.detail["min_bits"] = needed
            raise error
