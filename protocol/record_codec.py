"""Decoding a record's exact bytes at intake speed: msgspec structs, compiled.

The hub decodes every published record, tens of thousands a second at a council's
initial load; field-by-field Python validation (``ChildRecord.from_wire`` over
``encoding.unpack``) cost more than everything else intake does. Here msgspec decodes
the bytes straight into typed structs in C: types, unknown fields (refused), lengths,
control characters and ISO dates are checked there. What remains in Python is what
only the record's rules know (normalised identifiers, the date-of-birth range,
consent for sensitive services), on already-typed values.

**The reference decoder stays the authority.** This fast path accepts a record only
when it can prove the reference would accept it with the same result; on any doubt
(a check fails, a form it does not handle, such as ``sex`` as ``"F"``) it hands the
bytes to ``ChildRecord.from_wire(encoding.unpack(...))``, which accepts them or raises
the stable error with its field and reason. Refusals therefore carry exactly the
messages they always did, and a well-formed record from another implementation that
packs differently is accepted, only more slowly.

Duplicate map keys: msgspec keeps the last value of a repeated key (as most decoders
do), which would let two readers of one signed record see different values. The fast
path accepts only bytes that are exactly the encoding of what it decoded (msgspec
turns the struct back into maps and msgpack packs them, both in C; the bytes must
be equal): a map with a repeated key,
or any other non-canonical form, cannot pass that, and goes to the reference decoder,
which refuses duplicate keys. Records packed as ``ChildRecord.to_wire`` packs them
(keys in field order, absent fields omitted) take the fast path::

    >>> from datetime import date
    >>> rec = ChildRecord(local_id="ESX-1", given_name="Amelia", dob=date(2015, 3, 14))
    >>> data = encoding.pack(rec.to_wire())
    >>> decode_record(data) == rec and fast_record(data) == rec
    True
    >>> fast_record(b"\\x82\\xa8local_id\\xa1A\\xa8local_id\\xa1B") is None  # a repeated key
    True
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, UnsetType

from protocol import encoding
from protocol.identifiers import (
    canonical_nhs_number_valid,
    canonical_upn_valid,
    normalise_nhs_number,
    normalise_postcode,
    normalise_upn,
)
from protocol.records import (
    _CONTROL,
    _EARLIEST_DOB,
    _EMAIL,
    _LOCAL_ID,
    _PHONE,
    _SLUG,
    SENSITIVE_SERVICE_TYPES,
    ChildRecord,
    Involvement,
)

# Each limit is on the untrimmed text: never looser than the reference's on the trimmed.
_Id = Annotated[str, Meta(max_length=64)]
_Name = Annotated[str, Meta(max_length=100)]
_Text = Annotated[str, Meta(max_length=200)]
_Slug = Annotated[str, Meta(max_length=40)]
_Code = Annotated[str, Meta(max_length=20)]  # also phone numbers
_Email = Annotated[str, Meta(max_length=254)]
_Postcode = Annotated[str, Meta(max_length=10)]
_Nhs = Annotated[str, Meta(max_length=12)]
_Upn = Annotated[str, Meta(max_length=13)]
_Flag = bool | UnsetType | UnsetType | None
_Date = date | UnsetType | None  # msgspec takes exactly YYYY-MM-DD, a real date


class _InvolvementWire(msgspec.Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """An involvement's wire map, fields in ``Involvement`` order (frozen: hashable, so
    the validated pointer can be looked up by it)."""

    service_type: _Slug
    organisation_code: _Code | UnsetType | None = UNSET
    organisation_name: _Text | UnsetType | None = UNSET
    organisation_phone: _Code | UnsetType | None = UNSET
    professional_name: _Name | UnsetType | None = UNSET
    professional_role: _Name | UnsetType | None = UNSET
    professional_phone: _Code | UnsetType | None = UNSET
    professional_email: _Email | UnsetType | None = UNSET
    start_date: _Date = UNSET
    end_date: _Date = UNSET
    lead_professional: _Flag = UNSET
    caf_done: _Flag = UNSET
    sensitive: _Flag = UNSET
    consent: _Flag = UNSET


class _RecordWire(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A record's wire map, fields in ``ChildRecord`` order; absent fields stay UNSET so
    that re-encoding gives back exactly the keys that were sent."""

    local_id: _Id
    given_name: _Name | UnsetType | None = UNSET
    family_name: _Name | UnsetType | None = UNSET
    dob: _Date = UNSET
    sex: int | str | UnsetType | None = UNSET
    other_given_names: _Name | UnsetType | None = UNSET
    former_family_names: Annotated[list[_Name], Meta(max_length=10)] | UnsetType | None = UNSET
    address_line: _Text | UnsetType | None = UNSET
    postcode: _Postcode | UnsetType | None = UNSET
    nhs_number: _Nhs | UnsetType | None = UNSET
    upn: _Upn | UnsetType | None = UNSET
    parent_carer_name: _Name | UnsetType | None = UNSET
    parent_carer_phone: _Code | UnsetType | None = UNSET
    shielded: _Flag = UNSET
    date_of_death: _Date = UNSET
    involvements: (Annotated[list[_InvolvementWire], Meta(max_length=200)]
                   | UnsetType | None) = UNSET


_DECODER = msgspec.msgpack.Decoder(_RecordWire)
_SEX_CODES = frozenset({0, 1, 2, 9})

# Many children share an identical pointer (the same school from the same September,
# the same GP): each distinct one is validated once. Bounded; holds only valid ones.
_INVOLVEMENTS: dict[_InvolvementWire, Involvement] = {}
_INVOLVEMENTS_MAX = 50_000


# NHS numbers and UPNs as the reference normalises them (python-stdnum's validate,
# which cleans the text character by character in Python first: half the cost of a
# record). A number already in its normal form is checked by
# protocol.identifiers' fast arithmetic; anything else goes to stdnum.


def _checked(value: str, valid: bool | None, reference: Callable[[str], str]) -> str:
    """The number if the fast check passed it; the reference's answer where the fast
    check cannot judge its form; a doubt where it failed (the reference decoder then
    names the error)."""
    if valid is None:
        return reference(value)
    if not valid:
        raise _Doubt
    return value


def _nhs_number(value: str) -> str:
    return _checked(value, canonical_nhs_number_valid(value), normalise_nhs_number)


def _upn(value: str) -> str:
    return _checked(value, canonical_upn_valid(value), normalise_upn)


class _Doubt(Exception):
    """The fast path cannot vouch for this record: the reference decoder decides."""


def _involvement(wire: _InvolvementWire) -> Involvement:
    found = _INVOLVEMENTS.get(wire)
    if found is None:
        found = _new_involvement(wire)
        if len(_INVOLVEMENTS) >= _INVOLVEMENTS_MAX:
            _INVOLVEMENTS.clear()
        _INVOLVEMENTS[wire] = found
    return found


def _new_involvement(w: _InvolvementWire) -> Involvement:
    """``Involvement.from_wire``'s rules on typed values; ``_Doubt`` where it would refuse."""
    service_type = w.service_type.strip()
    if not _SLUG.match(service_type):
        raise _Doubt
    texts: tuple[Any, ...] = (
        w.organisation_code, w.organisation_name, w.organisation_phone, w.professional_name,
        w.professional_role, w.professional_phone, w.professional_email)
    if _CONTROL.search("".join(filter(None, texts))):
        raise _Doubt
    sensitive = bool(w.sensitive) or service_type in SENSITIVE_SERVICE_TYPES
    consent = bool(w.consent)
    if sensitive and not consent:
        raise _Doubt
    organisation_phone = _trimmed(w.organisation_phone)
    professional_phone = _trimmed(w.professional_phone)
    email = _trimmed(w.professional_email)
    if ((organisation_phone is not None and not _PHONE.match(organisation_phone))
            or (professional_phone is not None and not _PHONE.match(professional_phone))
            or (email is not None and not _EMAIL.match(email))):
        raise _Doubt
    start, end = w.start_date or None, w.end_date or None
    if start is not None and end is not None and end < start:
        raise _Doubt
    return Involvement(
        service_type=service_type, organisation_code=_trimmed(w.organisation_code),
        organisation_name=_trimmed(w.organisation_name), organisation_phone=organisation_phone,
        professional_name=_trimmed(w.professional_name),
        professional_role=_trimmed(w.professional_role), professional_phone=professional_phone,
        professional_email=email, start_date=start, end_date=end,
        lead_professional=bool(w.lead_professional), caf_done=bool(w.caf_done),
        sensitive=sensitive, consent=consent)


def _trimmed(value: str | UnsetType | None) -> str | None:
    # UNSET and None are falsy: absent, nil, blank and all-space all mean absent.
    return (value.strip() or None) if value else None


def _record(w: _RecordWire, today: date) -> ChildRecord:
    """The reference's rules on typed values; ``_Doubt`` where it would refuse (or
    where this code does not follow it, e.g. a sex given as a letter)."""
    local_id = w.local_id.strip()
    if not _LOCAL_ID.fullmatch(local_id):
        raise _Doubt
    # Control characters in any text (one search over all of them): the reference
    # refuses them after trimming; refusing them untrimmed only sends more to it.
    texts: tuple[Any, ...] = (
        w.given_name, w.family_name, w.other_given_names, w.address_line, w.postcode,
        w.nhs_number, w.upn, w.parent_carer_name, w.parent_carer_phone,
        *(w.former_family_names or ()))
    if _CONTROL.search("".join(filter(None, texts))):  # UNSET and None are falsy
        raise _Doubt
    given, family = _trimmed(w.given_name), _trimmed(w.family_name)
    dob = w.dob or None
    if dob is not None and not _EARLIEST_DOB <= dob <= today:
        raise _Doubt
    sex = w.sex
    if sex is UNSET or sex is None:
        sex = 0
    elif type(sex) is not int or sex not in _SEX_CODES:
        raise _Doubt
    former: tuple[str, ...] = ()
    if w.former_family_names:
        former = tuple(name.strip() for name in w.former_family_names)
        if not all(former):
            raise _Doubt
    postcode, nhs, upn_ = _trimmed(w.postcode), _trimmed(w.nhs_number), _trimmed(w.upn)
    if not (given or family or dob or nhs or upn_):
        raise _Doubt
    dod = w.date_of_death or None
    if dod is not None and dob is not None and dod < dob:
        raise _Doubt
    phone = _trimmed(w.parent_carer_phone)
    if phone is not None and not _PHONE.match(phone):
        raise _Doubt
    return ChildRecord(
        local_id=local_id, given_name=given, family_name=family, dob=dob, sex=sex,
        other_given_names=_trimmed(w.other_given_names), former_family_names=former,
        address_line=_trimmed(w.address_line),
        postcode=normalise_postcode(postcode) if postcode else None,
        nhs_number=_nhs_number(nhs) if nhs else None,
        upn=_upn(upn_) if upn_ else None,
        parent_carer_name=_trimmed(w.parent_carer_name), parent_carer_phone=phone,
        shielded=bool(w.shielded), date_of_death=dod,
        involvements=tuple(map(_involvement, w.involvements)) if w.involvements else (),
    )


def fast_record(data: bytes, today: date | None = None) -> ChildRecord | None:
    """The record when the fast path can vouch for it, else None (never raises)."""
    try:
        wire = _DECODER.decode(data)
        if encoding.pack(msgspec.to_builtins(wire)) != data:  # a repeated key, or other packing
            return None
        return _record(wire, today or date.today())
    except Exception:  # msgspec's errors, invalid UTF-8, a refusal: any doubt at all
        return None  # goes to the reference decoder, which names what is wrong


def decode_record(data: bytes, today: date | None = None) -> ChildRecord:
    """A record from its exact bytes, or the reference decoder's stable error
    (``DecodeError`` / ``ValidationError`` naming the field)."""
    record = fast_record(data, today)
    if record is None:
        record = ChildRecord.from_wire(encoding.unpack(data, what="record"))
    return record
