"""The practitioner's search form, the same at the hub and at every node: what was typed
(:class:`SearchForm`), read into the fields the search takes, or into errors in plain
English, each naming the field it belongs to (GOV.UK's error summary links to it).

A pure reading: no I/O, so it is tested on plain data; the handlers then search.

    >>> form = SearchForm.from_post({"given_name": "Amelia", "dob-day": "19/08/2015",
    ...                              "purpose": "s47"})
    >>> fields, errors = form.read()
    >>> fields["dob"], fields["purpose"], errors
    ('2015-08-19', 'Child protection enquiry (section 47)', [])
    >>> SearchForm.from_post({"purpose": "s47"}).read()[1][0].text == WHO_MISSING
    True
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from typing import Any

from aiohttp import web

from protocol import hidden_text, identifiers
from protocol.errors import ValidationError
from protocol.search import SearchQuery
from server_common import pages
from server_common.pages import FieldError
from server_common.web import read_form

# Common lawful purposes (the radio buttons), and "other" with its own words. The label
# is what the audit log records as the purpose.
PURPOSES = (
    ("s47", "Child protection enquiry (section 47)"),
    ("s17", "Child in need assessment (section 17)"),
    ("early_help", "Early help assessment or support"),
    ("safeguarding", "Safeguarding concern being looked into"),
    ("education", "Education: attendance or a child missing education"),
    ("health", "Health: coordinating a child's care"),
)
OTHER = "other"
_PURPOSE_LABELS = dict(PURPOSES)
_TEXT_MAX = 100

_LABELS = {"given_name": "Given name", "family_name": "Family name",
           "postcode": "Postcode", "nhs_number": "NHS number", "upn": "UPN"}
_PLAIN = {
    "postcode": "Enter a real postcode, like BN1 1AA",
    "nhs_number": "Enter a real NHS number: 10 digits, like 943 476 5919",
    "upn": "Enter a real UPN: a letter then 12 digits, like A123456789012",
}
WHO_MISSING = ("Enter who you are looking for: an NHS number or UPN, or a date of birth "
               "with a name or postcode, or a given name with a postcode")
_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    start=1)}
_SEPARATORS = re.compile(r"[/.\-\s]+")
_PARTS = ("dob-day", "dob-month", "dob-year")


@dataclass(frozen=True, slots=True)
class SearchForm:
    """The form as typed (kept, to show it again and to carry the search back)."""

    given_name: str = ""
    family_name: str = ""
    dob_day: str = ""
    dob_month: str = ""
    dob_year: str = ""
    postcode: str = ""
    nhs_number: str = ""
    upn: str = ""
    purpose: str = ""
    purpose_other: str = ""
    errors: tuple[FieldError, ...] = field(default=(), compare=False)

    @classmethod
    def from_post(cls, posted: Mapping[str, object]) -> SearchForm:
        """From a posted form (``dob-day`` …) or an old query string (``dob=2015-08-19``,
        ``purpose=`` free text); anything not text counts as blank."""
        def get(name: str) -> str:
            # without hidden characters: the page writes the search back into its forms,
            # where it would show them as U+FFFD, and the way back would search for that
            value = posted.get(name, "")
            return hidden_text.remove(value[:1000]) if isinstance(value, str) else ""

        day, month, year = get("dob-day"), get("dob-month"), get("dob-year")
        if not (day or month or year) and get("dob"):
            day = get("dob")  # one box, as an old link sends it: read like a typed date
        day, month, year = split_typed_date(day, month, year)
        purpose, other = get("purpose"), get("purpose_other")
        if purpose and purpose not in _PURPOSE_LABELS and purpose != OTHER:
            purpose, other = OTHER, purpose  # free text, as the JSON API and old links
        elif not purpose and other.strip():
            purpose = OTHER  # the words typed, the radio not chosen: the words say it
        return cls(get("given_name"), get("family_name"), day, month, year,
                   get("postcode"), get("nhs_number"), get("upn"), purpose, other)

    def hidden(self) -> list[tuple[str, str]]:
        """(name, value) of every non-blank field, to carry the search in a form."""
        names = {"dob_day": "dob-day", "dob_month": "dob-month", "dob_year": "dob-year"}
        return [(names.get(f.name, f.name), getattr(self, f.name)) for f in fields(self)
                if f.name != "errors" and getattr(self, f.name)]

    @property
    def who_given(self) -> bool:
        return any((self.given_name.strip(), self.family_name.strip(), self.dob_day.strip(),
                    self.dob_month.strip(), self.dob_year.strip(), self.postcode.strip(),
                    self.nhs_number.strip(), self.upn.strip()))

    def read(self) -> tuple[dict[str, str], list[FieldError]]:
        """The search's fields (ISO date, the purpose's words) and the errors, in the
        order of the form. Fields with errors are left out of the fields."""
        errors: list[FieldError] = []
        out: dict[str, str] = {}
        for name in ("given_name", "family_name"):
            value = getattr(self, name).strip()
            if len(value) > _TEXT_MAX:
                errors.append(FieldError(name, f"{_LABELS[name]} must be {_TEXT_MAX} "
                                               "characters or fewer"))
            elif value:
                out[name] = value
        try:
            dob = read_date(self.dob_day, self.dob_month, self.dob_year)
        except DateError as exc:
            errors.append(FieldError(exc.field, exc.text))
        else:
            if dob is not None:
                out["dob"] = dob.isoformat()
        for name in ("postcode", "nhs_number", "upn"):
            value = getattr(self, name).strip()
            if not value:
                continue
            try:
                _NORMALISE[name](value, name)
            except ValidationError:
                errors.append(FieldError(name, _PLAIN[name]))
            else:
                out[name] = value
        if not errors:  # the fields read: are they enough to find a child? (told at once,
            try:        # with any mistake in the purpose, not one round after it)
                if not self.who_given:
                    raise ValidationError("query", WHO_MISSING)
                SearchQuery.parse(out)
            except ValidationError:
                errors.append(FieldError("given_name", WHO_MISSING))
        purpose = self.purpose_text()
        if purpose is None:
            errors.append(FieldError("purpose", "Select why you are looking"))
        elif not 3 <= len(purpose) <= 200:
            errors.append(FieldError("purpose_other", "Enter why you are looking, in 3 to "
                                                      "200 characters"))
        else:
            out["purpose"] = purpose
        return out, errors

    def purpose_text(self) -> str | None:
        """The purpose's words: a listed purpose's label, or the "other" text (None if
        none was chosen)."""
        if self.purpose in _PURPOSE_LABELS:
            return _PURPOSE_LABELS[self.purpose]
        if self.purpose == OTHER:
            return self.purpose_other.strip()
        return None


_NORMALISE = {"postcode": identifiers.normalise_postcode,
              "nhs_number": identifiers.normalise_nhs_number,
              "upn": identifiers.normalise_upn}


class DateError(ValueError):
    """A date of birth that cannot be read: ``field`` is the box the error summary links
    to (the first, when the date as a whole is wrong)."""

    def __init__(self, text: str, field: str = "dob-day") -> None:
        super().__init__(text)
        self.text, self.field = text, field


def form_errors(errors: list[FieldError]) -> dict[str, Any]:
    """The template's view of the errors: the message of each field, and the date of
    birth's boxes to mark."""
    by_field = {e.field: e.text for e in errors}
    parts: tuple[str, ...] = ()
    for error in errors:
        if error.field in _PARTS:
            single = error.text.startswith(("Date of birth must include a ", "Year must"))
            parts = (error.field,) if single else _PARTS
    return {"field_errors": by_field, "dob_parts": parts, "purposes": PURPOSES}


def split_typed_date(day: str, month: str, year: str) -> tuple[str, str, str]:
    """A whole date typed (or pasted) into the first box, the others empty: its three
    parts, day first ("19/08/2015", "19 Aug 2015", "2015-08-19"); else as given."""
    if day.strip() and not (month.strip() or year.strip()):
        parts = _SEPARATORS.split(day.strip())
        if len(parts) == 3:
            return (parts[2], parts[1], parts[0]) if len(parts[0]) == 4 else (
                parts[0], parts[1], parts[2])
    return day, month, year


def _digits(text: str) -> bool:
    """Only the digits 0-9 (``str.isdigit`` also takes "²", "٣")."""
    return text.isascii() and text.isdigit()


def read_date(day: str, month: str, year: str, today: date | None = None, *,
              label: str = "Date of birth", prefix: str = "dob",
              past: bool = True) -> date | None:
    """A date from its three boxes (a GOV.UK date input named ``prefix``); "19/08/2015",
    "19 Aug 2015" or "2015-08-19" typed into the first box (or pasted) works too. None
    when all are blank. Errors name the date by ``label`` and its box; a date of birth
    (``past``) must not be in the future.

    >>> read_date("19", "8", "2015"), read_date("19/08/2015", "", "")
    (datetime.date(2015, 8, 19), datetime.date(2015, 8, 19))
    >>> read_date("31", "2", "2015")
    Traceback (most recent call last):
    server_common.search_form.DateError: Date of birth must be a real date
    """
    day, month, year = (x.strip() for x in split_typed_date(day, month, year))
    if not (day or month or year):
        return None
    for value, name in ((day, "day"), (month, "month"), (year, "year")):
        if not value:
            raise DateError(f"{label} must include a {name}", f"{prefix}-{name}")
    # ASCII digits only: "²" is a digit to str.isdigit() that int() refuses
    month_number = int(month) if _digits(month) else _MONTHS.get(month[:3].lower())
    if not (_digits(day) and month_number and _digits(year)):
        raise DateError(f"{label} must be a real date", f"{prefix}-day")
    if len(year) != 4:
        raise DateError("Year must include 4 numbers", f"{prefix}-year")
    try:
        typed = date(int(year), month_number, int(day))
    except (ValueError, OverflowError) as exc:  # a day of 10**22 overflows
        raise DateError(f"{label} must be a real date", f"{prefix}-day") from exc
    if past and typed > (today or date.today()):
        raise DateError(f"{label} must be in the past", f"{prefix}-day")
    return typed


async def submitted(request: web.Request) -> Mapping[str, object]:
    """A page's form: the posted body, or the query string of a GET (an old bookmark).
    A body not in its stated encoding is refused 400 ``malformed_request``."""
    if request.method != "POST":
        return request.query
    return await read_form(request)


def purpose_question(request: web.Request, form: SearchForm, posted: Mapping[str, object],
                     search_path: str) -> web.Response | None:
    """Before a child's record opens: the question "why are you looking?" when the
    request states no purpose (a bookmarked address), again with the error when the
    answer will not do; None when the purpose is good."""
    purpose = form.purpose_text()
    if purpose is not None and 3 <= len(purpose) <= 200:
        return None
    errors: list[FieldError] = []
    if "purpose" in posted or "purpose_other" in posted:  # answered, but not well
        errors = [FieldError("purpose", "Select why you are looking") if purpose is None
                  else FieldError("purpose_other", "Enter why you are looking, in 3 to "
                                                   "200 characters")]
    return pages.render(request, "purpose.html", {
        "title": "Why are you looking?", "form": form, "search_path": search_path,
        "errors": errors, **form_errors(errors)}, status=400 if errors else 200)
