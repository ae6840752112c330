"""Batches, ops, the hash chain and receipts (protocol.batch)."""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings

from protocol import encoding
from protocol.batch import (
    APPLIED,
    GENESIS,
    MAX_OPS_PER_BATCH,
    MAX_VERSION,
    REJECTED,
    STALE,
    Batch,
    DeleteOp,
    MalformedOp,
    OpResult,
    Receipt,
    UpsertOp,
    batch_hash,
    check_council_code,
)
from protocol.errors import DecodeError, ErrorCode, ValidationError
from protocol.records import ChildRecord
from tests import strategies

RECORD = ChildRecord("ESX-000001", "Amelia", "Okafor", date(2015, 3, 14), sex=2)


def header(**extra: Any) -> dict[str, Any]:
    return {"council": "E10000011", "seq": 1, "prev": GENESIS,
            "issued_at": "2026-11-25T10:00:00Z", "ops": [], **extra}


def decode_map(obj: Any) -> Batch:
    return Batch.decode(encoding.pack(obj))


# --- encoding and round trips -------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(strategies.batches())
def test_batch_round_trip(batch: Batch) -> None:
    payload = batch.encode()
    assert Batch.decode(payload) == batch
    assert batch_hash(payload) == hashlib.sha256(payload).hexdigest()


def test_wire_form_and_key_order() -> None:
    batch = Batch("E10000011", 1, GENESIS, "2026-11-25T10:00:00Z",
                  (UpsertOp.of(RECORD, 1), DeleteOp("ESX-000009", 3)))
    wire = batch.to_wire()
    assert list(wire) == ["council", "seq", "prev", "issued_at", "ops"]
    assert wire["ops"][0] == {"op": "upsert", "local_id": "ESX-000001", "version": 1,
                              "record": encoding.pack(RECORD.to_wire())}
    assert wire["ops"][1] == {"op": "delete", "local_id": "ESX-000009", "version": 3}


def test_record_is_nested_bin_and_digest_covers_its_bytes() -> None:
    op = UpsertOp.of(RECORD, 4)
    assert isinstance(op.record, bytes)
    assert op.digest == hashlib.sha256(op.record).hexdigest()
    assert ChildRecord.from_wire(encoding.unpack(op.record)) == RECORD
    # The payload embeds the record bytes verbatim as msgpack bin.
    payload = Batch("E10000011", 1, GENESIS, "t", (op,)).encode()
    assert op.record in payload
    assert Batch.decode(payload).ops[0] == op


def test_hash_chain() -> None:
    first = Batch("E10000011", 1, GENESIS, "2026-11-25T10:00:00Z", (DeleteOp("A", 1),))
    second = Batch("E10000011", 2, batch_hash(first.encode()), "2026-11-25T10:01:00Z", ())
    assert GENESIS == "0" * 64
    assert Batch.decode(second.encode()).prev == hashlib.sha256(first.encode()).hexdigest()


def test_malformed_op_cannot_be_encoded() -> None:
    with pytest.raises(TypeError):
        Batch("E10000011", 1, GENESIS, "t", (MalformedOp(None, "x"),)).encode()


# --- header faults refuse the whole batch -------------------------------------


@pytest.mark.parametrize("obj", [
    [],
    "batch",
    header(council="e10000011"),
    header(council="E1000001"),
    header(council="E10000011\n"),
    header(council=None),
    header(seq=0),
    header(seq=-1),
    header(seq=True),
    header(seq="1"),
    header(seq=1.0),
    header(prev="0" * 63),
    header(prev="A" * 64),
    header(prev="0" * 64 + "\n"),
    header(prev=b"\0" * 32),
    header(issued_at=None),
    header(issued_at=20261125),
    header(issued_at="x" * 41),
    header(ops=None),
    header(ops={"op": "delete"}),
    {k: v for k, v in header().items() if k != "ops"},
])
def test_header_faults_refuse_the_batch(obj: Any) -> None:
    with pytest.raises(DecodeError) as err:
        decode_map(obj)
    assert err.value.code == ErrorCode.MALFORMED_REQUEST
    assert err.value.status == 400
    assert not err.value.retryable


def test_seq_bounds() -> None:
    assert decode_map(header(seq=MAX_VERSION)).seq == MAX_VERSION
    with pytest.raises(DecodeError):
        decode_map(header(seq=MAX_VERSION + 1))


def test_too_many_ops_is_413() -> None:
    ops = [{"op": "delete", "local_id": "A", "version": 1}] * (MAX_OPS_PER_BATCH + 1)
    with pytest.raises(DecodeError) as err:
        decode_map(header(ops=ops))
    assert (err.value.status, err.value.code) == (413, ErrorCode.PAYLOAD_TOO_LARGE)
    assert len(decode_map(header(ops=ops[:-1])).ops) == MAX_OPS_PER_BATCH


def test_not_msgpack() -> None:
    with pytest.raises(DecodeError) as err:
        Batch.decode(b"\xc1")
    assert err.value.code == ErrorCode.MALFORMED_MSGPACK


def test_unknown_header_keys_are_ignored() -> None:
    assert decode_map(header(comment="hello")) == decode_map(header())


# --- op faults are per op -----------------------------------------------------


@pytest.mark.parametrize("op, local_id", [
    ("delete", None),
    ({"op": "delete", "version": 1}, None),
    ({"op": "delete", "local_id": "", "version": 1}, None),
    ({"op": "delete", "local_id": "x" * 65, "version": 1}, None),
    ({"op": "delete", "local_id": "A\x00B", "version": 1}, None),
    ({"op": "delete", "local_id": "A\n", "version": 1}, None),
    ({"op": "delete", "local_id": 7, "version": 1}, None),
    ({"op": "delete", "local_id": "A"}, "A"),
    ({"op": "delete", "local_id": "A", "version": 0}, "A"),
    ({"op": "delete", "local_id": "A", "version": True}, "A"),
    ({"op": "delete", "local_id": "A", "version": "1"}, "A"),
    ({"op": "delete", "local_id": "A", "version": MAX_VERSION + 1}, "A"),
    ({"op": "upsert", "local_id": "A", "version": 1}, "A"),
    ({"op": "upsert", "local_id": "A", "version": 1, "record": {"local_id": "A"}}, "A"),
    ({"op": "upsert", "local_id": "A", "version": 1, "record": "82a1"}, "A"),
    ({"op": "replace", "local_id": "A", "version": 1}, "A"),
    ({"local_id": "A", "version": 1}, "A"),
])
def test_op_faults_become_malformed_ops(op: Any, local_id: str | None) -> None:
    good = {"op": "delete", "local_id": "B", "version": 2}
    batch = decode_map(header(ops=[good, op, good]))
    assert batch.ops[0] == batch.ops[2] == DeleteOp("B", 2)
    bad = batch.ops[1]
    assert isinstance(bad, MalformedOp)
    assert bad.local_id == local_id
    assert bad.reason


def test_upsert_record_bytes_are_not_checked_by_decode() -> None:
    # Record validation is per op at the hub (invalid_record), not a batch fault.
    batch = decode_map(header(ops=[{"op": "upsert", "local_id": "A", "version": 1,
                                    "record": b"\xc1"}]))
    assert batch.ops == (UpsertOp("A", 1, b"\xc1"),)


# --- receipts -----------------------------------------------------------------


def test_receipt_round_trip_and_counts() -> None:
    receipt = Receipt("E10000011", 3, "ab" * 32, "2026-11-25T10:00:01.000000Z", (
        OpResult("A", APPLIED),
        OpResult("B", REJECTED, ErrorCode.INVALID_RECORD, "dob: is required"),
        OpResult(None, REJECTED, ErrorCode.MALFORMED_REQUEST, "op must be a map"),
        OpResult("C", STALE, ErrorCode.STALE_VERSION, "the hub holds version 9"),
    ))
    payload = receipt.encode()
    assert Receipt.decode(payload) == receipt
    assert receipt.counts() == {APPLIED: 1, REJECTED: 2, STALE: 1}
    wire = encoding.unpack(payload)
    assert list(wire) == ["council", "seq", "batch_hash", "applied_at", "results"]
    assert wire["results"][0] == {"local_id": "A", "status": "applied"}
    assert wire["results"][2] == {"local_id": None, "status": "rejected",
                                  "code": "malformed_request", "message": "op must be a map"}


@pytest.mark.parametrize("obj", [
    [],
    {"council": "E10000011"},
    {"council": "E10000011", "seq": 1, "batch_hash": "x", "applied_at": "t", "results": [{}]},
    {"council": "E10000011", "seq": 1, "batch_hash": "x", "applied_at": "t", "results": 5},
    {"council": "E10000011", "seq": 1, "batch_hash": "x", "applied_at": "t", "results": ["a"]},
])
def test_receipt_missing_fields(obj: Any) -> None:
    with pytest.raises(DecodeError) as err:
        Receipt.decode(encoding.pack(obj))
    assert err.value.code == ErrorCode.MALFORMED_REQUEST


# --- council codes ------------------------------------------------------------


@pytest.mark.parametrize("code", ["E10000011", "W06000015", "S12000033", "N09000001"])
def test_council_codes(code: str) -> None:
    assert check_council_code(code) == code


@pytest.mark.parametrize("code", ["", "E1000001", "E100000111", "e10000011", "10000011E",
                                  "E10000011\n", None])
def test_bad_council_codes(code: Any) -> None:
    with pytest.raises(ValidationError) as err:
        check_council_code(code, "path council code")
    assert err.value.field == "path council code"
