"""How a child's page reads, at the hub and at a node: services in plain words, their
dates ("since" for one still open), and — at the hub, where several councils may know
a child — the council where the child is now first. Pure functions on the view's
JSON, used as template filters (server_common.pages).

    >>> service_words("youth_justice"), service_words("forest_school")
    ('Youth justice service', 'Forest school')
    >>> service_dates({"start_date": "2023-01-10", "end_date": None})
    'Since 10 January 2023'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from server_common.display import long_date

# The service types the councils' feeds send, in the words a practitioner uses.
SERVICE_WORDS = {
    "school": "School",
    "gp": "GP (family doctor)",
    "early_help": "Early help",
    "social_care": "Children's social care",
    "health_visiting": "Health visiting",
    "school_nursing": "School nursing",
    "camhs": "Child and adolescent mental health service (CAMHS)",
    "mental_health": "Mental health service",
    "send": "Special educational needs and disabilities (SEND)",
    "youth_justice": "Youth justice service",
    "sexual_health": "Sexual health service",
    "substance_misuse": "Drug and alcohol service",
}


def service_words(service_type: str | None) -> str:
    """A service type in words; one not in the table as its slug, spaced and capitalised."""
    if not service_type:
        return "Service"
    return SERVICE_WORDS.get(service_type, service_type.replace("_", " ").capitalize())


def is_open(service: Mapping[str, Any], today: date | None = None) -> bool:
    end = service.get("end_date")
    return not end or end >= (today or date.today()).isoformat()


def service_dates(service: Mapping[str, Any], today: date | None = None) -> str:
    """"Since 10 January 2023" for a service still open, "10 January 2023 to 5 May
    2024" for one that ended (or "Ended 5 May 2024" without a start), "" with no dates."""
    start, end = service.get("start_date"), service.get("end_date")
    if is_open(service, today):
        return f"Since {long_date(start)}" if start else ""
    if start:
        return f"{long_date(start)} to {long_date(end)}"
    return f"Ended {long_date(end)}"


def open_first(services: Sequence[Mapping[str, Any]],
               today: date | None = None) -> list[Mapping[str, Any]]:
    """Open services first, the latest started first; then those that ended, the
    latest ended first."""
    def key(s: Mapping[str, Any]) -> tuple[bool, str]:
        still = is_open(s, today)
        return (not still, _negate(s.get("start_date") if still else s.get("end_date")))
    return sorted(services, key=key)


def current_first(councils: Sequence[Mapping[str, Any]],
                  today: date | None = None) -> list[Mapping[str, Any]]:
    """The council where the child is now first: a council with a service still open
    before one whose services all ended, and among those the one whose latest open
    service started last (a move shows as a new school or GP); then by when its record
    was last updated. A council whose record is withheld comes after those shown."""
    def key(c: Mapping[str, Any]) -> tuple[bool, bool, str, str]:
        services = c.get("services") or []
        open_starts = [s.get("start_date") or "" for s in services if is_open(s, today)]
        return (bool(c.get("withheld")), not open_starts, _negate(max(open_starts, default="")),
                _negate(c.get("updated_at")))
    return sorted(councils, key=key)


def _negate(text: str | None) -> str:
    """A key that sorts ISO dates latest first (and a missing one last)."""
    if not text:
        return "\U0010ffff"
    return "".join(chr(0x10FFFF - ord(ch)) for ch in text)
