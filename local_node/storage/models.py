"""SQL of the node's stored matching models: one row per trained version, the newest in
use by ingest (``local-node model train``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


@dataclass(frozen=True, slots=True)
class StoredModel:
    version: str
    parameters: dict[str, Any]
    trained_at: datetime
    children: int                 # children in the index when it was trained
    summary: dict[str, Any]

    @classmethod
    def of(cls, row: asyncpg.Record) -> StoredModel:
        return cls(row["version"], json.loads(row["parameters"]), row["trained_at"],
                   int(row["children"]), json.loads(row["summary"]))


_COLUMNS = ("version, parameters::text AS parameters, trained_at, children,"
            " summary::text AS summary")


class ModelStore:
    async def add(self, conn: asyncpg.Connection, version: str, parameters: dict[str, Any],
                  children: int, summary: dict[str, Any]) -> StoredModel:
        row = await conn.fetchrow(
            f"INSERT INTO match_models (version, parameters, children, summary)"
            f" VALUES ($1, $2::jsonb, $3, $4::jsonb) RETURNING {_COLUMNS}",
            version, json.dumps(parameters), children, json.dumps(summary))
        assert row is not None
        return StoredModel.of(row)

    async def latest(self, conn: asyncpg.Connection) -> StoredModel | None:
        """The model in use: the newest trained."""
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM match_models"
                                  " ORDER BY trained_at DESC, version DESC LIMIT 1")
        return StoredModel.of(row) if row is not None else None

    async def list(self, conn: asyncpg.Connection) -> list[StoredModel]:
        rows = await conn.fetch(f"SELECT {_COLUMNS} FROM match_models"
                                " ORDER BY trained_at, version")
        return [StoredModel.of(r) for r in rows]

    async def count(self, conn: asyncpg.Connection) -> int:
        return int(await conn.fetchval("SELECT count(*) FROM match_models"))
