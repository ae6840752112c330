"""Fellegi–Sunter scoring and the hard rules on top of it (EM is in ``training``).

For each field, each comparison level has an *m* probability (how often a true
match shows that level) and a *u* probability (how often two different children
drawn at random do); its match weight is ``log2(m/u)``. A pair's total is the
prior weight plus the field weights, and the match probability follows from it::

    >>> from datetime import date
    >>> a = IdentityFields("Amelia", "Okafor", date(2015, 3, 14), 2, postcode="BN1 1AA")
    >>> b = IdentityFields("Millie", "Okafor", date(2015, 3, 14), 2, postcode="BN1 1AA")
    >>> result = score(a, b)
    >>> result.level("given_name"), result.decision()
    ('NICKNAME', <Decision.LINK: 'link'>)

Exact matches of names, postcode and address are adjusted by how common the value is
(:class:`TermFrequencies`, as Splink does): agreeing on "Smith" says less than agreeing
on "Okonkwo-Reilly", and a postcode forty children's records share (a block of flats,
a refuge) less than one a single family lives at.
Postcode and address are not independent: when the postcodes differ, a different
address is the same move seen twice, so it weighs nothing.

Hard rules, because a false merge points a practitioner at the wrong child:

* two different valid NHS numbers, or two different valid UPNs, never link;
* **twins**: the same date of birth (or its day–month swap), the same surname
  and the same postcode or address, with *clearly different* given names never
  link; if an identifier agrees nonetheless (twins' numbers get swapped), a person
  decides. Clearly different is measured, not a switch: not equal, not a nickname,
  not swapped with the family name, and not close (one typo, or two slips with the
  same first letter and Jaro–Winkler >= 0.92, without a clash of sex): see
  :func:`given_names_agree`;
* clearly different given names, or dates of birth far apart, never link on their
  own: without an agreeing NHS number or UPN such a pair goes to review at most
  (siblings share surname, address and often a nickname's formal name). Given names
  that are close are scored by their level (JW_92, JW_85...) like any field;
* a record without a given name links only through an agreeing NHS number or UPN,
  else review at most: nothing else tells a twin from the other twin (twins share the
  surname, the date of birth and the home, all a blank given name leaves to compare);
* names and a date of birth alone (no location, sex or identifier on both records)
  link only at :data:`NAMES_ALONE_LINK` bits, else review at most;
* term frequencies: an exact match on a value weighs ``log2(m / u)`` moved by how
  rare the value is, and never more than ``log2(m / frequency)`` where the records'
  values are more concentrated than ``u`` says
  (:meth:`~protocol.matching.frequencies.TermFrequencies.concentration`);
* a date of birth a digit, a year or a few days out links only with the same home
  (postcode, or address) or an agreeing identifier; else review at most: namesakes
  of one town born days apart are as common as a keying slip.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from types import MappingProxyType
from typing import Any

from protocol.matching.compare import (
    COMPARISONS,
    FIELDS,
    AddressLevel,
    DobLevel,
    FamilyNameLevel,
    GivenNameLevel,
    IdentifierLevel,
    IdentityFields,
    PostcodeLevel,
    SexLevel,
    compare_all,
)
from protocol.matching.frequencies import TF_FIELDS, TermFrequencies
from protocol.matching.names import given_names_close

__all__ = [
    "DEFAULT_MODEL", "NAMES_ALONE_LINK", "Decision", "Explanation", "FieldScore", "Model",
    "TermFrequencies", "Thresholds", "decide", "given_names_agree", "hard_rules",
    "names_alone", "score", "score_compared",
]



class Decision(StrEnum):
    LINK = "link"
    REVIEW = "review"
    NEW = "new"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Totals (match weights, prior included) at or above which a pair links or is reviewed."""

    link: float
    review: float

    def __post_init__(self) -> None:
        if not self.review <= self.link:
            raise ValueError(f"review threshold {self.review} is above link {self.link}")


def decide(total: float, thresholds: Thresholds) -> Decision:
    """Link above the upper threshold, review in the grey zone, a new child below."""
    if total >= thresholds.link:
        return Decision.LINK
    if total >= thresholds.review:
        return Decision.REVIEW
    return Decision.NEW


# -- the model -----------------------------------------------------------------------

# (m, u) per level. m: share of true matches at the level (feeds as councils report
# them: a few per cent nicknames, typos, changed surnames, stale addresses). u: share
# of two different children drawn at random in England, 0-17 (about 6,600 birthdays,
# 1.7 million unit postcodes; name shares by the term frequencies).
DEFAULT_FIELDS: dict[str, dict[str, tuple[float, float]]] = {
    # Names swapped between the records ("Grubb Olivia"): each field says so; two random
    # children show it about as often as sharing both names, once in 100,000 pairs.
    "given_name": {"EXACT": (0.85, 0.008), "NICKNAME": (0.06, 0.001), "SWAPPED": (0.01, 1e-5),
                   "JW_92": (0.03, 0.002), "JW_85": (0.01, 0.006), "PHONETIC": (0.01, 0.005),
                   "OTHER": (0.03, 0.97799)},
    "other_given_names": {"EXACT": (0.88, 0.006), "PARTIAL": (0.07, 0.002),
                          "OTHER": (0.05, 0.992)},
    "family_name": {"EXACT": (0.85, 0.002), "PART": (0.03, 0.0002), "FORMER": (0.02, 0.0001),
                    "SWAPPED": (0.01, 1e-5), "JW_HIGH": (0.03, 0.001),
                    "PHONETIC": (0.01, 0.002), "OTHER": (0.05, 0.99469)},
    # YEAR_OFF: the same day and month (1 in 365) a year out (1 in 9.5 of two children's
    # birth years 0-17 are next to each other).
    "dob": {"EXACT": (0.965, 0.00015), "SWAPPED": (0.006, 0.00006), "YEAR_OFF": (0.005, 0.0003),
            "ONE_DIGIT": (0.01, 0.003), "SAME_YEAR_MONTH": (0.004, 0.003),
            "OTHER": (0.01, 0.99349)},
    "sex": {"AGREE": (0.995, 0.5), "DISAGREE": (0.005, 0.5)},
    # Children move house often and services learn of it late: one in eight true pairs
    # shows two different addresses. TYPO: one edit apart in another sector, as rare
    # between two random children as one sector.
    "postcode": {"FULL": (0.82, 0.0001), "TYPO": (0.01, 0.0003), "SECTOR": (0.01, 0.0005),
                 "DISTRICT": (0.02, 0.002), "AREA": (0.02, 0.01), "OTHER": (0.12, 0.9871)},
    # Same house, same postcode: the address adds little once the postcode agrees.
    # STREET (a different house number on the same street) is a neighbour as often as
    # a slip of one digit: a little evidence, never the same house's.
    "address_line": {"EXACT": (0.65, 0.02), "HIGH": (0.1, 0.01), "STREET": (0.03, 0.01),
                     "MEDIUM": (0.05, 0.02), "OTHER": (0.17, 0.94)},
    "nhs_number": {"AGREE": (0.999, 1e-7), "DISAGREE": (0.001, 1.0 - 1e-7)},
    "upn": {"AGREE": (0.999, 1e-7), "DISAGREE": (0.001, 1.0 - 1e-7)},
}
# Two records of one child among about ten million children's records.
DEFAULT_PRIOR = 1e-6
DEFAULT_THRESHOLDS = (6.0, -4.0)  # link, review


@dataclass(frozen=True)
class Model:
    """m and u per field and level, the prior, and the decision thresholds.

    ``prior`` is the probability that two records drawn at random are the same
    child. ``fields`` maps field → level name → ``(m, u)``; ``MISSING`` is never
    listed (it weighs nothing). ``tf_max_adjustment`` caps the term-frequency
    adjustment of an exact name match, in bits, either way. ``partner_share`` is what
    training estimated by EM of the records it saw: the prior times their number, so
    that a hub of N records takes ``partner_share / N`` as a prior (0: not estimated;
    see ``national_hub.services.linking.with_prior``). A model trained on a pilot's few
    records must not carry their prior to a national index.
    """

    version: str
    prior: float
    fields: Mapping[str, Mapping[str, tuple[float, float]]]
    thresholds: Thresholds
    tf_max_adjustment: float = 5.0
    partner_share: float = 0.0

    def __post_init__(self) -> None:
        # Read-only, so the weights cached from them cannot go stale.
        object.__setattr__(self, "fields", MappingProxyType(
            {f: MappingProxyType(dict(levels)) for f, levels in self.fields.items()}))
        if not 0.0 < self.prior < 1.0:
            raise ValueError(f"prior must be in (0, 1), got {self.prior}")
        if not 0.0 <= self.partner_share < 1e6:
            raise ValueError(f"partner share must be at least 0, got {self.partner_share}")
        for comparison in COMPARISONS:
            given = self.fields.get(comparison.field)
            if given is None:
                raise ValueError(f"model has no parameters for {comparison.field}")
            expected = {lv.name for lv in comparison.levels if lv.value >= 0}
            if set(given) != expected:
                raise ValueError(f"{comparison.field}: levels {sorted(given)}, "
                                 f"expected {sorted(expected)}")
            for level, (m, u) in given.items():
                if not (0.0 < m <= 1.0 and 0.0 < u <= 1.0):
                    raise ValueError(f"{comparison.field}.{level}: m and u must be in (0, 1]")
        unknown = set(self.fields) - set(FIELDS)
        if unknown:
            raise ValueError(f"model has parameters for unknown fields {sorted(unknown)}")

    @cached_property
    def weights(self) -> tuple[dict[int, float], ...]:
        """Per field (in FIELDS order): level value → log2(m/u); MISSING → 0."""
        table = []
        for comparison in COMPARISONS:
            params = self.fields[comparison.field]
            weights = {lv.value: 0.0 for lv in comparison.levels}
            for name, (m, u) in params.items():
                weights[comparison.levels[name].value] = math.log2(m / u)
            table.append(weights)
        return tuple(table)

    @cached_property
    def prior_weight(self) -> float:
        return math.log2(self.prior / (1.0 - self.prior))

    def weight(self, field_name: str, level: int) -> float:
        return self.weights[FIELDS.index(field_name)][int(level)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "prior": self.prior,
            "thresholds": {"link": self.thresholds.link, "review": self.thresholds.review},
            "tf_max_adjustment": self.tf_max_adjustment,
            "partner_share": self.partner_share,
            "fields": {f: {level: {"m": m, "u": u} for level, (m, u) in levels.items()}
                       for f, levels in self.fields.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Model:
        """A model as :meth:`to_dict` wrote it. A model stored before a comparison level
        existed (a hub's trained model, say) gets the default's m and u for it: the new
        level then weighs what it does in the default until the hub trains again."""
        try:
            fields = {f: {level: (float(p["m"]), float(p["u"])) for level, p in lv.items()}
                      for f, lv in data["fields"].items()}
            for f, levels in fields.items():
                for level, params in DEFAULT_FIELDS.get(f, {}).items():
                    levels.setdefault(level, params)
            return cls(
                version=str(data["version"]),
                prior=float(data["prior"]),
                thresholds=Thresholds(float(data["thresholds"]["link"]),
                                      float(data["thresholds"]["review"])),
                tf_max_adjustment=float(data.get("tf_max_adjustment", 5.0)),
                partner_share=float(data.get("partner_share", 0.0)),
                fields=fields,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a matching model: {exc!r}") from exc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Model:
        return cls.from_dict(json.loads(text))


DEFAULT_MODEL = Model(version="signpost-default-1", prior=DEFAULT_PRIOR, fields=DEFAULT_FIELDS,
                      thresholds=Thresholds(*DEFAULT_THRESHOLDS))


# -- scoring one pair ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldScore:
    field: str
    level: str
    weight: float             # log2(m/u), plus the term-frequency adjustment
    tf_adjustment: float = 0.0


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a pair scored what it did: each field's level and weight, and the rules hit."""

    vector: tuple[int, ...]   # the comparison vector: one level per field, FIELDS order
    weights: tuple[float, ...]  # each field's weight, term-frequency adjustment included
    tf_adjustments: tuple[float, ...]
    prior_weight: float
    total: float              # prior weight + every field's weight
    thresholds: Thresholds
    veto: str | None = None   # a hard rule that forbids a link: the decision is new
    cap: str | None = None    # a hard rule that allows review at most

    @property
    def probability(self) -> float:
        """The match probability, ``1 / (1 + 2^-total)``."""
        return 1.0 / (1.0 + 2.0 ** -max(-1000.0, min(1000.0, self.total)))

    @property
    def fields(self) -> tuple[FieldScore, ...]:
        return tuple(FieldScore(c.field, c.levels(level).name, weight, adjustment)
                     for c, level, weight, adjustment in zip(
                         COMPARISONS, self.vector, self.weights, self.tf_adjustments,
                         strict=True))

    def level(self, field_name: str) -> str:
        i = _I[field_name]
        return COMPARISONS[i].levels(self.vector[i]).name

    def decision(self, thresholds: Thresholds | None = None) -> Decision:
        """The decision by the thresholds (the model's unless given), after the hard rules."""
        if self.veto is not None:
            return Decision.NEW
        decision = decide(self.total, thresholds or self.thresholds)
        if self.cap is not None and decision is Decision.LINK:
            return Decision.REVIEW
        return decision

    def to_dict(self) -> dict[str, Any]:
        """For a review screen or an audit record."""
        return {"total": self.total, "probability": self.probability,
                "prior_weight": self.prior_weight, "decision": self.decision().value,
                "veto": self.veto, "cap": self.cap,
                "fields": [{"field": f.field, "level": f.level, "weight": f.weight,
                            "tf_adjustment": f.tf_adjustment} for f in self.fields]}


def score(a: IdentityFields, b: IdentityFields, model: Model = DEFAULT_MODEL,
          tf: TermFrequencies | None = None) -> Explanation:
    """Compare two records field by field and explain the result."""
    return score_compared(a, b, compare_all(a, b), model, tf)


def score_compared(a: IdentityFields, b: IdentityFields, vector: tuple[int, ...],
                   model: Model = DEFAULT_MODEL,
                   tf: TermFrequencies | None = None) -> Explanation:
    """:func:`score` of two records already compared (``vector`` is
    ``compare_all(a, b)``)."""
    weights = [table[level] for table, level in zip(model.weights, vector, strict=True)]
    if vector[_POSTCODE] in _POSTCODES_DIFFER and weights[_ADDRESS] < 0:
        # One move explains both a different postcode and a different address: count it
        # once. A different address is evidence only at the same postcode (or none).
        weights[_ADDRESS] = 0.0
    adjustments = _NO_ADJUSTMENTS
    if tf is not None:
        limit = model.tf_max_adjustment
        for i, name, exact in _TF_FIELD_INDEX:
            if vector[i] == exact:
                u = model.fields[name][_EXACT_LEVEL.get(name, "EXACT")][1]
                raw = tf.adjustment(name, getattr(a, name)) + tf.concentration(name, u)
                adjustment = max(-limit, min(limit, raw))
                adjustments = (*adjustments[:i], adjustment, *adjustments[i + 1:])
                weights[i] += adjustment
    total = model.prior_weight + sum(weights)
    veto, cap = hard_rules(a, b, vector, total)
    return Explanation(vector, tuple(weights), adjustments, model.prior_weight,
                       total, model.thresholds, veto, cap)


_I = {name: i for i, name in enumerate(FIELDS)}
# (index, field, value of its exact level) of the fields with term frequencies.
_EXACT_LEVEL = {"postcode": "FULL"}
_TF_FIELD_INDEX = tuple((_I[name], name,
                         int(COMPARISONS[_I[name]].levels[_EXACT_LEVEL.get(name, "EXACT")]))
                        for name in TF_FIELDS)
_NO_ADJUSTMENTS: tuple[float, ...] = (0.0,) * len(FIELDS)
_POSTCODE, _ADDRESS = _I["postcode"], _I["address_line"]
_POSTCODES_DIFFER = frozenset({PostcodeLevel.OTHER, PostcodeLevel.AREA, PostcodeLevel.DISTRICT,
                               PostcodeLevel.SECTOR})
_POSTCODES_NEAR = frozenset({PostcodeLevel.FULL, PostcodeLevel.TYPO, PostcodeLevel.SECTOR})
_ADDRESSES_NEAR = frozenset({AddressLevel.EXACT, AddressLevel.HIGH, AddressLevel.MEDIUM})
_DOB_NEAR = frozenset({DobLevel.ONE_DIGIT, DobLevel.YEAR_OFF, DobLevel.SAME_YEAR_MONTH})
_FAMILY_SAME = frozenset({FamilyNameLevel.EXACT, FamilyNameLevel.PART,
                          FamilyNameLevel.FORMER, FamilyNameLevel.JW_HIGH})


_GIVEN_AGREE = frozenset({GivenNameLevel.EXACT, GivenNameLevel.NICKNAME, GivenNameLevel.SWAPPED,
                          GivenNameLevel.MISSING})


def given_names_agree(a: IdentityFields, b: IdentityFields, vector: Sequence[int]) -> bool:
    """Not clearly different: equal, nickname-equivalent, swapped with the family name,
    missing on one side, or close by measured similarity
    (:func:`~protocol.matching.names.given_names_close`: "maddison" / "madisno") without
    a clash of sex (Eliza and Elijah are twins' names)."""
    if vector[_I["given_name"]] in _GIVEN_AGREE:
        return True
    if vector[_I["sex"]] == SexLevel.DISAGREE:
        return False
    return given_names_close(a.given_name, b.given_name)


def _too_little_identity(vector: Sequence[int]) -> bool:
    """A record lacking its given name (a twin could not be told apart: twins share the
    surname, the date of birth and the home), or two of given name, family name and
    date of birth, links only by an agreeing NHS number or UPN: never on a surname and
    an address alone (docs/design.md §5: precision before recall)."""
    missing = [vector[_I[f]] == -1 for f in ("given_name", "family_name", "dob")]
    return missing[0] or sum(missing) >= 2


def _same_home(vector: Sequence[int]) -> bool:
    return (vector[_I["postcode"]] == PostcodeLevel.FULL
            or vector[_I["address_line"]] in (AddressLevel.EXACT, AddressLevel.HIGH))


def _near_home(vector: Sequence[int]) -> bool:
    """The same home, or one a slip away: a postcode one edit apart or of the same
    sector, or an address that is close (MEDIUM: its words reordered, a line dropped)."""
    return (vector[_I["postcode"]] in _POSTCODES_NEAR
            or vector[_I["address_line"]] in _ADDRESSES_NEAR)


# A link on names and date of birth alone (nothing else recorded on both records: no
# postcode, address, sex or identifier) needs the model 99.9 % sure, the precision the
# index promises (docs/design.md §10), not the link threshold's 98.5 % (6 bits). With a
# location or an identifier compared, a link stands on two independent witnesses whose
# u's are national guesses that err towards precision; with names and a date alone,
# every namesake born the same day is one the weights must rule out by themselves
# (two Gerda Muellers born the same day in RLdata10000, whose names are a tenth Mueller
# or Schmidt).
NAMES_ALONE_LINK = 10.0
OTHER_THAN_NAMES = ("sex", "postcode", "address_line", "nhs_number", "upn")


def names_alone(vector: Sequence[int]) -> bool:
    """Nothing but names and the date of birth compared."""
    return all(vector[_I[f]] == -1 for f in OTHER_THAN_NAMES)


def hard_rules(a: IdentityFields, b: IdentityFields, vector: Sequence[int],
               total: float | None = None) -> tuple[str | None, str | None]:
    """(veto, cap): the safeguarding rules that override the weights. With the pair's
    ``total``, also the cap on a link made on names and date of birth alone."""
    veto, cap = _rules(a, b, vector)
    if (veto is None and cap is None and total is not None and total < NAMES_ALONE_LINK
            and names_alone(vector)):
        return None, "names_and_dob_alone"
    return veto, cap


def _rules(a: IdentityFields, b: IdentityFields,
           vector: Sequence[int]) -> tuple[str | None, str | None]:
    nhs, upn = vector[_I["nhs_number"]], vector[_I["upn"]]
    if nhs == IdentifierLevel.DISAGREE:
        return "nhs_number_differs", None
    if upn == IdentifierLevel.DISAGREE:
        return "upn_differs", None
    identifier_agrees = IdentifierLevel.AGREE in (nhs, upn)
    if not identifier_agrees and _too_little_identity(vector):
        # without a given name a twin is the other twin;
        # without two of given name, family name and date of birth the pair shows too
        # little: a person decides
        return None, "identity_incomplete"
    same_home = _same_home(vector)
    if given_names_agree(a, b, vector):
        dob = vector[_I["dob"]]
        if identifier_agrees:
            return None, None
        if dob == DobLevel.OTHER:
            return None, "dob_differs"
        if dob in _DOB_NEAR and not same_home:
            # Two Emily Robertsons of one town born six days apart: a date a digit or a
            # year out is a slip only when something else ties the records together.
            return None, "dob_differs_elsewhere"
        if vector[_I["given_name"]] == GivenNameLevel.SWAPPED and not _near_home(vector):
            # "Peter Frank" and "Frank Peters" born the same day (RLdata10000): swapped
            # names are a clerk's slip only when the home, too, says it is one child
            # (the same one, or one a slip away: a clerk who swaps names slips on the
            # address too).
            return None, "names_swapped_elsewhere"
        return None, None
    if (vector[_I["dob"]] in (DobLevel.EXACT, DobLevel.SWAPPED)
            and vector[_I["family_name"]] in _FAMILY_SAME and same_home):
        return (None, "twins") if identifier_agrees else ("twins", None)
    return (None, None) if identifier_agrees else (None, "given_names_differ")
