"""A practitioner's search query and how one candidate record answers it; pure.

Shared by the council node (its own index) and the hub (every council's records):
the query is validated here once, becomes an :class:`IdentityFields` whose blocking
keys find the candidates (so a nickname, a typo, a day–month swap or a former
surname still finds the child), and each candidate is scored with the matcher.

The query is also read the ways people and feeds get it wrong: given
and family names swapped (in the query or in the record), a date of birth with one
digit of its year wrong (a day or month digit, and a day–month swap, the blocking
keys reach already), and a record that lacks a field is found by the rest. Each
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

import functools
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import date

from protocol import identifiers
from protocol.errors import ValidationError
from protocol.matching import IdentityFields, blocking_keys
from protocol.matching.compare import compare_all, compare_swapped
from protocol.matching.scoring import score_compared

QUERY_FIELDS = ("given_name", "family_name", "dob", "postcode", "nhs_number", "upn")
# Below this total (match weight, bits) a candidate is not shown: it shares a blocking
# key with the query but little else.
MIN_TOTAL = -10.0
# Children's records start in 1990 (protocol.records); a year before is not a reading.
_EARLIEST_YEAR = 1990
_TEXT_MAX = 100


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
        keys of its own); and, for each birth year one digit away, the exact-date keys
        of the query as given (``d:``, ``dg:``: each as narrow as the query's own; the
        broader year keys are not probed again, so a search stays a few dozen keys)."""
        readings = self.readings()
        own = blocking_keys(readings[0])  # the query as given: re-dated below
        keys = set(own)
        for n, reading in enumerate(readings):
            if n:
                keys |= blocking_keys(reading)
            if reading.dob is not None:
                keys |= blocking_keys(replace(reading, dob=None))
        dob = readings[0].dob
        if dob is not None:
            # ``d:DATE:CODE`` and ``dg:DATE:NAME``: the code and name do not depend on
            # the date, so another year's keys are the query's own with the date changed
            # (what blocking_keys would give that date, without a call per year)
            day = dob.isoformat()
            tails = [(prefix, k[len(prefix) + len(day):]) for k in own
                     for prefix in ("d:", "dg:") if k.startswith(f"{prefix}{day}:")]
            for year in _years_one_digit_away(dob):
                try:
                    other = dob.replace(year=year).isoformat()
                except ValueError:
                    continue  # 29 February in a year without one
                keys.update(f"{prefix}{other}{tail}" for prefix, tail in tails)
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


def _years_one_digit_away(dob: date) -> tuple[int, ...]:
    """Birth years a keying slip of one digit could have given, in a child's range."""
    return _years_near(dob.year, date.today().year)


@functools.lru_cache(maxsize=256)
def _years_near(year: int, this_year: int) -> tuple[int, ...]:
    digits = f"{year:04d}"
    years = {int(digits[:i] + d + digits[i + 1:]) for i in range(4) for d in "0123456789"}
    return tuple(sorted(y for y in years - {year} if _EARLIEST_YEAR <= y <= this_year))


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
