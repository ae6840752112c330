"""The public-key check (protocol.ed25519_points): honest keys always pass, every key
with a torsion part and every second spelling of a point is refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import ed25519_points, keys
from protocol.errors import ErrorCode

SEEDS = st.binary(min_size=32, max_size=32)


def public_of(seed: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return keys.raw_public(Ed25519PrivateKey.from_private_bytes(seed).public_key())


@settings(max_examples=25, deadline=None)
@given(SEEDS, st.integers(min_value=1, max_value=7))
def test_honest_keys_pass_and_any_torsion_part_is_refused(seed: bytes, index: int) -> None:
    raw = public_of(seed)
    assert ed25519_points.weakness(raw) is None
    decoded = ed25519_points.decode(raw)
    assert decoded is not None and ed25519_points.encode(decoded) == raw
    assert ed25519_points.weakness(ed25519_points.add_torsion(raw, index)) == \
        "mixed-order point"


def test_the_eight_small_order_points_are_distinct_and_refused() -> None:
    points = ed25519_points.torsion_points()
    assert len(set(points)) == 8
    assert all(ed25519_points.weakness(p) == "small-order point" for p in points)


@pytest.mark.parametrize("value", [ed25519_points.P, ed25519_points.P + 1, 2**255 - 1,
                                   1 | 1 << 255])
def test_second_spellings_are_refused(value: int) -> None:
    assert ed25519_points.weakness(value.to_bytes(32, "little")) == "non-canonical encoding"


def test_a_stored_weak_key_is_refused_with_a_stable_code() -> None:
    with pytest.raises(keys.WeakKeyError) as caught:
        keys.public_from_raw(bytes(32))
    assert caught.value.code is ErrorCode.WEAK_KEY and caught.value.status == 400
    assert caught.value.detail == {"field": "public key", "reason": "small-order point"}
