"""Practitioner search over the council's local index, and the child view.

The query and how a candidate answers it are :mod:`protocol.search` (the hub's
search uses the same): its blocking keys find candidates (so nicknames, typos,
day–month swaps and former surnames are found the same way local matching finds
them), and each candidate is scored and ranked. An NHS number or UPN finds its
child directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from local_node.services.ingest import child_fields
from local_node.storage.children import ChildRow, ChildStore, InvolvementRow
from protocol.errors import NotFoundError
from protocol.records import is_local_id, pointer_json
from protocol.search import SearchQuery, answer

__all__ = ["MAX_RESULTS", "SearchHit", "SearchQuery", "SearchService"]

MAX_RESULTS = 20


@dataclass(frozen=True, slots=True)
class SearchHit:
    child: ChildRow
    confidence: float
    total: float

    def to_dict(self) -> dict[str, Any]:
        c = self.child
        return {
            "local_id": c.local_id, "given_name": c.given_name, "family_name": c.family_name,
            "dob": c.dob.isoformat(), "sex": c.sex,
            # enough to tell children apart, not the address
            "postcode_district": c.postcode.split(" ")[0] if c.postcode else None,
            "shielded": c.shielded, "confidence": round(self.confidence, 4),
        }


class SearchService:
    def __init__(self, pool: asyncpg.Pool, children: ChildStore) -> None:
        self.pool = pool
        self.children = children

    async def search(self, query: SearchQuery) -> list[SearchHit]:
        async with self.pool.acquire() as conn:
            found = await self.children.find(
                conn, nhs=[query.nhs_number] if query.nhs_number else [],
                upn=[query.upn] if query.upn else [], name_dob=[], keys=query.keys())
            # archived (adults now, DESIGN §3): kept until purged, no longer searched
            archived = await self.children.archived_among(conn, [c.local_id for c in found])
        hits = []
        for child in found:
            if child.merged_into is not None or child.local_id in archived:
                continue
            found_answer = answer(query, child_fields(child))
            if found_answer is not None:
                hits.append(SearchHit(child, found_answer.confidence, found_answer.total))
        hits.sort(key=lambda h: (-h.confidence, -h.total, h.child.local_id))
        return hits[:MAX_RESULTS]

    async def child(self, local_id: str, *, see_sensitive: bool) -> dict[str, Any]:
        """The child view: identity, contacts and every involvement (pointers only)."""
        if not is_local_id(local_id):  # never asked of the database, which would refuse
            # a NUL in text with an error of its own (a 500, not a 404)
            raise NotFoundError(f"no child {local_id[:64]!r} in this council's index")
        async with self.pool.acquire() as conn:
            rows = await self.children.get_many(conn, [local_id])
            if not rows:
                raise NotFoundError(f"no child {local_id} in this council's index")
            child = rows[0]
            if child.merged_into is not None:
                return {"redirect": child.merged_into}
            invs = (await self.children.involvements_of(conn, [local_id])).get(local_id, [])
            archived = (await self.children.archived_among(conn, [local_id])).get(local_id)
        return {
            "archived_on": archived.isoformat() if archived else None,
            "local_id": child.local_id, "given_name": child.given_name,
            "other_given_names": child.other_given_names, "family_name": child.family_name,
            "former_family_names": list(child.former_family_names or []),
            "dob": child.dob.isoformat(), "sex": child.sex,
            "address_line": child.address_line, "postcode": child.postcode,
            "nhs_number": child.nhs_number, "upn": child.upn,
            "parent_carer": {"name": child.parent_carer_name,
                             "phone": child.parent_carer_phone},
            "shielded": child.shielded,
            "involvements": [_involvement(i) for i in invs if see_sensitive or not i.sensitive],
            "sensitive_hidden": sum(1 for i in invs if i.sensitive and not see_sensitive),
        }


def _involvement(row: InvolvementRow) -> dict[str, Any]:
    return {**pointer_json(row), "source": row.source}
