"""The default model on synthetic ground truth: precision, recall and twins.

Two councils of 1,500 children each, with the feeds' noise at its default rates
(nicknames, typos, day–month swaps, changed and double-barrelled surnames, stale
addresses, movers, missing identifiers, twins). Every feed row is written to CSV,
parsed back as a council would, blocked, scored with :data:`DEFAULT_MODEL` and
decided. A pair of rows is the same child when the truth gives both one
``person_id``. Recall counts every true pair, including any blocking missed.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

import synthetic
from local_node.feeds import FeedRow, parse_feed
from protocol.matching import (
    DEFAULT_MODEL,
    Decision,
    Explanation,
    IdentityFields,
    TermFrequencies,
    candidate_pairs,
    score,
)

COUNCILS = ["E10000011", "E06000020"]   # East Sussex, Telford and Wrekin
CHILDREN_PER_COUNCIL = 1500
SEED = 20_240_601
TODAY = date(2026, 6, 1)


@dataclass
class Evaluation:
    rows: list[IdentityFields]
    person: list[str]                         # person_id of each row
    twins: set[frozenset[str]]                # person_id pairs who are each other's twin
    results: dict[tuple[int, int], Explanation]
    seconds: float

    @property
    def true_pairs(self) -> int:
        return sum(n * (n - 1) // 2 for n in Counter(self.person).values())

    def same(self, pair: tuple[int, int]) -> bool:
        return self.person[pair[0]] == self.person[pair[1]]

    def linked(self) -> list[tuple[int, int]]:
        return [p for p, e in self.results.items() if e.decision() is Decision.LINK]


def _identity(row: FeedRow) -> IdentityFields:
    i = row.identity
    return IdentityFields(
        given_name=i.given_name, family_name=i.family_name, dob=i.dob, sex=i.sex,
        other_given_names=i.other_given_names,
        former_family_names=(i.former_family_name,) if i.former_family_name else (),
        postcode=i.postcode, address_line=i.address_line, nhs_number=i.nhs_number, upn=i.upn,
    )


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory: pytest.TempPathFactory) -> Evaluation:
    population = synthetic.generate_population(COUNCILS, CHILDREN_PER_COUNCIL, SEED,
                                               today=TODAY)
    out: Path = tmp_path_factory.mktemp("feeds")
    synthetic.write_feeds(population, out)
    truth = {(t.council, t.source, t.source_ref): t.person_id for t in population.truth}
    rows, person = [], []
    for council in COUNCILS:
        for feed in synthetic.FEEDS:
            parsed = parse_feed(feed, out / council / f"{feed}.csv")
            assert not parsed.errors
            for row in parsed.rows:
                rows.append(_identity(row))
                person.append(truth[(council, feed, row.source_ref)])
    twins = {frozenset((p.person_id, q.person_id)) for p in population.persons
             for q in population.persons
             if p is not q and p.dob == q.dob and q.given_name in p.twin_names}
    tf = TermFrequencies.from_records(rows)
    pairs = sorted(candidate_pairs(rows))
    started = time.perf_counter()
    results = {(i, j): score(rows[i], rows[j], DEFAULT_MODEL, tf) for i, j in pairs}
    return Evaluation(rows, person, twins, results, time.perf_counter() - started)


def test_blocking_keeps_true_pairs_and_is_far_from_all_pairs(evaluation: Evaluation) -> None:
    kept = sum(1 for pair in evaluation.results if evaluation.same(pair))
    n = len(evaluation.rows)
    print(f"\nrows {n}, candidate pairs {len(evaluation.results)} "
          f"(all pairs {n * (n - 1) // 2}), true pairs {evaluation.true_pairs}, "
          f"of which in candidates {kept}")
    assert kept / evaluation.true_pairs >= 0.995
    assert len(evaluation.results) < 0.002 * n * (n - 1) // 2


def test_precision_and_recall(evaluation: Evaluation) -> None:
    linked = evaluation.linked()
    true_links = sum(1 for pair in linked if evaluation.same(pair))
    precision = true_links / len(linked)
    recall = true_links / evaluation.true_pairs
    f1 = 2 * precision * recall / (precision + recall)
    review = Counter(evaluation.same(p) for p, e in evaluation.results.items()
                     if e.decision() is Decision.REVIEW)
    thresholds = DEFAULT_MODEL.thresholds
    print(f"\nthresholds link >= {thresholds.link}, review >= {thresholds.review}: "
          f"links {len(linked)} (false {len(linked) - true_links}), "
          f"precision {precision:.4f}, recall {recall:.4f}, F1 {f1:.4f}; "
          f"review queue {review[True]} same child, {review[False]} different")
    print(f"scored {len(evaluation.results)} pairs in {evaluation.seconds:.2f} s "
          f"({len(evaluation.results) / evaluation.seconds:,.0f} pairs/s)")
    assert precision >= 0.995
    assert recall >= 0.95


def test_twins_are_never_linked(evaluation: Evaluation) -> None:
    twin_pairs = [p for p in evaluation.results
                  if frozenset((evaluation.person[p[0]], evaluation.person[p[1]]))
                  in evaluation.twins]
    linked = [p for p in twin_pairs if evaluation.results[p].decision() is Decision.LINK]
    print(f"\ntwin pairs among candidates {len(twin_pairs)}, linked {len(linked)}")
    assert twin_pairs  # the data really has twins for the guard to meet
    assert linked == []


def test_linked_clusters_stay_clean(evaluation: Evaluation) -> None:
    """Joining links transitively (as national ids do) must not chain two children."""
    parent = list(range(len(evaluation.rows)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j in evaluation.linked():
        parent[find(i)] = find(j)
    clusters: dict[int, list[int]] = {}
    for i in range(len(evaluation.rows)):
        clusters.setdefault(find(i), []).append(i)
    same = mixed = 0
    for members in clusters.values():
        counts = Counter(evaluation.person[i] for i in members)
        within = sum(c * (c - 1) // 2 for c in counts.values())
        same += within
        mixed += len(members) * (len(members) - 1) // 2 - within
    precision, recall = same / (same + mixed), same / evaluation.true_pairs
    print(f"\nclusters: pairwise precision {precision:.4f}, recall {recall:.4f}")
    assert precision >= 0.995
    assert recall >= 0.98
