"""The NHS numbers and UPNs a child's records hold, and which of them differ between two
children: the one comparison behind the resolver's rule that a record never joins a
child holding another identifier (``national_hub.services.link_decision``) and the
confirmation a person gives before linking two such children
(``national_hub.services.review``).

Compared as the matching's hard rule compares two records (``scoring.hard_rules``' first
two): an NHS number's spaces and a UPN's case do not count, and a missing or invalid
identifier differs from none.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Set as AbstractSet

from protocol.matching.compare import IdentityFields, valid_nhs_number, valid_upn

# ("nhs_number", the compact number) and ("upn", the upper-case UPN)
Identifier = tuple[str, str]
KINDS = ("nhs_number", "upn")


def identifiers_of(nhs_number: str | None, upn: str | None) -> frozenset[Identifier]:
    """A record's valid NHS number and UPN."""
    nhs = valid_nhs_number(nhs_number) if nhs_number else None
    pupil = valid_upn(upn) if upn else None
    return frozenset({*((("nhs_number", nhs),) if nhs else ()),
                      *((("upn", pupil),) if pupil else ())})


def held_by(records: Iterable[IdentityFields]) -> frozenset[Identifier]:
    """Every valid identifier some of these records (one child's) hold."""
    return frozenset().union(*(identifiers_of(r.nhs_number, r.upn) for r in records))


def differing_kinds(x: AbstractSet[Identifier], y: AbstractSet[Identifier]) -> tuple[str, ...]:
    """Which kinds of identifier a value one side holds and a value the other holds
    differ in (a side holding two already differs from anything holding one).

        >>> ada = identifiers_of("943 476 5919", "z846203417010")
        >>> differing_kinds(ada, identifiers_of("9434765919", None))
        ()
        >>> differing_kinds(ada, identifiers_of("4010232137", "Z846203417010"))
        ('nhs_number',)
        >>> differing_kinds(ada, ada | identifiers_of("4010232137", None))
        ('nhs_number',)
    """
    out = []
    for kind in KINDS:
        mine, theirs = ({v for k, v in side if k == kind} for side in (x, y))
        if mine and theirs and not (len(mine) == 1 and mine == theirs):
            out.append(kind)
    return tuple(out)


def differing_identifiers(left: Iterable[IdentityFields],
                          right: Iterable[IdentityFields]) -> tuple[str, ...]:
    """Which identifiers, ``"nhs_number"`` and ``"upn"``, a record of ``left`` and a record
    of ``right`` (two children's) hold differently."""
    return differing_kinds(held_by(left), held_by(right))
