"""Practitioner search over every council's records, and the national child view.

Search: the query's blocking keys (:mod:`protocol.search`, the same as a node's
search and the resolver's) find records in one set-based statement; records are
grouped into their **national children**, each record scored against the query, and
a child ranks by its best record. A result shows only what tells children apart:
name, date of birth, sex, each council involved with its postcode district.

Shielding (DESIGN §6): a shielded child is found only through fields that say
nothing of where it lives. Keys built from the postcode (``dp:``, ``gp:``) never
find it, its postcode never scores, and its result carries no postcode district but
the council(s) whose index team to contact.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import asyncpg

from national_hub.services.disclosure import Viewer
from national_hub.storage.search import CandidateRow, HeldRecord, SearchStore
from protocol import encoding, identifiers
from protocol.errors import NotFoundError
from protocol.matching import IdentityFields
from protocol.records import ChildRecord, pointer_json
from protocol.search import Answer, SearchQuery, answer

MAX_RESULTS = 20
# Whatever a national id is (``linking.new_national_id``: NC and 16 base32 letters),
# it is short and alphanumeric: anything else is unknown without asking the database,
# which would refuse a NUL in text with an error of its own (a 500, not a 404).
_NATIONAL_ID_SHAPE = re.compile(r"[0-9A-Za-z]{1,64}")
# Records sharing one key beyond which the key is skipped (the other keys still find):
# every key is narrow (see protocol.matching.blocking), so at a million children a
# real one holds a handful.
MAX_BLOCK = 100
# Blocking keys built from the postcode: they never find a shielded child.
LOCATION_KEYS = ("dp:", "gp:")


@dataclass(frozen=True, slots=True)
class CouncilInvolved:
    code: str
    name: str
    postcode_district: str | None  # None when the child is shielded

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name,
                "postcode_district": self.postcode_district}


@dataclass(frozen=True, slots=True)
class ChildHit:
    national_id: str
    given_name: str
    family_name: str
    dob: date
    sex: int
    confidence: float
    total: float
    councils: tuple[CouncilInvolved, ...]
    shielded: bool
    contact: tuple[CouncilInvolved, ...]  # shielded: whose index team to ask

    def to_dict(self) -> dict[str, Any]:
        return {
            "national_id": self.national_id, "given_name": self.given_name,
            "family_name": self.family_name, "dob": self.dob.isoformat(), "sex": self.sex,
            "confidence": round(self.confidence, 4),
            "councils": [c.to_dict() for c in self.councils],
            "shielded": self.shielded,
            "contact": [{"council": c.code, "name": c.name, "team": "index team"}
                        for c in self.contact],
        }


@dataclass(frozen=True, slots=True)
class Redirect:
    """A retired national id: its records now belong to ``to``."""

    national_id: str
    to: str


def _fields(row: CandidateRow, shielded: bool) -> IdentityFields:
    return IdentityFields(
        given_name=row.given_name, family_name=row.family_name, dob=row.dob, sex=row.sex,
        other_given_names=row.other_given_names, former_family_names=row.former_family_names,
        # a shielded child's postcode and address never score: they would confirm where
        # the child lives to whoever guessed it
        postcode=None if shielded else row.postcode,
        address_line=None if shielded else row.address_line,
        nhs_number=row.nhs_number, upn=row.upn)


def _found(rows: list[CandidateRow], shielded: bool) -> bool:
    """Whether a query key reached the child by something other than where it lives."""
    if not shielded:
        return any(r.keys for r in rows)
    return any(not k.startswith(LOCATION_KEYS) for r in rows for k in r.keys)


def _hit(query: SearchQuery, rows: list[CandidateRow]) -> ChildHit | None:
    shielded = any(r.shielded for r in rows)
    if not _found(rows, shielded):
        return None
    best: tuple[Answer, CandidateRow] | None = None
    for row in rows:
        found = answer(query, _fields(row, shielded))
        if found is not None and (best is None or (found.confidence, found.total) > (
                best[0].confidence, best[0].total)):
            best = (found, row)
    if best is None:
        return None
    found, row = best
    councils: dict[str, CouncilInvolved] = {}
    for r in sorted(rows, key=lambda r: (r.council, r.local_id)):
        district = (identifiers.postcode_district(r.postcode)
                    if r.postcode and not shielded else None)
        held = councils.get(r.council)
        if held is None or (held.postcode_district is None and district):
            councils[r.council] = CouncilInvolved(r.council, r.council_name, district)
    contact = tuple(replace(councils[c], postcode_district=None)
                    for c in sorted({r.council for r in rows if r.shielded}))
    return ChildHit(row.national_id, row.given_name, row.family_name, row.dob, row.sex,
                    found.confidence, found.total, tuple(councils.values()), shielded,
                    contact)


def _council_view(held: HeldRecord, record: ChildRecord, viewer: Viewer,
                  shielded: bool) -> dict[str, Any]:
    """One council's record as this viewer may see it."""
    view: dict[str, Any] = {
        "council": held.council, "council_name": held.council_name,
        "local_id": held.local_id, "updated_at": held.updated_at.isoformat(),
        "given_name": record.given_name, "other_given_names": record.other_given_names,
        "family_name": record.family_name,
        "former_family_names": list(record.former_family_names),
        "dob": record.dob.isoformat(), "sex": record.sex,
        "date_of_death": record.date_of_death.isoformat() if record.date_of_death else None,
        "nhs_number": record.nhs_number, "shielded": record.shielded,
    }
    if not viewer.sees_location(held.council, shielded=shielded):
        # ContactPoint's rule: who the child is, and nothing that says where
        return {**view, "withheld": True}
    services = [i for i in record.involvements
                if not i.sensitive or viewer.sees_sensitive(held.council)]
    lead = next((i for i in services if i.lead_professional), None)
    return {
        **view, "withheld": False,
        "address_line": record.address_line, "postcode": record.postcode,
        "upn": record.upn,
        "parent_carer": {"name": record.parent_carer_name, "phone": record.parent_carer_phone},
        "services": [pointer_json(i) for i in services],
        "lead_professional": pointer_json(lead) if lead else None,
        "caf_done": any(i.caf_done for i in services),
    }


class HubSearch:
    def __init__(self, pool: asyncpg.Pool, store: SearchStore | None = None, *,
                 max_block: int = MAX_BLOCK, max_results: int = MAX_RESULTS) -> None:
        self.pool = pool
        self.store = store or SearchStore()
        self.max_block = max_block
        self.max_results = max_results

    async def search(self, query: SearchQuery) -> list[ChildHit]:
        """National children answering the query, best first, at most ``max_results``."""
        async with self.pool.acquire() as conn:
            rows = await self.store.candidates(conn, query.keys(), self.max_block)
        by_child: dict[str, list[CandidateRow]] = defaultdict(list)
        for row in rows:
            by_child[row.national_id].append(row)
        hits = [h for h in (_hit(query, recs) for recs in by_child.values()) if h is not None]
        hits.sort(key=lambda h: (-h.confidence, -h.total, h.national_id))
        return hits[:self.max_results]

    async def child(self, national_id: str, viewer: Viewer) -> dict[str, Any] | Redirect:
        """The national child: for each council involved, its record as ``viewer`` may
        see it (services with professionals and contacts, lead professional, CAF,
        parent/carer contact, dates), or where a retired id now points."""
        if not _NATIONAL_ID_SHAPE.fullmatch(national_id):
            raise NotFoundError(f"no national child {national_id[:64]!r}")
        async with self.pool.acquire() as conn:
            child = await self.store.national_child(conn, national_id)
        if child is None:
            raise NotFoundError(f"no national child {national_id}")
        if child.redirect_to is not None:
            return Redirect(national_id, child.redirect_to)
        if not child.records:
            raise NotFoundError(f"no council holds a record of {national_id} any more")
        records = [ChildRecord.from_wire(encoding.unpack(h.record, what="record"))
                   for h in child.records]
        shielded = any(r.shielded for r in records)
        councils = [_council_view(h, r, viewer, shielded)
                    for h, r in zip(child.records, records, strict=True)]
        latest = max(zip(child.records, records, strict=True), key=lambda p: p[0].updated_at)[1]
        contact = sorted({(h.council, h.council_name)
                          for h, r in zip(child.records, records, strict=True) if r.shielded})
        return {
            "national_id": national_id, "given_name": latest.given_name,
            "family_name": latest.family_name, "dob": latest.dob.isoformat(),
            "sex": latest.sex, "shielded": shielded,
            "contact": [{"council": c, "name": n, "team": "index team"} for c, n in contact],
            "councils": councils,
        }
