"""Answering a node's anti-entropy questions (docs/PROTOCOL.md §12.1): the bucket digests
of what the hub holds for its council, and the rows of the buckets that differ.

Read-only: the node republishes what differs through the normal signed batch path,
where batch intake accepts an upsert at the version the hub holds when the hub's row
is damaged (see ``BatchIntake``).
"""

from __future__ import annotations

import asyncpg

from national_hub.storage.anti_entropy import AntiEntropyStore
from protocol.anti_entropy import (
    BucketRecords,
    BucketRecordsRequest,
    DigestRequest,
    DigestSummary,
)


class AntiEntropy:
    def __init__(self, pool: asyncpg.Pool, store: AntiEntropyStore) -> None:
        self.pool = pool
        self.store = store

    async def summary(self, council: str, body: bytes) -> DigestSummary:
        request = DigestRequest.decode(body)
        async with self.pool.acquire() as conn:
            buckets = await self.store.bucket_digests(conn, council, request.bits)
        return DigestSummary(council, request.bits, sum(b.count for b in buckets),
                             tuple(buckets))

    async def records(self, council: str, body: bytes) -> BucketRecords:
        request = BucketRecordsRequest.decode(body)
        async with self.pool.acquire() as conn:
            held = await self.store.bucket_records(conn, council, request.bits,
                                                   list(request.buckets))
        return BucketRecords(council, request.bits, tuple(held))
