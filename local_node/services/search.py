"""Practitioner search over the council's local index, and the child view.

Search reuses the matching library: the query becomes an IdentityFields, its
blocking keys find candidates (so nicknames, typos, day–month swaps and former
surnames are found the same way local matching finds them), and each candidate
is scored and ranked. An NHS number or UPN finds its child directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg

from local_node.services.ingest import child_fields
from local_node.storage.children import ChildRow, ChildStore, InvolvementRow
from protocol import identifiers
from protocol.errors import NotFoundError, ValidationError
from protocol.matching import IdentityFields, blocking_keys, score

MAX_RESULTS = 20
# Below this total (match weight, bits) a candidate is not shown: it shares a key
# with the query but little else.
MIN_TOTAL = -10.0


@dataclass(frozen=True, slots=True)
class SearchQuery:
    given_name: str | None = None
    family_name: str | None = None
    dob: date | None = None
    postcode: str | None = None
    nhs_number: str | None = None
    upn: str | None = None

    @classmethod
    def parse(cls, params: dict[str, str]) -> SearchQuery:
        """Validate query parameters; a bad one is a ValidationError naming it."""
        def text(name: str) -> str | None:
            value = (params.get(name) or "").strip()
            if len(value) > 100:
                raise ValidationError(name, "longer than 100 characters")
            return value or None

        dob = text("dob")
        postcode, nhs, upn = text("postcode"), text("nhs_number"), text("upn")
        query = cls(
            given_name=text("given_name"), family_name=text("family_name"),
            dob=identifiers.parse_date(dob, "dob") if dob else None,
            postcode=identifiers.normalise_postcode(postcode) if postcode else None,
            nhs_number=identifiers.normalise_nhs_number(nhs) if nhs else None,
            upn=identifiers.normalise_upn(upn) if upn else None,
        )
        has_name = bool(query.given_name or query.family_name)
        if not (query.nhs_number or query.upn or (has_name and (query.dob or query.postcode))):
            raise ValidationError(
                "query", "give an NHS number or UPN, or a name with a date of birth or postcode")
        return query

    def fields(self) -> IdentityFields:
        return IdentityFields(given_name=self.given_name, family_name=self.family_name,
                              dob=self.dob, postcode=self.postcode,
                              nhs_number=self.nhs_number, upn=self.upn)


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
        fields = query.fields()
        async with self.pool.acquire() as conn:
            found = await self.children.find(
                conn, nhs=[query.nhs_number] if query.nhs_number else [],
                upn=[query.upn] if query.upn else [], name_dob=[],
                keys=sorted(blocking_keys(fields)))
        hits = []
        for child in found:
            if child.merged_into is not None:
                continue
            result = score(fields, child_fields(child))
            if result.veto is not None:
                continue  # e.g. the query's NHS number differs from the child's
            identified = bool((query.nhs_number and query.nhs_number == child.nhs_number)
                              or (query.upn and query.upn == child.upn))
            if identified or result.total >= MIN_TOTAL:
                hits.append(SearchHit(child, 1.0 if identified else result.probability,
                                      result.total))
        hits.sort(key=lambda h: (-h.confidence, -h.total, h.child.local_id))
        return hits[:MAX_RESULTS]

    async def child(self, local_id: str, *, see_sensitive: bool) -> dict[str, Any]:
        """The child view: identity, contacts and every involvement (pointers only)."""
        async with self.pool.acquire() as conn:
            rows = await self.children.get_many(conn, [local_id])
            if not rows:
                raise NotFoundError(f"no child {local_id} in this council's index")
            child = rows[0]
            if child.merged_into is not None:
                return {"redirect": child.merged_into}
            invs = (await self.children.involvements_of(conn, [local_id])).get(local_id, [])
        return {
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
    return {
        "service_type": row.service_type, "organisation_code": row.organisation_code,
        "organisation_name": row.organisation_name, "organisation_phone": row.organisation_phone,
        "professional_name": row.professional_name, "professional_role": row.professional_role,
        "professional_phone": row.professional_phone,
        "professional_email": row.professional_email,
        "start_date": row.start_date.isoformat() if row.start_date else None,
        "end_date": row.end_date.isoformat() if row.end_date else None,
        "lead_professional": row.lead_professional, "caf_done": row.caf_done,
        "sensitive": row.sensitive, "source": row.source,
    }
