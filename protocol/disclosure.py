"""Who may see what of a child, at the hub and at every node (docs/design.md §3, §6); pure.

This is the one disclosure policy. Every path that shows a child — search results,
the child view (page and JSON), explanations of a link, the review screen, audit
pages, exports, notices — asks it, at the hub and at a council's node alike.

**Shielding belongs to the child, not to one record.** Storage gathers the facts
(which records are related to which, and which of them are shielded); this module
decides. A record is treated as shielded when it is shielded itself or when any record
it is *related* to is, where related means (:class:`Relation`): linked to the same
child, in review with, separated from, sharing a valid NHS number or UPN with, or
once merged with. Archiving or purging the shielded record never lifts it from the
others: storage keeps what it learnt (a sticky mark), and this module only ever adds
shielding (:func:`child_shielded`).

What shielded means for a viewer who is not the owning council's index team:

* never found through where the child lives: blocking keys built from the postcode
  or address (:func:`finds_shielded`) do not reach it, its postcode and address never
  score, so no answer (hits, order, confidence) depends on its location;
* no location fields: address, postcode or its district, UPN (its first digits name
  the issuing authority), school, GP, every service pointer, parent/carer contact;
* no list of the other councils that know the child, no local ids, no update times
  (which areas know the child, and which is newest, say where it went);
* no location comparison levels in an explanation or on the review screen;
* instead, whom to contact: the index team of each council that shields the child.

The index team of a council sees that council's own record in full and sees clearly
that the child is shielded; it brokers contact. A **sensitive** service (sexual
health, mental health, substance misuse) is shown only to the index team of the
council that holds it, and nobody else learns that one exists: no count, no "hidden"
marker.

    >>> practitioner = Viewer("practitioner", None)
    >>> team = Viewer("index_team", "E10000011")
    >>> shielded = Disclosure(shielded=True, shielding_councils=("E10000011",))
    >>> shielded.sees_location(team, "E10000011"), shielded.sees_location(team, "E06000020")
    (True, False)
    >>> shielded.sees_location(practitioner, "E10000011")
    False
    >>> shielded.sees_other_councils(practitioner), OPEN.sees_other_councils(practitioner)
    (False, True)
    >>> other_team = Viewer("index_team", "E06000020")
    >>> shielded.sees_local_id(other_team, "E10000011"), shielded.sees_local_id(team, "E06000020")
    (False, True)
    >>> [shielded.sees_council(other_team, c) for c in ("E10000011", "E10000032")]
    [True, False]
    >>> sees_sensitive(practitioner, "E10000011"), sees_sensitive(team, "E10000011")
    (False, True)
    >>> finds_shielded("dp:TN22:2015"), finds_shielded("nhs:9434765919")
    (False, True)
    >>> child_shielded([False, False], related=[Relation.SEPARATED_FROM])
    True
    >>> shielded.redact({"given_name": "Ada", "postcode": "TN22 1AA", "services": []})
    {'given_name': 'Ada', 'withheld': True}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

PRACTITIONER = "practitioner"
INDEX_TEAM = "index_team"

# Blocking keys built from where a child lives (see protocol.matching.blocking): the
# postcode district ("dp:"), the given name with the postcode ("gp:") and both names
# with it ("sp:"). Any key a later change builds from the postcode or address must be
# listed here (tests/protocol/matching/test_matching_blocking.py checks every key).
LOCATION_KEY_PREFIXES = ("dp:", "gp:", "sp:")

# Fields of a child view that say, or help to say, where a child lives or is seen.
# ``upn``: its first digits name the issuing authority. ``services`` and
# ``involvements``: school, GP, every pointer. Only what is not here survives
# :meth:`Disclosure.redact`.
LOCATION_FIELDS = frozenset({
    "address_line", "postcode", "postcode_district", "upn", "parent_carer",
    "services", "involvements", "lead_professional", "caf_done", "school", "gp",
})
# Comparison fields of an explanation that measure where a record lives.
LOCATION_COMPARISONS = frozenset({"postcode", "address_line", "address"})
# Fields of another council's record that say which areas know the child and when.
COUNCIL_TRAIL_FIELDS = frozenset({"council", "council_name", "local_id", "updated_at"})


class Relation(StrEnum):
    """How one record relates to another that is shielded; any of them shields."""

    LINKED = "linked"                # the same national (or local) child now
    IN_REVIEW_WITH = "in_review_with"  # an open review pair, whatever its outcome
    SEPARATED_FROM = "separated_from"  # decided "not the same child" — still a suspect
    SAME_IDENTIFIER = "same_identifier"  # a valid NHS number or UPN in common
    MERGED_WITH = "merged_with"      # once one child, whatever later split it
    STICKY = "sticky"                # remembered: the shielded record is archived or gone


def child_shielded(own: Iterable[bool], related: Iterable[Relation] = ()) -> bool:
    """Whether a child is shielded: any of its own records' flags, or any relation
    to a shielded record that storage found. Nothing here can lift shielding."""
    return any(own) or any(True for _ in related)


def finds_shielded(key: str) -> bool:
    """Whether a search's blocking key may reach a shielded child (not a location key)."""
    return not key.startswith(LOCATION_KEY_PREFIXES)


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking: a role, and the council of an index team."""

    role: str
    council: str | None

    @classmethod
    def of(cls, who: Any) -> Viewer:
        """From an authenticated principal (anything with ``role`` and ``council``)."""
        return cls(str(who.role), who.council)

    def index_team_of(self, council: str | None) -> bool:
        return self.role == INDEX_TEAM and council is not None and self.council == council


def sees_sensitive(viewer: Viewer, council: str) -> bool:
    """A sensitive service, or that one exists: only the holding council's index team."""
    return viewer.index_team_of(council)


@dataclass(frozen=True, slots=True)
class Disclosure:
    """What may be shown of one child, whoever is looking."""

    shielded: bool
    # whose index team to contact about a shielded child (they see its detail)
    shielding_councils: tuple[str, ...] = ()

    def sees_location(self, viewer: Viewer, council: str) -> bool:
        """Address, postcode, UPN, services, parent/carer of ``council``'s record."""
        return not self.shielded or viewer.index_team_of(council)

    def sees_other_councils(self, viewer: Viewer) -> bool:
        """The list of councils that know the child, their local ids and update times.
        A shielded child's list is kept from everyone but an index team whose council
        holds a record of the child (they broker contact)."""
        return not self.shielded or (viewer.role == INDEX_TEAM
                                     and viewer.council in self.shielding_councils)

    def sees_local_id(self, viewer: Viewer, council: str) -> bool:
        """``council``'s local id of the child's record (an explanation's partner, a review
        pair's heading): that council's own index team, and whoever sees the list of
        councils that know the child (the same trail, one record at a time)."""
        return viewer.index_team_of(council) or self.sees_other_councils(viewer)

    def sees_council(self, viewer: Viewer, council: str) -> bool:
        """That ``council`` holds a record of the child (an explanation's partner, a
        review pair's heading): whoever may see that record's local id, and anyone for a
        council that shields the child (whom to contact). Any other council that knows a
        shielded child is part of the trail that says where it went."""
        return council in self.shielding_councils or self.sees_local_id(viewer, council)

    def scores_location(self) -> bool:
        """Whether the postcode and address may take part in scoring a search hit."""
        return not self.shielded

    def sees_location_comparison(self, viewer: Viewer, councils: Iterable[str]) -> bool:
        """Postcode and address comparison levels of a pair whose records are held by
        ``councils``: only when the viewer may see the location of every one of them."""
        return all(self.sees_location(viewer, c) for c in councils)

    def redact(self, view: Mapping[str, Any]) -> dict[str, Any]:
        """A view with every location field removed and marked ``withheld``."""
        kept = {k: v for k, v in view.items() if k not in LOCATION_FIELDS}
        return {**kept, "withheld": True}

    def contact(self) -> list[dict[str, str]]:
        """Whom to contact about a shielded child (none for one that is not)."""
        return [{"council": c, "team": "index team"} for c in self.shielding_councils]


OPEN = Disclosure(shielded=False)
