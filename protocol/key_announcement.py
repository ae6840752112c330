"""Key announcements: a council introduces its next signing key, signed by old and new.

The payload of an Envelope of type ``KEY_ANNOUNCEMENT_TYPE`` is a msgpack map::

    {"council": "E10000011",
     "new_kid": "<kid of new_public_key>", "new_public_key": bin(32 raw Ed25519 bytes),
     "old_kid": "<kid of the key being retired>",
     "issued_at": "2026-11-25T10:00:00Z", "not_after": "2027-11-25T00:00:00Z" | absent}

The envelope carries two signatures over the same PAE: one by the old key (the
council, as the hub knows it, vouches for the new key) and one by the new key
(whoever announces it holds its private half). ``not_after`` is the expiry the
council asks for the new key; absent means none.

    >>> from protocol import keys
    >>> old, new = keys.generate(), keys.generate()
    >>> ann = KeyAnnouncement.of("E10000011", old, new, issued_at="2026-11-25T10:00:00Z")
    >>> env = ann.sign(old, new)
    >>> opened = open_announcement(Envelope.decode(env.encode()), old.public_key())
    >>> opened == ann
    True

Unlike batches, the map refuses unknown keys: a hub must not enrol a key under
conditions it does not understand (a later version gets a new payload type).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol import encoding, keys
from protocol.batch import check_council_code
from protocol.errors import AuthError, DecodeError, ErrorCode, ValidationError
from protocol.signing import KEY_ANNOUNCEMENT_TYPE, Envelope

_KID = re.compile(r"^[0-9a-f]{32}$")
# RFC 3339 in UTC with a Z suffix and optional fraction, as everywhere in the protocol.
_TIMESTAMP = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z$")
_FIELDS = ("council", "new_kid", "new_public_key", "old_kid", "issued_at", "not_after")


def parse_timestamp(value: str, field: str) -> datetime:
    """An RFC 3339 UTC timestamp (``…Z``) as an aware datetime; else ValidationError."""
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        raise ValidationError(field, "must be an RFC 3339 UTC timestamp like "
                                     "2026-11-25T10:00:00Z")
    try:
        return datetime.fromisoformat(value[:-1]).replace(tzinfo=UTC)
    except ValueError as exc:
        raise ValidationError(field, f"is not a real date and time: {value!r}") from exc


def format_timestamp(when: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` (UTC, whole seconds) for key times on the wire."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class KeyAnnouncement:
    council: str
    new_kid: str
    new_public_key: bytes  # raw 32-byte Ed25519 public key
    old_kid: str
    issued_at: str
    not_after: str | None = None

    @classmethod
    def of(cls, council: str, old: Ed25519PrivateKey, new: Ed25519PrivateKey, *,
           issued_at: str, not_after: str | None = None) -> KeyAnnouncement:
        public = new.public_key()
        return cls(council, keys.key_id(public), keys.raw_public(public),
                   keys.key_id(old.public_key()), issued_at, not_after)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"council": self.council, "new_kid": self.new_kid,
                               "new_public_key": self.new_public_key,
                               "old_kid": self.old_kid, "issued_at": self.issued_at}
        if self.not_after is not None:
            out["not_after"] = self.not_after
        return out

    def encode(self) -> bytes:
        self.check()
        return encoding.pack(self.to_wire())

    def sign(self, old: Ed25519PrivateKey, new: Ed25519PrivateKey) -> Envelope:
        """The envelope, signed by the old key first and then the new one."""
        return Envelope.sign(KEY_ANNOUNCEMENT_TYPE, self.encode(), [old, new])

    @property
    def new_public(self) -> Ed25519PublicKey:
        return keys.public_from_raw(self.new_public_key)

    @property
    def not_after_time(self) -> datetime | None:
        return None if self.not_after is None else parse_timestamp(self.not_after, "not_after")

    def check(self) -> None:
        """Every field rule; a failure is a ValidationError naming the field."""
        check_council_code(self.council)
        for field in ("new_kid", "old_kid"):
            if not isinstance(getattr(self, field), str) or \
                    not _KID.fullmatch(getattr(self, field)):
                raise ValidationError(field, "must be a key id: 32 lower-case hex characters")
        if not isinstance(self.new_public_key, bytes) or len(self.new_public_key) != 32:
            raise ValidationError("new_public_key", "must be the 32 raw bytes of an "
                                                    "Ed25519 public key (bin)")
        keys.check_public_raw(self.new_public_key, "new_public_key")  # weak_key
        if keys.key_id(keys.public_from_raw(self.new_public_key)) != self.new_kid:
            raise ValidationError("new_kid", "is not the key id of new_public_key")
        if self.new_kid == self.old_kid:
            raise ValidationError("new_kid", "equals old_kid: announce a different key")
        issued = parse_timestamp(self.issued_at, "issued_at")
        if self.not_after is not None and parse_timestamp(self.not_after, "not_after") <= issued:
            raise ValidationError("not_after", "must be later than issued_at")

    @classmethod
    def decode(cls, payload: bytes) -> KeyAnnouncement:
        """Decode and check a payload (msgpack faults → DecodeError, fields → ValidationError)."""
        obj = encoding.unpack(payload, what="key announcement")
        if not isinstance(obj, dict):
            raise DecodeError("key announcement must be a map", code=ErrorCode.MALFORMED_REQUEST)
        unknown = sorted(set(obj) - set(_FIELDS))
        if unknown:
            raise ValidationError(unknown[0], "is not a key announcement field")
        for field in _FIELDS[:-1]:
            if obj.get(field) is None:
                raise ValidationError(field, "is required")
        announcement = cls(obj["council"], obj["new_kid"], obj["new_public_key"],
                           obj["old_kid"], obj["issued_at"], obj.get("not_after"))
        announcement.check()
        return announcement


def open_announcement(envelope: Envelope, old_public: Ed25519PublicKey) -> KeyAnnouncement:
    """Check an announcement envelope against the old key the verifier already trusts:
    the type, the payload, and a valid signature by the old key *and* by the new key
    the payload names. Returns the announcement."""
    if envelope.payload_type != KEY_ANNOUNCEMENT_TYPE:
        raise DecodeError(f"envelope type must be {KEY_ANNOUNCEMENT_TYPE}",
                          code=ErrorCode.ENVELOPE_WRONG_TYPE)
    announcement = KeyAnnouncement.decode(envelope.payload)
    if keys.key_id(old_public) != announcement.old_kid:
        raise AuthError("the announcement retires another key than the one checked",
                        code=ErrorCode.ANNOUNCEMENT_WRONG_KEY, status=403)
    for which, public, kid in (("old", old_public, announcement.old_kid),
                               ("new", announcement.new_public, announcement.new_kid)):
        if not envelope.verified_by(public):
            raise AuthError(f"the key announcement is not signed by the {which} key {kid}",
                            code=ErrorCode.ANNOUNCEMENT_BAD_SIGNATURE,
                            detail={"missing": which, "kid": kid})
    return announcement
