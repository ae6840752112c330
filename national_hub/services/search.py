"""Practitioner search over every council's records, and the national child view.

Search: the query's blocking keys (:mod:`protocol.search`, the same as a node's
search and the resolver's) find records in one set-based statement; records are
grouped into their **national children**, each record scored against the query (one
by one for the few a search usually finds, in one bulk pass for many: see
:func:`answers`), and a child ranks by its best record. A
result shows only what tells children apart: name, date of birth, sex, each council
involved with its postcode district.

Shielding (docs/design.md §6, :mod:`protocol.disclosure`) belongs to the child: a record
counts as shielded for its own flag or for any relation to a shielded record
(``national_hub.storage.shielding`` keeps the sticky marks). A shielded child is found
only through fields that say nothing of where it lives: keys built from the postcode
(``dp:``, ``gp:``, ``sp:``) never find it (its records do not even hold them), its postcode and
address never score, and its result carries neither postcode districts nor the list
of councils that know it, only the council(s) whose index team to contact. Its child
view shows no location field and, but to a shielding council's index team, no list of
councils, local ids or update times.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import numpy as np

from national_hub.storage.search import CandidateRow, HeldRecord, SearchStore
from protocol import encoding, identifiers
from protocol.disclosure import Disclosure, Viewer, finds_shielded, sees_sensitive
from protocol.errors import NotFoundError, SignpostError
from protocol.matching import DEFAULT_MODEL, IdentityFields
from protocol.matching.bulk import Columns
from protocol.matching.bulk_score import score_columns
from protocol.records import ChildRecord, pointer_json
from protocol.retention import RetentionPolicy
from protocol.search import MIN_TOTAL, Answer, SearchQuery, answer

log = logging.getLogger(__name__)

MAX_RESULTS = 20
# Whatever a national id is (``linking.new_national_id``: NC and 16 base32 letters),
# it is short and alphanumeric: anything else is unknown without asking the database,
# which would refuse a NUL in text with an error of its own (a 500, not a 404).
_NATIONAL_ID_SHAPE = re.compile(r"[0-9A-Za-z]{1,64}")
# Records sharing one key beyond which the key is skipped (the other keys still find),
# counted per council as the resolver counts its own (storage/blocks.py): every key is
# narrow (see protocol.matching.blocking), so at a million children a real one holds a
# handful.
SEARCH_BLOCK_LIMIT = 100
# Candidates from which one bulk pass scores a search's records faster than a scoring
# call per record (measured on a hub of a million children: 64 to 96, where a search
# finds a median of 27 and one of 2 at 50,000 children; docs/scaling.md).
BULK_FROM = 64


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
    given_name: str | None   # any of these three may be absent from every record
    family_name: str | None
    dob: date | None
    sex: int
    confidence: float
    total: float
    councils: tuple[CouncilInvolved, ...]
    shielded: bool
    contact: tuple[CouncilInvolved, ...]  # shielded: whose index team to ask

    def to_dict(self) -> dict[str, Any]:
        return {
            "national_id": self.national_id, "given_name": self.given_name,
            "family_name": self.family_name, "dob": _iso(self.dob), "sex": self.sex,
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


def _readable(held: HeldRecord) -> ChildRecord:
    """A held record's content; bytes damaged in storage (which anti-entropy repairs)
    fail closed: the record stands as shielded by its council and shows nothing, so
    a damaged shielded record never uncovers the child."""
    try:
        return ChildRecord.from_wire(encoding.unpack(held.record, what="record"))
    except SignpostError as exc:
        log.warning("child page: %s/%s unreadable (%s); shown as shielded",
                    held.council, held.local_id, exc)
        return ChildRecord(local_id=held.local_id, shielded=True)


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


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
    return any(finds_shielded(k) for r in rows for k in r.keys)


def answers(query: SearchQuery, candidates: list[IdentityFields], *,
            bulk_from: int = BULK_FROM) -> list[Answer | None]:
    """:func:`protocol.search.answer` for every candidate of one search: record by
    record for a few, in bulk from ``bulk_from`` candidates
    (:func:`protocol.matching.bulk_score.score_columns`: each reading of the query
    against every candidate in one pass). Both give the same answers; the bulk pass
    costs a few milliseconds whatever its size (numpy's overhead per call), more than
    scoring the two or three records a search usually finds one by one."""
    readings = query.readings()
    if len(candidates) < bulk_from:
        return [answer(query, c, readings) for c in candidates]
    r, n = len(readings), len(candidates)
    if n == 0:
        return []
    scores = score_columns(Columns.of([*readings, *candidates]), np.repeat(np.arange(r), n),
                           np.tile(np.arange(r, r + n), r), [DEFAULT_MODEL])
    totals, vetoes = scores.totals.tolist(), scores.veto.tolist()
    out: list[Answer | None] = []
    for j, candidate in enumerate(candidates):
        if vetoes[j]:  # a hard rule on the query as given is never undone by a swap
            out.append(None)
            continue
        best = max((k * n + j for k in range(r) if not vetoes[k * n + j]),
                   key=lambda i: totals[i])  # the first reading of the best total
        identified = bool((query.nhs_number and query.nhs_number == candidate.nhs_number)
                          or (query.upn and query.upn == candidate.upn))
        if identified:
            out.append(Answer(1.0, totals[best]))
        elif totals[best] < MIN_TOTAL:
            out.append(None)
        else:
            out.append(Answer(scores.explanation(best).probability, totals[best]))
    return out


def _hit(query: SearchQuery, rows: list[CandidateRow],
         found_by: dict[tuple[str, str], Answer | None]) -> ChildHit | None:
    shielded = any(r.shielded for r in rows)
    if not _found(rows, shielded):
        return None
    best: tuple[Answer, CandidateRow] | None = None
    for row in rows:
        found = found_by[(row.council, row.local_id)]
        if found is not None and (best is None or (found.confidence, found.total) > (
                best[0].confidence, best[0].total)):
            best = (found, row)
    if best is None:
        return None
    found, row = best
    councils: dict[str, CouncilInvolved] = {}
    if not shielded:  # which areas know a shielded child says where it went
        for r in sorted(rows, key=lambda r: (r.council, r.local_id)):
            district = identifiers.postcode_district(r.postcode) if r.postcode else None
            held = councils.get(r.council)
            if held is None or (held.postcode_district is None and district):
                councils[r.council] = CouncilInvolved(r.council, r.council_name, district)
    contact = tuple(CouncilInvolved(code, name, None)
                    for code, name in sorted({s for r in rows for s in r.shielded_by}))
    return ChildHit(row.national_id, row.given_name, row.family_name, row.dob, row.sex,
                    found.confidence, found.total, tuple(councils.values()), shielded,
                    contact)


def _council_view(held: HeldRecord, record: ChildRecord, viewer: Viewer,
                  disclosure: Disclosure) -> dict[str, Any]:
    """One council's record as this viewer may see it."""
    view: dict[str, Any] = {
        "council": held.council, "council_name": held.council_name,
        "local_id": held.local_id, "updated_at": held.updated_at.isoformat(),
        "given_name": record.given_name, "other_given_names": record.other_given_names,
        "family_name": record.family_name,
        "former_family_names": list(record.former_family_names),
        "dob": _iso(record.dob), "sex": record.sex,
        "date_of_death": record.date_of_death.isoformat() if record.date_of_death else None,
        "nhs_number": record.nhs_number, "shielded": record.shielded,
    }
    if not disclosure.sees_location(viewer, held.council):
        # ContactPoint's rule: who the child is, and nothing that says where
        return disclosure.redact(view)
    services = [i for i in record.involvements
                if not i.sensitive or sees_sensitive(viewer, held.council)]
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
                 max_block: int = SEARCH_BLOCK_LIMIT, max_results: int = MAX_RESULTS,
                 bulk_from: int = BULK_FROM, policy: RetentionPolicy | None = None) -> None:
        self.pool = pool
        self.store = store or SearchStore()
        self.policy = policy or RetentionPolicy()
        self.max_block = max_block
        self.max_results = max_results
        self.bulk_from = bulk_from  # see answers()

    async def search(self, query: SearchQuery) -> list[ChildHit]:
        """National children answering the query, best first, at most ``max_results``."""
        async with self.pool.acquire() as conn:
            rows = await self.store.candidates(conn, query.keys(), self.max_block)
            rows = await self._not_due(conn, rows)
        by_child: dict[str, list[CandidateRow]] = defaultdict(list)
        for row in rows:
            by_child[row.national_id].append(row)
        # each record scored as its child allows: a shielded child's location never scores
        scored = [(row, _fields(row, any(r.shielded for r in recs)))
                  for recs in by_child.values() for row in recs]
        found = answers(query, [f for _, f in scored], bulk_from=self.bulk_from)
        found_by = {(row.council, row.local_id): a
                    for (row, _), a in zip(scored, found, strict=True)}
        hits = [h for h in (_hit(query, recs, found_by) for recs in by_child.values())
                if h is not None]
        hits.sort(key=lambda h: (-h.confidence, -h.total, h.national_id))
        return hits[:self.max_results]

    def _due(self, record: ChildRecord, today: date) -> bool:
        """Past its archive date, whether or not the retention job has archived it yet."""
        return self.policy.record_archived_on(record, today=today) is not None

    async def _not_due(self, conn: asyncpg.Connection,
                       rows: list[CandidateRow]) -> list[CandidateRow]:
        """The rows less those past their archive date that the daily job has not archived
        yet (a child who turned 18, or died over a year ago, since its last run): out of
        search as the archived are. Only a record old enough or holding a date of death
        is read again; a child reached only through such a record is not found."""
        today = datetime.now(UTC).date()
        check = [(r.council, r.local_id) for r in rows
                 if self.policy.may_be_due(r.dob, r.may_have_died, today=today)]
        if not check:
            return rows
        due = {key for key, data in (await self.store.record_bytes(conn, check)).items()
               if self.policy.stored_record_due(data, today=today)}
        return [r for r in rows if (r.council, r.local_id) not in due]

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
        today = datetime.now(UTC).date()
        held_now = [(h, r) for h, r in ((h, _readable(h)) for h in child.records)
                    if not self._due(r, today)]  # archived, if the job has not yet
        if not held_now:
            raise NotFoundError(f"no council holds a record of {national_id} any more")
        child = dataclasses.replace(child, records=tuple(h for h, _ in held_now))
        records = [r for _, r in held_now]
        # the shielding councils are the marks' (storage.shielding); a record's own flag
        # names its council only while it carries no mark (just published, or damaged):
        # a copy flagged because another council shields the child names that one
        contact = sorted({s for h in child.records for s in h.shielded_by}
                         | {(h.council, h.council_name)
                            for h, r in zip(child.records, records, strict=True)
                            if r.shielded and not h.shielded_by})
        disclosure = Disclosure(bool(contact), tuple(c for c, _ in contact))
        held = list(zip(child.records, records, strict=True))
        if not disclosure.sees_other_councils(viewer):
            # which councils know a shielded child, and which knew it last, says where it
            # went: only the viewer's own council's record, if it holds one
            held = [(h, r) for h, r in held if viewer.index_team_of(h.council)]
        councils = [_council_view(h, r, viewer, disclosure) for h, r in held]
        # who the child is: for a shielded child, not the record updated last (which
        # council knew it last says where it went) but a fixed choice among its records
        latest = max(records, key=lambda r: (r.family_name or "", r.given_name or "",
                                             _iso(r.dob) or "")
                     ) if disclosure.shielded else max(
            zip(child.records, records, strict=True), key=lambda p: p[0].updated_at)[1]
        return {
            "national_id": national_id, "given_name": latest.given_name,
            "family_name": latest.family_name, "dob": _iso(latest.dob),
            "sex": latest.sex, "shielded": disclosure.shielded,
            "withheld": not disclosure.sees_other_councils(viewer),
            "contact": [{"council": c, "name": n, "team": "index team"} for c, n in contact],
            "councils": councils,
        }
