"""Checks and normalisation for the identifiers in a minimal record.

NHS numbers (modulus-11) and UPNs (check letter) are checked with python-stdnum;
postcodes are normalised to the Royal Mail "outward inward" form; sex codes follow
the NHS data dictionary (0 not known, 1 male, 2 female, 9 not specified).
Every check raises :class:`protocol.errors.ValidationError` naming the field.
"""

from __future__ import annotations

import functools
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
