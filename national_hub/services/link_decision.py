"""The decision of national identity resolution, pure: what was gathered → national ids.

:meth:`national_hub.services.linking.Linker.plan` reads from the database everything a
chunk's decision needs (:class:`Gathered`), calls :func:`decide_links`, and writes what
it returns. Nothing here does I/O or reads a clock; new national ids come from the
``new_id`` the caller passes. The rules (docs/design.md §5):

* every candidate pair of a record — another live record sharing a blocking key, an
  earlier record of the same chunk sharing one (a key the chunk alone holds more
  than ``max_block`` times is skipped), or a partner a person linked it to — is scored
  in bulk (:func:`protocol.matching.bulk_score.score_columns`), with the model of one
  council or the model across councils, unless it cannot reach review whatever its
  other fields hold (:func:`~protocol.matching.bulk_score.ceilings`);
* **link**: the record joins the oldest national child among its links whose holders
  a person did not separate from it and none of whose records holds another NHS
  number or UPN (unless a person linked the pair); but when two of those children are
  certainly two (their records hold different NHS numbers or UPNs), the one it
  matches clearly best (by ``CLEAR_CHOICE_BITS``), or none of them, every match
  then going to review; other strongly matching children go to review;
* **review**: the pair is queued; the record keeps its own child;
* **new**: the child it held if no one else holds it, else a fresh id.

A pair a person separated is never scored; a pair a person linked links unless a hard
rule now vetoes it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from national_hub.storage.resolution import RecordKey
from national_hub.storage.review_queue import NewReview
from protocol.matching import Decision, Explanation, IdentityFields, Model, TermFrequencies
from protocol.matching.arrays import among, first_occurrences
from protocol.matching.blocking import memberships, pairs_across, pairs_within
from protocol.matching.bulk import Columns
from protocol.matching.bulk_score import DECISIONS, score_columns, worth_scoring
from protocol.matching.child_identifiers import Identifier, differing_kinds, identifiers_of


@dataclass(frozen=True, slots=True)
class Candidate:
    """A record about to be written: who it is and which national id it holds now."""

    local_id: str
    fields: IdentityFields
    current_id: str | None


@dataclass(frozen=True, slots=True)
class Other:
    """A live record outside the chunk that shares a key (or a decided pair)."""

    fields: IdentityFields
    national_id: str


@dataclass(frozen=True)
class Gathered:
    """What the database says, for one council's chunk of ``candidates`` (local ids
    unique, in the order they are decided)."""

    council: str
    candidates: Sequence[Candidate]
    keys: Mapping[str, set[str]]                  # local_id -> its blocking keys
    others: Mapping[RecordKey, Other]
    by_key: Mapping[str, Sequence[RecordKey]]     # key -> the others holding it
    linked: frozenset[frozenset[RecordKey]] = frozenset()     # pairs a person linked
    separated: frozenset[frozenset[RecordKey]] = frozenset()  # ... and separated
    open_reviews: Mapping[frozenset[RecordKey], int] = field(default_factory=dict)
    holders: Mapping[str, AbstractSet[RecordKey]] = field(default_factory=dict)  # outside
    created: Mapping[str, datetime] = field(default_factory=dict)  # national id -> when
    # national id -> the valid NHS numbers and UPNs its records outside the chunk hold,
    # as ("nhs_number", number) and ("upn", upn): all of them, key shared or not
    identifiers: Mapping[str, frozenset[Identifier]] = field(default_factory=dict)


@dataclass(slots=True)
class Decided:
    national_ids: dict[str, str]                  # local_id -> national id
    reviews: dict[tuple[RecordKey, RecordKey], NewReview]
    stale_reviews: list[int]                      # open reviews no longer found
    joins: list[tuple[str, str]]                  # (left id, joined id)
    model_versions: dict[str, str]                # local_id -> the deciding model's version
    new_ids: list[str]                            # fresh national ids, in creation order


# A review's explanation says so (``held``) when the partner's child holds a record with
# another NHS number or UPN than this record's (protocol.matching.words has it in words).
CHILD_HOLDS_ANOTHER_IDENTIFIER = "child_holds_another_identifier"
# ... and (``held``) when the record matched this child and another, certainly another
# child (their records hold different identifiers), and neither clearly best.
MATCHES_TWO_CHILDREN = "matches_two_children"

# A record without an NHS number or UPN may match two children who hold different ones:
# twins Albie and Alfie, a one-letter difference the name rule reads as a typo, or two
# namesakes born the same day. Joining the older child would put the record with
# whichever was resolved first. It joins the one it matches best only when that match
# is this many bits (2**4 = 16 times the odds) stronger than its best match to any of
# the others; otherwise a person decides.
CLEAR_CHOICE_BITS = 4.0


def explain(explanation: Explanation, model: Model) -> dict[str, Any]:
    """An explanation as JSON, with the model's version and the thresholds."""
    thresholds = {"link": explanation.thresholds.link, "review": explanation.thresholds.review}
    return {**explanation.to_dict(), "model_version": model.version, "thresholds": thresholds}


def pair_of(x: RecordKey, y: RecordKey) -> tuple[RecordKey, RecordKey]:
    return (x, y) if x < y else (y, x)


def _partners_of(pairs: frozenset[frozenset[RecordKey]]) -> dict[RecordKey, list[RecordKey]]:
    """Each record of the pairs → the other records it is paired with."""
    out: dict[RecordKey, list[RecordKey]] = {}
    for pair in pairs:
        x, y = tuple(pair)
        out.setdefault(x, []).append(y)
        out.setdefault(y, []).append(x)
    return out


@dataclass(frozen=True)
class CandidatePairs:
    """The pairs a chunk scores: pair k is candidate ``left[k]`` (its position in the
    chunk) with column ``right[k]`` of the chunk's columns (the candidates, then the
    others in ``others``' order), ordered by candidate; ``starts[i]:starts[i + 1]`` are
    candidate i's pairs. ``records[column]`` is the column's record."""

    left: npt.NDArray[np.int64]
    right: npt.NDArray[np.int64]
    starts: npt.NDArray[np.int64]
    records: list[RecordKey]
    linked: npt.NDArray[np.bool_]     # pair k is one a person linked

    def only(self, keep: npt.NDArray[np.bool_]) -> CandidatePairs:
        """The pairs ``keep`` marks, in the same order."""
        left = self.left[keep]
        return CandidatePairs(left, self.right[keep],
                              np.searchsorted(left, np.arange(len(self.starts))),
                              self.records, self.linked[keep])


def candidate_pairs(g: Gathered, max_block: int) -> CandidatePairs:
    """Each candidate's partners: the others sharing a key, earlier chunk records
    sharing a key (the later of two decides; a key the chunk holds more than
    ``max_block`` times pairs none of its records), and partners a person linked it to.
    Separated partners are left out: they are never scored. Joined column-wise
    (:func:`~protocol.matching.blocking.pairs_within`, ``pairs_across``)."""
    council, n = g.council, len(g.candidates)
    records = [(council, c.local_id) for c in g.candidates] + list(g.others)
    column = {rk: i for i, rk in enumerate(records)}
    key_ids: dict[str, int] = {}
    cand_blocks, cand = memberships((g.keys[c.local_id] for c in g.candidates), key_ids)
    other_blocks, others = [], []
    for key, holders in g.by_key.items():
        if key in key_ids:
            other_blocks += [key_ids[key]] * len(holders)
            others += [column[rk] for rk in holders]
    across_left, across_right = pairs_across(cand_blocks, cand,
                                             np.array(other_blocks, dtype=np.int64),
                                             np.array(others, dtype=np.int64))
    earlier, later = pairs_within(cand_blocks, cand, max_block)
    extra_left, extra_right = [], []
    for pair in g.linked:
        for me, rk in (tuple(pair), tuple(pair)[::-1]):
            at, partner = column.get(me, n), column.get(rk)  # at < n: a chunk record
            if at < n and partner is not None and (partner >= n or partner < at):
                extra_left.append(at)
                extra_right.append(partner)
    left = np.concatenate([across_left, later, np.array(extra_left, dtype=np.int64)])
    right = np.concatenate([across_right, earlier, np.array(extra_right, dtype=np.int64)])
    codes = left * len(records) + right

    def coded(pairs: frozenset[frozenset[RecordKey]]) -> npt.NDArray[np.int64]:
        return np.array([column[x] * len(records) + column[y] for pair in pairs
                         for x, y in (tuple(pair), tuple(pair)[::-1])
                         if x in column and y in column], dtype=np.int64)

    # a linked partner already met through a key is scored once
    first = first_occurrences(codes)
    left, right = left[first], right[first]
    codes = codes[first]
    keep = ~among(codes, coded(g.separated))
    left, right, codes = left[keep], right[keep], codes[keep]
    order = np.argsort(left, kind="stable")
    left, right = left[order], right[order]
    return CandidatePairs(left, right, np.searchsorted(left, np.arange(n + 1)), records,
                          among(codes[order], coded(g.linked)))


def decide_links(g: Gathered, model: Model, across: Model, tf: TermFrequencies | None,
                 max_block: int, new_id: Callable[[], str]) -> Decided:
    """Each candidate's national id, the reviews, joins and stale reviews (module doc)."""
    council, n = g.council, len(g.candidates)
    pairs = candidate_pairs(g, max_block)
    other_fields = [g.others[rk].fields for rk in pairs.records[n:]]
    columns = Columns.of([c.fields for c in g.candidates] + other_fields)
    elsewhere = np.array([rk[0] != council for rk in pairs.records], dtype=np.int64)
    models = (model, across)
    # Most pairs cannot reach review whatever they hold (ceilings): they decide NEW and
    # are not scored; a pair a person linked is, as it links unless a rule vetoes it.
    pairs = pairs.only(worth_scoring(columns, pairs.left, pairs.right, models,
                                     elsewhere[pairs.right], tf) | pairs.linked)
    scores = score_columns(columns, pairs.left, pairs.right, models,
                           elsewhere[pairs.right], tf)

    separated = _partners_of(g.separated)
    joined: dict[str, set[RecordKey]] = {}  # national id -> the chunk's records it took

    def held(nid: str) -> bool:
        return bool(g.holders.get(nid) or joined.get(nid))

    def held_apart(nid: str, apart: set[RecordKey]) -> bool:
        """Whether a record a person separated from this one holds ``nid``."""
        return bool(apart) and bool(apart & g.holders.get(nid, set())
                                    or apart & joined.get(nid, set()))

    joined_ids: dict[str, set[Identifier]] = {}  # ... and their identifiers

    def identifiers_held(nid: str) -> AbstractSet[Identifier]:
        return g.identifiers.get(nid, frozenset()) | joined_ids.get(nid, set())

    new_order: dict[str, int] = {}
    assigned: dict[str, str] = {}
    decided_by: dict[str, str] = {}
    joins: list[tuple[str, str]] = []
    new_ids: list[str] = []
    reviews: dict[tuple[RecordKey, RecordKey], NewReview] = {}

    def age(nid: str) -> tuple[Any, ...]:
        """Oldest first. Children made in one transaction are as old as each other: of
        those, the one whose first record (by council and local id) comes first, so
        that every run on the same records decides alike (not by the random ids)."""
        if nid in g.created:
            return (0, g.created[nid], min(g.holders.get(nid, ()), default=("", "")), nid)
        return (1, new_order[nid], ("", ""), nid)

    # plain lists: the loop below reads one entry per pair, and a numpy scalar read
    # costs more than the decision it carries
    decisions, vetoes = scores.decision.tolist(), scores.veto.tolist()
    chosen_model, totals = scores.model.tolist(), scores.totals.tolist()
    right, starts, linked = pairs.right.tolist(), pairs.starts.tolist(), pairs.linked.tolist()
    for i, c in enumerate(g.candidates):
        me: RecordKey = (council, c.local_id)
        apart = set(separated.get(me, ()))
        links: list[tuple[RecordKey, str, int]] = []
        greys: list[tuple[RecordKey, str, int]] = []
        for k in range(starts[i], starts[i + 1]):
            rk = pairs.records[right[k]]
            nid = g.others[rk].national_id if right[k] >= n else assigned[rk[1]]
            decision = DECISIONS[decisions[k]]
            if decision is not Decision.LINK and vetoes[k] == 0 and linked[k]:
                decision = Decision.LINK
            if decision is Decision.LINK:
                links.append((rk, nid, k))
            elif decision is Decision.REVIEW:
                greys.append((rk, nid, k))
        # One record with another NHS number or UPN says the child is someone else,
        # however well this record matches its other records (a namesake without an
        # identifier, linked to both, would make two children one): any record of the
        # child, whether or not it shares a key with this one. A pair a person linked
        # still joins: they decided.
        mine = identifiers_of(c.fields.nhs_number, c.fields.upn)
        kept_apart = {nid for _, nid, _ in links + greys
                      if mine and differing_kinds(mine, identifiers_held(nid))}
        targets = {nid for _, nid, k in links if not held_apart(nid, apart)
                   and (nid not in kept_apart or linked[k])}
        torn: set[str] = set()  # the children it matched, none clearly best
        if (len(targets) > 1
                and not any(linked[k] for _, nid, k in links if nid in targets)
                and any(differing_kinds(identifiers_held(x), identifiers_held(y))
                        for x, y in itertools.combinations(sorted(targets), 2))):
            targets, torn = _clear_choice(targets, [(nid, k) for _, nid, k in links], totals)
        decided_by[c.local_id] = model.version
        if targets:
            chosen = min(targets, key=age)
            # the model of the strongest link to the child joined (records of two
            # councils may hold it, scored by two models); of equals, this council's
            strongest = max((j for _, nid, j in links if nid == chosen),
                            key=lambda j: (totals[j], chosen_model[j] == 0))
            decided_by[c.local_id] = models[chosen_model[strongest]].version
            if c.current_id is not None and c.current_id != chosen:
                joins.append((c.current_id, chosen))
        elif c.current_id is not None and not held(c.current_id):
            chosen = c.current_id
        else:
            chosen = new_id()
            new_order[chosen] = len(new_ids)
            new_ids.append(chosen)
        assigned[c.local_id] = chosen
        joined.setdefault(chosen, set()).add(me)
        joined_ids.setdefault(chosen, set()).update(mine)
        for rk, nid, j in links + greys:
            if nid != chosen:
                a, b = pair_of(me, rk)
                explanation = scores.explanation(j)
                shown = explain(explanation, models[chosen_model[j]])
                if nid in kept_apart:  # the index team sees why a strong match waits
                    shown["held"] = CHILD_HOLDS_ANOTHER_IDENTIFIER
                elif torn and nid in torn:
                    shown["held"] = MATCHES_TWO_CHILDREN
                reviews[(a, b)] = NewReview(a, b, explanation.total, shown)
    stale = [rid for pair, rid in g.open_reviews.items() if tuple(sorted(pair)) not in reviews]
    return Decided(assigned, reviews, stale, joins, decided_by, new_ids)


def _clear_choice(targets: set[str], links: list[tuple[str, int]], totals: list[float]
                  ) -> tuple[set[str], set[str]]:
    """Of children a record links to, two of them certainly two (their records hold
    different NHS numbers or UPNs), the one it may join: the one its strongest link goes
    to if that is ``CLEAR_CHOICE_BITS`` stronger than its best to every other, else
    none, and then the children it was torn between."""
    best: dict[str, float] = {}
    for nid, k in links:
        if nid in targets:
            best[nid] = max(best.get(nid, -np.inf), totals[k])
    first, second = sorted(best.values(), reverse=True)[:2]
    if first - second >= CLEAR_CHOICE_BITS:
        return {max(best, key=best.__getitem__)}, set()
    return set(), targets
