"""An audit entry and its canonical bytes (the Merkle leaf); pure, no database.

The leaf is the canonical JSON of exactly these keys: ``who, role, organisation,
purpose, action, parameters, child_ids, at`` — keys sorted, no whitespace
(``separators=(",", ":")``), UTF-8 without ``\\u`` escapes for non-ASCII text,
``at`` an RFC 3339 UTC time with microseconds and a ``Z``. The stored bytes are
what is hashed; nothing re-serialises them, so a verifier never depends on this
code's JSON producing the same bytes again.

    >>> e = AuditEntry(who="amelia", role="practitioner", organisation="E10000011",
    ...                purpose="s47 enquiry", action="search", parameters={"dob": "2015-03-14"},
    ...                child_ids=("N1",), at=datetime(2026, 11, 26, 9, 30, tzinfo=UTC))
    >>> e.to_bytes()[:48]
    b'{"action":"search","at":"2026-11-26T09:30:00.000'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

KEYS = ("who", "role", "organisation", "purpose", "action", "parameters", "child_ids", "at")


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def format_time(when: datetime) -> str:
    if when.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a user (or ``cli:<os user>`` for the operator's command line)."""

    who: str
    role: str
    organisation: str


@dataclass(frozen=True, slots=True)
class AuditEntry:
    who: str
    role: str
    organisation: str
    purpose: str
    action: str
    parameters: dict[str, Any] = field(default_factory=dict)
    child_ids: tuple[str, ...] = ()
    at: datetime | None = None  # the log stamps it when None

    @classmethod
    def by(cls, actor: Actor, action: str, purpose: str, parameters: dict[str, Any] | None = None,
           child_ids: tuple[str, ...] | list[str] = ()) -> AuditEntry:
        return cls(actor.who, actor.role, actor.organisation, purpose, action,
                   dict(parameters or {}), tuple(child_ids))

    def stamped(self, now: datetime) -> AuditEntry:
        return self if self.at is not None else replace(self, at=now)

    def to_dict(self) -> dict[str, Any]:
        if self.at is None:
            raise ValueError("an audit entry needs its time before it is encoded")
        return {"who": self.who, "role": self.role, "organisation": self.organisation,
                "purpose": self.purpose, "action": self.action,
                "parameters": self.parameters, "child_ids": list(self.child_ids),
                "at": format_time(self.at)}

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> AuditEntry:
        """Parse stored leaf bytes; ValueError if they are not an audit entry (also for
        bytes nested too deeply to parse, which a rewritten row may hold)."""
        try:
            obj = json.loads(data.decode("utf-8"))
        except RecursionError:
            raise ValueError("not an audit entry: nested too deeply") from None
        if not isinstance(obj, dict) or sorted(obj) != sorted(KEYS):
            raise ValueError("not an audit entry: wrong keys")
        if not isinstance(obj["parameters"], dict) or not isinstance(obj["child_ids"], list):
            raise ValueError("not an audit entry: parameters or child_ids of the wrong type")
        strings = [obj[k] for k in ("who", "role", "organisation", "purpose", "action", "at")]
        if not all(isinstance(s, str) for s in [*strings, *obj["child_ids"]]):
            raise ValueError("not an audit entry: a field is not text")
        return cls(obj["who"], obj["role"], obj["organisation"], obj["purpose"], obj["action"],
                   obj["parameters"], tuple(obj["child_ids"]), parse_time(obj["at"]))
