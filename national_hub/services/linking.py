"""Linking records to national children.

This is the foundation's rule only: records with an exactly equal valid NHS
number share a national id; every other record is a child of its own. Full
probabilistic resolution (DESIGN §5) replaces this in its own issue; the ids
it hands out stay valid then.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import asyncpg

from national_hub.storage.records import RecordStore


def new_national_id() -> str:
    """Opaque and never reused: 80 random bits, Crockford-ish base32 without padding."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    n = secrets.randbits(80)
    chars = []
    for _ in range(16):
        n, r = divmod(n, 32)
        chars.append(alphabet[r])
    return "NC" + "".join(chars)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A record about to be written: who it is and which national id it holds now."""

    local_id: str
    nhs_number: str | None
    current_id: str | None


@dataclass(frozen=True, slots=True)
class LinkPlan:
    national_ids: dict[str, str]  # local_id -> national id
    statuses: dict[str, str]  # local_id -> linked | single
    touched: list[str]  # national ids whose other holders may need their status refreshed


class Linker:
    def __init__(self, records: RecordStore) -> None:
        self.records = records

    async def plan(self, conn: asyncpg.Connection, council: str,
                   candidates: list[Candidate]) -> LinkPlan:
        """Decide each record's national id before it is written, so each record is
        written once. Two indexed set queries, then pure Python; new ids are created."""
        mine = {c.local_id for c in candidates}

        def outside(row: asyncpg.Record) -> bool:
            return not (row["council_code"] == council and row["local_id"] in mine)

        nhs_numbers = sorted({c.nhs_number for c in candidates if c.nhs_number})
        by_nhs: dict[str, list[str]] = {}
        for o in await self.records.links_by_nhs(conn, nhs_numbers):
            if outside(o):
                by_nhs.setdefault(o["nhs_number"], []).append(o["national_id"])
        current_ids = sorted({c.current_id for c in candidates if c.current_id})
        shared: set[str] = {h["national_id"] for h in
                            await self.records.holders_of(conn, current_ids) if outside(h)}

        new_ids: list[str] = []
        assigned: dict[str, str] = {}
        batch_by_nhs: dict[str, str] = {}
        for c in candidates:
            nid = min(by_nhs[c.nhs_number]) if c.nhs_number in by_nhs else None
            if nid is None and c.nhs_number is not None:
                nid = batch_by_nhs.get(c.nhs_number)  # another record of this same batch
            if nid is None and c.current_id is not None and c.current_id not in shared:
                nid = c.current_id  # keep its own id while nothing else shares it
            if nid is None:
                nid = new_national_id()
                new_ids.append(nid)
            if c.nhs_number is not None:
                batch_by_nhs.setdefault(c.nhs_number, nid)
            assigned[c.local_id] = nid
        await self.records.create_national_ids(conn, new_ids)

        holders: dict[str, int] = {}
        for nid in assigned.values():
            holders[nid] = holders.get(nid, 0) + 1
        for h in await self.records.holders_of(conn, sorted(set(assigned.values()) - set(new_ids))):
            if outside(h):
                holders[h["national_id"]] += 1
        touched = sorted((set(assigned.values()) - set(new_ids)) | set(current_ids))
        return LinkPlan(
            national_ids=assigned,
            statuses={lid: "linked" if holders[nid] > 1 else "single"
                      for lid, nid in assigned.items()},
            touched=touched,
        )

    async def refresh(self, conn: asyncpg.Connection, plan: LinkPlan,
                      released: list[str]) -> None:
        """After the write: fix the status of other records sharing a touched id, and of
        records whose partner was deleted or moved away (``released`` ids)."""
        await self.records.refresh_link_status(conn, sorted(set(plan.touched) | set(released)))
