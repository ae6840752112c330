"""Is a 32-byte Ed25519 public key a canonical encoding of a point of prime order?

OpenSSL (and so ``cryptography``) verifies against whatever 32 bytes it is given.
For a *small-order* public key A (one of the 8 points of order 1, 2, 4 or 8), the
signature R = identity, S = 0 satisfies the verification equation [S]B = R + [k]A
for every message whenever [8·k]A vanishes, so anyone can "sign" for such a key
without a private key. A *mixed-order* key (prime-order part plus a torsion part)
lets its holder make signatures that verify under one implementation and not
another. Keys made honestly (clamped scalar × B) are never either, so refusing
them costs an honest council nothing.

The rules (RFC 8032 §5.1.3 decoding, made strict):

1. ``y`` (the low 255 bits, little-endian) must be < p (no second encoding of y);
2. ``x`` must exist on the curve for that ``y``;
3. ``x = 0`` with the sign bit set is refused (``-0`` is a second encoding of 0);
4. the point must not be the identity and [L]·P must be the identity, i.e. the
   point has exactly the prime order L: this refuses all 8 small-order points
   and every point with a torsion component.

A plain-Python scalar multiplication (extended coordinates, the complete
addition law of RFC 8032 §5.1.4) takes milliseconds: fine, as it runs when a key
enters (enrolment, rotation, a key file), and results are cached by key bytes.

    >>> from protocol import keys
    >>> weakness(keys.raw_public(keys.generate().public_key())) is None
    True
    >>> weakness(bytes(32))     # y = 0: the point (sqrt(-1), 0), order 4
    'small-order point'
    >>> weakness(b"\\x01" + bytes(31))    # the identity
    'small-order point'
"""

from __future__ import annotations

import functools

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)

Point = tuple[int, int, int, int]  # extended homogeneous (X, Y, Z, T), x = X/Z, y = Y/Z
IDENTITY: Point = (0, 1, 1, 0)


def _add(p1: Point, p2: Point) -> Point:
    """RFC 8032 §5.1.4 addition: complete for Ed25519, so doubling is _add(p, p)."""
    a = (p1[1] - p1[0]) * (p2[1] - p2[0]) % P
    b = (p1[1] + p1[0]) * (p2[1] + p2[0]) % P
    c = 2 * p1[3] * p2[3] * D % P
    d = 2 * p1[2] * p2[2] % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _multiply(scalar: int, point: Point) -> Point:
    result = IDENTITY
    while scalar:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    return result


def _is_identity(point: Point) -> bool:
    x, y, z, _ = point
    return x % P == 0 and (y - z) % P == 0


def decode(raw: bytes) -> Point | None:
    """The point ``raw`` encodes under the strict rules 1–3, or None."""
    if len(raw) != 32:
        return None
    value = int.from_bytes(raw, "little")
    sign, y = value >> 255, value & ((1 << 255) - 1)
    if y >= P:
        return None
    u, v = (y * y - 1) % P, (D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    if v * x * x % P == (-u) % P:
        x = x * SQRT_M1 % P
    elif v * x * x % P != u:
        return None  # no x: not a point on the curve
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = P - x
    return (x, y, 1, x * y % P)


@functools.lru_cache(maxsize=1024)
def weakness(raw: bytes) -> str | None:
    """Why ``raw`` is not an acceptable Ed25519 public key, or None if it is."""
    if len(raw) != 32:
        return "not 32 bytes"
    point = decode(raw)
    if point is None:
        return "non-canonical encoding"  # y >= p, no such point, or x = -0
    if _is_identity(_multiply(8, point)):
        return "small-order point"
    if not _is_identity(_multiply(L, point)):
        return "mixed-order point"
    return None


def torsion_points() -> list[bytes]:
    """The encodings of the 8 points of order dividing 8 (for tests and vectors)."""
    found = []
    # Generated from a point of order 8: y with x² = (y² - 1)/(d y² + 1) such that
    # [4]P = (0, -1). The known encoding below is the canonical one of order 8.
    base = decode(bytes.fromhex(
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"))
    assert base is not None
    point = IDENTITY
    for _ in range(8):
        found.append(encode(point))
        point = _add(point, base)
    return found


def encode(point: Point) -> bytes:
    x, y, z, _ = point
    inverse = pow(z, P - 2, P)
    x, y = x * inverse % P, y * inverse % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def add_torsion(raw: bytes, index: int = 1) -> bytes:
    """``raw``'s point plus the ``index``-th torsion point: a mixed-order key (tests)."""
    point, torsion = decode(raw), decode(torsion_points()[index])
    assert point is not None and torsion is not None
    return encode(_add(point, torsion))
