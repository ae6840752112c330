"""Practitioner search over the council's local index, and the child view.

The query and how a candidate answers it are :mod:`protocol.search` (the hub's
search uses the same): its blocking keys find candidates (so nicknames, typos,
day–month swaps and former surnames are found the same way local matching finds
them), and each candidate is scored and ranked. An NHS number or UPN finds its
child directly.

Who may see what is :mod:`protocol.disclosure`, as at the hub. For anyone but this
council's index team a shielded child (``local_node.storage.shielding``) is never
reached through a location blocking key, its postcode and address take no part in
its score, a hit shows no postcode district, and its view withholds every location
field and names whom to contact. Sensitive services are shown to the council's index
team only, and nobody else is told that one exists.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from local_node.services.ingest import child_fields
from local_node.storage.children import ChildRow, ChildStore, InvolvementRow
from local_node.storage.shielding import ShieldStore
from protocol.disclosure import (
    OPEN,
    PRACTITIONER,
    Disclosure,
    Viewer,
    finds_shielded,
    sees_sensitive,
)
from protocol.errors import NotFoundError
from protocol.records import is_local_id, pointer_json
from protocol.retention import RetentionPolicy
from protocol.search import SearchQuery, answer

__all__ = ["MAX_RESULTS", "SearchHit", "SearchQuery", "SearchService"]

MAX_RESULTS = 20
# Whoever a caller does not name sees what a practitioner sees: the least.
_ANYONE = Viewer(PRACTITIONER, None)


@dataclass(frozen=True, slots=True)
class SearchHit:
    child: ChildRow
    confidence: float
    total: float
    disclosure: Disclosure = OPEN
    shows_location: bool = True

    def to_dict(self) -> dict[str, Any]:
        c = self.child
        hit: dict[str, Any] = {
            "local_id": c.local_id, "given_name": c.given_name, "family_name": c.family_name,
            "dob": c.dob.isoformat() if c.dob else None, "sex": c.sex,
            # enough to tell children apart, not the address
            "postcode_district": (c.postcode.split(" ")[0]
                                  if c.postcode and self.shows_location else None),
            "shielded": self.disclosure.shielded, "confidence": round(self.confidence, 4),
        }
        if self.disclosure.shielded:
            hit["contact"] = self.disclosure.contact()
        return hit


class SearchService:
    def __init__(self, pool: asyncpg.Pool, children: ChildStore, council: str,
                 shields: ShieldStore | None = None,
                 policy: RetentionPolicy | None = None) -> None:
        self.pool = pool
        self.policy = policy or RetentionPolicy()
        self.children = children
        self.council = council
        self.shields = shields or ShieldStore()

    def _disclosure(self, shielded: bool) -> Disclosure:
        return Disclosure(shielded=True, shielding_councils=(self.council,)) if shielded \
            else OPEN

    async def search(self, query: SearchQuery,
                     viewer: Viewer = _ANYONE) -> list[SearchHit]:
        sees_all = viewer.index_team_of(self.council)
        keys = query.keys()
        nhs, upn = [query.nhs_number] if query.nhs_number else [], [query.upn] if query.upn else []
        async with self.pool.acquire() as conn:
            if sees_all:
                found = await self.children.find(conn, nhs=nhs, upn=upn, name_dob=[], keys=keys)
            else:
                # Location keys reach only children that are not shielded, and only they
                # count towards such a key's block size (see storage.shielding).
                found = await self.children.find(
                    conn, nhs=nhs, upn=upn, name_dob=[],
                    keys=[k for k in keys if finds_shielded(k)])
                seen = {c.local_id for c in found}
                found += [c for c in await self.shields.find_unshielded(
                    conn, [k for k in keys if not finds_shielded(k)]) if c.local_id not in seen]
            ids = [c.local_id for c in found]
            # archived (adults now, docs/design.md §3): kept until purged, no longer
            # searched; nor is a child past its archive date the daily job has not yet
            # archived (it turned 18 since, or a feed still lists an adult)
            archived = await self.children.archived_among(conn, ids)
            care_leavers = await self.children.care_leavers_among(
                conn, ids, list(self.policy.care_leaver_services))
            shielded = await self.shields.shielded_among(conn, ids)
        today = datetime.now(UTC).date()
        hits = []
        for child in found:
            if child.merged_into is not None or child.local_id in archived:
                continue
            if self.policy.archived_on(child.dob, child.date_of_death,
                                       child.local_id in care_leavers, today=today):
                continue
            disclosure = self._disclosure(child.local_id in shielded)
            shows_location = sees_all or disclosure.scores_location()
            fields = child_fields(child)
            if not shows_location:  # its location must not move its score or rank
                fields = dataclasses.replace(fields, postcode=None, address_line=None)
            found_answer = answer(query, fields)
            if found_answer is not None:
                hits.append(SearchHit(child, found_answer.confidence, found_answer.total,
                                      disclosure, shows_location))
        hits.sort(key=lambda h: (-h.confidence, -h.total, h.child.local_id))
        return hits[:MAX_RESULTS]

    async def child(self, local_id: str, viewer: Viewer) -> dict[str, Any]:
        """The child view: identity, contacts and every involvement (pointers only),
        less whatever ``viewer`` may not see (``protocol.disclosure``)."""
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
            via = (await self.shields.shielded_among(conn, [local_id])).get(local_id)
        disclosure = self._disclosure(via is not None)
        view: dict[str, Any] = {
            "archived_on": archived.isoformat() if archived else None,
            "local_id": child.local_id, "given_name": child.given_name,
            "other_given_names": child.other_given_names, "family_name": child.family_name,
            "former_family_names": list(child.former_family_names or []),
            "dob": child.dob.isoformat() if child.dob else None, "sex": child.sex,
            # a name or the date of birth no source row supplies, and why
            "incomplete": child.incomplete,
            "address_line": child.address_line, "postcode": child.postcode,
            "nhs_number": child.nhs_number, "upn": child.upn,
            "parent_carer": {"name": child.parent_carer_name,
                             "phone": child.parent_carer_phone},
            "shielded": disclosure.shielded,
            # a sensitive service is left out, not counted: nobody else learns it exists
            "involvements": [_involvement(i) for i in invs
                             if not i.sensitive or sees_sensitive(viewer, self.council)],
        }
        if not disclosure.sees_location(viewer, self.council):
            return {**disclosure.redact(view), "contact": disclosure.contact()}
        if via is not None:  # the index team: which shielded record it is shielded through
            view["shielded_via"] = via
        return view


def _involvement(row: InvolvementRow) -> dict[str, Any]:
    return {**pointer_json(row), "source": row.source}
