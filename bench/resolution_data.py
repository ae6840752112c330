"""The benchmark's population as the hub sees it, and pairwise scoring of a clustering.

Each council holds one record per child it knows: the child's first feed row in that
council (education, then health, then services), parsed by the node's own feed
parser, with whatever noise that row carries (nicknames, typos, day–month swaps,
changed or double-barrelled surnames, stale addresses, missing identifiers). A child
known to two councils (a mover) is a true pair; twins and siblings at one address
are the pairs that must stay apart. Written to one CSV both resolvers read.
"""

from __future__ import annotations

import csv
import itertools
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import synthetic
from local_node.feeds import parse_feed

COLUMNS = ("council", "local_id", "person_id", "given_name", "other_given_names",
           "family_name", "former_family_name", "dob", "sex", "address_line", "postcode",
           "nhs_number", "upn")


def write_records(population: synthetic.Population, feeds: Path, out: Path) -> int:
    """The hub's records (see above) as CSV; returns how many."""
    truth = {(t.council, t.source, t.source_ref): t.person_id for t in population.truth}
    councils = sorted({t.council for t in population.truth})
    seen: set[tuple[str, str]] = set()
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for council in councils:
            for feed in synthetic.FEEDS:
                for row in parse_feed(feed, feeds / council / f"{feed}.csv").rows:
                    person = truth[(council, feed, row.source_ref)]
                    if (council, person) in seen:
                        continue
                    seen.add((council, person))
                    i = row.identity
                    writer.writerow([
                        council, f"L{len(seen):07d}", person, i.given_name,
                        i.other_given_names or "", i.family_name, i.former_family_name or "",
                        i.dob.isoformat() if i.dob else "", i.sex, i.address_line or "",
                        i.postcode or "", i.nhs_number or "", i.upn or ""])
    return len(seen)


def twin_pairs(population: synthetic.Population) -> set[frozenset[str]]:
    """Person-id pairs who are each other's twin."""
    by_dob: dict[object, list[synthetic.Person]] = defaultdict(list)
    for p in population.persons:
        if p.twin_names:
            by_dob[p.dob].append(p)
    return {frozenset((p.person_id, q.person_id)) for group in by_dob.values()
            for p, q in itertools.permutations(group, 2) if q.given_name in p.twin_names}


def read_persons(records: Path) -> dict[str, str]:
    """record id (council/local_id) -> person id."""
    with records.open(encoding="utf-8") as fh:
        return {f"{r['council']}/{r['local_id']}": r["person_id"] for r in csv.DictReader(fh)}


@dataclass(frozen=True, slots=True)
class Quality:
    true_pairs: int
    predicted_pairs: int
    true_positives: int
    merged_twins: int

    @property
    def precision(self) -> float:
        return self.true_positives / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.true_pairs if self.true_pairs else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def pairwise_quality(clusters: Mapping[str, str], persons: Mapping[str, str],
                     twins: set[frozenset[str]]) -> Quality:
    """Pairwise precision and recall of a clustering (record id -> cluster id): a
    predicted pair is two records in one cluster, a true pair two records of one
    person. Every record missing from ``clusters`` is a cluster of its own."""
    def pairs(counts: Counter[object]) -> int:
        return sum(n * (n - 1) // 2 for n in counts.values())

    labels = {rid: clusters.get(rid, f"alone:{rid}") for rid in persons}
    members: dict[str, list[str]] = defaultdict(list)
    for rid, label in labels.items():
        members[label].append(rid)
    merged_twins = sum(
        1 for group in members.values() if len(group) > 1
        for a, b in itertools.combinations(group, 2)
        if frozenset((persons[a], persons[b])) in twins)
    return Quality(
        true_pairs=pairs(Counter(persons.values())),
        predicted_pairs=pairs(Counter(labels.values())),
        true_positives=pairs(Counter((labels[r], persons[r]) for r in persons)),
        merged_twins=merged_twins)
