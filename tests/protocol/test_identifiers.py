"""NHS numbers, UPNs, postcodes, sex codes and dates (protocol.identifiers)."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import identifiers
from protocol.errors import ErrorCode, ValidationError
from tests import strategies

# --- NHS number ---------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("9434765919", "9434765919"),
    ("943 476 5919", "9434765919"),
    ("943-476-5919", "9434765919"),
    (" 9434765919 ", "9434765919"),
    ("4010232137", "4010232137"),
    ("0000000000", "0000000000"),  # passes modulus 11; the hub does not special-case it
])
def test_valid_nhs_numbers(value: str, expected: str) -> None:
    assert identifiers.normalise_nhs_number(value) == expected


@pytest.mark.parametrize("value", [
    "9434765918",    # wrong check digit
    "943476591",     # nine digits
    "94347659190",   # eleven digits
    "943476591X",
    "",
    "１２３４５６７８９０",  # full-width digits are not digits here
    "9434765910",
])
def test_invalid_nhs_numbers(value: str) -> None:
    with pytest.raises(ValidationError) as err:
        identifiers.normalise_nhs_number(value)
    assert err.value.field == "nhs_number"
    assert err.value.code == ErrorCode.INVALID_FIELD
    assert err.value.detail == {"field": "nhs_number"}


def test_nhs_check_digit_ten_is_never_valid() -> None:
    # 123456789: 1*10+2*9+…+9*2 = 210; 210 % 11 = 1; 11-1 = 10, so no check digit exists.
    assert strategies.nhs_check_digit("123456789") is None
    for last in "0123456789":
        with pytest.raises(ValidationError):
            identifiers.normalise_nhs_number("123456789" + last)


def test_error_names_the_callers_field() -> None:
    with pytest.raises(ValidationError) as err:
        identifiers.normalise_nhs_number("1", field="mother.nhs_number")
    assert err.value.field == "mother.nhs_number"
    assert err.value.message.startswith("mother.nhs_number: ")


@settings(max_examples=200)
@given(strategies.nhs_numbers())
def test_generated_nhs_numbers_are_valid(value: str) -> None:
    assert identifiers.normalise_nhs_number(value) == value
    spaced = f"{value[:3]} {value[3:6]} {value[6:]}"
    assert identifiers.normalise_nhs_number(spaced) == value


@settings(max_examples=200)
@given(strategies.invalid_nhs_numbers())
def test_any_wrong_check_digit_is_refused(value: str) -> None:
    with pytest.raises(ValidationError):
        identifiers.normalise_nhs_number(value)


# --- UPN ----------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("V801200115001", "V801200115001"),
    ("v801200115001", "V801200115001"),
    ("V801 2001 15001", "V801200115001"),
])
def test_valid_upns(value: str, expected: str) -> None:
    assert identifiers.normalise_upn(value) == expected


@pytest.mark.parametrize("value", [
    "A801200115001",   # wrong check letter
    "V80120011500",    # twelve characters
    "V8012001150011",  # fourteen
    "V999200115001",   # 999 is not a local authority number
    "V8012001150I1",   # a letter inside the digits
    "",
])
def test_invalid_upns(value: str) -> None:
    with pytest.raises(ValidationError) as err:
        identifiers.normalise_upn(value)
    assert err.value.field == "upn"


@settings(max_examples=200)
@given(strategies.upns(), st.sampled_from(strategies._UPN_ALPHABET))
def test_generated_upns_are_valid_and_the_check_letter_matters(value: str, other: str) -> None:
    assert identifiers.normalise_upn(value) == value
    assert identifiers.normalise_upn(value.lower()) == value
    if other != value[0] and other.isalpha():
        with pytest.raises(ValidationError):
            identifiers.normalise_upn(other + value[1:])


# --- postcode -----------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("BN1 1AA", "BN1 1AA"),
    ("bn11aa", "BN1 1AA"),
    ("  bn1   1aa ", "BN1 1AA"),
    ("M1 1AE", "M1 1AE"),          # A9 9AA
    ("B33 8TH", "B33 8TH"),        # A99 9AA
    ("W1A 0AX", "W1A 0AX"),        # A9A 9AA
    ("CR2 6XH", "CR2 6XH"),        # AA9 9AA
    ("DN55 1PT", "DN55 1PT"),      # AA99 9AA
    ("ec1a1bb", "EC1A 1BB"),       # AA9A 9AA
    ("EC1A\u00a01BB", "EC1A 1BB"),  # a no-break space is whitespace too
])
def test_postcodes_normalise(value: str, expected: str) -> None:
    assert identifiers.normalise_postcode(value) == expected


@pytest.mark.parametrize("value", [
    "BN1", "1AA", "BN1 1A", "BN1 AAA", "BNN1 1AA", "B 1AA", "BN1 1AA X", "",
    "ﬀ1 1AA",       # "ﬀ".upper() == "FF": non-ASCII letters are refused, not folded
    "BN1 1AA\n1",
])
def test_invalid_postcodes(value: str) -> None:
    with pytest.raises(ValidationError) as err:
        identifiers.normalise_postcode(value)
    assert err.value.field == "postcode"


@settings(max_examples=200)
@given(strategies.messy_postcodes())
def test_any_case_and_spacing_normalises(pair: tuple[str, str]) -> None:
    typed, clean = pair
    assert identifiers.normalise_postcode(typed) == clean
    assert identifiers.normalise_postcode(clean) == clean


def test_postcode_district_and_sector() -> None:
    assert identifiers.postcode_district("BN1 1AA") == "BN1"
    assert identifiers.postcode_sector("BN1 1AA") == "BN1 1"
    assert identifiers.postcode_sector("EC1A 1BB") == "EC1A 1"


# --- sex ----------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    (0, 0), (1, 1), (2, 2), (9, 9), ("0", 0), ("9", 9),
    ("U", 0), ("M", 1), ("F", 2), ("m", 1), ("f", 2), (" F ", 2),
])
def test_sex_codes(value: str | int, expected: int) -> None:
    assert identifiers.parse_sex(value) == expected


@pytest.mark.parametrize("value", [3, -1, 10, "X", "male", "", "I"])
def test_invalid_sex_codes(value: str | int) -> None:
    with pytest.raises(ValidationError) as err:
        identifiers.parse_sex(value)
    assert err.value.field == "sex"


# --- dates --------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("2015-03-14", date(2015, 3, 14)),
    ("2016-02-29", date(2016, 2, 29)),
])
def test_iso_dates(value: str, expected: date) -> None:
    assert identifiers.parse_date(value, "dob") == expected


@pytest.mark.parametrize("value", [
    "2015-02-29",   # not a leap year
    "2015-13-01",
    "2015-3-14",
    "14/03/2015",
    "20150314",
    "2015-W11-6",   # an ISO week date: date.fromisoformat takes it, the wire does not
    "2015-03-14T00:00:00",
    "２０１５-03-14",
    "2015-03-14\n",
    20150314,
    None,
])
def test_invalid_dates_name_the_field(value: object) -> None:
    with pytest.raises(ValidationError) as err:
        identifiers.parse_date(value, "date_of_death")  # type: ignore[arg-type]
    assert err.value.field == "date_of_death"
