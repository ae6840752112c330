"""DSSE-style signed envelopes: Ed25519 over PAE(payload_type, exact payload bytes).

The signature covers the payload *bytes*, never a re-serialised object, so a
receiver verifies exactly what it stores. Wire form (msgpack map)::

    {"payload_type": str, "payload": bin, "signatures": [{"kid": str, "sig": bin}]}

    >>> from protocol import keys
    >>> k = keys.generate()
    >>> env = Envelope.sign("application/vnd.signpost.test", b"hello", [k])
    >>> Envelope.decode(env.encode()).verified_by(k.public_key())
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol import encoding, keys
from protocol.errors import DecodeError, ErrorCode

BATCH_TYPE = "application/vnd.signpost.batch+msgpack"
RECEIPT_TYPE = "application/vnd.signpost.receipt+msgpack"
KEY_ANNOUNCEMENT_TYPE = "application/vnd.signpost.key-announcement+msgpack"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: lengths are ASCII decimal byte counts."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


@dataclass(frozen=True, slots=True)
class Signature:
    kid: str
    sig: bytes


@dataclass(frozen=True, slots=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    @classmethod
    def sign(cls, payload_type: str, payload: bytes,
             signers: list[Ed25519PrivateKey]) -> Envelope:
        message = pae(payload_type, payload)
        return cls(
            payload_type=payload_type,
            payload=payload,
            signatures=tuple(
                Signature(kid=keys.key_id(k.public_key()), sig=k.sign(message)) for k in signers
            ),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "payload_type": self.payload_type,
            "payload": self.payload,
            "signatures": [{"kid": s.kid, "sig": s.sig} for s in self.signatures],
        }

    def encode(self) -> bytes:
        return encoding.pack(self.to_wire())

    @classmethod
    def decode(cls, data: bytes) -> Envelope:
        obj = encoding.unpack(data, what="envelope")
        return cls.from_wire(obj)

    @classmethod
    def from_wire(cls, obj: Any) -> Envelope:
        if not isinstance(obj, dict):
            raise DecodeError("envelope must be a map", code=ErrorCode.MALFORMED_REQUEST)
        payload_type = obj.get("payload_type")
        payload = obj.get("payload")
        sigs = obj.get("signatures")
        if not isinstance(payload_type, str) or not isinstance(payload, bytes):
            raise DecodeError("envelope needs payload_type (str) and payload (bin)",
                              code=ErrorCode.MALFORMED_REQUEST)
        if not isinstance(sigs, list) or not 1 <= len(sigs) <= 4:
            raise DecodeError("envelope needs 1 to 4 signatures",
                              code=ErrorCode.MALFORMED_REQUEST)
        parsed = []
        for s in sigs:
            if (not isinstance(s, dict) or not isinstance(s.get("kid"), str)
                    or not isinstance(s.get("sig"), bytes) or len(s["sig"]) != 64):
                raise DecodeError("each signature needs kid (str) and sig (64-byte bin)",
                                  code=ErrorCode.MALFORMED_REQUEST)
            parsed.append(Signature(kid=s["kid"], sig=s["sig"]))
        return cls(payload_type=payload_type, payload=payload, signatures=tuple(parsed))

    def signature_for(self, kid: str) -> Signature | None:
        return next((s for s in self.signatures if s.kid == kid), None)

    def verified_by(self, public_key: Ed25519PublicKey) -> bool:
        """True if some signature on the envelope verifies with this key."""
        message = pae(self.payload_type, self.payload)
        return any(keys.verify(public_key, s.sig, message) for s in self.signatures)
