"""The decision of national identity resolution, pure: what was gathered → national ids.

:meth:`national_hub.services.linking.Linker.plan` reads from the database everything a
chunk's decision needs (:class:`Gathered`), calls :func:`decide_links`, and writes what
it returns. Nothing here does I/O or reads a clock; new national ids come from the
``new_id`` the caller passes. The rules (docs/design.md §5):

* every candidate pair of a record — another live record sharing a blocking key, an
  earlier record of the same chunk sharing one (a key the chunk alone holds more
  than ``max_block`` times is skipped), or a partner a person linked it to — is scored
  in bulk (:func:`protocol.matching.bulk_score.score_columns`), with the model of one
  council or the model across councils;
* **link**: the record joins the oldest national child among its links whose holders
  a person did not separate from it; other strongly matching children go to review;
* **review**: the pair is queued; the record keeps its own child;
* **new**: the child it held if no one else holds it, else a fresh id.

A pair a person separated is never scored; a pair a person linked links unless a hard
rule now vetoes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from national_hub.storage.resolution import NewReview, RecordKey
from protocol.matching import Decision, Explanation, IdentityFields, Model, TermFrequencies
from protocol.matching.bulk import Columns
from protocol.matching.bulk_score import DECISIONS, score_columns


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
    holders: Mapping[str, frozenset[RecordKey]] = field(default_factory=dict)  # outside
    created: Mapping[str, datetime] = field(default_factory=dict)  # national id -> when


@dataclass(slots=True)
class Decided:
    national_ids: dict[str, str]                  # local_id -> national id
    reviews: dict[tuple[RecordKey, RecordKey], NewReview]
    stale_reviews: list[int]                      # open reviews no longer found
    joins: list[tuple[str, str]]                  # (left id, joined id)
    model_versions: dict[str, str]                # local_id -> the deciding model's version
    new_ids: list[str]                            # fresh national ids, in creation order


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


def candidate_pairs(g: Gathered, max_block: int) -> list[list[RecordKey]]:
    """Per candidate (in order), its partners in the order the rules meet them: the
    others sharing a key, earlier chunk records sharing a key, then linked partners.
    Separated partners are left out: they are never scored."""
    council = g.council
    position = {c.local_id: i for i, c in enumerate(g.candidates)}
    chunk_by_key: dict[str, list[str]] = {}
    for c in g.candidates:
        for k in g.keys[c.local_id]:
            chunk_by_key.setdefault(k, []).append(c.local_id)
    linked, separated = _partners_of(g.linked), _partners_of(g.separated)
    out: list[list[RecordKey]] = []
    for i, c in enumerate(g.candidates):
        me: RecordKey = (council, c.local_id)
        partners: dict[RecordKey, None] = {}
        for k in g.keys[c.local_id]:
            for rk in g.by_key.get(k, ()):
                partners[rk] = None
            block = chunk_by_key[k]
            if len(block) <= max_block:
                for lid in block:
                    if position[lid] < i:  # the later of two chunk records decides
                        partners[(council, lid)] = None
        for rk in linked.get(me, ()):
            if rk in g.others or (rk[0] == council and position.get(rk[1], i) < i):
                partners[rk] = None
        apart = set(separated.get(me, ()))
        out.append([rk for rk in partners if rk not in apart])
    return out


def decide_links(g: Gathered, model: Model, across: Model, tf: TermFrequencies | None,
                 max_block: int, new_id: Callable[[], str]) -> Decided:
    """Each candidate's national id, the reviews, joins and stale reviews (module doc)."""
    council = g.council
    partners = candidate_pairs(g, max_block)
    position = {c.local_id: i for i, c in enumerate(g.candidates)}
    other_keys = list(g.others)
    other_index = {rk: len(g.candidates) + j for j, rk in enumerate(other_keys)}
    columns = Columns.of([c.fields for c in g.candidates]
                         + [g.others[rk].fields for rk in other_keys])
    left = [i for i, ps in enumerate(partners) for _ in ps]
    right = [other_index[rk] if rk in other_index else position[rk[1]]
             for ps in partners for rk in ps]
    which = [0 if rk[0] == council else 1 for ps in partners for rk in ps]
    scores = score_columns(columns, np.array(left, dtype=np.int64),
                           np.array(right, dtype=np.int64), [model, across],
                           np.array(which, dtype=np.int64), tf)
    models = (model, across)

    separated = _partners_of(g.separated)
    holders = {nid: set(rks) for nid, rks in g.holders.items()}
    new_order: dict[str, int] = {}
    assigned: dict[str, str] = {}
    decided_by: dict[str, str] = {}
    joins: list[tuple[str, str]] = []
    new_ids: list[str] = []
    reviews: dict[tuple[RecordKey, RecordKey], NewReview] = {}

    def age(nid: str) -> tuple[Any, ...]:
        if nid in g.created:
            return (0, g.created[nid], nid)
        return (1, new_order[nid], nid)

    # plain lists: the loop below reads one entry per pair, and a numpy scalar read
    # costs more than the decision it carries
    decisions, vetoes = scores.decision.tolist(), scores.veto.tolist()
    chosen_model = scores.model.tolist()
    k = 0
    for i, c in enumerate(g.candidates):
        me: RecordKey = (council, c.local_id)
        apart = set(separated.get(me, ()))
        links: list[tuple[RecordKey, str, int]] = []
        greys: list[tuple[RecordKey, str, int]] = []
        for rk in partners[i]:
            nid = g.others[rk].national_id if rk in g.others else assigned[rk[1]]
            decision = DECISIONS[decisions[k]]
            if (decision is not Decision.LINK and vetoes[k] == 0
                    and frozenset((me, rk)) in g.linked):
                decision = Decision.LINK
            if decision is Decision.LINK:
                links.append((rk, nid, k))
            elif decision is Decision.REVIEW:
                greys.append((rk, nid, k))
            k += 1
        targets = {nid for _, nid, _ in links if not holders.get(nid, set()) & apart}
        decided_by[c.local_id] = model.version
        if targets:
            chosen = min(targets, key=age)
            decided_by[c.local_id] = next(models[chosen_model[j]].version
                                          for _, nid, j in links if nid == chosen)
            if c.current_id is not None and c.current_id != chosen:
                joins.append((c.current_id, chosen))
        elif c.current_id is not None and not holders.get(c.current_id):
            chosen = c.current_id
        else:
            chosen = new_id()
            new_order[chosen] = len(new_ids)
            new_ids.append(chosen)
        assigned[c.local_id] = chosen
        holders.setdefault(chosen, set()).add(me)
        for rk, nid, j in links + greys:
            if nid != chosen:
                a, b = pair_of(me, rk)
                explanation = scores.explanation(j)
                reviews[(a, b)] = NewReview(a, b, explanation.total, explain(
                    explanation, models[chosen_model[j]]))
    stale = [rid for pair, rid in g.open_reviews.items() if tuple(sorted(pair)) not in reviews]
    return Decided(assigned, reviews, stale, joins, decided_by, new_ids)
