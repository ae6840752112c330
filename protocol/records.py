"""The minimal identity record a council publishes, and its involvement pointers.

Only what docs/design.md §3 allows to leave a council is representable here: names,
date of birth, sex, address, NHS number, UPN, parent/carer contact, shielded
flag, date of death, and involvements (pointers to services and professionals).
There is deliberately no field for case notes or assessments.

Wire form (msgpack map, keys as below, absent and nil mean the same)::

    >>> rec = ChildRecord(local_id="ESX-000001", given_name="Amelia",
    ...     family_name="Okafor", dob=date(2015, 3, 14), sex=2)
    >>> ChildRecord.from_wire(rec.to_wire()) == rec
    True

Given name, family name and date of birth may each be absent: a council's source
row often lacks one, and the child must still be found by what it has. A record
needs at least one identifying field (a name, a date of birth, an NHS number or a
UPN)::

    >>> ChildRecord.from_wire({"local_id": "ESX-2", "nhs_number": "9434765919"}).dob is None
    True
    >>> ChildRecord.from_wire({"local_id": "ESX-3", "sex": 1})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    protocol.errors.ValidationError: record: has no identifying field (a name, ...)
"""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeGuard

from protocol import hidden_text, identifiers
from protocol.errors import ErrorCode, ValidationError

SENSITIVE_SERVICE_TYPES = frozenset({"sexual_health", "mental_health", "substance_misuse"})

_LOCAL_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_SLUG = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_PHONE = re.compile(r"^[0-9 +()-]{6,20}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,}$")
# Dates of birth before this are not children's records; it guards typos like 1015.
_EARLIEST_DOB = date(1990, 1, 1)

_CONTROL = re.compile(r"[\x00-\x1f]")
_NAME_MAX = 100
_TEXT_MAX = 200


def is_local_id(value: object) -> TypeGuard[str]:
    """True for a council's local id: 1 to 64 letters, digits and ``. _ : -``."""
    return isinstance(value, str) and _LOCAL_ID.fullmatch(value) is not None


def _text(data: dict[str, Any], key: str, path: str, *, required: bool = False,
          max_len: int = _TEXT_MAX) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise ValidationError(f"{path}{key}", "is required", code=ErrorCode.INVALID_FIELD)
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{path}{key}", f"must be a string, got {type(value).__name__}")
    value = value.strip()
    if not value and required:
        raise ValidationError(f"{path}{key}", "is required")
    if len(value) > max_len:
        raise ValidationError(f"{path}{key}", f"longer than {max_len} characters")
    if _CONTROL.search(value):
        raise ValidationError(f"{path}{key}", "contains control characters")
    return value or None


def check_text(value: str, field: str, *, name: bool = False) -> str | None:
    """One text field by the record's rule: trimmed, blank → None, at most 100
    characters for a name (200 otherwise), no control characters. For callers that
    check field by field, e.g. a council's feed parser at 250,000 rows."""
    return _text({field: value}, field, "", max_len=_NAME_MAX if name else _TEXT_MAX)


def _bool(data: dict[str, Any], key: str, path: str) -> bool:
    value = data.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ValidationError(f"{path}{key}", "must be true or false")
    return value


def _date(data: dict[str, Any], key: str, path: str, *, required: bool = False) -> date | None:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise ValidationError(f"{path}{key}", "is required")
        return None
    return identifiers.parse_date(value, f"{path}{key}")


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    """Omit empty values: the record stays minimal and absent == nil on the wire."""
    if value is None or value is False or value == () or value == "":
        return
    if isinstance(value, date):
        value = value.isoformat()
    out[key] = value


@dataclass(frozen=True, slots=True)
class Involvement:
    """A pointer to a service and (optionally) a professional working with the child.

    >>> Involvement(service_type="school", organisation_code="114580",
    ...     organisation_name="Hove Park School").to_wire()["service_type"]
    'school'
    """

    service_type: str
    organisation_code: str | None = None
    organisation_name: str | None = None
    organisation_phone: str | None = None
    professional_name: str | None = None
    professional_role: str | None = None
    professional_phone: str | None = None
    professional_email: str | None = None
    start_date: date | None = None
    end_date: date | None = None
    lead_professional: bool = False
    caf_done: bool = False
    sensitive: bool = False
    consent: bool = False

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__slots__:
            _put(out, name, getattr(self, name))
        return out

    @classmethod
    def from_wire(cls, data: Any, path: str = "involvements[].") -> Involvement:
        if not isinstance(data, dict):
            raise ValidationError(path.rstrip("."), "must be a map")
        unknown = set(data) - set(cls.__slots__)
        if unknown:
            # Same rule as the record: an unknown key could carry case notes.
            raise ValidationError(f"{path}{sorted(map(str, unknown))[0]}",
                                  "is not a field of an involvement")
        service_type = _text(data, "service_type", path, required=True, max_len=40)
        assert service_type is not None
        if not _SLUG.match(service_type):
            raise ValidationError(f"{path}service_type", "must be a lower-case slug")
        sensitive = _bool(data, "sensitive", path) or service_type in SENSITIVE_SERVICE_TYPES
        consent = _bool(data, "consent", path)
        if sensitive and not consent:
            # Sensitive services leave a council only with recorded consent (docs/design.md §3).
            raise ValidationError(f"{path}consent", "sensitive service published without consent")
        inv = cls(
            service_type=service_type,
            organisation_code=_text(data, "organisation_code", path, max_len=20),
            organisation_name=_text(data, "organisation_name", path),
            organisation_phone=_phone(data, "organisation_phone", path),
            professional_name=_text(data, "professional_name", path, max_len=_NAME_MAX),
            professional_role=_text(data, "professional_role", path, max_len=_NAME_MAX),
            professional_phone=_phone(data, "professional_phone", path),
            professional_email=_email(data, "professional_email", path),
            start_date=_date(data, "start_date", path),
            end_date=_date(data, "end_date", path),
            lead_professional=_bool(data, "lead_professional", path),
            caf_done=_bool(data, "caf_done", path),
            sensitive=sensitive,
            consent=consent,
        )
        if inv.start_date and inv.end_date and inv.end_date < inv.start_date:
            raise ValidationError(f"{path}end_date", "is before start_date")
        return inv


POINTER_FIELDS = tuple(n for n in Involvement.__slots__ if n != "consent")


def pointer_json(pointer: Any) -> dict[str, Any]:
    """An involvement as a practitioner's JSON: every field but ``consent`` (a sensitive
    one is shown only where it may be), dates as ISO text, absent ones as null. Takes an
    :class:`Involvement` or any row with the same attributes (a council's own index)."""
    out = {}
    for name in POINTER_FIELDS:
        value = getattr(pointer, name)
        out[name] = value.isoformat() if isinstance(value, date) else value
    return out


def check_phone(data: dict[str, Any], key: str, path: str = "") -> str | None:
    """``data[key]`` as a record's phone number (None if absent), or ValidationError."""
    return _phone(data, key, path)


def _phone(data: dict[str, Any], key: str, path: str) -> str | None:
    value = _text(data, key, path, max_len=20)
    if value is not None and not _PHONE.match(value):
        raise ValidationError(f"{path}{key}", f"not a phone number: {value!r}")
    return value


def _email(data: dict[str, Any], key: str, path: str) -> str | None:
    value = _text(data, key, path, max_len=254)
    if value is not None and not _EMAIL.match(value):
        raise ValidationError(f"{path}{key}", f"not an email address: {value!r}")
    return value


# Many children share an identical pointer (the same school from the same September,
# the same GP): validating each distinct one once is a large share of the hub's work
# per batch. The cache is bounded and holds only pointers that passed validation.
_INVOLVEMENT_CACHE: dict[tuple[Any, ...], Involvement] = {}
_INVOLVEMENT_CACHE_MAX = 50_000


def _involvement_cached(data: Any, index: int) -> Involvement:
    try:
        # Types are part of the key: True == 1 in Python, but only true is valid here.
        key = ((tuple(data.items()), tuple(map(type, data.values())))
               if isinstance(data, dict) else None)
        cached = _INVOLVEMENT_CACHE.get(key) if key is not None else None
    except TypeError:  # an unhashable value: let validation explain what is wrong
        key, cached = None, None
    if cached is not None:
        return cached
    inv = Involvement.from_wire(data, f"involvements[{index}].")
    if key is not None:
        if len(_INVOLVEMENT_CACHE) >= _INVOLVEMENT_CACHE_MAX:
            _INVOLVEMENT_CACHE.clear()
        _INVOLVEMENT_CACHE[key] = inv
    return inv


@dataclass(frozen=True, slots=True)
class ChildRecord:
    """The minimal identity record of one child at one council (docs/design.md §3)."""

    local_id: str
    # Any of these three may be absent (None): see the module docstring.
    given_name: str | None = None
    family_name: str | None = None
    dob: date | None = None
    sex: int = identifiers.SEX_NOT_KNOWN
    other_given_names: str | None = None
    former_family_names: tuple[str, ...] = ()
    address_line: str | None = None
    postcode: str | None = None
    nhs_number: str | None = None
    upn: str | None = None
    parent_carer_name: str | None = None
    parent_carer_phone: str | None = None
    shielded: bool = False
    date_of_death: date | None = None
    involvements: tuple[Involvement, ...] = field(default=())

    def to_wire(self) -> dict[str, Any]:
        return record_wire(_RECORD_VALUES(self)[:-1],
                           [inv.to_wire() for inv in self.involvements])

    @classmethod
    def from_wire(cls, data: Any) -> ChildRecord:
        """Validate a decoded wire map; raise ValidationError naming the first bad field."""
        if not isinstance(data, dict):
            raise ValidationError("record", "must be a map")
        unknown = set(data) - set(cls.__slots__)
        if unknown:
            # An unknown field could be data that must never leave a council (case notes).
            raise ValidationError(sorted(map(str, unknown))[0], "is not a field of the record")
        local_id = _text(data, "local_id", "", required=True, max_len=64)
        assert local_id is not None
        if not _LOCAL_ID.match(local_id):
            raise ValidationError("local_id", "may hold only letters, digits and . _ : -")
        given = _text(data, "given_name", "", max_len=_NAME_MAX)
        family = _text(data, "family_name", "", max_len=_NAME_MAX)
        dob = _date(data, "dob", "")
        if dob is not None and (dob < _EARLIEST_DOB or dob > date.today()):
            raise ValidationError("dob", f"out of range for a child: {dob.isoformat()}")
        sex = data.get("sex")
        if sex is None:
            sex = identifiers.SEX_NOT_KNOWN  # absent and nil mean the same
        if isinstance(sex, bool) or not isinstance(sex, int | str):
            raise ValidationError("sex", "must be 0/1/2/9")
        former = data.get("former_family_names") or []
        if not isinstance(former, list) or len(former) > 10:
            raise ValidationError("former_family_names", "must be a list of at most 10 names")
        former_names = []
        for i, name in enumerate(former):
            if not isinstance(name, str) or not name.strip() or len(name) > _NAME_MAX:
                raise ValidationError(f"former_family_names[{i}]", "must be a non-empty name")
            if _CONTROL.search(name):
                raise ValidationError(f"former_family_names[{i}]", "contains control characters")
            former_names.append(name.strip())
        raw_invs = data.get("involvements") or []
        if not isinstance(raw_invs, list) or len(raw_invs) > 200:
            raise ValidationError("involvements", "must be a list of at most 200 involvements")
        postcode = _text(data, "postcode", "", max_len=10)
        nhs_number = _text(data, "nhs_number", "", max_len=12)
        upn = _text(data, "upn", "", max_len=13)
        if not (given or family or dob or nhs_number or upn):
            # Nothing to find or link the child by: such a record could only ever be
            # matched on nothing (an address, a sex), which precision forbids.
            raise ValidationError("record", "has no identifying field (a name, a date of "
                                            "birth, an NHS number or a UPN)")
        dod = _date(data, "date_of_death", "")
        if dod is not None and dob is not None and dod < dob:
            raise ValidationError("date_of_death", "is before the date of birth")
        return cls(
            local_id=local_id,
            given_name=given,
            family_name=family,
            dob=dob,
            sex=identifiers.parse_sex(sex),
            other_given_names=_text(data, "other_given_names", "", max_len=_NAME_MAX),
            former_family_names=tuple(former_names),
            address_line=_text(data, "address_line", ""),
            postcode=identifiers.normalise_postcode(postcode) if postcode else None,
            nhs_number=identifiers.normalise_nhs_number(nhs_number) if nhs_number else None,
            upn=identifiers.normalise_upn(upn) if upn else None,
            parent_carer_name=_text(data, "parent_carer_name", "", max_len=_NAME_MAX),
            parent_carer_phone=_phone(data, "parent_carer_phone", ""),
            shielded=_bool(data, "shielded", ""),
            date_of_death=dod,
            involvements=tuple(
                _involvement_cached(inv, i) for i, inv in enumerate(raw_invs)
            ),
        )


# A record's fields but its involvements, in ChildRecord's order, read in one C call.
_RECORD_VALUES = operator.attrgetter(*ChildRecord.__slots__)
RECORD_FIELDS = ChildRecord.__slots__[:-1]


def record_wire(values: Sequence[Any], involvements: list[dict[str, Any]]) -> dict[str, Any]:
    """The wire map of the record whose fields are ``values`` (all but its involvements,
    in :data:`RECORD_FIELDS` order) and whose involvements' wire maps are these:
    ``ChildRecord(*values, tuple(invs)).to_wire()`` for involvements ``invs`` with
    those maps, without building the record. For a council's projection, which checks
    the map by :meth:`ChildRecord.from_wire` (the hub's own check) and would otherwise
    build each record twice."""
    out: dict[str, Any] = {}
    for name, value in zip(RECORD_FIELDS, values, strict=True):
        if name == "former_family_names":
            value = list(value) or None
        elif name == "sex":
            out["sex"] = value  # always present: 0 is a meaningful code
            continue
        _put(out, name, value)
    _put(out, "involvements", involvements or None)
    return out


def check_display(record: ChildRecord) -> None:
    """Refuse a record whose text holds a character that changes how text displays
    unseen (``protocol.hidden_text``: a name that reads as another). Asked where a
    record enters, not by :meth:`ChildRecord.from_wire`, which reads stored records too.

    >>> check_display(ChildRecord(local_id="A", family_name="Smith\u202ehtimS"))
    Traceback (most recent call last):
    ...
    protocol.errors.ValidationError: family_name: holds U+202E RIGHT-TO-LEFT OVERRIDE, \
a character that changes how text displays without being seen
    """
    texts = [getattr(record, name) or "" for name in _DISPLAYED]
    texts += record.former_family_names
    texts += [getattr(inv, name) or "" for inv in record.involvements for name in _POINTER_TEXTS]
    if hidden_text.hidden_character("".join(texts)) is None:
        return  # nearly every record: one test of all its text
    fields = [(name, getattr(record, name)) for name in _DISPLAYED]
    fields += [(f"former_family_names[{i}]", name)
               for i, name in enumerate(record.former_family_names)]
    fields += [(f"involvements[{i}].{name}", getattr(inv, name))
               for i, inv in enumerate(record.involvements) for name in _POINTER_TEXTS]
    for field_name, value in fields:
        if value is not None and (c := hidden_text.hidden_character(value)) is not None:
            raise ValidationError(field_name, f"holds {hidden_text.describe(c)}, a character "
                                              "that changes how text displays without being seen")


_DISPLAYED = ("given_name", "family_name", "other_given_names", "address_line",
              "parent_carer_name")
_POINTER_TEXTS = ("organisation_code", "organisation_name", "professional_name",
                  "professional_role", "professional_email")
