"""Notices: telling a council that another council or service is involved with a child
(docs/design.md §6; docs/PROTOCOL.md §17). Pure: the wire form, checked both ways.

A notice goes to one council about one national child and one day; what happened
that day is coalesced into its ``events`` (one per kind and other council). It carries
only what the issue allows: the national id, the recipient's own local ids of the
child (so its node can route it), which council, which kinds of service (never a
sensitive one), and the lead professional's role and contact — never a name, an
address or anything a record says about where the child lives. A shielded child's
notice carries no services and no lead professional, and the other councils only
where the disclosure policy lets the recipient's index team see them; ``contact``
names whose index team to ask instead.

    >>> n = Notice(id=7, seq=12, national_id="N42", day="2026-12-05",
    ...            local_ids=("ESX-1",), shielded=False,
    ...            events=(NoticeEvent(kind="linked", council="E10000032",
    ...                                council_name="West Sussex", services=("school",),
    ...                                lead=LeadContact(role="Social worker",
    ...                                                 phone="01273 000000",
    ...                                                 email="sw@wsx.gov.uk")),))
    >>> Notice.from_wire(n.to_wire()) == n
    True
    >>> n.to_wire()["events"][0]["lead_professional"]["role"]
    'Social worker'
    >>> Notice.from_wire({**n.to_wire(), "events": [{"kind": "gossip"}]})
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    protocol.errors.ValidationError: events[0].kind: must be one of linked, ...
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from protocol.batch import check_council_code
from protocol.errors import ValidationError
from protocol.records import SENSITIVE_SERVICE_TYPES, is_local_id

KINDS = ("linked", "new_involvement", "separated")
PAGE = 500  # notices per answer; the node asks again from ``next`` while ``more``

_NATIONAL_ID = re.compile(r"^[0-9A-Za-z]{1,64}$")
_SLUG = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def _str(data: dict[str, Any], key: str, path: str, *, required: bool = False,
         max_len: int = 254) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise ValidationError(f"{path}{key}", "is required")
        return None
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise ValidationError(f"{path}{key}", f"must be text of 1 to {max_len} characters")
    if any(ord(ch) < 32 for ch in value):
        raise ValidationError(f"{path}{key}", "contains control characters")
    return value


def _map(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError(path or "notice", "must be a map")
    return value


def _list(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValidationError(path, "must be an array")
    return value


def _council(value: str | None, path: str) -> str | None:
    return None if value is None else check_council_code(value, path)


@dataclass(frozen=True, slots=True)
class LeadContact:
    """The lead professional's role and how to reach them (never their name)."""

    role: str | None = None
    phone: str | None = None
    email: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {k: v for k in ("role", "phone", "email")
                if (v := getattr(self, k)) is not None}

    @classmethod
    def from_wire(cls, data: Any, path: str) -> LeadContact:
        obj = _map(data, path)
        return cls(role=_str(obj, "role", path + "."), phone=_str(obj, "phone", path + "."),
                   email=_str(obj, "email", path + "."))


@dataclass(frozen=True, slots=True)
class NoticeEvent:
    """One thing that happened: another council linked, a new service, a separation."""

    kind: str
    council: str | None = None  # None: withheld (a shielded child)
    council_name: str | None = None
    services: tuple[str, ...] = ()  # service types, sorted, never a sensitive one
    lead: LeadContact | None = None
    contact: tuple[str, ...] = ()  # councils whose index team to ask (shielded child)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.council is not None:
            out["council"] = self.council
        if self.council_name is not None:
            out["council_name"] = self.council_name
        if self.services:
            out["services"] = list(self.services)
        if self.lead is not None:
            out["lead_professional"] = self.lead.to_wire()
        if self.contact:
            out["contact"] = [{"council": c, "team": "index team"} for c in self.contact]
        return out

    @classmethod
    def from_wire(cls, data: Any, path: str) -> NoticeEvent:
        obj = _map(data, path)
        kind = obj.get("kind")
        if kind not in KINDS:
            raise ValidationError(f"{path}.kind", f"must be one of {', '.join(KINDS)}")
        services = tuple(_list(obj.get("services"), f"{path}.services"))
        for s in services:
            if not isinstance(s, str) or not _SLUG.match(s):
                raise ValidationError(f"{path}.services", "must be service type slugs")
            if s in SENSITIVE_SERVICE_TYPES:  # refused even from a hub that sent one
                raise ValidationError(f"{path}.services", "names a sensitive service")
        contact = []
        for i, c in enumerate(_list(obj.get("contact"), f"{path}.contact")):
            code = _council(_str(_map(c, f"{path}.contact[{i}]"), "council",
                                 f"{path}.contact[{i}].", required=True),
                            f"{path}.contact[{i}].council")
            assert code is not None
            contact.append(code)
        lead = obj.get("lead_professional")
        return cls(kind=kind,
                   council=_council(_str(obj, "council", path + "."), f"{path}.council"),
                   council_name=_str(obj, "council_name", path + ".", max_len=200),
                   services=services,
                   lead=None if lead is None else LeadContact.from_wire(
                       lead, f"{path}.lead_professional"),
                   contact=tuple(contact))


@dataclass(frozen=True, slots=True)
class Notice:
    """A notice to one council about one child and one day (coalesced)."""

    id: int
    seq: int  # the cursor: grows every time the notice is created or coalesced into
    national_id: str
    day: str
    local_ids: tuple[str, ...]  # the recipient council's own records of the child
    shielded: bool
    events: tuple[NoticeEvent, ...]

    def to_wire(self) -> dict[str, Any]:
        return {"id": self.id, "seq": self.seq, "national_id": self.national_id,
                "day": self.day, "local_ids": list(self.local_ids),
                "shielded": self.shielded, "events": [e.to_wire() for e in self.events]}

    @classmethod
    def from_wire(cls, data: Any) -> Notice:
        obj = _map(data, "")
        for key in ("id", "seq"):
            v = obj.get(key)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 < v < 2**63:
                raise ValidationError(key, "must be a positive 64-bit integer")
        national_id = obj.get("national_id")
        if not isinstance(national_id, str) or not _NATIONAL_ID.match(national_id):
            raise ValidationError("national_id", "must be a national id")
        day = obj.get("day")
        try:
            date.fromisoformat(day if isinstance(day, str) else "")
        except ValueError as exc:
            raise ValidationError("day", "must be an ISO date") from exc
        local_ids = tuple(_list(obj.get("local_ids"), "local_ids"))
        if not all(is_local_id(i) for i in local_ids):
            raise ValidationError("local_ids", "must be local ids")
        shielded = obj.get("shielded")
        if not isinstance(shielded, bool):
            raise ValidationError("shielded", "must be true or false")
        events = tuple(NoticeEvent.from_wire(e, f"events[{i}]")
                       for i, e in enumerate(_list(obj.get("events"), "events")))
        return cls(id=obj["id"], seq=obj["seq"], national_id=national_id, day=str(day),
                   local_ids=local_ids, shielded=shielded, events=events)


def parse_page(obj: Any) -> tuple[list[Notice], int, bool]:
    """A page of ``GET …/notices``: the notices, the ``next`` cursor and ``more``.

    >>> parse_page({"notices": [], "next": 0, "more": False})
    ([], 0, False)
    """
    page = _map(obj, "")
    nxt, more = page.get("next"), page.get("more")
    if isinstance(nxt, bool) or not isinstance(nxt, int) or not 0 <= nxt < 2**63:
        raise ValidationError("next", "must be a non-negative 64-bit integer")
    if not isinstance(more, bool):
        raise ValidationError("more", "must be true or false")
    return [Notice.from_wire(n) for n in _list(page.get("notices"), "notices")], nxt, more


def parse_after(text: str) -> int:
    """The ``after`` query parameter: a cursor a node got as ``next`` (empty: 0).

    >>> parse_after(""), parse_after("17")
    (0, 17)
    """
    if text == "":
        return 0
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise ValidationError("after", "must be the non-negative integer a page gave as next")
    return int(text)
