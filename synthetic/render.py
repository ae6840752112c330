"""Turning an :class:`~synthetic.model.Appearance` into a CSV row of a docs/design.md §8 feed."""

from __future__ import annotations

import functools
import zlib
from typing import TYPE_CHECKING

from local_node.feeds import COLUMNS

if TYPE_CHECKING:
    from synthetic.model import Appearance, Presence

# The feed contract (docs/design.md §8) is the node's; the generator writes exactly it.
FEED_COLUMNS: dict[str, tuple[str, ...]] = COLUMNS
TRUTH_COLUMNS = ("person_id", "council", "source", "source_ref")

_INDEX = {feed: {c: i for i, c in enumerate(cols)} for feed, cols in FEED_COLUMNS.items()}
# Each council's social care system spells booleans its own way.
_BOOLEAN_STYLES = (("true", "false"), ("Y", "N"), ("yes", "no"), ("1", "0"))


@functools.cache
def boolean_style(council: str) -> tuple[str, str]:
    return _BOOLEAN_STYLES[zlib.crc32(council.encode()) % len(_BOOLEAN_STYLES)]


_CARER_GIVEN = ("Sarah", "Emma", "Laura", "James", "David", "Michelle", "Claire", "Mark",
                "Aisha", "Priya", "Tomasz", "Grace", "Chloe", "Daniel", "Fatima", "Gemma")


def carer(p: Presence) -> tuple[str, str]:
    """The parent/carer a council's schools and GPs hold for a child: a hash of the
    child and the council, not a draw from the generator's dice, so adding it left
    every other generated value as it was. One child in ten has none on file."""
    h = zlib.crc32(f"{p.person.index}:{p.council}".encode())
    if h % 10 == 0:
        return "", ""
    given = _CARER_GIVEN[(h // 10) % len(_CARER_GIVEN)]
    return f"{given} {p.family_name}", f"07700 9{h % 100_000:05d}"


def render_row(a: Appearance) -> list[str]:
    p = a.presence
    person = p.person
    if a.feed == "education":
        school = p.school
        assert school is not None
        row = [
            a.source_ref, p.upn or "", person.given_name, person.other_given_names or "",
            p.family_name, p.former_family_name or "", person.dob.isoformat(), str(person.sex),
            p.address_line, p.postcode, school.urn, school.name, school.phone,
            p.school_start.isoformat() if p.school_start else "",
            p.school_end.isoformat() if p.school_end else "", *carer(p),
        ]
    elif a.feed == "health":
        practice = p.practice
        assert practice is not None
        row = [
            a.source_ref, person.nhs_number, person.given_name, person.other_given_names or "",
            p.family_name, person.dob.isoformat(), str(person.sex), p.address_line, p.postcode,
            practice.ods_code, practice.name, practice.phone,
            p.registered_from.isoformat() if p.registered_from else "",
            p.registered_to.isoformat() if p.registered_to else "", *carer(p),
        ]
    else:
        inv = a.involvement
        assert inv is not None
        yes, no = boolean_style(p.council)
        service = inv.service
        row = [
            a.source_ref, person.nhs_number, p.upn or "", person.given_name, p.family_name,
            person.dob.isoformat(), str(person.sex), p.postcode, service.kind.service_type,
            service.name, service.organisation_code, inv.professional.name,
            service.kind.role, inv.professional.phone, inv.professional.email,
            yes if inv.lead else no, yes if inv.caf else no, yes if inv.sensitive else no,
            "" if inv.consent is None else (yes if inv.consent else no),
            yes if p.shielded else no, inv.start.isoformat(),
            inv.end.isoformat() if inv.end else "",
        ]
    if a.overrides:
        index = _INDEX[a.feed]
        for column, value in a.overrides.items():
            row[index[column]] = value
    return row
