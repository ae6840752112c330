"""The protocol code produces the bytes in vectors.json exactly, and they verify.

Each check rebuilds a message from the vector's plain fields with the protocol
code and compares bytes; where the spec fixes a construction (PAE, key id,
canonical string) the test also builds it by hand from docs/PROTOCOL.md, so a
change to either is caught. A one-byte change to any signed thing must fail.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol import encoding, keys, request_auth
from protocol.batch import GENESIS, Batch, DeleteOp, OpResult, Receipt, UpsertOp, batch_hash
from protocol.errors import SignpostError, ValidationError
from protocol.key_announcement import KeyAnnouncement, open_announcement
from protocol.record_codec import decode_record, fast_record
from protocol.records import ChildRecord
from protocol.signing import BATCH_TYPE, KEY_ANNOUNCEMENT_TYPE, RECEIPT_TYPE, Envelope, pae
from tests.protocol import make_vectors

VECTORS_PATH = Path(__file__).with_name("vectors.json")
V: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))


def private(name: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(V["keys"][name]["seed_hex"]))


def public(name: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(V["keys"][name]["public_raw_hex"]))


def hand_pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode()
    return b"DSSEv1 " + str(len(t)).encode() + b" " + t + b" " + str(len(payload)).encode() + (
        b" " + payload)


def one_byte_changes(data: bytes) -> list[bytes]:
    """Flip the low bit of the first, middle and last bytes."""
    out = []
    for i in sorted({0, len(data) // 2, len(data) - 1}):
        changed = bytearray(data)
        changed[i] ^= 1
        out.append(bytes(changed))
    return out


def test_file_is_current() -> None:
    """make_vectors.py reproduces vectors.json exactly (it is deterministic)."""
    assert make_vectors.render() == VECTORS_PATH.read_text(encoding="utf-8")


# --- keys ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["council", "hub", "council_next"])
def test_keys(name: str) -> None:
    vec = V["keys"][name]
    pub = private(name).public_key()
    raw = keys.raw_public(pub)
    assert raw.hex() == vec["public_raw_hex"]
    assert keys.public_pem(pub).decode() == vec["public_pem"]
    assert keys.key_id(pub) == vec["kid"] == hashlib.sha256(raw).digest()[:16].hex()
    assert keys.key_id(keys.load_public_key(vec["public_pem"].encode())) == vec["kid"]


@pytest.mark.parametrize("vec", V["public_key_checks"], ids=lambda v: v["name"])
def test_public_key_checks(vec: dict[str, Any]) -> None:
    """§5: only canonical encodings of prime-order points load, raw or as PEM."""
    raw = bytes.fromhex(vec["raw_hex"])
    pem = keys.public_pem(Ed25519PublicKey.from_public_bytes(raw)) if vec["reason"] != \
        "non-canonical encoding" else None
    for data in (raw, pem) if pem is not None else (raw,):
        if vec["accept"]:
            assert keys.raw_public(keys.load_public_key(data)) == raw
            continue
        with pytest.raises(keys.WeakKeyError) as caught:
            keys.load_public_key(data)
        assert caught.value.code == "weak_key"
        assert caught.value.detail["reason"] == vec["reason"]
    # the shape of the spec's list: all 8 torsion points, each once
    smalls = {v["raw_hex"] for v in V["public_key_checks"] if v["reason"] == "small-order point"}
    assert len(smalls) == 8


# --- record -------------------------------------------------------------------


def test_record() -> None:
    vec = V["record"]
    data = bytes.fromhex(vec["msgpack_hex"])
    record = ChildRecord.from_wire(vec["wire"])
    assert record.to_wire() == vec["wire"]
    assert encoding.pack(vec["wire"]) == data
    assert encoding.unpack(data) == vec["wire"]
    assert ChildRecord.from_wire(encoding.unpack(data)) == record
    assert vec["digest"] == hashlib.sha256(data).hexdigest() == encoding.sha256_hex(data)
    assert UpsertOp.of(record, 1).record == data
    # the hub's compiled decoder reads the vector's bytes on its fast path
    assert fast_record(data) == decode_record(data) == record


def test_record_incomplete() -> None:
    """Given name and date of birth absent: omitted from the canonical bytes; nil
    decodes to the same record; a record with no identifying field is refused."""
    vec = V["record_incomplete"]
    data = bytes.fromhex(vec["msgpack_hex"])
    record = ChildRecord.from_wire(encoding.unpack(data))
    assert (record.given_name, record.dob, record.family_name) == (None, None, "Okafor")
    assert record.to_wire() == vec["wire"] and encoding.pack(vec["wire"]) == data
    assert not {"given_name", "dob"} & set(vec["wire"])
    assert vec["digest"] == hashlib.sha256(data).hexdigest()
    nil_form = bytes.fromhex(vec["nil_form_msgpack_hex"])
    assert nil_form != data
    assert ChildRecord.from_wire(encoding.unpack(nil_form)) == record
    assert decode_record(data) == decode_record(nil_form) == record
    with pytest.raises(ValidationError) as err:
        ChildRecord.from_wire(vec["refused_wire"])
    assert err.value.field == vec["refused_field"]


# --- PAE ----------------------------------------------------------------------


def test_pae_example() -> None:
    vec = V["pae_example"]
    payload = bytes.fromhex(vec["payload_hex"])
    expected = bytes.fromhex(vec["pae_hex"])
    assert expected == b"DSSEv1 29 application/vnd.signpost.test 5 hello"
    assert pae(vec["payload_type"], payload) == expected == hand_pae(vec["payload_type"], payload)


# --- batches ------------------------------------------------------------------


def batch_from_vector(vec: dict[str, Any]) -> Batch:
    ops: list[UpsertOp | DeleteOp] = []
    for op in vec["ops"]:
        if op["op"] == "upsert":
            ops.append(UpsertOp(op["local_id"], op["version"], bytes.fromhex(op["record_hex"])))
        else:
            ops.append(DeleteOp(op["local_id"], op["version"]))
    return Batch(vec["council"], vec["seq"], vec["prev"], vec["issued_at"], tuple(ops))


def check_envelope(vec: dict[str, Any], payload: bytes, signer: str) -> Envelope:
    """The envelope vector matches the code, the hand-built PAE, and verifies."""
    pae_bytes = bytes.fromhex(vec["pae_hex"])
    assert pae(vec["payload_type"], payload) == pae_bytes == hand_pae(vec["payload_type"], payload)
    env = Envelope.sign(vec["payload_type"], payload, [private(signer)])
    envelope_bytes = bytes.fromhex(vec["envelope_hex"])
    assert env.encode() == envelope_bytes
    assert hashlib.sha256(envelope_bytes).hexdigest() == vec["envelope_sha256"]
    assert [{"kid": s.kid, "sig_hex": s.sig.hex()} for s in env.signatures] == vec["signatures"]
    assert vec["signatures"][0]["kid"] == V["keys"][signer]["kid"]
    # The signature verifies with the raw public key over the PAE bytes alone.
    sig = bytes.fromhex(vec["signatures"][0]["sig_hex"])
    assert keys.verify(public(signer), sig, pae_bytes)
    decoded = Envelope.decode(envelope_bytes)
    assert decoded == env and decoded.payload == payload
    assert decoded.verified_by(public(signer))
    other = "hub" if signer == "council" else "council"
    assert not decoded.verified_by(public(other))
    # Any one-byte change to the payload, the signature or the PAE fails.
    for changed in one_byte_changes(payload):
        assert not Envelope(vec["payload_type"], changed, env.signatures).verified_by(
            public(signer))
    for changed in one_byte_changes(sig):
        assert not keys.verify(public(signer), changed, pae_bytes)
    for changed in one_byte_changes(pae_bytes):
        assert not keys.verify(public(signer), sig, changed)
    return decoded


@pytest.mark.parametrize("name", ["batch_1", "batch_2"])
def test_batch(name: str) -> None:
    vec = V[name]
    payload = bytes.fromhex(vec["payload_hex"])
    batch = batch_from_vector(vec)
    assert batch.encode() == payload
    assert Batch.decode(payload) == batch
    assert vec["hash"] == batch_hash(payload) == hashlib.sha256(payload).hexdigest()
    for op in vec["ops"]:
        if op["op"] == "upsert":
            record = bytes.fromhex(op["record_hex"])
            assert op["record_digest"] == hashlib.sha256(record).hexdigest()
    env = check_envelope(vec["envelope"], payload, "council")
    assert env.payload_type == BATCH_TYPE


def test_batch_1_contents() -> None:
    vec = V["batch_1"]
    assert vec["seq"] == 1 and vec["prev"] == GENESIS == V["genesis"] == "0" * 64
    assert [(op["op"], op["local_id"], op["version"]) for op in vec["ops"]] == [
        ("upsert", "ESX-000001", 1), ("upsert", "ESX-000002", 1), ("delete", "ESX-000009", 3)]
    assert vec["ops"][0]["record_hex"] == V["record"]["msgpack_hex"]
    assert vec["ops"][0]["record_digest"] == V["record"]["digest"]
    for op in vec["ops"]:
        if op["op"] == "upsert":
            record = ChildRecord.from_wire(encoding.unpack(bytes.fromhex(op["record_hex"])))
            assert record.local_id == op["local_id"]


def test_batch_2_chains_to_batch_1() -> None:
    assert V["batch_2"]["seq"] == V["batch_1"]["seq"] + 1
    assert V["batch_2"]["prev"] == V["batch_1"]["hash"]
    assert V["batch_2"]["prev"] == hashlib.sha256(
        bytes.fromhex(V["batch_1"]["payload_hex"])).hexdigest()


# --- receipt ------------------------------------------------------------------


def test_receipt() -> None:
    vec = V["receipt"]
    payload = bytes.fromhex(vec["payload_hex"])
    results = tuple(OpResult(r["local_id"], r["status"], r.get("code"), r.get("message"))
                    for r in vec["results"])
    receipt = Receipt(vec["council"], vec["seq"], vec["batch_hash"], vec["applied_at"], results)
    assert receipt.encode() == payload
    assert Receipt.decode(payload) == receipt
    assert vec["batch_hash"] == V["batch_1"]["hash"] and vec["seq"] == V["batch_1"]["seq"]
    env = check_envelope(vec["envelope"], payload, "hub")
    assert env.payload_type == RECEIPT_TYPE


# --- request signing ----------------------------------------------------------


def body_of(vec: dict[str, Any]) -> bytes:
    """``body_is`` names the vector holding the body's hex (dotted path), or "empty"."""
    if vec["body_is"] == "empty":
        return b""
    node: Any = V
    for part in vec["body_is"].split("."):
        node = node[part]
    return bytes.fromhex(node)


@pytest.mark.parametrize("name", ["request_post_batch", "request_get_cursor",
                                  "request_post_key_announcement", "request_get_notices"])
def test_request(name: str) -> None:
    vec = V[name]
    body = body_of(vec)
    assert hashlib.sha256(body).hexdigest() == vec["body_sha256"]
    text = request_auth.canonical(vec["method"], vec["path"], body, vec["origin"],
                                  vec["timestamp"], vec["nonce"])
    assert text.decode() == vec["canonical"] == "\n".join([
        vec["method"], vec["path"], vec["body_sha256"], vec["origin"], str(vec["timestamp"]),
        vec["nonce"]])
    pae_bytes = bytes.fromhex(vec["pae_hex"])
    assert pae(request_auth.REQUEST_TYPE, text) == pae_bytes == hand_pae(
        "application/vnd.signpost.request-v1", text)
    headers = request_auth.sign_request(private("council"), vec["method"], vec["path"], body,
                                        vec["origin"], now=vec["timestamp"], nonce=vec["nonce"])
    assert headers == vec["headers"]
    assert headers["Signpost-Key-Id"] == V["keys"]["council"]["kid"]
    sig = base64.b64decode(headers["Signpost-Signature"], validate=True)
    assert keys.verify(public("council"), sig, pae_bytes)

    req = request_auth.parse_headers(vec["headers"])
    req.check_clock(now=vec["timestamp"])
    assert req.verify(public("council"), vec["method"], vec["path"], body)
    assert not req.verify(public("hub"), vec["method"], vec["path"], body)
    for changed in one_byte_changes(body or b"\0"):
        assert not req.verify(public("council"), vec["method"], vec["path"], changed)
    for changed in one_byte_changes(vec["path"].encode()):
        assert not req.verify(public("council"), vec["method"], changed.decode(), body)
    for changed in one_byte_changes(sig):
        assert not keys.verify(public("council"), changed, pae_bytes)


# --- key announcement ---------------------------------------------------------


def test_key_announcement() -> None:
    vec = V["key_announcement"]
    payload = bytes.fromhex(vec["payload_hex"])
    announcement = KeyAnnouncement(vec["council"], vec["new_kid"],
                                   bytes.fromhex(vec["new_public_key_hex"]), vec["old_kid"],
                                   vec["issued_at"], vec["not_after"])
    assert announcement.encode() == payload
    assert KeyAnnouncement.decode(payload) == announcement
    assert vec["old_kid"] == V["keys"]["council"]["kid"]
    assert vec["new_kid"] == V["keys"]["council_next"]["kid"] == hashlib.sha256(
        bytes.fromhex(vec["new_public_key_hex"])).digest()[:16].hex()
    assert vec["new_public_key_hex"] == V["keys"]["council_next"]["public_raw_hex"]

    env_vec = vec["envelope"]
    pae_bytes = bytes.fromhex(env_vec["pae_hex"])
    assert env_vec["payload_type"] == KEY_ANNOUNCEMENT_TYPE
    assert pae(KEY_ANNOUNCEMENT_TYPE, payload) == pae_bytes == hand_pae(KEY_ANNOUNCEMENT_TYPE,
                                                                        payload)
    env = Envelope.sign(KEY_ANNOUNCEMENT_TYPE, payload,
                        [private("council"), private("council_next")])
    envelope_bytes = bytes.fromhex(env_vec["envelope_hex"])
    assert env.encode() == envelope_bytes
    assert announcement.sign(private("council"), private("council_next")) == env
    assert hashlib.sha256(envelope_bytes).hexdigest() == env_vec["envelope_sha256"]
    # two signatures over the same PAE: the old key's first, then the new key's
    assert [s["kid"] for s in env_vec["signatures"]] == [vec["old_kid"], vec["new_kid"]]
    for sig_vec, signer in zip(env_vec["signatures"], ["council", "council_next"], strict=True):
        sig = bytes.fromhex(sig_vec["sig_hex"])
        assert keys.verify(public(signer), sig, pae_bytes)
        for changed in one_byte_changes(sig):
            assert not keys.verify(public(signer), changed, pae_bytes)
    decoded = Envelope.decode(envelope_bytes)
    assert open_announcement(decoded, public("council")) == announcement
    for changed in one_byte_changes(payload):
        tampered = Envelope(KEY_ANNOUNCEMENT_TYPE, changed, decoded.signatures)
        assert not tampered.verified_by(public("council"))
        assert not tampered.verified_by(public("council_next"))
    # one signature alone is not an announcement
    for alone in decoded.signatures:
        with pytest.raises(SignpostError) as refused:
            open_announcement(Envelope(KEY_ANNOUNCEMENT_TYPE, payload, (alone,)),
                              public("council"))
        assert refused.value.code == "announcement_bad_signature"


# --- plain HTTP bodies --------------------------------------------------------


@pytest.mark.parametrize("name", ["heartbeat", "cursor_response", "cursor_response_key_expiring",
                                  "key_announcement_response", "notices_page"])
def test_http_bodies(name: str) -> None:
    vec = V["http_bodies"][name]
    assert encoding.pack(vec["map"]) == bytes.fromhex(vec["msgpack_hex"])
    assert encoding.unpack(bytes.fromhex(vec["msgpack_hex"])) == vec["map"]


def test_notices_page_parses_to_the_notice_it_was_made_from() -> None:
    from protocol.notices import parse_page

    notices, nxt, more = parse_page(V["http_bodies"]["notices_page"]["map"])
    assert [n.to_wire() for n in notices] == V["http_bodies"]["notices_page"]["map"]["notices"]
    assert (nxt, more) == (12, False)
