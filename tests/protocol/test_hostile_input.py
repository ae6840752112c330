"""Whatever a peer sends, the protocol code answers with a SignpostError or a value.

Every decoder that sees untrusted input (random bytes, random msgpack, a valid
message with one part broken) may only raise protocol.errors.SignpostError
subclasses: anything else would become a 500 at the hub. Round-trip properties
of the same decoders sit at the end.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import encoding, identifiers, request_auth
from protocol.batch import Batch, OpResult, Receipt
from protocol.errors import DecodeError, ErrorCode, SignpostError
from protocol.key_announcement import KeyAnnouncement
from protocol.record_codec import decode_record
from protocol.records import ChildRecord, Involvement
from protocol.signing import BATCH_TYPE, Envelope
from tests import strategies

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
# Budget: the whole protocol suite runs in well under 30 s. Cheap inputs get more examples.
SETTINGS = settings(max_examples=250, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DECODERS: dict[str, Callable[[bytes], Any]] = {
    "unpack": encoding.unpack,
    "envelope": Envelope.decode,
    "batch": Batch.decode,
    "receipt": Receipt.decode,
    "record": lambda data: ChildRecord.from_wire(encoding.unpack(data)),
    "record (compiled)": decode_record,
    "key_announcement": KeyAnnouncement.decode,
}


def only_signpost_errors(fn: Callable[..., Any], *args: Any) -> Any:
    """Call fn; a SignpostError is an acceptable answer, any other exception fails the test."""
    try:
        return fn(*args)
    except SignpostError as exc:
        assert isinstance(exc.code, ErrorCode)
        assert 400 <= exc.status < 600
        return None


def flip_bytes(data: bytes, positions: list[int], mask: int) -> bytes:
    out = bytearray(data)
    for p in positions:
        out[p % len(out)] ^= mask
    return bytes(out)


# --- random bytes -------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DECODERS))
@SETTINGS
@given(data=st.binary(max_size=300))
def test_random_bytes(name: str, data: bytes) -> None:
    only_signpost_errors(DECODERS[name], data)


@pytest.mark.parametrize("name", sorted(DECODERS))
@SETTINGS
@given(value=strategies.msgpack_values)
def test_random_msgpack_structures(name: str, value: Any) -> None:
    only_signpost_errors(DECODERS[name], encoding.pack(value))


@pytest.mark.parametrize("name", sorted(DECODERS))
@FEW
@given(value=strategies.msgpack_values, cut=st.integers(0, 200),
       positions=st.lists(st.integers(0, 10_000), max_size=3), mask=st.integers(1, 255))
def test_truncated_and_flipped_msgpack(name: str, value: Any, cut: int, positions: list[int],
                                       mask: int) -> None:
    data = encoding.pack(value)
    only_signpost_errors(DECODERS[name], data[:cut])
    only_signpost_errors(DECODERS[name], flip_bytes(data, positions, mask))


# --- near-valid messages ------------------------------------------------------------------------


@FEW
@given(batch=strategies.batches(max_ops=3), positions=st.lists(st.integers(0, 10_000),
                                                               min_size=1, max_size=3),
       mask=st.integers(1, 255))
def test_signed_batch_with_flipped_bytes(batch: Batch, positions: list[int], mask: int) -> None:
    good = Envelope.sign(BATCH_TYPE, batch.encode(), [KEY]).encode()
    bad = flip_bytes(good, positions, mask)
    env = only_signpost_errors(Envelope.decode, bad)
    if env is not None:
        if env.payload != batch.encode() or env.payload_type != BATCH_TYPE:
            assert not env.verified_by(KEY.public_key())
        only_signpost_errors(Batch.decode, env.payload)


@FEW
@given(data=strategies.mutated_maps(
    st.builds(lambda b: b.to_wire(), strategies.batches(max_ops=1)),
    extra_keys=["council", "seq", "prev", "issued_at", "ops"]))
def test_mutated_batch_header(data: dict[str, Any]) -> None:
    batch = only_signpost_errors(Batch.decode, encoding.pack(data))
    if batch is not None:
        assert len(batch.ops) == len(data["ops"])


@FEW
@given(op=strategies.mutated_maps(
    st.builds(lambda o: o.to_wire(), strategies.ops()),
    extra_keys=["op", "local_id", "version", "record"]))
def test_mutated_op_never_refuses_the_batch(op: dict[str, Any]) -> None:
    wire = {"council": "E10000011", "seq": 1, "prev": "0" * 64, "issued_at": "t", "ops": [op]}
    assert len(Batch.decode(encoding.pack(wire)).ops) == 1


@FEW
@given(data=strategies.mutated_maps(
    strategies.record_wire_maps(),
    extra_keys=list(ChildRecord.__slots__)))
def test_mutated_record(data: dict[str, Any]) -> None:
    only_signpost_errors(ChildRecord.from_wire, data)
    only_signpost_errors(ChildRecord.from_wire, encoding.unpack(encoding.pack(data)))


@FEW
@given(data=strategies.mutated_maps(
    strategies.involvements().map(lambda i: i.to_wire()),
    extra_keys=list(Involvement.__slots__)))
def test_mutated_involvement(data: dict[str, Any]) -> None:
    record = {"local_id": "A", "given_name": "A", "family_name": "B", "dob": "2015-01-01",
              "involvements": [data]}
    only_signpost_errors(ChildRecord.from_wire, record)


@SETTINGS
@given(value=strategies.msgpack_values)
def test_random_structures_as_records_and_envelopes(value: Any) -> None:
    only_signpost_errors(ChildRecord.from_wire, value)
    only_signpost_errors(Involvement.from_wire, value)
    only_signpost_errors(Envelope.from_wire, value)
    if isinstance(value, dict):
        only_signpost_errors(ChildRecord.from_wire, {"local_id": "A", "given_name": "A",
                                                     "family_name": "B", "dob": "2015-01-01",
                                                     **value})


@FEW
@given(data=strategies.mutated_maps(st.just({
    "council": "E10000011", "seq": 1, "batch_hash": "0" * 64, "applied_at": "t",
    "results": [{"local_id": "A", "status": "applied"}]}),
    extra_keys=["council", "seq", "batch_hash", "applied_at", "results"]))
def test_mutated_receipt(data: dict[str, Any]) -> None:
    only_signpost_errors(Receipt.decode, encoding.pack(data))


# --- request headers ----------------------------------------------------------

HEADER_NAMES = [request_auth.H_ORIGIN, request_auth.H_TIMESTAMP, request_auth.H_NONCE,
                request_auth.H_KEY_ID, request_auth.H_SIGNATURE]


def _check_request(headers: dict[str, str]) -> None:
    req = request_auth.parse_headers(headers)
    req.check_clock()  # the real clock: a float, as at the hub
    assert isinstance(req.verify(KEY.public_key(), "POST", "/v1/x", b""), bool)


@SETTINGS
@given(headers=st.dictionaries(st.sampled_from(HEADER_NAMES) | st.text(max_size=10),
                               st.text(max_size=100), max_size=7))
def test_random_headers(headers: dict[str, str]) -> None:
    only_signpost_errors(_check_request, headers)


@SETTINGS
@given(name=st.sampled_from(HEADER_NAMES),
       value=st.text(max_size=100) | st.integers(-(10**500), 10**500).map(str)
       | st.binary(min_size=0, max_size=80).map(lambda b: base64.b64encode(b).decode()),
       now=st.integers(0, 2**40))
def test_one_header_replaced(name: str, value: str, now: int) -> None:
    headers = request_auth.sign_request(KEY, "POST", "/v1/x", b"", "E10000011", now=now)
    headers[name] = value
    only_signpost_errors(_check_request, headers)


# --- identifiers take any text ------------------------------------------------


@SETTINGS
@given(text=st.text(max_size=30))
def test_identifier_checks_take_any_text(text: str) -> None:
    only_signpost_errors(identifiers.normalise_nhs_number, text)
    only_signpost_errors(identifiers.normalise_upn, text)
    only_signpost_errors(identifiers.normalise_postcode, text)
    only_signpost_errors(identifiers.parse_sex, text)
    only_signpost_errors(identifiers.parse_date, text, "dob")


# --- encoding rules -----------------------------------------------------------


@pytest.mark.parametrize("data, reason", [
    (b"\xc1", "never-used byte"),
    (b"\x92\x01", "truncated array"),
    (b"\x01\x02", "trailing bytes"),
    (b"\xa2\xff\xfe", "str that is not UTF-8"),
    (b"\xd4\x05\x00", "extension type 5"),
    (b"\xd6\xff\x00\x00\x00\x01", "timestamp extension -1"),
    (b"\x91\xd6\xff\x00\x00\x00\x01", "timestamp inside an array"),
    (b"\x81\xa1a\xd6\xff\x00\x00\x00\x01", "timestamp inside a map"),
    (b"\x82\xa1a\x01\xa1a\x02", "duplicate map key"),
    (b"\x81\x01\x02", "int map key"),
    (b"\x81\xc4\x01a\x01", "bin map key"),
    (b"\x81\xc0\x01", "nil map key"),
    (b"\x91" * 2000 + b"\x90", "nesting deeper than the decoder allows"),
    (b"\xdd\xff\xff\xff\xff", "array length larger than the message"),
])
def test_unpack_refuses(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as err:
        encoding.unpack(data)
    assert err.value.code == ErrorCode.MALFORMED_MSGPACK, reason
    assert err.value.status == 400


def test_unpack_size_limit() -> None:
    data = b"\xc6" + (encoding.MAX_MESSAGE_BYTES).to_bytes(4, "big") + b"\0" * (
        encoding.MAX_MESSAGE_BYTES - 4)
    assert len(data) == encoding.MAX_MESSAGE_BYTES + 1
    with pytest.raises(DecodeError) as err:
        encoding.unpack(data)
    assert (err.value.status, err.value.code) == (413, ErrorCode.PAYLOAD_TOO_LARGE)


def test_pack_uses_str_and_bin() -> None:
    assert encoding.pack("a") == b"\xa1a"
    assert encoding.pack(b"a") == b"\xc4\x01a"
    assert encoding.unpack(b"\xc4\x01a") == b"a"
    assert encoding.unpack(b"\xa1a") == "a"
    with pytest.raises(TypeError):
        encoding.pack(datetime(2026, 1, 1, tzinfo=UTC))  # never a timestamp extension


# --- round trips --------------------------------------------------------------


@FEW
@given(value=strategies.msgpack_values)
def test_unpack_inverts_pack(value: Any) -> None:
    decoded = encoding.unpack(encoding.pack(value))
    assert encoding.pack(decoded) == encoding.pack(value)


@FEW
@given(payload_type=st.text(max_size=60), payload=st.binary(max_size=300),
       signers=st.integers(1, 4))
def test_envelope_round_trip(payload_type: str, payload: bytes, signers: int) -> None:
    signing_keys = [Ed25519PrivateKey.from_private_bytes(bytes([i]) * 32) for i in range(signers)]
    env = Envelope.sign(payload_type, payload, signing_keys)
    decoded = Envelope.decode(env.encode())
    assert decoded == env
    assert all(decoded.verified_by(k.public_key()) for k in signing_keys)


@FEW
@given(batch=strategies.batches(), results=st.lists(st.builds(
    OpResult, st.none() | strategies.local_ids, st.sampled_from(["applied", "rejected", "stale"]),
    st.none() | st.sampled_from(["invalid_record", "stale_version"]),
    st.none() | st.text(min_size=1, max_size=40)), max_size=5))
def test_receipt_round_trip(batch: Batch, results: list[OpResult]) -> None:
    receipt = Receipt(batch.council, batch.seq, "ab" * 32, batch.issued_at, tuple(results))
    assert Receipt.decode(receipt.encode()) == receipt
