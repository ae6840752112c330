"""Signatures over node-to-hub HTTP requests.

Every node request carries five headers. The signature is Ed25519 over
``PAE(REQUEST_TYPE, canonical)`` where ``canonical`` is the UTF-8 of::

    METHOD \\n PATH-WITH-QUERY \\n SHA256-HEX(BODY) \\n ORIGIN \\n TIMESTAMP \\n NONCE

The hub accepts a timestamp within ±300 s and remembers every nonce (in
PostgreSQL, shared by all replicas) for longer than that window, so a captured
request cannot be replayed.

    >>> from protocol import keys
    >>> k = keys.generate()
    >>> h = sign_request(k, "POST", "/v1/councils/E10000011/batches", b"x", "E10000011")
    >>> parse_headers(h).verify(k.public_key(), "POST", "/v1/councils/E10000011/batches", b"x")
    True
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol import encoding, keys
from protocol.errors import AuthError, ErrorCode
from protocol.signing import pae

REQUEST_TYPE = "application/vnd.signpost.request-v1"
CLOCK_SKEW_SECONDS = 300

H_ORIGIN = "Signpost-Origin"
H_TIMESTAMP = "Signpost-Timestamp"
H_NONCE = "Signpost-Nonce"
H_KEY_ID = "Signpost-Key-Id"
H_SIGNATURE = "Signpost-Signature"

_NONCE = re.compile(r"^[0-9a-f]{32}$")
_KID = re.compile(r"^[0-9a-f]{32}$")
# Plain decimal seconds, no sign or leading zero: the header text is then exactly
# what the canonical string holds, and the value always fits a float.
_TIMESTAMP = re.compile(r"^(0|[1-9][0-9]{0,11})$")


def canonical(method: str, path: str, body: bytes, origin: str, timestamp: int,
              nonce: str) -> bytes:
    parts = [method.upper(), path, encoding.sha256_hex(body), origin, str(timestamp), nonce]
    return "\n".join(parts).encode("utf-8")


def sign_request(key: Ed25519PrivateKey, method: str, path: str, body: bytes, origin: str,
                 *, now: float | None = None, nonce: str | None = None) -> dict[str, str]:
    timestamp = int(time.time() if now is None else now)
    nonce = nonce or secrets.token_hex(16)
    message = pae(REQUEST_TYPE, canonical(method, path, body, origin, timestamp, nonce))
    return {
        H_ORIGIN: origin,
        H_TIMESTAMP: str(timestamp),
        H_NONCE: nonce,
        H_KEY_ID: keys.key_id(key.public_key()),
        H_SIGNATURE: base64.b64encode(key.sign(message)).decode("ascii"),
    }


@dataclass(frozen=True, slots=True)
class SignedRequest:
    origin: str
    timestamp: int
    nonce: str
    kid: str
    signature: bytes

    def check_clock(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if abs(now - self.timestamp) > CLOCK_SKEW_SECONDS:
            raise AuthError(
                f"request timestamp is {int(now - self.timestamp)} s from the hub's clock "
                f"(allowed ±{CLOCK_SKEW_SECONDS} s)",
                code=ErrorCode.AUTH_STALE_TIMESTAMP,
            )

    def verify(self, public_key: Ed25519PublicKey, method: str, path: str, body: bytes) -> bool:
        message = pae(REQUEST_TYPE, canonical(method, path, body, self.origin,
                                              self.timestamp, self.nonce))
        return keys.verify(public_key, self.signature, message)


def parse_headers(headers: Mapping[str, str]) -> SignedRequest:
    """Read the five auth headers; anything missing or malformed is an AuthError."""
    missing = [h for h in (H_ORIGIN, H_TIMESTAMP, H_NONCE, H_KEY_ID, H_SIGNATURE)
               if not headers.get(h)]
    if missing:
        raise AuthError(f"missing request signature headers: {', '.join(missing)}",
                        code=ErrorCode.AUTH_MISSING)
    if not _TIMESTAMP.fullmatch(headers[H_TIMESTAMP]):
        raise AuthError("malformed timestamp header", code=ErrorCode.AUTH_MISSING)
    try:
        timestamp = int(headers[H_TIMESTAMP])
        signature = base64.b64decode(headers[H_SIGNATURE], validate=True)
    except (ValueError, binascii.Error) as exc:
        raise AuthError("malformed timestamp or signature header",
                        code=ErrorCode.AUTH_MISSING) from exc
    nonce, kid = headers[H_NONCE], headers[H_KEY_ID]
    if not _NONCE.fullmatch(nonce) or not _KID.fullmatch(kid) or len(signature) != 64:
        raise AuthError("malformed nonce, key id or signature header",
                        code=ErrorCode.AUTH_MISSING)
    return SignedRequest(headers[H_ORIGIN], timestamp, nonce, kid, signature)
