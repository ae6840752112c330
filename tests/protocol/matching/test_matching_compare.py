"""Every comparison level of every field (protocol.matching.compare)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given, settings

from protocol.matching.compare import (
    COMPARISONS,
    FIELDS,
    AddressLevel,
    DobLevel,
    FamilyNameLevel,
    GivenNameLevel,
    IdentifierLevel,
    IdentityFields,
    OtherGivenNamesLevel,
    PostcodeLevel,
    SexLevel,
    compare_address,
    compare_all,
    compare_dob,
    compare_family_name,
    compare_given_name,
    compare_nhs_number,
    compare_other_given_names,
    compare_postcode,
    compare_sex,
    compare_swapped,
    compare_upn,
)
from protocol.records import ChildRecord
from tests import strategies

BASE = IdentityFields(
    given_name="Amelia", family_name="Okafor", dob=date(2015, 3, 14), sex=2,
    other_given_names="Rose", postcode="BN1 1AA", address_line="12 Church Road, Hove",
    nhs_number="9434765919", upn="H801200001001",
)


def pair(**changes: object) -> tuple[IdentityFields, IdentityFields]:
    return BASE, replace(BASE, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize("a, b, level", [
    ("Amelia", "Amelia", GivenNameLevel.EXACT),
    ("Amelia", "AMELIA", GivenNameLevel.EXACT),
    ("Zoë", "Zoe", GivenNameLevel.EXACT),
    ("Alfie", "Alfred", GivenNameLevel.NICKNAME),
    ("Izzy", "Isabella", GivenNameLevel.NICKNAME),
    ("Bill", "William", GivenNameLevel.NICKNAME),
    ("Peggy", "Margaret", GivenNameLevel.NICKNAME),
    ("Harrison", "Harisson", GivenNameLevel.JW_92),
    ("Elijah", "Elijha", GivenNameLevel.JW_92),
    ("Freya", "Freda", GivenNameLevel.JW_85),
    ("Stephen", "Steven", GivenNameLevel.JW_85),
    ("Mohammed", "Muhammad", GivenNameLevel.NICKNAME),  # one name, two transliterations
    ("Catherine", "Kathryn", GivenNameLevel.PHONETIC),
    ("Amelia", "Oscar", GivenNameLevel.OTHER),
    ("Amelia", None, GivenNameLevel.MISSING),
    ("", "Amelia", GivenNameLevel.MISSING),
])
def test_given_name_levels(a: str | None, b: str | None, level: GivenNameLevel) -> None:
    x, y = replace(BASE, given_name=a), replace(BASE, given_name=b)
    assert compare_given_name(x, y) is level
    assert compare_given_name(y, x) is level


@pytest.mark.parametrize("a, b, level", [
    ("Rose", "Rose", OtherGivenNamesLevel.EXACT),
    ("Rose Teresa", "Rose", OtherGivenNamesLevel.PARTIAL),
    ("Rose", "Roes", OtherGivenNamesLevel.PARTIAL),
    ("Rose", "Grace", OtherGivenNamesLevel.OTHER),
    ("Rose", None, OtherGivenNamesLevel.MISSING),
])
def test_other_given_names_levels(a: str | None, b: str | None,
                                  level: OtherGivenNamesLevel) -> None:
    assert compare_other_given_names(*pair(other_given_names=a)[1:],
                                     replace(BASE, other_given_names=b)) is level


@pytest.mark.parametrize("a, b, formers, level", [
    ("Okafor", "Okafor", (), FamilyNameLevel.EXACT),
    ("O'Brien", "OBRIEN", (), FamilyNameLevel.EXACT),
    ("Smith-Jones", "Smith Jones", (), FamilyNameLevel.EXACT),
    ("Smith-Jones", "Jones", (), FamilyNameLevel.PART),
    ("Smith-Jones", "Smith", (), FamilyNameLevel.PART),
    ("Okonkwo-Reilly", "Reilly", (), FamilyNameLevel.PART),
    ("Smith-Jones", "Smith-Brown", (), FamilyNameLevel.OTHER),  # one shared part is not one name
    ("van der Berg", "Berg", (), FamilyNameLevel.PART),
    ("Taylor", "Okafor", ("Taylor",), FamilyNameLevel.FORMER),
    ("Williams", "Wiliams", (), FamilyNameLevel.JW_HIGH),
    ("Smith", "Smyth", (), FamilyNameLevel.JW_HIGH),  # one slip (Jaro-Winkler 0.89)
    ("Phillips", "Fillips", (), FamilyNameLevel.PHONETIC),
    ("Philips", "Fillips", (), FamilyNameLevel.PHONETIC),
    ("Okafor", "Jones", (), FamilyNameLevel.OTHER),
    ("Okafor", None, (), FamilyNameLevel.MISSING),
])
def test_family_name_levels(a: str, b: str | None, formers: tuple[str, ...],
                            level: FamilyNameLevel) -> None:
    x = replace(BASE, family_name=a, former_family_names=())
    y = replace(BASE, family_name=b, former_family_names=formers)
    assert compare_family_name(x, y) is level
    assert compare_family_name(y, x) is level


def test_former_surname_matches_either_way_and_ignores_case() -> None:
    moved = replace(BASE, family_name="Taylor", former_family_names=("OKAFOR",))
    assert compare_family_name(BASE, moved) is FamilyNameLevel.FORMER
    assert compare_family_name(moved, BASE) is FamilyNameLevel.FORMER


@pytest.mark.parametrize("a, b, level", [
    (date(2015, 3, 14), date(2015, 3, 14), DobLevel.EXACT),
    (date(2015, 3, 4), date(2015, 4, 3), DobLevel.SWAPPED),
    (date(2015, 3, 14), date(2015, 3, 15), DobLevel.ONE_DIGIT),
    (date(2015, 3, 14), date(2016, 3, 14), DobLevel.YEAR_OFF),   # also one digit
    (date(2019, 3, 14), date(2020, 3, 14), DobLevel.YEAR_OFF),   # two digits, one year
    (date(2015, 3, 12), date(2015, 3, 21), DobLevel.ONE_DIGIT),  # digits transposed
    (date(2015, 3, 14), date(2015, 8, 14), DobLevel.ONE_DIGIT),
    (date(2015, 3, 14), date(2015, 3, 27), DobLevel.SAME_YEAR_MONTH),
    (date(2015, 3, 14), date(2017, 9, 1), DobLevel.OTHER),
    (date(2015, 3, 14), date(2025, 3, 14), DobLevel.ONE_DIGIT),
    (date(2015, 3, 14), date(2013, 3, 15), DobLevel.OTHER),    # two digits
    (date(2015, 3, 14), None, DobLevel.MISSING),
])
def test_dob_levels(a: date, b: date | None, level: DobLevel) -> None:
    x, y = replace(BASE, dob=a), replace(BASE, dob=b)
    assert compare_dob(x, y) is level
    assert compare_dob(y, x) is level


@pytest.mark.parametrize("a, b, level", [
    (1, 1, SexLevel.AGREE), (2, 2, SexLevel.AGREE), (1, 2, SexLevel.DISAGREE),
    (0, 1, SexLevel.MISSING), (9, 2, SexLevel.MISSING), (0, 0, SexLevel.MISSING),
    (9, 9, SexLevel.MISSING),
])
def test_sex_levels(a: int, b: int, level: SexLevel) -> None:
    assert compare_sex(replace(BASE, sex=a), replace(BASE, sex=b)) is level


@pytest.mark.parametrize("a, b, level", [
    ("BN1 1AA", "BN1 1AA", PostcodeLevel.FULL),
    ("BN1 1AA", "bn11aa", PostcodeLevel.FULL),
    ("BN1 1AA", "BN1 1XY", PostcodeLevel.SECTOR),
    ("BN1 1AA", "BN1 5XY", PostcodeLevel.DISTRICT),
    ("BN1 1AA", "BN21 3XY", PostcodeLevel.AREA),
    ("BN1 1AA", "TF1 1XY", PostcodeLevel.OTHER),
    ("BN1 1AA", "B1 1XY", PostcodeLevel.OTHER),
    # one edit apart, not the same sector: a slip of the key
    ("BN1 1AA", "BN1 5AA", PostcodeLevel.TYPO),    # a digit changed
    ("BN1 1AA", "BM1 1AA", PostcodeLevel.TYPO),    # a letter changed
    ("BN1 1AA", "BN21 1AA", PostcodeLevel.TYPO),   # a digit added
    ("BN1 1AA", "B1 1AA", PostcodeLevel.TYPO),     # a letter dropped
    ("BN12 1AA", "BN21 1AA", PostcodeLevel.TYPO),  # two digits swapped
    ("BN12 1AA", "BN21 1AB", PostcodeLevel.AREA),  # two edits
    ("BN1 1AA", None, PostcodeLevel.MISSING),
    ("BN1 1AA", "??", PostcodeLevel.MISSING),
])
def test_postcode_levels(a: str, b: str | None, level: PostcodeLevel) -> None:
    x, y = replace(BASE, postcode=a), replace(BASE, postcode=b)
    assert compare_postcode(x, y) is level
    assert compare_postcode(y, x) is level


@pytest.mark.parametrize("a, b, level", [
    ("12 Church Road, Hove", "12 Church Road, Hove", AddressLevel.EXACT),
    ("12 Church Road, Hove", "12 church rd hove", AddressLevel.EXACT),
    ("12 Church Road, Hove", "12 Church Road", AddressLevel.HIGH),
    ("Flat 3, 12 Church Road, Hove", "12 Church Road, Hove", AddressLevel.HIGH),
    ("12 Church Road, Hove", "12 Chruch Road, Hove, East Sussex", AddressLevel.MEDIUM),
    ("12 Slight Place, Oatlands Court", "12 slight place oatland scourt", AddressLevel.HIGH),
    # the house number apart from the street: a neighbour, or a slip of one digit
    ("12 Church Road, Hove", "14 Church Road, Hove", AddressLevel.STREET),
    ("12 Church Road, Hove", "14 Church Rd", AddressLevel.STREET),
    ("12a Church Road, Hove", "12b Church Road, Hove", AddressLevel.STREET),
    ("12 Church Road, Hove", "14 Mill Lane, Hove", AddressLevel.OTHER),
    ("12 Church Road, Hove", "12 Mill Lane, Lewes", AddressLevel.OTHER),
    ("12 Church Road, Hove", "Rose Cottage, Mill Lane, Lewes", AddressLevel.OTHER),
    ("12 Church Road, Hove", None, AddressLevel.MISSING),
])
def test_address_levels(a: str, b: str | None, level: AddressLevel) -> None:
    x, y = replace(BASE, address_line=a), replace(BASE, address_line=b)
    assert compare_address(x, y) is level
    assert compare_address(y, x) is level


@pytest.mark.parametrize("a, b, level", [
    ("9434765919", "9434765919", IdentifierLevel.AGREE),
    ("9434765919", "943 476 5919", IdentifierLevel.AGREE),
    ("9434765919", "4010232137", IdentifierLevel.DISAGREE),
    ("9434765919", "9434765918", IdentifierLevel.MISSING),  # invalid: says nothing
    ("9434765918", "9434765918", IdentifierLevel.MISSING),
    ("9434765919", None, IdentifierLevel.MISSING),
])
def test_nhs_number_levels(a: str, b: str | None, level: IdentifierLevel) -> None:
    assert compare_nhs_number(replace(BASE, nhs_number=a), replace(BASE, nhs_number=b)) is level


@pytest.mark.parametrize("a, b, level", [
    ("H801200001001", "H801200001001", IdentifierLevel.AGREE),
    ("H801200001001", "h801200001001", IdentifierLevel.AGREE),
    ("H801200001001", "X801200001002", IdentifierLevel.DISAGREE),
    ("H801200001001", "B801200001001", IdentifierLevel.MISSING),  # bad check letter
    ("H801200001001", None, IdentifierLevel.MISSING),
])
def test_upn_levels(a: str, b: str | None, level: IdentifierLevel) -> None:
    assert compare_upn(replace(BASE, upn=a), replace(BASE, upn=b)) is level


def test_comparison_vector_follows_fields_order() -> None:
    other = replace(BASE, given_name="Millie", dob=date(2015, 3, 15), sex=0)
    vector = compare_all(BASE, other)
    assert len(vector) == len(FIELDS) == len(COMPARISONS)
    assert dict(zip(FIELDS, vector, strict=True)) == {
        "given_name": GivenNameLevel.NICKNAME, "other_given_names": OtherGivenNamesLevel.EXACT,
        "family_name": FamilyNameLevel.EXACT, "dob": DobLevel.ONE_DIGIT,
        "sex": SexLevel.MISSING, "postcode": PostcodeLevel.FULL,
        "address_line": AddressLevel.EXACT, "nhs_number": IdentifierLevel.AGREE,
        "upn": IdentifierLevel.AGREE,
    }
    assert [c.compare(BASE, other) for c in COMPARISONS] == list(vector)


def test_from_record() -> None:
    record = ChildRecord(local_id="ESX-1", given_name="Amelia", family_name="Okafor",
                         dob=date(2015, 3, 14), sex=2, former_family_names=("Taylor",),
                         postcode="BN1 1AA", nhs_number="9434765919")
    fields = IdentityFields.from_record(record)
    assert fields == IdentityFields("Amelia", "Okafor", date(2015, 3, 14), 2,
                                    former_family_names=("Taylor",), postcode="BN1 1AA",
                                    nhs_number="9434765919")


@settings(max_examples=200, deadline=None)
@given(strategies.identity_pairs())
def test_a_reading_with_names_swapped_is_compared_as_a_whole_would_be(
        pair: tuple[IdentityFields, IdentityFields]) -> None:
    """A search reads its names both ways; the second reading compares only the names
    again, and must give what comparing every field would."""
    a, b = pair
    swapped = replace(a, given_name=a.family_name, family_name=a.given_name)
    assert compare_swapped(swapped, b, compare_all(a, b)) == compare_all(swapped, b)


@settings(max_examples=60, deadline=None)
@given(strategies.child_records(), strategies.child_records())
def test_comparisons_are_symmetric_and_total(a: ChildRecord, b: ChildRecord) -> None:
    x, y = IdentityFields.from_record(a), IdentityFields.from_record(b)
    assert compare_all(x, y) == compare_all(y, x)
    for comparison, level in zip(COMPARISONS, compare_all(x, x), strict=True):
        assert level == max(comparison.levels) or level == -1  # a record agrees with itself
