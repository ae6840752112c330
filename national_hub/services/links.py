"""Exporting (council, local_id) → national id links (docs/design.md §8 ``links export``)."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from national_hub.storage.records import RecordStore
from server_common import files

# model_version: the matching model that decided the record's national id (blank for a
# record not resolved since the column was added)
LINK_COLUMNS = ("council", "local_id", "national_id", "status", "model_version")


async def export_links(pool: asyncpg.Pool, records: RecordStore, out: Path, *,
                       overwrite: bool = False) -> int:
    """Write every link to ``out``: owner-only, whole or not at all, never over an
    existing file unless ``overwrite`` (``server_common.files``)."""
    async with pool.acquire() as conn:
        rows = await records.export_links(conn)

    files.write_csv(out, LINK_COLUMNS, ([row[c] for c in LINK_COLUMNS] for row in rows),
                    overwrite=overwrite)
    return len(rows)
