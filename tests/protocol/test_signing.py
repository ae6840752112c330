"""DSSE-style envelopes, PAE and key ids (protocol.signing, protocol.keys)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import encoding, keys
from protocol.errors import DecodeError, ErrorCode, ValidationError
from protocol.signing import (
    BATCH_TYPE,
    KEY_ANNOUNCEMENT_TYPE,
    RECEIPT_TYPE,
    Envelope,
    Signature,
    pae,
)

KEY_A = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
KEY_B = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


# --- PAE ----------------------------------------------------------------------


def test_pae_bytes() -> None:
    assert pae("t", b"") == b"DSSEv1 1 t 0 "
    assert pae("application/vnd.signpost.test", b"hello") == (
        b"DSSEv1 29 application/vnd.signpost.test 5 hello")
    # Lengths count UTF-8 bytes, not characters.
    assert pae("é", b"\x00\xff") == b"DSSEv1 2 \xc3\xa9 2 \x00\xff"


@settings(max_examples=200)
@given(st.text(max_size=40), st.binary(max_size=64), st.text(max_size=40), st.binary(max_size=64))
def test_pae_is_injective(t1: str, p1: bytes, t2: str, p2: bytes) -> None:
    if (t1, p1) != (t2, p2):
        assert pae(t1, p1) != pae(t2, p2)


def test_payload_types() -> None:
    assert BATCH_TYPE == "application/vnd.signpost.batch+msgpack"
    assert RECEIPT_TYPE == "application/vnd.signpost.receipt+msgpack"
    assert KEY_ANNOUNCEMENT_TYPE == "application/vnd.signpost.key-announcement+msgpack"


# --- envelopes ----------------------------------------------------------------


def test_sign_and_verify() -> None:
    env = Envelope.sign(BATCH_TYPE, b"payload", [KEY_A])
    assert env.signatures[0].kid == keys.key_id(KEY_A.public_key())
    assert env.verified_by(KEY_A.public_key())
    assert not env.verified_by(KEY_B.public_key())
    decoded = Envelope.decode(env.encode())
    assert decoded == env
    assert decoded.verified_by(KEY_A.public_key())


def test_wire_form() -> None:
    env = Envelope.sign(RECEIPT_TYPE, b"p", [KEY_A])
    wire = encoding.unpack(env.encode())
    assert list(wire) == ["payload_type", "payload", "signatures"]
    assert wire["payload"] == b"p"
    assert wire["signatures"] == [{"kid": env.signatures[0].kid, "sig": env.signatures[0].sig}]


def test_signature_covers_type_and_exact_bytes() -> None:
    env = Envelope.sign(BATCH_TYPE, b"payload", [KEY_A])
    sig = env.signatures
    assert not Envelope(RECEIPT_TYPE, b"payload", sig).verified_by(KEY_A.public_key())
    assert not Envelope(BATCH_TYPE, b"payloaD", sig).verified_by(KEY_A.public_key())
    assert not Envelope(BATCH_TYPE, b"payload ", sig).verified_by(KEY_A.public_key())


@settings(max_examples=100)
@given(st.binary(min_size=1, max_size=200), st.data())
def test_any_one_byte_change_fails(payload: bytes, data: st.DataObject) -> None:
    env = Envelope.sign(BATCH_TYPE, payload, [KEY_A])
    i = data.draw(st.integers(0, len(payload) - 1))
    flip = data.draw(st.integers(1, 255))
    changed = payload[:i] + bytes([payload[i] ^ flip]) + payload[i + 1:]
    assert not Envelope(BATCH_TYPE, changed, env.signatures).verified_by(KEY_A.public_key())
    j = data.draw(st.integers(0, 63))
    sig = bytearray(env.signatures[0].sig)
    sig[j] ^= flip
    forged = Envelope.from_wire({"payload_type": BATCH_TYPE, "payload": payload,
                                 "signatures": [{"kid": env.signatures[0].kid, "sig": bytes(sig)}]})
    assert not forged.verified_by(KEY_A.public_key())


def test_two_signers_for_rotation() -> None:
    env = Envelope.sign(KEY_ANNOUNCEMENT_TYPE, b"new key", [KEY_A, KEY_B])
    assert env.verified_by(KEY_A.public_key()) and env.verified_by(KEY_B.public_key())
    kid_b = keys.key_id(KEY_B.public_key())
    found = env.signature_for(kid_b)
    assert found is not None and found.kid == kid_b
    assert env.signature_for("0" * 32) is None


def test_kid_is_only_a_hint() -> None:
    # A wrong kid does not stop a signature from verifying with the right key.
    env = Envelope.sign(BATCH_TYPE, b"x", [KEY_A])
    relabelled = Envelope(BATCH_TYPE, b"x", (Signature("f" * 32, env.signatures[0].sig),))
    assert relabelled.verified_by(KEY_A.public_key())


def _wire(**extra: Any) -> dict[str, Any]:
    return {"payload_type": BATCH_TYPE, "payload": b"x",
            "signatures": [{"kid": "k", "sig": b"\0" * 64}], **extra}


@pytest.mark.parametrize("obj", [
    [],
    _wire(payload_type=None),
    _wire(payload_type=b"t"),
    _wire(payload="x"),
    _wire(signatures=[]),
    _wire(signatures=[{"kid": "k", "sig": b"\0" * 64}] * 5),
    _wire(signatures={"kid": "k"}),
    _wire(signatures=[{"kid": "k", "sig": b"\0" * 63}]),
    _wire(signatures=[{"kid": b"k", "sig": b"\0" * 64}]),
    _wire(signatures=[{"sig": b"\0" * 64}]),
    _wire(signatures=["k"]),
])
def test_malformed_envelopes(obj: Any) -> None:
    with pytest.raises(DecodeError) as err:
        Envelope.decode(encoding.pack(obj))
    assert err.value.code == ErrorCode.MALFORMED_REQUEST


def test_four_signatures_allowed() -> None:
    env = Envelope.from_wire(_wire(signatures=[{"kid": "k", "sig": b"\0" * 64}] * 4))
    assert len(env.signatures) == 4


# --- keys ---------------------------------------------------------------------


def test_key_id_is_first_16_bytes_of_sha256_of_raw_key() -> None:
    raw = keys.raw_public(KEY_A.public_key())
    assert len(raw) == 32
    assert keys.key_id(KEY_A.public_key()) == hashlib.sha256(raw).hexdigest()[:32]


def test_key_files_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "node.pem"
    keys.write_private_key(KEY_A, path)
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = keys.load_private_key(path)
    assert keys.raw_public(loaded.public_key()) == keys.raw_public(KEY_A.public_key())
    pub = keys.load_public_key(keys.public_path_for(path).read_bytes())
    assert keys.key_id(pub) == keys.key_id(KEY_A.public_key())
    raw = keys.load_public_key(keys.raw_public(KEY_A.public_key()))
    assert keys.key_id(raw) == keys.key_id(KEY_A.public_key())


def test_non_ed25519_public_key_is_refused() -> None:
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = other.public_bytes(serialization.Encoding.PEM,
                             serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ValidationError):
        keys.load_public_key(pem)
    with pytest.raises(ValidationError):
        keys.load_public_key(b"not a key")
