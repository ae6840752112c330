"""What one cell of a feed may hold: the checks ``local_node.feeds`` applies to each
value (names, dates, identifiers, booleans, pointers), each raising ``CellProblem``
(a column and a reason) or ``protocol.errors.ValidationError`` for the row's report.

The rules are the record's own where the record has one (``protocol.records``,
``protocol.identifiers``): a value the node loads is one the hub accepts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from stdnum.gb import nhs

from protocol import identifiers
from protocol.errors import ValidationError
from protocol.hidden_text import describe, hidden_character, remove
from protocol.records import ChildRecord, Involvement, check_phone, check_text

_BOOLEANS = {"": False, "true": True, "false": False, "yes": True, "no": False,
             "y": True, "n": False, "1": True, "0": False}
_SEX_WORDS = {"male": identifiers.SEX_MALE, "female": identifiers.SEX_FEMALE,
              "not known": identifiers.SEX_NOT_KNOWN, "unknown": identifiers.SEX_NOT_KNOWN,
              "not specified": identifiers.SEX_NOT_SPECIFIED}
_DATE_TIME = re.compile(r"(?P<date>\d{4}-\d{2}-\d{2})[T ]"
                        r"(?P<time>\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)(?:Z|[+-]\d{2}:?\d{2})?")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# A record with every field valid, varied one field at a time to check that field alone.
_TEMPLATE = {"local_id": "feed-row", "given_name": "x", "family_name": "x", "dob": "2000-01-01"}


class CellProblem(Exception):
    """A value refused: which column, and why."""

    def __init__(self, column: str, reason: str) -> None:
        self.column = column
        self.reason = reason


def without_hidden(values: dict[str, str]) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """A row's cells without the characters that change how text displays unseen
    (``protocol.hidden_text``), and what was taken from which column: (column, the
    character as a message names it). The row loads: refused, its child would be missing
    from the index for a zero-width space pasted into a name; loaded without them, the
    name shows as its source system holds it, and no name can read as another. Nearly
    every row is judged by one test of its text and returned as it is."""
    if hidden_character("".join(values.values())) is None:
        return values, []
    removed = [(column, describe(hidden)) for column, value in values.items()
               if (hidden := hidden_character(value)) is not None]
    return {column: remove(value).strip() for column, value in values.items()}, removed


def sex_check(value: str, column: str) -> int:
    """A code (0/1/2/9, U/M/F) or the word a source system writes for it ("Female")."""
    word = _SEX_WORDS.get(" ".join(value.lower().split()))
    return word if word is not None else identifiers.parse_sex(value, column)


def name_check(value: str, column: str) -> str | None:
    return check_text(value, column, name=True)


def dob_check(value: str, column: str) -> date | None:
    # The date-of-birth rules (ISO, a real date, a child's range) are the record's:
    # check through it with a template record; each distinct date is checked once.
    return ChildRecord.from_wire({**_TEMPLATE, "dob": _date_only(value, column)}).dob


def date_check(value: str, column: str) -> date:
    return identifiers.parse_date(_date_only(value, column), column)


def _date_only(value: str, column: str) -> str:
    """The date of a database's date-and-time at midnight ("2015-03-14 00:00:00",
    "2015-03-14T00:00:00.000Z"): a date column exported as a timestamp. Any other time
    is refused, not cut off: a date of birth stored as 23:00 the day before (midnight
    in summer time, written in UTC) would load a day early. Midnight with any offset is
    the date as its writer wrote it."""
    if len(value) <= 10:
        return value
    stamp = _DATE_TIME.fullmatch(value)
    if stamp is None:
        return value  # refused by the date rules, as it reads
    if stamp["time"].strip("0:."):
        raise ValidationError(column, f"a date and time, not a date, and the time is not "
                                      f"midnight: {value!r} (give the date alone)")
    return stamp["date"]


def address(value: str) -> str:
    """An address written on several lines (a quoted field with line breaks, as address
    blocks are exported) is one line, its parts joined by commas."""
    if "\n" not in value and "\r" not in value:
        return value
    return ", ".join(part.strip() for part in _LINE_BREAK.split(value) if part.strip())


def carer_phone_check(value: str, column: str) -> str | None:
    # The record's phone rule, as the hub applies it to what the node publishes: that
    # rule alone, not the whole record's checks around it (every carer's phone differs).
    return check_phone({column: value}, column)


def identifier(column: str, value: str, check: Any) -> str | None:
    if not value:
        return None
    if column == "nhs_number" and len(value) == 10 and value.isascii() and value.isdigit() \
            and nhs.checksum(value) == 0:
        # Nearly every NHS number in a feed is 10 plain digits already: for those the
        # modulus-11 checksum decides exactly as validate() would, without its
        # separator clean-up (half the cost). Anything else takes the full path.
        return value
    try:
        return str(check(value, column))
    except ValidationError as exc:
        raise CellProblem(column, exc.reason) from None


def pointer_check(feed: str, key: tuple[str, ...],
                   columns: Mapping[str, str]) -> Involvement | CellProblem:
    service_type, code, name, phone, prof_name, role, prof_phone, email = key
    if feed == "education" and code and not (
            len(code) == 6 and code.isascii() and code.isdigit()):
        return CellProblem("school_urn", f"not a 6-digit school URN: {code!r}")
    if feed == "health" and code and not (
            len(code) == 6 and code.isascii() and code[0].isalpha() and code[1:].isdigit()):
        return CellProblem("gp_ods_code", f"not a GP practice ODS code (like A81001): {code!r}")
    wire = {"service_type": service_type, "organisation_code": code,
            "organisation_name": name, "organisation_phone": phone,
            "professional_name": prof_name, "professional_role": role,
            "professional_phone": prof_phone, "professional_email": email,
            # Consent is checked by the publisher, not here: the node keeps sensitive
            # involvements without consent and never sends them.
            "consent": True}
    try:
        return Involvement.from_wire(wire, "")
    except ValidationError as exc:
        return CellProblem(columns.get(exc.field, exc.field), exc.reason)


def boolean(column: str, value: str) -> bool:
    try:
        return _BOOLEANS[value.lower()]
    except KeyError:
        raise CellProblem(column,
                          f"must be true/false, yes/no, Y/N or 1/0, got {value!r}") from None
