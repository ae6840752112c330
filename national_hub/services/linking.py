"""Linking records to national children.

This is the foundation's rule only: records with an exactly equal valid NHS
number share a national id; every other record is a child of its own. Full
probabilistic resolution (DESIGN §5) replaces this in its own issue; the ids
it hands out stay valid then.
"""

from __future__ import annotations

import secrets

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


class Linker:
    def __init__(self, records: RecordStore) -> None:
        self.records = records

    async def link(self, conn: asyncpg.Connection, council: str, local_ids: list[str]) -> None:
        if not local_ids:
            return
        rows = await self.records.link_candidates(conn, council, local_ids)
        new_ids: list[str] = []
        links: list[tuple[str, str, str]] = []
        touched: set[str] = set()
        by_nhs: dict[str, str] = {}
        for row in rows:
            nid = row["nhs_match"]
            if nid is None and row["nhs_number"] is not None:
                nid = by_nhs.get(row["nhs_number"])  # another record of this same batch
            if nid is None and row["national_id"] is not None and row["sharing"] == 0:
                nid = row["national_id"]  # keep its own id while nothing else shares it
            if nid is None:
                nid = new_national_id()
                new_ids.append(nid)
            if row["nhs_number"] is not None:
                by_nhs.setdefault(row["nhs_number"], nid)
            if row["national_id"] is not None:
                touched.add(row["national_id"])
            touched.add(nid)
            links.append((row["local_id"], nid, "single"))
        await self.records.create_national_ids(conn, new_ids)
        await self.records.set_links(conn, council, links)
        await self.records.refresh_link_status(conn, sorted(touched))
