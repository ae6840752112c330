"""The minimal record and its involvements (protocol.records)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given, settings

from protocol import encoding
from protocol.errors import ErrorCode, ValidationError
from protocol.records import SENSITIVE_SERVICE_TYPES, ChildRecord, Involvement, is_local_id
from tests import strategies


def minimal(**extra: Any) -> dict[str, Any]:
    return {"local_id": "ESX-000001", "given_name": "Amelia", "family_name": "Okafor",
            "dob": "2015-03-14", **extra}


def refused_field(data: Any) -> str:
    with pytest.raises(ValidationError) as err:
        ChildRecord.from_wire(data)
    assert err.value.code == ErrorCode.INVALID_FIELD
    assert err.value.status == 400
    assert err.value.detail == {"field": err.value.field}
    assert err.value.message.startswith(f"{err.value.field}: ")
    return err.value.field


# --- round trips --------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(strategies.child_records())
def test_round_trip_through_msgpack(record: ChildRecord) -> None:
    wire = record.to_wire()
    assert ChildRecord.from_wire(encoding.unpack(encoding.pack(wire))) == record
    # to_wire is stable: packing the same record twice gives the same bytes.
    assert encoding.pack(ChildRecord.from_wire(wire).to_wire()) == encoding.pack(wire)


def test_minimal_record_wire_form() -> None:
    record = ChildRecord.from_wire(minimal())
    assert record == ChildRecord("ESX-000001", "Amelia", "Okafor", date(2015, 3, 14))
    # Empty values are omitted; sex is always present because 0 is a code.
    assert record.to_wire() == {**minimal(), "sex": 0}


def test_absent_and_nil_mean_the_same() -> None:
    nils = {key: None for key in ChildRecord.__slots__
            if key not in ("local_id", "given_name", "family_name", "dob")}
    assert ChildRecord.from_wire(minimal(**nils)) == ChildRecord.from_wire(minimal())
    inv_nils = {key: None for key in Involvement.__slots__
                if key != "service_type"}
    with_inv = ChildRecord.from_wire(minimal(involvements=[{"service_type": "gp", **inv_nils}]))
    assert with_inv.involvements == (Involvement("gp"),)


def test_values_are_normalised() -> None:
    record = ChildRecord.from_wire(minimal(
        given_name="  Amelia ", sex="F", postcode="bn7 2aa", nhs_number="943 476 5919",
        upn="v801200115001"))
    assert (record.given_name, record.sex, record.postcode, record.nhs_number, record.upn) == (
        "Amelia", 2, "BN7 2AA", "9434765919", "V801200115001")


def test_sensitive_service_is_marked_sensitive() -> None:
    inv = Involvement.from_wire({"service_type": "sexual_health", "consent": True})
    assert inv.sensitive and inv.consent
    assert inv.to_wire() == {"service_type": "sexual_health", "sensitive": True, "consent": True}


# --- absent names and date of birth (docs/PROTOCOL.md §3.2.1) --------------------------------


@pytest.mark.parametrize("absent", [("given_name",), ("family_name",), ("dob",),
                                    ("given_name", "family_name", "dob")])
def test_names_and_dob_may_be_absent(absent: tuple[str, ...]) -> None:
    data = {k: v for k, v in minimal(nhs_number="9434765919").items() if k not in absent}
    record = ChildRecord.from_wire(data)
    assert all(getattr(record, name) is None for name in absent)
    wire = record.to_wire()
    assert not set(absent) & set(wire)  # omitted on the wire, not sent as nil
    assert ChildRecord.from_wire(encoding.unpack(encoding.pack(wire))) == record
    # blank and nil mean absent too
    assert ChildRecord.from_wire({**data, **{name: "" for name in absent}}) == record
    assert ChildRecord.from_wire({**data, **{name: None for name in absent}}) == record


@pytest.mark.parametrize("only", [{"given_name": "Amelia"}, {"family_name": "Okafor"},
                                  {"dob": "2015-03-14"}, {"nhs_number": "9434765919"},
                                  {"upn": "V801200115001"}])
def test_one_identifying_field_is_enough(only: dict[str, str]) -> None:
    assert ChildRecord.from_wire({"local_id": "ESX-1", **only}).local_id == "ESX-1"


def test_a_record_with_no_identifying_field_is_refused() -> None:
    data = {"local_id": "ESX-1", "given_name": " ", "sex": 2, "postcode": "BN7 2AA",
            "address_line": "1 High Street", "date_of_death": "2020-01-01"}
    assert refused_field(data) == "record"


# --- each validation failure names its field ----------------------------------


@pytest.mark.parametrize("data, field", [
    ([], "record"),
    ("record", "record"),
    ({k: v for k, v in minimal().items() if k != "local_id"}, "local_id"),
    (minimal(local_id="has space"), "local_id"),
    (minimal(local_id="x" * 65), "local_id"),
    (minimal(local_id=7), "local_id"),
    (minimal(given_name="A" * 101), "given_name"),
    (minimal(given_name="Ame\x00lia"), "given_name"),
    (minimal(family_name=7), "family_name"),
    (minimal(dob="2015-02-30"), "dob"),
    (minimal(dob="1989-12-31"), "dob"),
    (minimal(dob=(date.today() + timedelta(days=1)).isoformat()), "dob"),
    (minimal(sex=3), "sex"),
    (minimal(sex=True), "sex"),
    (minimal(sex=1.0), "sex"),
    (minimal(other_given_names=["Grace"]), "other_given_names"),
    (minimal(former_family_names="Smith"), "former_family_names"),
    (minimal(former_family_names=["Smith", ""]), "former_family_names[1]"),
    (minimal(former_family_names=["x"] * 11), "former_family_names"),
    (minimal(address_line="a" * 201), "address_line"),
    (minimal(postcode="BN7"), "postcode"),
    (minimal(postcode="BN7 2AA BN7"), "postcode"),
    (minimal(nhs_number="9434765918"), "nhs_number"),
    (minimal(nhs_number=9434765919), "nhs_number"),
    (minimal(upn="A801200115001"), "upn"),
    (minimal(parent_carer_phone="ring me"), "parent_carer_phone"),
    (minimal(shielded="yes"), "shielded"),
    (minimal(shielded=1), "shielded"),
    (minimal(date_of_death="2015-03-13"), "date_of_death"),
    (minimal(involvements={"service_type": "gp"}), "involvements"),
    (minimal(involvements=[{"service_type": "gp"}] * 201), "involvements"),
    (minimal(involvements=["gp"]), "involvements[0]"),
    (minimal(involvements=[{}]), "involvements[0].service_type"),
    (minimal(involvements=[{"service_type": "GP"}]), "involvements[0].service_type"),
    (minimal(involvements=[{"service_type": "gp"}, {"service_type": "gp", "consent": "y"}]),
     "involvements[1].consent"),
    (minimal(involvements=[{"service_type": "gp", "organisation_code": "x" * 21}]),
     "involvements[0].organisation_code"),
    (minimal(involvements=[{"service_type": "gp", "professional_email": "nobody"}]),
     "involvements[0].professional_email"),
    (minimal(involvements=[{"service_type": "gp", "organisation_phone": "12"}]),
     "involvements[0].organisation_phone"),
    (minimal(involvements=[{"service_type": "gp", "start_date": "2020-01-02",
                            "end_date": "2020-01-01"}]), "involvements[0].end_date"),
    (minimal(involvements=[{"service_type": "gp", "start_date": "2020-1-2"}]),
     "involvements[0].start_date"),
])
def test_each_failure_names_its_field(data: Any, field: str) -> None:
    assert refused_field(data) == field


@pytest.mark.parametrize("service_type", sorted(SENSITIVE_SERVICE_TYPES))
def test_sensitive_service_without_consent_is_refused(service_type: str) -> None:
    assert refused_field(minimal(involvements=[{"service_type": service_type}])) == (
        "involvements[0].consent")
    assert refused_field(minimal(involvements=[
        {"service_type": service_type, "sensitive": False, "consent": False}])) == (
        "involvements[0].consent")


def test_a_service_marked_sensitive_needs_consent_too() -> None:
    assert refused_field(minimal(involvements=[{"service_type": "school", "sensitive": True}])) == (
        "involvements[0].consent")
    ok = ChildRecord.from_wire(minimal(involvements=[
        {"service_type": "school", "sensitive": True, "consent": True}]))
    assert ok.involvements[0].sensitive


@pytest.mark.parametrize("key", ["case_notes", "assessment", "Local_id", "ethnicity"])
def test_unknown_record_field_is_refused(key: str) -> None:
    assert refused_field(minimal(**{key: "anything"})) == key


@pytest.mark.parametrize("key", ["case_notes", "risk_level", "Service_type"])
def test_unknown_involvement_field_is_refused(key: str) -> None:
    data = minimal(involvements=[{"service_type": "social_care"},
                                 {"service_type": "social_care", key: "anything"}])
    assert refused_field(data) == f"involvements[1].{key}"


def test_unknown_field_reported_first_in_sorted_order() -> None:
    assert refused_field(minimal(zz=1, aa=2)) == "aa"


def test_is_local_id() -> None:
    assert is_local_id("ESX-000001") and is_local_id("a.b_c:d-e") and is_local_id("x" * 64)
    for bad in ("", "x" * 65, "a b", "a\n", "a\x00b", "é", None, 7):
        assert not is_local_id(bad)


def test_validated_involvements_are_reused_but_never_bypass_checks() -> None:
    """The pointer cache must not let 1 stand in for true (equal in Python)."""
    good = {"local_id": "L1", "given_name": "A", "family_name": "B", "dob": "2015-01-01",
            "involvements": [{"service_type": "school", "lead_professional": True}]}
    first = ChildRecord.from_wire(good)
    again = ChildRecord.from_wire(good)
    assert first.involvements[0] is again.involvements[0]
    bad = {**good, "involvements": [{"service_type": "school", "lead_professional": 1}]}
    with pytest.raises(ValidationError) as err:
        ChildRecord.from_wire(bad)
    assert err.value.field == "involvements[0].lead_professional"
