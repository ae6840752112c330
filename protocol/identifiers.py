"""Checks and normalisation for the identifiers in a minimal record.

NHS numbers (modulus-11) and UPNs (check letter) are checked with python-stdnum (one
already in its normal form by the same arithmetic, without stdnum's cleaning);
postcodes are normalised to the Royal Mail "outward inward" form; sex codes follow
the NHS data dictionary (0 not known, 1 male, 2 female, 9 not specified).
Every check raises :class:`protocol.errors.ValidationError` naming the field.
"""

from __future__ import annotations

import functools
import operator
import re
from datetime import date

from stdnum import exceptions as stdnum_exceptions
from stdnum.gb import nhs, upn

from protocol.errors import ValidationError

SEX_NOT_KNOWN, SEX_MALE, SEX_FEMALE, SEX_NOT_SPECIFIED = 0, 1, 2, 9
_SEX_CODES = {
    "0": SEX_NOT_KNOWN,
    "1": SEX_MALE,
    "2": SEX_FEMALE,
    "9": SEX_NOT_SPECIFIED,
    "U": SEX_NOT_KNOWN,
    "M": SEX_MALE,
    "F": SEX_FEMALE,
}

# Outward code: area (1-2 letters) + district (digit, digit+digit or digit+letter);
# inward code: sector digit + unit (2 letters). Covers every current UK format.
_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9][A-Z]{2})$")
# date.fromisoformat also takes ISO week dates ("2015-W01-1"); the wire form is YYYY-MM-DD only.
_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


# A valid number remembered (an invalid one raises, which is never cached): a node's
# ingest checks each child's NHS number and UPN in the feed, its blocking keys, its
# comparisons and its projection, and python-stdnum's cleaning costs more than the rest
# of a row's check. Bounded: one council's children fit.
_VALID_CACHE = 400_000


@functools.lru_cache(maxsize=_VALID_CACHE)
def _valid_nhs_number(value: str) -> str:
    return str(nhs.validate(value))


@functools.lru_cache(maxsize=_VALID_CACHE)
def _valid_upn(value: str) -> str:
    return str(upn.validate(value))


# A number already in its normal form (nearly every one a system sends) needs none of
# python-stdnum's character-by-character cleaning: its check is the same arithmetic
# done with C-level builtins (tests/protocol/test_record_codec.py compares the two on
# generated numbers). Anything else goes to stdnum.
_NHS_WEIGHTS = tuple(range(10, 0, -1))  # stdnum's weights: 1 for the last digit, 10 the first
# The UPN alphabet of the DfE specification: the check letter is its index mod 23.
_UPN_ALPHABET = "ABCDEFGHJKLMNPQRTUVWXYZ0123456789"
_UPN_INDEX = {c: i for i, c in enumerate(_UPN_ALPHABET)}
_UPN_LA: dict[str, bool] = {}


def canonical_nhs_number_valid(value: str) -> bool | None:
    """Whether an NHS number in its normal form (ten ASCII digits) passes the modulus-11
    check; None for any other form, which only python-stdnum's cleaning can judge."""
    if len(value) == 10 and value.isascii() and value.isdigit():
        return sum(map(operator.mul, map(int, value), _NHS_WEIGHTS)) % 11 == 0
    return None


def _upn_la_known(la: str) -> bool:
    """Whether stdnum knows the local authority number: asked once per number, of a
    UPN built to pass every other check."""
    known = _UPN_LA.get(la)
    if known is None:
        body = la + "000000000"
        known = _UPN_LA[la] = upn.is_valid(upn.calc_check_digit(body) + body)
    return known


def canonical_upn_valid(value: str) -> bool | None:
    """Whether a UPN in its normal form (13 characters: a check letter, 11 digits and
    a last character of the DfE alphabet) passes stdnum's checks (the check letter and
    a known local authority number); None for any other form."""
    if (len(value) == 13 and value.isascii() and value[1:12].isdigit()
            and value[0] in _UPN_INDEX and value[12] in _UPN_INDEX):
        check = sum(map(operator.mul, map(_UPN_INDEX.__getitem__, value[1:]), range(2, 14)))
        return _UPN_ALPHABET[check % 23] == value[0] and _upn_la_known(value[1:4])
    return None


def normalise_nhs_number(value: str, field: str = "nhs_number") -> str:
    """Return the 10-digit NHS number, or raise if the modulus-11 check fails."""
    try:
        return _valid_nhs_number(value)
    except stdnum_exceptions.ValidationError as exc:
        raise ValidationError(field, f"not a valid NHS number ({exc})") from exc


def normalise_upn(value: str, field: str = "upn") -> str:
    """Return the 13-character UPN in upper case, or raise if the check letter fails."""
    try:
        return _valid_upn(value)
    except stdnum_exceptions.ValidationError as exc:
        raise ValidationError(field, f"not a valid UPN ({exc})") from exc


def normalise_postcode(value: str, field: str = "postcode") -> str:
    """Return ``"BN1 1AA"`` form for any spacing or case, or raise."""
    compact = re.sub(r"\s+", "", value)
    # ASCII first: str.upper() turns a few other letters into ASCII ("ﬀ" → "FF").
    match = _POSTCODE.fullmatch(compact.upper()) if compact.isascii() else None
    if not match:
        raise ValidationError(field, f"not a UK postcode: {value!r}")
    return f"{match.group(1)} {match.group(2)}"


def postcode_district(postcode: str) -> str:
    """Outward code of a normalised postcode: ``"BN1 1AA"`` → ``"BN1"``."""
    return postcode.split(" ", 1)[0]


def postcode_sector(postcode: str) -> str:
    """Outward code plus sector digit: ``"BN1 1AA"`` → ``"BN1 1"``."""
    outward, inward = postcode.split(" ", 1)
    return f"{outward} {inward[0]}"


def parse_sex(value: str | int, field: str = "sex") -> int:
    """Accept ``0/1/2/9`` or ``U/M/F`` and return the numeric code."""
    key = str(value).strip().upper()
    if key not in _SEX_CODES:
        raise ValidationError(field, f"must be 0/1/2/9 or U/M/F, got {value!r}")
    return _SEX_CODES[key]


def parse_date(value: str, field: str) -> date:
    """Parse an ISO ``YYYY-MM-DD`` date, or raise naming the field."""
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise ValidationError(field, f"must be an ISO date YYYY-MM-DD, got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ValidationError(field, f"not a real date: {value!r}") from exc
