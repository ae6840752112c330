"""Field comparisons: how closely two records agree on each field, as a *level*.

Each field has a small :class:`~enum.IntEnum` of levels, as Splink has comparison
levels: higher is closer agreement, ``MISSING`` (-1) means one side has no value
and carries no evidence either way. :data:`COMPARISONS` lists them in the order of
a comparison vector (:func:`compare_all`), which is what scoring and the EM
estimator work on.

    >>> from datetime import date
    >>> a = IdentityFields("Alfie", "Smith-Jones", date(2015, 3, 4), postcode="BN1 1AA")
    >>> b = IdentityFields("Alfred", "Jones", date(2015, 4, 3), postcode="BN1 1AB")
    >>> compare_given_name(a, b).name, compare_family_name(a, b).name
    ('NICKNAME', 'PART')
    >>> compare_dob(a, b).name, compare_postcode(a, b).name
    ('SWAPPED', 'SECTOR')
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from enum import IntEnum
from typing import TYPE_CHECKING

from stdnum.gb import nhs, upn

from protocol.identifiers import canonical_nhs_number_valid, canonical_upn_valid
from protocol.matching.location import (
    AddressLevel,
    PostcodeLevel,
    compare_address,
    compare_postcode,
    normalise_address,
)
from protocol.matching.names import (
    comparable_name,
    given_names_equivalent,
    jaro_winkler,
    name_parts,
    phonetic,
    same_spelling,
    typo_close,
)

if TYPE_CHECKING:
    from protocol.records import ChildRecord

__all__ = ["COMPARISONS", "FIELDS", "LEVELS", "AddressLevel", "Comparison", "DobLevel",
           "FamilyNameLevel", "GivenNameLevel", "IdentifierLevel", "IdentityFields",
           "OtherGivenNamesLevel", "PostcodeLevel", "SexLevel", "compare_address",
           "compare_all", "compare_dob", "compare_family_name", "compare_given_name",
           "compare_nhs_number", "compare_postcode", "compare_sex", "compare_swapped",
           "compare_upn", "names_swapped", "normalise_address", "valid_nhs_number", "valid_upn"]

# Per-value caches hold one entry per distinct NHS number, UPN, address or postcode: a
# hub of a few hundred thousand records must fit, or every comparison recomputes them.
VALUE_CACHE = 1 << 19
SEX_MISSING = frozenset({0, 9})  # "not known" and "not specified" say nothing
# Name particles that never count as a part of a double-barrelled surname on their own.
_PARTICLES = frozenset({"van", "von", "der", "den", "de", "la", "le", "du", "da", "di", "del",
                        "al", "el", "bin", "ben", "ap", "st", "mc", "mac", "o"})


@dataclass(frozen=True, slots=True)
class IdentityFields:
    """The identity fields matching compares, as one record holds them."""

    given_name: str | None
    family_name: str | None
    dob: date | None
    sex: int = 0
    other_given_names: str | None = None
    former_family_names: tuple[str, ...] = ()
    postcode: str | None = None
    address_line: str | None = None
    nhs_number: str | None = None
    upn: str | None = None

    @classmethod
    def from_record(cls, record: ChildRecord) -> IdentityFields:
        return cls(
            given_name=record.given_name, family_name=record.family_name, dob=record.dob,
            sex=record.sex, other_given_names=record.other_given_names,
            former_family_names=tuple(record.former_family_names),
            postcode=record.postcode, address_line=record.address_line,
            nhs_number=record.nhs_number, upn=record.upn,
        )


class GivenNameLevel(IntEnum):
    MISSING = -1
    OTHER = 0
    PHONETIC = 1
    JW_85 = 2
    JW_92 = 3
    SWAPPED = 4   # given and family names swapped between the records
    NICKNAME = 5
    EXACT = 6


class OtherGivenNamesLevel(IntEnum):
    MISSING = -1
    OTHER = 0
    PARTIAL = 1   # one lists a name the other does not, or a typo (JW >= 0.92)
    EXACT = 2


class FamilyNameLevel(IntEnum):
    MISSING = -1
    OTHER = 0
    PHONETIC = 1
    JW_HIGH = 2
    SWAPPED = 3  # given and family names swapped between the records
    FORMER = 4   # one record's surname is a former surname of the other
    PART = 5     # one part of a hyphenated / double-barrelled surname is the other
    EXACT = 6


class DobLevel(IntEnum):
    MISSING = -1
    OTHER = 0
    SAME_YEAR_MONTH = 1
    ONE_DIGIT = 2  # one digit of YYYYMMDD wrong, or two neighbouring digits swapped
    YEAR_OFF = 3   # the same day and month, the year one out
    SWAPPED = 4    # day and month swapped
    EXACT = 5


class SexLevel(IntEnum):
    MISSING = -1
    DISAGREE = 0
    AGREE = 1


class IdentifierLevel(IntEnum):
    """NHS number and UPN: valid numbers agree or disagree; an invalid one is missing."""

    MISSING = -1
    DISAGREE = 0
    AGREE = 1


JW_HIGH, JW_MEDIUM = 0.92, 0.85


# -- names ---------------------------------------------------------------------------


def names_swapped(a: IdentityFields, b: IdentityFields) -> bool:
    """One record's given name is the other's family name and the other way round
    ("Olivia Grubb" / "Grubb Olivia"), each exactly or one typo apart."""
    ga, fa = comparable_name(a.given_name), comparable_name(a.family_name)
    gb, fb = comparable_name(b.given_name), comparable_name(b.family_name)
    if not (ga and fa and gb and fb) or ga == gb or ga == fa:
        return False
    return _crosswise(ga, fb) and _crosswise(fa, gb)


def _crosswise(x: str, y: str) -> bool:
    return x == y or typo_close(x, y)


def compare_given_name(a: IdentityFields, b: IdentityFields) -> GivenNameLevel:
    x, y = comparable_name(a.given_name), comparable_name(b.given_name)
    if not x or not y:
        return GivenNameLevel.MISSING
    level = _given_level(x, y) if x <= y else _given_level(y, x)
    if level < GivenNameLevel.EXACT and same_spelling(a.given_name, b.given_name):
        return GivenNameLevel.EXACT
    if level < GivenNameLevel.NICKNAME and forenames_agree(
            x, comparable_name(a.other_given_names), y, comparable_name(b.other_given_names)):
        return GivenNameLevel.NICKNAME
    if level < GivenNameLevel.JW_92 and names_swapped(a, b):
        return GivenNameLevel.SWAPPED
    return level


@functools.lru_cache(maxsize=1 << 16)
def forenames_agree(given_a: str, other_a: str, given_b: str, other_b: str) -> bool:
    """One system wrote a middle name into the given name, the other into the other
    given names: ``"Mary Jane"`` / ``"Mary"`` with ``"Jane"``. The shorter given name is
    the first part(s) of the longer one, exactly, and the longer one's further parts are
    among the other record's other given names. Without them (``"Mary Jane"`` /
    ``"Mary"``, other given names blank) it is no such pair: twins may share a first
    name (Muhammad Ali and Muhammad Umar), and a feed without other given names writes
    both as Muhammad. Comparable names (:func:`~protocol.matching.names.comparable_name`)."""
    long, short = given_a.split(), given_b.split()
    others = other_b
    if len(long) < len(short):
        long, short, others = short, long, other_a
    if len(long) == len(short) or not short or long[:len(short)] != short:
        return False
    return bool(others) and set(long[len(short):]) <= set(others.split())


@functools.lru_cache(maxsize=1 << 17)
def _given_level(x: str, y: str) -> GivenNameLevel:
    if x == y:
        return GivenNameLevel.EXACT
    if given_names_equivalent(x, y):
        return GivenNameLevel.NICKNAME
    jw = jaro_winkler(x, y)
    if jw >= JW_HIGH:
        return GivenNameLevel.JW_92
    if jw >= JW_MEDIUM:
        return GivenNameLevel.JW_85
    if phonetic(x) == phonetic(y):
        return GivenNameLevel.PHONETIC
    return GivenNameLevel.OTHER


def compare_other_given_names(a: IdentityFields, b: IdentityFields) -> OtherGivenNamesLevel:
    x, y = comparable_name(a.other_given_names), comparable_name(b.other_given_names)
    if not x or not y:
        return OtherGivenNamesLevel.MISSING
    return _other_given_level(x, y) if x <= y else _other_given_level(y, x)


@functools.lru_cache(maxsize=1 << 16)
def _other_given_level(x: str, y: str) -> OtherGivenNamesLevel:
    if x == y:
        return OtherGivenNamesLevel.EXACT
    px, py = set(x.split()), set(y.split())
    if px <= py or py <= px or jaro_winkler(x, y) >= JW_HIGH:
        return OtherGivenNamesLevel.PARTIAL
    return OtherGivenNamesLevel.OTHER


def compare_family_name(a: IdentityFields, b: IdentityFields) -> FamilyNameLevel:
    x, y = comparable_name(a.family_name), comparable_name(b.family_name)
    if not x or not y:
        return FamilyNameLevel.MISSING
    if x == y or same_spelling(a.family_name, b.family_name):
        # "O Brien" / "OBrien", "Müller" / "Mueller": the same name, written otherwise
        return FamilyNameLevel.EXACT
    level = _family_level(x, y) if x <= y else _family_level(y, x)
    if level >= FamilyNameLevel.PART:
        return level
    if level < FamilyNameLevel.JW_HIGH and names_swapped(a, b):
        return FamilyNameLevel.SWAPPED
    if a.former_family_names or b.former_family_names:
        if _is_former(x, b.former_family_names) or _is_former(y, a.former_family_names):
            return FamilyNameLevel.FORMER
    return level


def _is_former(name: str, formers: tuple[str, ...]) -> bool:
    return any(comparable_name(f) == name for f in formers)


@functools.lru_cache(maxsize=1 << 17)
def _family_level(x: str, y: str) -> FamilyNameLevel:
    px, py = _significant_parts(x), _significant_parts(y)
    multi_part = len(name_parts(x)) > 1 or len(name_parts(y)) > 1
    if multi_part and px and py and (px <= py or py <= px):
        return FamilyNameLevel.PART
    # One slip apart counts as very similar even where Jaro-Winkler, which forgives
    # little in a short name, says otherwise ("Frew" / "Freq" 0.88, "Goode" / "Gooee" 0.91)
    if jaro_winkler(x, y) >= JW_HIGH or typo_close(x, y):
        return FamilyNameLevel.JW_HIGH
    if phonetic(x) == phonetic(y):
        return FamilyNameLevel.PHONETIC
    return FamilyNameLevel.OTHER


def _significant_parts(name: str) -> frozenset[str]:
    return frozenset(p for p in name_parts(name) if p not in _PARTICLES and len(p) > 1)


# -- date of birth, sex --------------------------------------------------------------


def compare_dob(a: IdentityFields, b: IdentityFields) -> DobLevel:
    x, y = a.dob, b.dob
    if x is None or y is None:
        return DobLevel.MISSING
    if x == y:
        return DobLevel.EXACT
    if x.year == y.year and x.day == y.month and x.month == y.day:
        return DobLevel.SWAPPED
    if x.month == y.month and x.day == y.day and abs(x.year - y.year) == 1:
        return DobLevel.YEAR_OFF
    if _one_digit_apart(x, y):
        return DobLevel.ONE_DIGIT
    if x.year == y.year and x.month == y.month:
        return DobLevel.SAME_YEAR_MONTH
    return DobLevel.OTHER


def _one_digit_apart(x: date, y: date) -> bool:
    """YYYYMMDD with exactly one digit wrong, or two neighbouring digits swapped
    (keying slips: 2015-03-14 / 2015-08-14, 2015-03-12 / 2015-03-21)."""
    p, q = f"{x:%Y%m%d}", f"{y:%Y%m%d}"
    differ = [i for i, (cp, cq) in enumerate(zip(p, q, strict=True)) if cp != cq]
    if len(differ) == 1:
        return True
    return (len(differ) == 2 and differ[1] == differ[0] + 1
            and p[differ[0]] == q[differ[1]] and p[differ[1]] == q[differ[0]])


def compare_sex(a: IdentityFields, b: IdentityFields) -> SexLevel:
    if a.sex in SEX_MISSING or b.sex in SEX_MISSING:
        return SexLevel.MISSING
    return SexLevel.AGREE if a.sex == b.sex else SexLevel.DISAGREE


# -- strong identifiers --------------------------------------------------------------


def valid_nhs_number(value: str) -> str | None:
    """The compact NHS number if its modulus-11 check passes, else None. A number that
    is already 10 plain digits (nearly all) skips python-stdnum's character-by-character
    clean-up and the cache: its modulus-11 check alone decides, as ``nhs.is_valid``
    would."""
    valid = canonical_nhs_number_valid(value)
    if valid is None:
        return _cleaned_nhs_number(value)
    return value if valid else None


@functools.lru_cache(maxsize=VALUE_CACHE)
def _cleaned_nhs_number(value: str) -> str | None:
    compact = nhs.compact(value)
    return compact if nhs.is_valid(compact) else None


@functools.lru_cache(maxsize=VALUE_CACHE)
def valid_upn(value: str) -> str | None:
    """The compact, upper-case UPN if its check letter passes, else None. One already
    in its normal form (nearly all) is checked without python-stdnum's clean-up (about
    15 µs a number, against 4); cached, since a council's UPNs are asked again and again
    (blocking keys, every chunk's comparisons)."""
    valid = canonical_upn_valid(value)
    if valid is None:
        compact = upn.compact(value)
        return compact if upn.is_valid(compact) else None
    return value if valid else None


def _compare_identifier(x: str | None, y: str | None,
                        valid: Callable[[str], str | None]) -> IdentifierLevel:
    if not x or not y:
        return IdentifierLevel.MISSING
    if x == y:
        return IdentifierLevel.AGREE if valid(x) else IdentifierLevel.MISSING
    vx, vy = valid(x), valid(y)
    if vx is None or vy is None:
        return IdentifierLevel.MISSING
    return IdentifierLevel.AGREE if vx == vy else IdentifierLevel.DISAGREE


def compare_nhs_number(a: IdentityFields, b: IdentityFields) -> IdentifierLevel:
    return _compare_identifier(a.nhs_number, b.nhs_number, valid_nhs_number)


def compare_upn(a: IdentityFields, b: IdentityFields) -> IdentifierLevel:
    return _compare_identifier(a.upn, b.upn, valid_upn)


# -- all fields ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Comparison:
    """One field's comparison: its name, its levels and the function that picks one."""

    field: str
    levels: type[IntEnum]
    compare: Callable[[IdentityFields, IdentityFields], IntEnum]


COMPARISONS: tuple[Comparison, ...] = (
    Comparison("given_name", GivenNameLevel, compare_given_name),
    Comparison("other_given_names", OtherGivenNamesLevel, compare_other_given_names),
    Comparison("family_name", FamilyNameLevel, compare_family_name),
    Comparison("dob", DobLevel, compare_dob),
    Comparison("sex", SexLevel, compare_sex),
    Comparison("postcode", PostcodeLevel, compare_postcode),
    Comparison("address_line", AddressLevel, compare_address),
    Comparison("nhs_number", IdentifierLevel, compare_nhs_number),
    Comparison("upn", IdentifierLevel, compare_upn),
)
FIELDS: tuple[str, ...] = tuple(c.field for c in COMPARISONS)
LEVELS: dict[str, type[IntEnum]] = {c.field: c.levels for c in COMPARISONS}


def compare_all(a: IdentityFields, b: IdentityFields) -> tuple[int, ...]:
    """The comparison vector: one level per field, in :data:`FIELDS` order."""
    return (
        compare_given_name(a, b), compare_other_given_names(a, b), compare_family_name(a, b),
        compare_dob(a, b),
        compare_sex(a, b), compare_postcode(a, b), compare_address(a, b),
        compare_nhs_number(a, b), compare_upn(a, b),
    )


def compare_swapped(a: IdentityFields, b: IdentityFields,
                    vector: tuple[int, ...]) -> tuple[int, ...]:
    """``compare_all(a, b)`` where ``vector`` is ``compare_all`` of ``a`` with its given
    and family names the other way round: only those two are compared again (a search
    reads a query both ways, and the other fields, the address most of all, cost more)."""
    return (compare_given_name(a, b), vector[1], compare_family_name(a, b), *vector[3:])
