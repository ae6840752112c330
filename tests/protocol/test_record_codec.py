"""The compiled record decoder (protocol.record_codec) against the reference decoder
(``ChildRecord.from_wire`` over ``encoding.unpack``): the same records, the same
refusals with the same codes and messages, on generated and mutated input."""

from __future__ import annotations

from datetime import date
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stdnum.gb import nhs, upn

from protocol import encoding, record_codec
from protocol.errors import DecodeError, ErrorCode, SignpostError
from protocol.matching.compare import valid_nhs_number, valid_upn
from protocol.record_codec import decode_record, fast_record
from protocol.records import ChildRecord
from tests import strategies

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
RECORD_FIELDS = list(ChildRecord.__slots__)
INVOLVEMENT = {"service_type": "school", "organisation_code": "114580",
               "start_date": "2022-09-01"}


def reference(data: bytes) -> ChildRecord:
    return ChildRecord.from_wire(encoding.unpack(data, what="record"))


def outcome(decode: Any, data: bytes) -> Any:
    """A record, or the refusal as the peer sees it: class, code, status and message."""
    try:
        return decode(data)
    except SignpostError as exc:
        return (type(exc).__name__, exc.code, exc.status, exc.message)


def minimal(**extra: Any) -> dict[str, Any]:
    return {"local_id": "ESX-000001", "given_name": "Amelia", "family_name": "Okafor",
            "dob": "2015-03-14", "sex": 2, **extra}


@SETTINGS
@given(strategies.child_records())
def test_a_record_as_a_node_packs_it_takes_the_fast_path(record: ChildRecord) -> None:
    data = encoding.pack(record.to_wire())
    assert fast_record(data) == record
    assert reference(data) == record


@SETTINGS
@given(strategies.mutated_maps(strategies.record_wire_maps(),
                               extra_keys=["case_notes", "involvements", "sex", "dob"]))
def test_mutated_records_decode_as_the_reference_decodes_them(data: dict[str, Any]) -> None:
    raw = encoding.pack(data)
    expected = outcome(reference, raw)
    assert outcome(decode_record, raw) == expected
    fast = fast_record(raw)
    # The fast path never accepts what the reference refuses, nor decodes it otherwise.
    assert fast is None or fast == expected


@st.composite
def records_with_mutated_involvement(draw: st.DrawFn) -> dict[str, Any]:
    wire = draw(strategies.record_wire_maps())
    inv = draw(strategies.mutated_maps(
        strategies.involvements().map(lambda i: i.to_wire()),
        extra_keys=["risk_level", "consent", "sensitive", "start_date", "end_date"]))
    return {**wire, "involvements": [*wire.get("involvements", []), inv]}


@SETTINGS
@given(records_with_mutated_involvement())
def test_mutated_involvements_decode_as_the_reference_decodes_them(
        data: dict[str, Any]) -> None:
    raw = encoding.pack(data)
    expected = outcome(reference, raw)
    assert outcome(decode_record, raw) == expected
    assert fast_record(raw) in (None, expected)


@pytest.mark.parametrize("data, field", [
    (minimal(given_name="  Amelia "), None),        # trimmed as the reference trims
    (minimal(sex="F"), None),                        # a letter: the reference decides
    (minimal(given_name=""), None),
    (minimal(local_id=" ESX-1"), None),
    (minimal(dob="1989-12-31"), "dob"),
    (minimal(dob="2015-3-14"), "dob"),
    (minimal(nhs_number="9434765918"), "nhs_number"),
    (minimal(nhs_number="943 476 5919"), None),
    (minimal(upn="A801200115001"), "upn"),
    (minimal(upn="v801200115001"), None),
    (minimal(former_family_names=["Smith", " "]), "former_family_names[1]"),
    (minimal(given_name="Ame\x00lia"), "given_name"),
    (minimal(case_notes="x"), "case_notes"),
    (minimal(involvements=[{**INVOLVEMENT, "risk_level": "high"}]),
     "involvements[0].risk_level"),
    (minimal(involvements=[{"service_type": "mental_health"}]), "involvements[0].consent"),
    (minimal(involvements=[{**INVOLVEMENT, "end_date": "2022-08-31"}]),
     "involvements[0].end_date"),
    (minimal(involvements=[{**INVOLVEMENT, "lead_professional": 1}]),
     "involvements[0].lead_professional"),
    (minimal(involvements=[{**INVOLVEMENT, "professional_email": "nobody"}]),
     "involvements[0].professional_email"),
])
def test_what_the_fast_path_leaves_to_the_reference(data: dict[str, Any],
                                                    field: str | None) -> None:
    """Refused records keep the reference's error, naming the field; records the fast
    path does not normalise itself are accepted as the reference accepts them."""
    raw = encoding.pack(data)
    expected = outcome(reference, raw)
    assert outcome(decode_record, raw) == expected
    assert fast_record(raw) in (None, expected)
    if field is not None:
        with pytest.raises(SignpostError) as err:
            decode_record(raw)
        assert err.value.code == ErrorCode.INVALID_FIELD
        assert err.value.detail == {"field": field}


def _with_repeated_key(fields: list[tuple[str, Any]]) -> bytes:
    """A map packed by hand, so a key can appear twice."""
    packer = msgpack.Packer(use_bin_type=True)
    return packer.pack_map_header(len(fields)) + b"".join(
        packer.pack(k) + packer.pack(v) for k, v in fields)


@pytest.mark.parametrize("fields", [
    [("local_id", "ESX-1"), ("given_name", "Amelia"), ("given_name", "Grace")],
    [("local_id", "ESX-1"), ("local_id", "ESX-2"), ("given_name", "Amelia")],
    [("local_id", "ESX-1"), ("given_name", "Amelia"), ("shielded", True), ("shielded", False)],
])
def test_a_repeated_key_is_refused(fields: list[tuple[str, Any]]) -> None:
    raw = _with_repeated_key(fields)
    # msgspec alone keeps the last value; the fast path must not.
    assert record_codec._DECODER.decode(raw) is not None
    assert fast_record(raw) is None
    with pytest.raises(DecodeError) as err:
        decode_record(raw)
    assert err.value.code == ErrorCode.MALFORMED_MSGPACK
    assert "duplicate map key" in err.value.message


def test_a_repeated_key_inside_an_involvement_is_refused() -> None:
    inv = _with_repeated_key([("service_type", "school"), ("service_type", "mental_health")])
    packer = msgpack.Packer(use_bin_type=True)
    head = [("local_id", "ESX-1"), ("given_name", "Amelia")]
    raw = (packer.pack_map_header(3) + b"".join(packer.pack(k) + packer.pack(v)
                                                for k, v in head)
           + packer.pack("involvements") + packer.pack_array_header(1) + inv)
    assert fast_record(raw) is None
    with pytest.raises(DecodeError, match="duplicate map key"):
        decode_record(raw)


def test_keys_in_another_order_are_accepted_by_the_reference() -> None:
    """Another implementation may pack keys in any order: accepted, only not fast."""
    wire = minimal(nhs_number="9434765919")
    raw = encoding.pack(dict(reversed(list(wire.items()))))
    assert fast_record(raw) is None
    assert decode_record(raw) == reference(encoding.pack(wire))


def test_bytes_are_never_re_encoded() -> None:
    """The fast path reads the bytes; the record it returns packs back to them, and
    nothing it does changes what is stored or digested (the op keeps its bytes)."""
    data = encoding.pack(minimal(postcode="BN1 1AA", nhs_number="9434765919",
                                 involvements=[INVOLVEMENT]))
    before = bytes(data)
    record = fast_record(data)
    assert record is not None
    assert data == before and encoding.pack(record.to_wire()) == data


def test_the_dob_range_is_judged_on_the_day_given() -> None:
    raw = encoding.pack(minimal(dob="2026-12-05"))
    assert fast_record(raw, today=date(2026, 12, 5)) is not None
    assert fast_record(raw, today=date(2026, 12, 4)) is None


@settings(max_examples=500, deadline=None)
@given(st.from_regex(r"\A[0-9]{10}\Z"))
def test_nhs_number_check_is_stdnums(value: str) -> None:
    try:
        fast: str | None = record_codec._nhs_number(value)
    except record_codec._Doubt:
        fast = None
    assert fast == (value if nhs.is_valid(value) else None)


@st.composite
def upn_like(draw: st.DrawFn) -> str:
    letters = "ABCDEFGHJKLMNPQRTUVWXYZ"
    body = draw(st.from_regex(r"\A[0-9]{11}\Z"))
    if draw(st.booleans()):  # a real local authority number half the time
        body = draw(st.sampled_from(["201", "845", "938", "894", "999"])) + body[3:]
    last = draw(st.sampled_from(letters + "0123456789"))
    head = draw(st.sampled_from(letters))
    if draw(st.booleans()):  # the right check letter half the time
        head = upn.calc_check_digit(body + last)
    return head + body + last


@settings(max_examples=500, deadline=None)
@given(upn_like())
def test_upn_check_is_stdnums(value: str) -> None:
    try:
        fast: str | None = record_codec._upn(value)
    except record_codec._Doubt:
        fast = None
    assert fast == (value if upn.is_valid(value) else None)


@settings(max_examples=300, deadline=None)
@given(upn_like(), st.from_regex(r"\A[0-9]{10}\Z"))
def test_the_matcher_judges_identifiers_as_stdnum_does(upn_value: str, nhs_value: str) -> None:
    """The matcher's checks (blocking keys, comparisons) take the same fast path for a
    number in its normal form, and agree with python-stdnum on each."""
    assert valid_upn(upn_value) == (upn_value if upn.is_valid(upn_value) else None)
    assert valid_upn(upn_value.lower()) == (upn_value if upn.is_valid(upn_value) else None)
    assert valid_nhs_number(nhs_value) == (nhs_value if nhs.is_valid(nhs_value) else None)
