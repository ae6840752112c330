"""SQL of stored matching models: one row per trained version, the newest in use."""

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
    summary: dict[str, Any]

    @classmethod
    def of(cls, row: asyncpg.Record) -> StoredModel:
        return cls(row["version"], json.loads(row["parameters"]), row["trained_at"],
                   json.loads(row["summary"]))


_COLUMNS = "version, parameters::text AS parameters, trained_at, summary::text AS summary"


class ModelStore:
    async def add(self, conn: asyncpg.Connection, version: str, parameters: dict[str, Any],
                  summary: dict[str, Any]) -> StoredModel:
        row = await conn.fetchrow(
            f"INSERT INTO match_models (version, parameters, summary)"
            f" VALUES ($1, $2::jsonb, $3::jsonb) RETURNING {_COLUMNS}",
            version, json.dumps(parameters), json.dumps(summary))
        assert row is not None
        return StoredModel.of(row)

    async def latest_version(self, conn: asyncpg.Connection) -> str | None:
        """The version in use (cheap: the resolver asks on every batch)."""
        return await conn.fetchval(
            "SELECT version FROM match_models ORDER BY trained_at DESC, version DESC LIMIT 1")

    async def get(self, conn: asyncpg.Connection, version: str) -> StoredModel | None:
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM match_models WHERE version = $1",
                                  version)
        return StoredModel.of(row) if row is not None else None

    async def list(self, conn: asyncpg.Connection) -> list[StoredModel]:
        rows = await conn.fetch(f"SELECT {_COLUMNS} FROM match_models"
                                " ORDER BY trained_at, version")
        return [StoredModel.of(r) for r in rows]

    async def count(self, conn: asyncpg.Connection) -> int:
        return int(await conn.fetchval("SELECT count(*) FROM match_models"))
