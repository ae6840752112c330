"""Key announcements: round trips, and every broken field refused with its name.

Byte-exact examples are in vectors.json (``key_announcement``); random and
truncated bytes are in test_hostile_input.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings

from protocol import encoding, keys
from protocol.errors import ErrorCode, SignpostError, ValidationError
from protocol.key_announcement import KeyAnnouncement, open_announcement
from protocol.signing import BATCH_TYPE, Envelope
from tests import strategies

OLD = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
NEW = Ed25519PrivateKey.from_private_bytes(bytes(range(64, 96)))
GOOD = KeyAnnouncement.of("E10000011", OLD, NEW, issued_at="2026-11-25T11:00:00Z",
                          not_after="2027-11-25T00:00:00Z")
FEW = settings(max_examples=60, deadline=None)


@FEW
@given(announcement=strategies.key_announcements())
def test_round_trip(announcement: KeyAnnouncement) -> None:
    assert KeyAnnouncement.decode(announcement.encode()) == announcement


@FEW
@given(data=strategies.mutated_maps(
    strategies.key_announcements().map(lambda a: a.to_wire()),
    extra_keys=["council", "new_kid", "new_public_key", "old_kid", "issued_at", "not_after"]))
def test_mutated_announcement_is_refused_cleanly(data: dict[str, Any]) -> None:
    try:
        KeyAnnouncement.decode(encoding.pack(data))
    except SignpostError as exc:
        assert exc.code in (ErrorCode.INVALID_FIELD, ErrorCode.MALFORMED_REQUEST)


BAD_FIELDS: dict[str, tuple[dict[str, Any], str]] = {
    "missing council": ({"council": None}, "council"),
    "bad council": ({"council": "ESX"}, "council"),
    "kid too short": ({"new_kid": "abc"}, "new_kid"),
    "kid upper case": ({"old_kid": GOOD.old_kid.upper()}, "old_kid"),
    "kid not of the key": ({"new_kid": GOOD.old_kid}, "new_kid"),
    "public key as str": ({"new_public_key": GOOD.new_public_key.hex()}, "new_public_key"),
    "public key short": ({"new_public_key": GOOD.new_public_key[:31]}, "new_public_key"),
    "issued_at not UTC": ({"issued_at": "2026-11-25T11:00:00+01:00"}, "issued_at"),
    "issued_at not a date": ({"issued_at": "2026-02-30T11:00:00Z"}, "issued_at"),
    "not_after as int": ({"not_after": 1795600800}, "not_after"),
    "not_after before issued_at": ({"not_after": "2026-11-25T10:59:59Z"}, "not_after"),
    "unknown key": ({"revoke_old": True}, "revoke_old"),
}


@pytest.mark.parametrize("case", list(BAD_FIELDS))
def test_bad_field_is_named(case: str) -> None:
    change, field = BAD_FIELDS[case]
    wire = GOOD.to_wire() | change
    with pytest.raises(ValidationError) as refused:
        KeyAnnouncement.decode(encoding.pack(wire))
    assert refused.value.field == field and refused.value.code == ErrorCode.INVALID_FIELD


def test_same_key_twice_and_not_a_map() -> None:
    with pytest.raises(ValidationError, match="equals old_kid"):
        KeyAnnouncement.of("E10000011", OLD, OLD, issued_at="2026-11-25T11:00:00Z").encode()
    with pytest.raises(SignpostError) as refused:
        KeyAnnouncement.decode(encoding.pack([1, 2]))
    assert refused.value.code == ErrorCode.MALFORMED_REQUEST
    assert "not_after" not in KeyAnnouncement.of(
        "E10000011", OLD, NEW, issued_at="2026-11-25T11:00:00Z").to_wire()  # absent, not nil


def test_open_needs_the_right_type_the_old_key_and_both_signatures() -> None:
    payload = GOOD.encode()
    env = GOOD.sign(OLD, NEW)
    assert open_announcement(Envelope.decode(env.encode()), OLD.public_key()) == GOOD
    cases = {
        ErrorCode.ENVELOPE_WRONG_TYPE: (Envelope.sign(BATCH_TYPE, payload, [OLD, NEW]),
                                        OLD.public_key()),
        ErrorCode.ANNOUNCEMENT_WRONG_KEY: (env, NEW.public_key()),
        ErrorCode.ANNOUNCEMENT_BAD_SIGNATURE: (GOOD.sign(NEW, NEW), OLD.public_key()),
    }
    for code, (envelope, old_public) in cases.items():
        with pytest.raises(SignpostError) as refused:
            open_announcement(envelope, old_public)
        assert refused.value.code == code
    # a third party's signature does not stand in for either key
    stranger = keys.generate()
    with pytest.raises(SignpostError) as refused:
        open_announcement(GOOD.sign(OLD, stranger), OLD.public_key())
    assert refused.value.detail["missing"] == "new"
