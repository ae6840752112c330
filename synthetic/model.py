"""The synthetic population in memory: who each child really is, and every feed row.

A :class:`Person` is the truth about one child. A :class:`Presence` is that child
as one council knows them (address, surname, school, GP, services); a child who
moved has two. An :class:`Appearance` is one row in one feed, with the noise that
row carries as ``overrides`` (column → value shown instead of the truth).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import NamedTuple

from synthetic.organisations import Practice, Professional, School, Service
from synthetic.params import Params
from synthetic.render import render_row

FEEDS = ("education", "health", "services")


REF_PREFIX = {"education": "ED", "health": "HL", "services": "SV"}


@dataclass(slots=True, eq=False)
class Person:
    index: int                    # 1, 2, ...: person_id is "P0000001"
    given_name: str
    other_given_names: str | None
    sex: int                      # 1 male, 2 female
    dob: date
    nhs_number: str
    upn: str | None = None        # issued when the child started school
    twin_names: tuple[str, ...] = ()  # co-twins' given names: noise never produces one
    presences: list[Presence] = field(default_factory=list)

    @property
    def person_id(self) -> str:
        return f"P{self.index:07d}"

    @property
    def councils(self) -> list[str]:
        return [p.council for p in self.presences]

    @property
    def records(self) -> list[tuple[str, str, str]]:
        """Every ``(council, source, source_ref)`` row that is this child."""
        return [(a.presence.council, a.feed, a.source_ref)
                for p in self.presences for a in p.appearances]


@dataclass(frozen=True, slots=True)
class ServiceInvolvement:
    service: Service
    professional: Professional
    start: date
    end: date | None
    lead: bool
    caf: bool
    consent: bool | None          # None: not a sensitive service, column left blank

    @property
    def sensitive(self) -> bool:
        return self.consent is not None


@dataclass(slots=True, eq=False)
class Presence:
    person: Person
    council: str
    family_name: str
    address_line: str
    postcode: str
    former_family_name: str | None = None
    moved_in: date | None = None       # arrived from another council on this date
    moved_out: date | None = None      # left for another council on this date
    upn: str | None = None             # the UPN as this council's schools know it
    school: School | None = None
    school_start: date | None = None
    school_end: date | None = None
    practice: Practice | None = None
    registered_from: date | None = None
    registered_to: date | None = None
    services: tuple[ServiceInvolvement, ...] = ()
    shielded: bool = False
    appearances: Sequence[Appearance] = ()


@dataclass(slots=True, eq=False)
class Appearance:
    presence: Presence
    feed: str
    involvement: ServiceInvolvement | None = None   # services rows only
    ref: int = 0
    overrides: dict[str, str] | None = None
    noise: list[str] | None = None                  # labels, e.g. ["nickname", "typo"]

    @property
    def source_ref(self) -> str:
        return f"{REF_PREFIX[self.feed]}{self.ref:07d}"

    def override(self, column: str, value: str, label: str | None = None) -> None:
        if self.overrides is None:
            self.overrides = {}
        self.overrides[column] = value
        if label is not None:
            if self.noise is None:
                self.noise = []
            self.noise.append(label)


class TruthRow(NamedTuple):
    person_id: str
    council: str
    source: str
    source_ref: str


class BadRow(NamedTuple):
    """A row made invalid on purpose; local ingest must report it and load the rest."""

    council: str
    source: str
    source_ref: str
    line: int        # line in the feed file, header is line 1
    column: str
    kind: str        # nhs_check_digit | bad_date | bad_sex | missing_family_name
    value: str


@dataclass(slots=True)
class Population:
    councils: tuple[str, ...]
    children_per_council: int
    seed: int
    today: date
    params: Params
    persons: list[Person]
    feeds: dict[tuple[str, str], list[Appearance]]   # (council, feed) → rows in file order
    bad_rows: list[BadRow]

    @property
    def truth(self) -> list[TruthRow]:
        """Who is who: one entry per feed row, councils and feeds in order."""
        return [TruthRow(a.presence.person.person_id, council, feed, a.source_ref)
                for (council, feed), rows in self.feeds.items() for a in rows]

    @property
    def movers(self) -> list[Person]:
        return [p for p in self.persons if len(p.presences) > 1]

    def rows(self, council: str, feed: str) -> Iterator[list[str]]:
        """The feed's rows as written to CSV (without the header)."""
        for appearance in self.feeds[(council, feed)]:
            yield render_row(appearance)

    def row_count(self) -> int:
        return sum(len(rows) for rows in self.feeds.values())
