"""Exporting (council, local_id) → national id links (docs/design.md §8 ``links export``)."""

from __future__ import annotations

import csv
from pathlib import Path

import asyncpg

from national_hub.storage.records import RecordStore

# model_version: the matching model that decided the record's national id (blank for a
# record not resolved since the column was added)
LINK_COLUMNS = ("council", "local_id", "national_id", "status", "model_version")


async def export_links(pool: asyncpg.Pool, records: RecordStore, out: Path) -> int:
    async with pool.acquire() as conn:
        rows = await records.export_links(conn)
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(LINK_COLUMNS)
        for row in rows:
            writer.writerow([row[c] for c in LINK_COLUMNS])
    return len(rows)
