"""Secrets and their checks: argon2id password hashes, TOTP codes, random ids.

Nothing here touches the database or the network.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

ISSUER = "Signpost"
TOTP_PERIOD = 30
# A code from the step before or after the current one is accepted: clocks drift.
TOTP_WINDOW = 1

# argon2-cffi's defaults are RFC 9106's low-memory recommendation, type argon2id.
_hasher = PasswordHasher()
# Verified against when the user does not exist, so that case costs the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with older parameters than today's."""
    return _hasher.check_needs_rehash(password_hash)


def generate_password() -> str:
    return secrets.token_urlsafe(15)  # 120 bits, 20 characters


def new_totp_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, name: str, issuer: str = ISSUER) -> str:
    return pyotp.TOTP(secret, interval=TOTP_PERIOD).provisioning_uri(name=name,
                                                                    issuer_name=issuer)


def totp_now(secret: str, at: float | None = None) -> str:
    """The code an authenticator app shows now (tests and the demo use it)."""
    return pyotp.TOTP(secret, interval=TOTP_PERIOD).at(at if at is not None else time.time())


def totp_step(secret: str, code: str, at: float | None = None) -> int | None:
    """The time step ``code`` belongs to (within the window), or None if it is wrong.

    The step lets the caller refuse a code already used (replay)."""
    code = code.strip()
    if len(code) != 6 or not (code.isascii() and code.isdigit()):  # "٣" is a digit too
        return None
    totp = pyotp.TOTP(secret, interval=TOTP_PERIOD)
    now_step = int((at if at is not None else time.time()) // TOTP_PERIOD)
    for step in range(now_step - TOTP_WINDOW, now_step + TOTP_WINDOW + 1):
        if hmac.compare_digest(totp.at(step * TOTP_PERIOD), code):
            return step
    return None


_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # what token_urlsafe(32) makes


def new_secret_token(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


def is_secret_token(value: str) -> bool:
    """Whether ``value`` could be a :func:`new_secret_token` without a prefix."""
    return _SECRET_TOKEN.fullmatch(value) is not None


def _bytes(value: str) -> bytes:
    # A header or cookie of bytes that are not UTF-8 reaches us with them as lone
    # surrogates (aiohttp decodes with surrogateescape), which plain UTF-8 cannot encode
    return value.encode("utf-8", "surrogateescape")


def same(a: str | None, b: str | None) -> bool:
    """Both given and equal, compared in constant time (any text: ``hmac.compare_digest``
    refuses non-ASCII strings with a TypeError)."""
    return bool(a) and bool(b) and hmac.compare_digest(_bytes(str(a)), _bytes(str(b)))


def digest(token: str) -> bytes:
    """What is stored for a session id or bearer token: its sha256 (they are random
    and long, so no salt or slow hash is needed). Any text: a token that is not one of
    ours digests to something no stored one matches."""
    return hashlib.sha256(_bytes(token)).digest()
