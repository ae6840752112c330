"""Signatures over node requests (protocol.request_auth)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import keys, request_auth
from protocol.errors import AuthError, ErrorCode
from protocol.request_auth import (
    CLOCK_SKEW_SECONDS,
    H_KEY_ID,
    H_NONCE,
    H_ORIGIN,
    H_SIGNATURE,
    H_TIMESTAMP,
    REQUEST_TYPE,
    canonical,
    parse_headers,
    sign_request,
)
from protocol.signing import pae

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
NOW = 1_795_600_800
PATH = "/v1/councils/E10000011/batches"
BODY = b"\x83\xa1a\x01"
NONCE = "00112233445566778899aabbccddeeff"


def signed() -> dict[str, str]:
    return sign_request(KEY, "POST", PATH, BODY, "E10000011", now=NOW, nonce=NONCE)


def test_canonical_string() -> None:
    text = canonical("post", PATH, BODY, "E10000011", NOW, NONCE)
    assert text == "\n".join(["POST", PATH, hashlib.sha256(BODY).hexdigest(), "E10000011",
                              str(NOW), NONCE]).encode()
    assert canonical("GET", "/v1/hub/key", b"", "E10000011", NOW, NONCE).split(b"\n")[2] == (
        b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


def test_headers() -> None:
    headers = signed()
    assert headers[H_ORIGIN] == "E10000011"
    assert headers[H_TIMESTAMP] == str(NOW)
    assert headers[H_NONCE] == NONCE
    assert headers[H_KEY_ID] == keys.key_id(KEY.public_key())
    sig = base64.b64decode(headers[H_SIGNATURE], validate=True)
    message = pae(REQUEST_TYPE, canonical("POST", PATH, BODY, "E10000011", NOW, NONCE))
    KEY.public_key().verify(sig, message)  # raises if wrong


def test_fresh_nonce_each_time() -> None:
    a = sign_request(KEY, "GET", PATH, b"", "E10000011")
    b = sign_request(KEY, "GET", PATH, b"", "E10000011")
    assert a[H_NONCE] != b[H_NONCE]
    assert len(a[H_NONCE]) == 32 and int(a[H_NONCE], 16) >= 0


def test_verifies() -> None:
    req = parse_headers(signed())
    req.check_clock(now=NOW)
    assert req.verify(KEY.public_key(), "POST", PATH, BODY)
    assert req.verify(KEY.public_key(), "post", PATH, BODY)  # the method is upper-cased


@pytest.mark.parametrize("method, path, body", [
    ("PUT", PATH, BODY),
    ("POST", "/v1/councils/E10000032/batches", BODY),
    ("POST", PATH + "?x=1", BODY),
    ("POST", PATH + "/", BODY),
    ("POST", PATH, BODY + b"\x00"),
    ("POST", PATH, b""),
    ("POST", PATH, b"\x83\xa1a\x02"),
])
def test_tampered_request_fails(method: str, path: str, body: bytes) -> None:
    assert not parse_headers(signed()).verify(KEY.public_key(), method, path, body)


def test_wrong_key_fails() -> None:
    assert not parse_headers(signed()).verify(OTHER.public_key(), "POST", PATH, BODY)


@pytest.mark.parametrize("header, value", [
    (H_ORIGIN, "E10000032"),
    (H_TIMESTAMP, str(NOW + 1)),
    (H_NONCE, "f" * 32),
])
def test_tampered_header_fails(header: str, value: str) -> None:
    headers = {**signed(), header: value}
    assert not parse_headers(headers).verify(KEY.public_key(), "POST", PATH, BODY)


@pytest.mark.parametrize("offset", [0, 1, -1, CLOCK_SKEW_SECONDS, -CLOCK_SKEW_SECONDS])
def test_clock_within_window(offset: int) -> None:
    parse_headers(signed()).check_clock(now=NOW + offset)


@pytest.mark.parametrize("offset", [CLOCK_SKEW_SECONDS + 1, -CLOCK_SKEW_SECONDS - 1, 86_400])
def test_stale_timestamp(offset: int) -> None:
    with pytest.raises(AuthError) as err:
        parse_headers(signed()).check_clock(now=NOW + offset)
    assert err.value.code == ErrorCode.AUTH_STALE_TIMESTAMP
    assert err.value.status == 401
    assert not err.value.retryable


@pytest.mark.parametrize("header", [H_ORIGIN, H_TIMESTAMP, H_NONCE, H_KEY_ID, H_SIGNATURE])
def test_missing_header(header: str) -> None:
    headers = signed()
    del headers[header]
    with pytest.raises(AuthError) as err:
        parse_headers(headers)
    assert err.value.code == ErrorCode.AUTH_MISSING
    assert header in err.value.message
    with pytest.raises(AuthError):
        parse_headers({**signed(), header: ""})


@pytest.mark.parametrize("header, value", [
    (H_TIMESTAMP, "soon"),
    (H_TIMESTAMP, "-1795600800"),
    (H_TIMESTAMP, "+1795600800"),
    (H_TIMESTAMP, "01795600800"),
    (H_TIMESTAMP, "1_795_600_800"),
    (H_TIMESTAMP, " 1795600800"),
    (H_TIMESTAMP, "1795600800.5"),
    (H_TIMESTAMP, "1" + "0" * 400),
    (H_TIMESTAMP, "١٧٩٥٦٠٠٨٠٠"),
    (H_NONCE, "0011"),
    (H_NONCE, NONCE.upper()),
    (H_NONCE, NONCE + "\n"),
    (H_KEY_ID, "k1"),
    (H_KEY_ID, "0" * 32 + "\n"),
    (H_SIGNATURE, "not base64!"),
    (H_SIGNATURE, base64.b64encode(b"\0" * 63).decode()),
    (H_SIGNATURE, base64.b64encode(b"\0" * 64).decode().rstrip("=")),
])
def test_malformed_header(header: str, value: str) -> None:
    with pytest.raises(AuthError) as err:
        parse_headers({**signed(), header: value})
    assert err.value.code == ErrorCode.AUTH_MISSING
    assert err.value.status == 401


def test_timestamp_zero_parses() -> None:
    assert parse_headers({**signed(), H_TIMESTAMP: "0"}).timestamp == 0


@settings(max_examples=100)
@given(method=st.sampled_from(["GET", "POST"]),
       path=st.from_regex(r"\A/v1/[a-z0-9/]{0,40}\Z"),
       body=st.binary(max_size=200),
       origin=st.from_regex(r"\A[A-Z][0-9]{8}\Z"),
       now=st.integers(0, 10**11))
def test_round_trip(method: str, path: str, body: bytes, origin: str, now: int) -> None:
    headers = sign_request(KEY, method, path, body, origin, now=now)
    req = parse_headers(headers)
    assert (req.origin, req.timestamp, req.kid) == (origin, now, keys.key_id(KEY.public_key()))
    req.check_clock(now=now)
    assert req.verify(KEY.public_key(), method, path, body)
    assert not req.verify(OTHER.public_key(), method, path, body)


def test_module_exports() -> None:
    assert request_auth.REQUEST_TYPE == "application/vnd.signpost.request-v1"
    assert CLOCK_SKEW_SECONDS == 300
