"""Which notices a change of records makes (docs/notices.md); pure, no I/O
(docs/conventions.md §15).

The notice job gathers, for the records whose national id or content changed, what
the hub holds now (:class:`Holder`: each live record's child, non-sensitive services
and lead professional), what it last saw of each record (:class:`Seen`) and the
shield marks; :func:`decide` says which notices follow:

* **linked** — a record of council B is now with a child that council A's records
  hold, and was not with A before (a mover, a new link, a review merge): A is told
  that B is involved (B's services and lead professional), B that A is;
* **new_involvement** — B's record of a child A also knows gains a kind of service:
  A is told which;
* **separated** — B's record left a child that A still holds (a review separation
  or a split): both are told.

Nothing is told to the council that made the change about itself, nor about a
record that is alone at the hub, so a council's bulk load tells only where another
council already knows the child. Sensitive services are dropped before anything
is decided: a notice never says one exists. What each recipient may learn of a
shielded child is :mod:`protocol.disclosure`'s to say (:func:`disclose`).

    >>> h = {"N1": [Holder("E10000011", "A1", ("school",), None),
    ...             Holder("E10000032", "B1", ("social_care",), None)]}
    >>> drafts, seen = decide([("E10000032", "B1")], {("E10000032", "B1"): "N1"},
    ...                       {("E10000011", "A1"): Seen("N1", ("school",))}, h, {})
    >>> sorted((d.recipient, d.event.kind, d.event.council) for d in drafts)
    [('E10000011', 'linked', 'E10000032'), ('E10000032', 'linked', 'E10000011')]
    >>> seen[("E10000032", "B1")]
    Seen(national_id='N1', services=('social_care',))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import msgpack

from protocol.disclosure import INDEX_TEAM, Disclosure, Viewer
from protocol.notices import LeadContact, NoticeEvent
from protocol.records import SENSITIVE_SERVICE_TYPES

RecordKey = tuple[str, str]  # (council, local_id)


@dataclass(frozen=True, slots=True)
class Holder:
    """A live record of a child as notices need it."""

    council: str
    local_id: str
    services: tuple[str, ...]  # non-sensitive service types, sorted
    lead: LeadContact | None


@dataclass(frozen=True, slots=True)
class Seen:
    """What the notice job last saw of a record (services None: not known yet)."""

    national_id: str | None
    services: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class Draft:
    recipient: str
    national_id: str
    event: NoticeEvent
    source: RecordKey  # the changed record that made it (its shield marks count too)


def pointers(record: bytes) -> tuple[tuple[str, ...], LeadContact | None]:
    """A stored record's non-sensitive service types and its lead professional's role
    and contact (from a non-sensitive involvement only). The bytes were validated at
    intake, so only the fields notices use are read.

    >>> from protocol.encoding import pack
    >>> pointers(pack({"involvements": [
    ...     {"service_type": "mental_health", "lead_professional": True, "sensitive": True},
    ...     {"service_type": "school", "professional_role": "Teacher",
    ...      "professional_name": "Ms Price", "lead_professional": True}]}))
    (('school',), LeadContact(role='Teacher', phone=None, email=None))

    Bytes damaged after intake (the case anti-entropy repairs) raise ValueError.
    """
    # trusted bytes (validated at intake): the plain decoder, about 5x faster than
    # protocol.encoding's checked one, which was most of the job's Python time
    try:
        obj = msgpack.unpackb(record, raw=False)
    except ValueError as exc:  # msgpack's unpack errors are ValueErrors
        raise ValueError(f"stored record unreadable: {exc.__class__.__name__}") from None
    if not isinstance(obj, dict):
        raise ValueError("stored record unreadable: not a map")
    services: set[str] = set()
    lead = None
    for inv in obj.get("involvements") or ():
        if not isinstance(inv, dict):
            continue
        kind = inv.get("service_type")
        if inv.get("sensitive") or kind in SENSITIVE_SERVICE_TYPES or not kind:
            continue
        services.add(kind)
        if lead is None and inv.get("lead_professional"):
            lead = LeadContact(role=inv.get("professional_role"),
                               phone=inv.get("professional_phone"),
                               email=inv.get("professional_email"))
    return tuple(sorted(services)), lead


def _by_council(holders: Iterable[Holder]) -> dict[str, tuple[tuple[str, ...], LeadContact | None]]:
    out: dict[str, tuple[set[str], LeadContact | None]] = {}
    for h in holders:
        services, lead = out.setdefault(h.council, (set(), None))
        services.update(h.services)
        out[h.council] = (services, lead or h.lead)
    return {c: (tuple(sorted(s)), lead) for c, (s, lead) in out.items()}


def decide(touched: Sequence[RecordKey], current: Mapping[RecordKey, str | None],
           seen: Mapping[RecordKey, Seen], holders: Mapping[str, Sequence[Holder]],
           names: Mapping[str, str]) -> tuple[list[Draft], dict[RecordKey, Seen]]:
    """The notices the touched records' changes make, and what to remember of them.

    ``current``: each touched record's national id (None when deleted or unplaced);
    ``seen``: what was remembered of the touched records and of every holder;
    ``holders``: the live records of every national id in ``current`` and in the
    touched records' ``seen``."""
    drafts: list[Draft] = []
    new_seen: dict[RecordKey, Seen] = {}
    for key in dict.fromkeys(touched):
        council, _ = key
        now = current.get(key)
        before = seen.get(key, Seen(None, None))
        mine = next((h for h in holders.get(now or "", ()) if (h.council, h.local_id) == key),
                    None)
        services = mine.services if mine else ()
        others = _by_council(h for h in holders.get(now or "", ()) if h.council != council)

        def event(kind: str, about: str, svc: tuple[str, ...],
                  lead: LeadContact | None) -> NoticeEvent:
            return NoticeEvent(kind=kind, council=about, council_name=names.get(about),
                               services=svc, lead=lead)

        if now != before.national_id:
            if now is not None and mine is not None:
                # councils already with this record's previous child moved with it (a
                # merge): they knew each other already
                known = {h.council for h in holders[now]
                         if before.national_id is not None
                         and seen.get((h.council, h.local_id), Seen(None, None)).national_id
                         == before.national_id}
                for other, (svc, lead) in others.items():
                    if other in known:
                        continue
                    drafts.append(Draft(other, now, event("linked", council, services,
                                                          mine.lead), key))
                    drafts.append(Draft(council, now, event("linked", other, svc, lead), key))
            if before.national_id is not None and mine is not None:
                left = {h.council for h in holders.get(before.national_id, ())
                        if h.council != council} - set(others)
                for other in sorted(left):
                    drafts.append(Draft(other, before.national_id,
                                        event("separated", council, (), None), key))
                    if now is not None:
                        drafts.append(Draft(council, now, event("separated", other, (), None),
                                            key))
        elif now is not None and mine is not None and before.services is not None:
            added = tuple(s for s in services if s not in before.services)
            if added:
                for other in others:
                    drafts.append(Draft(other, now, event("new_involvement", council, added,
                                                          mine.lead), key))
        new_seen[key] = Seen(now, services if mine is not None else ())
    return drafts, new_seen


def disclose(event: NoticeEvent, recipient: str,
             shielding_councils: Sequence[str]) -> NoticeEvent:
    """What the recipient council (its index team, the most a node shows anyone) may
    learn of the event, by the one disclosure policy.

    >>> e = NoticeEvent("linked", "E10000032", "West Sussex", ("school",),
    ...                 LeadContact(role="Teacher"))
    >>> disclose(e, "E10000011", ["E10000032"])  # doctest: +NORMALIZE_WHITESPACE
    NoticeEvent(kind='linked', council=None, council_name=None, services=(), lead=None,
                contact=('E10000032',))
    >>> disclose(e, "E10000011", []) == e
    True
    """
    policy = Disclosure(shielded=bool(shielding_councils),
                        shielding_councils=tuple(sorted(set(shielding_councils))))
    if not policy.shielded:
        return event
    viewer = Viewer(INDEX_TEAM, recipient)
    shown = event
    if event.council is None or not policy.sees_location(viewer, event.council):
        shown = replace(shown, services=(), lead=None)
    if not policy.sees_other_councils(viewer):
        shown = replace(shown, council=None, council_name=None)
    return replace(shown, contact=policy.shielding_councils)


def coalesce(existing: Iterable[NoticeEvent], new: Iterable[NoticeEvent]
             ) -> tuple[NoticeEvent, ...]:
    """One day's events of a notice: one per kind and council, services unioned,
    the newest lead professional and contact kept.

    >>> a = NoticeEvent("new_involvement", "E10000032", services=("school",))
    >>> b = NoticeEvent("new_involvement", "E10000032", services=("gp",))
    >>> coalesce([a], [b, a])[0].services
    ('gp', 'school')
    """
    merged: dict[tuple[str, str | None], NoticeEvent] = {}
    for e in (*existing, *new):
        key = (e.kind, e.council)
        old = merged.get(key)
        if old is None:
            merged[key] = e
            continue
        merged[key] = replace(
            e, services=tuple(sorted({*old.services, *e.services})),
            lead=e.lead or old.lead, council_name=e.council_name or old.council_name,
            contact=tuple(sorted({*old.contact, *e.contact})))
    return tuple(merged.values())


def events_from_json(rows: Any) -> list[NoticeEvent]:
    """Events as stored (their wire forms in a jsonb column)."""
    return [NoticeEvent.from_wire(e, f"events[{i}]") for i, e in enumerate(rows)]
