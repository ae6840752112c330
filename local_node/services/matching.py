"""Local matching of a chunk's feed rows through the bulk engine.

Rows are placed one after another (an earlier row of a chunk can create or change the
child a later row matches), but what each row will be compared with is known, almost
always, before the first is placed: the children already in the index that share a
blocking key with it, and the earlier rows of the chunk that do. :class:`ChunkScores`
scores all those pairs in one :func:`protocol.matching.bulk_score.score_columns` call
before the chunk is placed. While placing, a row's candidate is looked up there, and
its pre-computed score is used only if the child is still exactly who it was scored as
(same identity fields); otherwise, and for a pair nobody foresaw, the pair is scored
alone by :func:`protocol.matching.score`. The bulk scores equal ``score``'s to the last
bit (``protocol.matching.bulk_score``), so a chunk decides exactly as pair-by-pair
scoring would (``tests/local_node/test_bulk_matching.py`` checks it on generated rows).

The decision itself is :func:`decide_row`: the best-scoring candidate not vetoed
decides; a possible twin goes to review, never linked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from local_node.feeds import FeedRow
from local_node.storage.children import MATCH_BLOCK_LIMIT, ChildRow
from protocol.matching import Decision, Explanation, IdentityFields, Model, score
from protocol.matching.bulk import Columns
from protocol.matching.bulk_score import VETOES, PairScores, score_columns


@dataclass(frozen=True, slots=True)
class Scored:
    """One candidate pair's score: what the decision needs, the explanation on demand."""

    total: float
    veto: str | None
    decision: Decision
    explain: Callable[[], Explanation]


def conflicts(child: ChildRow, row: FeedRow) -> bool:
    """Different NHS numbers or UPNs: never one child, never even a candidate."""
    ident = row.identity
    return bool(
        (ident.nhs_number and child.nhs_number and ident.nhs_number != child.nhs_number)
        or (ident.upn and child.upn and ident.upn != child.upn)
    )


KNOWN_SEXES = (1, 2)  # male, female: 0 (not known) and 9 (not specified) say nothing


def same_name_places(child: ChildRow, row: FeedRow) -> bool:
    """Whether the exact given name, family name and date of birth place the row with
    this child without scoring: only when something else recorded on both agrees with
    or is compared beside them and the sexes do not differ. Two namesakes born the same
    day with nothing else recorded (no sex, home or identifier on one side) are a pair
    the model must weigh, where names and a date alone need more than the link
    threshold (``protocol.matching.scoring.NAMES_ALONE_LINK``); a different sex is
    evidence against, which only scoring weighs."""
    ident = row.identity
    sexes = (ident.sex, child.sex)
    if all(s in KNOWN_SEXES for s in sexes) and ident.sex != child.sex:
        return False
    return bool(
        all(s in KNOWN_SEXES for s in sexes)
        or (ident.postcode and child.postcode)
        or (ident.address_line and child.address_line)
        or (ident.nhs_number and child.nhs_number)
        or (ident.upn and child.upn))


def candidates(row: FeedRow, keys: Iterable[str],
               by_key: dict[str, dict[int, ChildRow]]) -> dict[int, ChildRow]:
    """The children sharing a blocking key with the row (a key held by more than
    MATCH_BLOCK_LIMIT children is too common to be evidence), without a conflicting
    identifier."""
    found: dict[int, ChildRow] = {}
    for key in keys:
        holders = by_key.get(key, {})
        if len(holders) > MATCH_BLOCK_LIMIT:
            continue
        for child in holders.values():
            if not conflicts(child, row):
                found[id(child)] = child
    return found


def decide_row(scored: Iterable[tuple[ChildRow, Scored]],
               ) -> tuple[ChildRow | None, tuple[ChildRow, Scored] | None]:
    """(child to link, None), or (None, (candidate, score)) for review, or (None, None)
    for a new child. The best-scoring candidate decides."""
    best: tuple[ChildRow, Scored] | None = None
    possible_twin: tuple[ChildRow, Scored] | None = None
    for child, result in scored:
        if result.veto is None:
            if best is None or result.total > best[1].total:
                best = (child, result)
        elif result.veto == "twins" and (possible_twin is None
                                         or result.total > possible_twin[1].total):
            possible_twin = (child, result)
    decision = best[1].decision if best is not None else Decision.NEW
    if decision is Decision.LINK:
        assert best is not None
        return best[0], None
    if decision is Decision.REVIEW:
        return None, best
    if possible_twin is not None and possible_twin[1].total >= 0:
        # Never merged automatically; but a twin and a misspelt given name look alike,
        # and the index team can tell them apart (one call to the school settles it).
        return None, possible_twin
    return None, None


def score_one(row: IdentityFields, child: IdentityFields, model: Model) -> Scored:
    result = score(row, child, model)
    return Scored(result.total, result.veto, result.decision(), lambda: result)


def _from_bulk(scores: PairScores, k: int) -> Scored:
    return Scored(float(scores.totals[k]), VETOES[int(scores.veto[k])], scores.decided(k),
                  lambda: scores.explanation(k))


class ChunkScores:
    """A chunk's foreseeable candidate pairs, scored at once.

    ``rows[i]`` and ``fields[i]`` are the chunk's rows and their identities; ``probe``
    the positions of the rows that will be matched probabilistically; ``by_key`` the
    index's children by blocking key before the chunk is placed, ``keys[i]`` the keys
    of probed row i. Pairs: each probed row with each candidate child, and with each earlier row of
    the chunk sharing a key (that row may have become a new child by then)."""

    def __init__(self, model: Model, rows: Sequence[FeedRow], fields: Sequence[IdentityFields],
                 keys: Mapping[int, frozenset[str]], probe: Sequence[int],
                 by_key: dict[str, dict[int, ChildRow]],
                 child_fields: Callable[[ChildRow], IdentityFields]) -> None:
        self.model = model
        self.child_fields = child_fields
        records: list[IdentityFields] = []
        row_at: dict[int, int] = {}          # chunk position -> record index
        child_at: dict[int, int] = {}        # id(child) -> record index
        a: list[int] = []
        b: list[int] = []
        self._pairs: dict[tuple[int, int], int] = {}  # (position, record index) -> pair
        chunk_key: dict[str, list[int]] = {}  # key -> earlier probed positions holding it
        for i in sorted(probe):
            row_at[i] = len(records)
            records.append(fields[i])
        for i in sorted(probe):
            pair_with: set[int] = set()
            for child in candidates(rows[i], keys[i], by_key).values():
                at = child_at.get(id(child))
                if at is None:
                    at = child_at[id(child)] = len(records)
                    records.append(child_fields(child))
                pair_with.add(at)
            for key in keys[i]:
                earlier = chunk_key.setdefault(key, [])
                if len(by_key.get(key, ())) + len(earlier) <= MATCH_BLOCK_LIMIT:
                    pair_with.update(row_at[j] for j in earlier)
                earlier.append(i)
            for at in sorted(pair_with):
                self._pairs[(i, at)] = len(a)
                a.append(row_at[i])
                b.append(at)
        self._records = records
        self._row_at = row_at
        self._child_at = child_at
        self.pairs = len(a)
        self._scores = (score_columns(Columns.of(records), np.array(a, dtype=np.int64),
                                      np.array(b, dtype=np.int64), [model])
                        if a else None)
        self.looked_up = 0       # pairs whose score a decision used
        self.fallbacks = 0       # of those, scored alone (a child changed, or unforeseen)

    def score(self, i: int, row: IdentityFields, child: ChildRow,
              origin: int | None) -> Scored:
        """Row ``i`` against ``child`` (created from chunk row ``origin``, if it was)."""
        self.looked_up += 1
        now = self.child_fields(child)
        at = self._row_at.get(origin) if origin is not None else self._child_at.get(id(child))
        if at is not None and self._scores is not None and self._records[at] == now:
            k = self._pairs.get((i, at))
            if k is not None:
                return _from_bulk(self._scores, k)
        self.fallbacks += 1
        return score_one(row, now, self.model)
