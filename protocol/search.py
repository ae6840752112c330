"""A practitioner's search query and how one candidate record answers it; pure.

Shared by the council node (its own index) and the hub (every council's records):
the query is validated here once, becomes an :class:`IdentityFields` whose blocking
keys find the candidates (so a nickname, a typo, a day–month swap or a former
surname still finds the child), and each candidate is scored with the matcher.

The query is also read the ways people and feeds get it wrong: given
and family names swapped (in the query or in the record), a date of birth with one
part wrong (the year, the month, the day, or day and month swapped: the blocking keys
reach each), and a record that lacks a field is found by the rest. Each
reading is scored and the best one answers::

    >>> from datetime import date
    >>> query = SearchQuery.parse({"given_name": "Izzy", "family_name": "Okonkwo-Reily",
    ...                            "dob": "2015-03-14"})
    >>> child = IdentityFields("Isabella", "Okonkwo-Reilly", date(2015, 3, 14), 2)
    >>> found = answer(query, child)
    >>> found is not None and found.confidence > 0.5
    True
    >>> swapped = SearchQuery.parse({"given_name": "Okonkwo-Reilly",
    ...                              "family_name": "Isabella", "dob": "2015-03-14"})
    >>> bool(set(swapped.keys()) & blocking_keys(child)), answer(swapped, child) is not None
    (True, True)
    >>> parse_purpose({"purpose": ""})
    Traceback (most recent call last):
    ...
    protocol.errors.ValidationError: purpose: state why you are looking (3 to 200 characters)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import date

from protocol import identifiers
from protocol.errors import ValidationError
from protocol.matching import IdentityFields, blocking_keys
from protocol.matching.blocking import dob_variants, month_day_keys
from protocol.matching.compare import compare_all, compare_swapped
from protocol.matching.names import given_name_keys
from protocol.matching.scoring import score_compared

QUERY_FIELDS = ("given_name", "family_name", "dob", "postcode", "nhs_number", "upn")
# Below this total (match weight, bits) a candidate is not shown: it shares a blocking
# key with the query but little else.
MIN_TOTAL = -10.0
_TEXT_MAX = 100
# First letters one spelling of a given name has where another sounds the same
# (Caitlyn / Kaitlyn, Gemma / Jemma, Sofia / Zofia, Ysabel / Isabel): the initial of
# ``md:`` is the name's as written, so a search probes these too.
_SOUNDS_ALIKE = {"c": "k", "k": "c", "g": "j", "j": "g", "s": "z", "z": "s", "i": "y", "y": "i"}


def parse_purpose(params: Mapping[str, str]) -> str:
    """Every search and view states why (docs/design.md §6); it goes into the audit log."""
    purpose = (params.get("purpose") or "").strip()
    if not 3 <= len(purpose) <= 200:
        raise ValidationError("purpose", "state why you are looking (3 to 200 characters)")
    return purpose


@dataclass(frozen=True, slots=True)
class SearchQuery:
    given_name: str | None = None
    family_name: str | None = None
    dob: date | None = None
    postcode: str | None = None
    nhs_number: str | None = None
    upn: str | None = None

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> SearchQuery:
        """Validate query parameters; a bad one is a ValidationError naming it.

        The fields given must be able to find a child through a blocking key: an NHS
        number or UPN; or a date of birth with a name or a postcode; or a given name
        with a postcode. Anything less (a family name alone) would list strangers."""
        def text(name: str) -> str | None:
            value = (params.get(name) or "").strip()
            if len(value) > _TEXT_MAX:
                raise ValidationError(name, f"longer than {_TEXT_MAX} characters")
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
        named = bool(query.given_name or query.family_name)
        if not (query.nhs_number or query.upn
                or (query.dob and (named or query.postcode))
                or (query.given_name and query.postcode)):
            raise ValidationError(
                "query", "give an NHS number or UPN, or a date of birth with a name or "
                         "postcode, or a given name with a postcode")
        return query

    def fields(self) -> IdentityFields:
        return IdentityFields(given_name=self.given_name, family_name=self.family_name,
                              dob=self.dob, postcode=self.postcode,
                              nhs_number=self.nhs_number, upn=self.upn)

    def readings(self) -> list[IdentityFields]:
        """The query as given, then with given and family names swapped (when both are
        given): the ways it is scored."""
        straight = self.fields()
        if not (self.given_name and self.family_name) or \
                self.given_name.casefold() == self.family_name.casefold():
            return [straight]
        return [straight, replace(straight, given_name=self.family_name,
                                  family_name=self.given_name)]

    def keys(self) -> list[str]:
        """The blocking keys that find candidates, sorted: those of every reading and of
        a record lacking its date of birth (``blocking_keys`` gives such a record name
        keys of its own); and, for a year keyed wrong, the family name + day and month
        keys (``md:``) with the initial of each formal name the given name may stand
        for ("Bill" probes William's ``w`` too) or a spelling that sounds alike may begin
        with (Kaitlyn's ``c``, Jemma's ``g``), and with the day and month swapped.

        A year keyed wrong with the names right is found by ``md:`` (family name, day and
        month, initial), which every record holds. Until 2026-12-07 the query also
        probed the exact-date keys (``d:``, ``dg:``) of every birth year one digit away:
        each holds every child born that day with one of the names, so a search at a
        million children read about three times the candidates it reads now, most of
        them namesakes a year apart, in blocks that grow with the index. What only they
        found was a year keyed wrong with a second error; of those, a surname misspelt
        beyond its sound is no longer found (docs/scaling.md, "Search: a year keyed
        wrong found by day and month")."""
        readings = self.readings()
        straight = readings[0]
        keys: set[str] = set()
        for reading in readings:
            keys |= blocking_keys(reading)
            if reading.dob is not None:
                keys |= blocking_keys(replace(reading, dob=None))
        if straight.dob is not None:
            initials = {name[:1] for name in given_name_keys(straight.given_name)}
            initials |= {alike for i in initials for alike in _SOUNDS_ALIKE.get(i, "")}
            for day in dob_variants(straight.dob):
                keys |= month_day_keys(straight.family_name, day, initials)
        return sorted(keys)

    def parameters(self) -> dict[str, str]:
        """The fields given, as text: what the audit log records of a search."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = value.isoformat() if isinstance(value, date) else value
        return out


@dataclass(frozen=True, slots=True)
class Answer:
    """How well one candidate answers a query: 1.0 when an identifier given agrees."""

    confidence: float
    total: float


def answer(query: SearchQuery, candidate: IdentityFields,
           readings: list[IdentityFields] | None = None) -> Answer | None:
    """Score ``candidate`` against ``query``; None when it must not be shown (a hard
    rule forbids it, e.g. the query's NHS number differs, or it agrees on too little).
    The best-scoring reading of the query (names as given, or swapped) answers.
    ``readings``: ``query.readings()``, when the caller has them already."""
    readings = query.readings() if readings is None else readings
    straight = compare_all(readings[0], candidate)
    results = [score_compared(readings[0], candidate, straight)] + [
        score_compared(reading, candidate, compare_swapped(reading, candidate, straight))
        for reading in readings[1:]]
    if results[0].veto is not None:
        # a hard rule on the query as given (an identifier differs, a twin) is never
        # undone by reading the names the other way round
        return None
    result = max((r for r in results if r.veto is None), key=lambda r: r.total)
    identified = bool((query.nhs_number and query.nhs_number == candidate.nhs_number)
                      or (query.upn and query.upn == candidate.upn))
    if identified:
        return Answer(1.0, result.total)
    if result.total < MIN_TOTAL:
        return None
    return Answer(result.probability, result.total)
