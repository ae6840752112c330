"""Term frequencies: how common each name, postcode and address is among the records.

An exact match on a common value says less than one on a rare value, as Splink's term
frequency adjustments say: "Smith" less than "Okonkwo-Reilly", and a postcode or an
address shared by many children's records (a block of flats, a refuge, a care home, a
council office written in for "no fixed abode") less than a house with one family.

    >>> tf = TermFrequencies.from_names(["Amelia"] * 9 + ["Zofia"], ["Smith"] * 10,
    ...                                 postcodes=["BN1 1AA"] * 8 + ["TF1 2AB", "TF1 3CD"])
    >>> tf.adjustment("given_name", "Zofia") > 0 > tf.adjustment("given_name", "AMELIA")
    True
    >>> tf.adjustment("postcode", "bn11aa") < 0 < tf.adjustment("postcode", "TF1 2AB")
    True
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from protocol.matching.location import normalise_address, postcode_parts
from protocol.matching.names import normalise_name

__all__ = ["TF_FIELDS", "TermFrequencies", "postcode_key"]


def postcode_key(value: str | None) -> str:
    """The compact upper-case postcode, ``""`` for one that is blank or too short."""
    parts = postcode_parts(value) if value else None
    return parts[0] if parts else ""


def _address_key(value: str | None) -> str:
    return normalise_address(value) if value else ""


# field -> how its values are keyed for counting; the order of TermFrequencies' fields.
_KEYS: dict[str, Callable[[str | None], str]] = {
    "given_name": normalise_name, "family_name": normalise_name,
    "postcode": postcode_key, "address_line": _address_key,
}
TF_FIELDS: tuple[str, ...] = tuple(_KEYS)


class _Located(Protocol):
    @property
    def given_name(self) -> str | None: ...
    @property
    def family_name(self) -> str | None: ...
    @property
    def postcode(self) -> str | None: ...
    @property
    def address_line(self) -> str | None: ...


# How many records of a field's values a concentration needs before it is believed: a
# few dozen (a new hub, one school's first batch) show who is in them, not how often
# two different children share a surname or a postcode, and read a family of three
# siblings as a population of one surname.
CONCENTRATION_MIN_RECORDS = 1_000


@dataclass(frozen=True)
class TermFrequencies:
    """How many records hold each (normalised) given name, family name, postcode and
    address line. Used by :func:`protocol.matching.scoring.score` for exact matches.

    The adjustment to an exact match on a value is ``log2(average / frequency)``, where
    *average* is the chance that two records drawn at random share a value of the
    field (the sum of squared frequencies): positive for rare values, negative for
    common ones, capped by the model. A value never seen counts as seen once; a field
    with no counts at all is not adjusted.
    """

    given: Mapping[str, int] = field(default_factory=dict)
    family: Mapping[str, int] = field(default_factory=dict)
    postcode: Mapping[str, int] = field(default_factory=dict)
    address: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_names(cls, given_names: Iterable[str | None], family_names: Iterable[str | None],
                   *, postcodes: Iterable[str | None] = (),
                   addresses: Iterable[str | None] = ()) -> TermFrequencies:
        return cls(_count(given_names, normalise_name), _count(family_names, normalise_name),
                   _count(postcodes, postcode_key), _count(addresses, _address_key))

    @classmethod
    def from_records(cls, records: Iterable[_Located]) -> TermFrequencies:
        """From records with names, postcode and address line (IdentityFields, say)."""
        counts: list[Counter[str]] = [Counter() for _ in TF_FIELDS]
        for record in records:
            for i, name in enumerate(TF_FIELDS):
                counts[i][_KEYS[name](getattr(record, name))] += 1
        for c in counts:
            c.pop("", None)
        return cls(*counts)

    def _counts(self, field_name: str) -> Mapping[str, int]:
        return (self.given, self.family, self.postcode, self.address)[TF_FIELDS.index(field_name)]

    @functools.cached_property
    def _stats(self) -> dict[str, tuple[int, float]]:
        return {name: _totals(self._counts(name)) for name in TF_FIELDS}

    def adjustment(self, field_name: str, value: str | None) -> float:
        """Bits to add to an exact match on ``value`` of the field (uncapped)."""
        key = _KEYS[field_name](value)
        total, average = self._stats[field_name]
        if total == 0 or not key:
            return 0.0
        frequency = max(self._counts(field_name).get(key, 0), 1) / total
        return math.log2(average / frequency)

    def concentration(self, field_name: str, u: float) -> float:
        """Bits to add to every exact match on the field when its values are more
        concentrated here than the model's ``u`` (the chance two different children
        share a value) says: ``min(0, log2(u / shared))``, *shared* the chance measured
        over pairs of different records.

        The adjustment ``log2(average / frequency)`` moves a value's weight around the
        model's ``log2(m / u)`` as if ``u`` were the field's average agreement. Where the
        records show more agreement than that (a population of few surnames: a tenth
        of RLdata10000's are Mueller or Schmidt; a block of flats), chance agreement is
        likelier than the model believes and an exact match says less: its weight is
        then ``log2(m / frequency)``, the value's own chance, as Splink weighs it. Never
        more than the model says, where the values are more diverse than ``u``: a
        national model's ``u`` already errs towards precision there."""
        total, average = self._stats[field_name]
        if total < CONCENTRATION_MIN_RECORDS:
            return 0.0
        # the chance that two *different* records share a value, sum c(c-1) / (N(N-1)),
        # from the average over all pairs (sum c^2 / N^2): a small hub of distinct names
        # (a new federation, a test) shares none, where the average alone (1/N at least)
        # would read a handful of records as a population of one surname
        shared = (total * average - 1) / (total - 1)
        if shared <= u:
            return 0.0
        return math.log2(u / shared)


def _count(values: Iterable[str | None], key: Callable[[str | None], str]) -> Counter[str]:
    counts = Counter(key(v) for v in values)
    counts.pop("", None)
    return counts


def _totals(counts: Mapping[str, int]) -> tuple[int, float]:
    total = sum(counts.values())
    if total == 0:
        return 0, 0.0
    return total, sum((c / total) ** 2 for c in counts.values())
