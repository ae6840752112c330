"""Where the public benchmarks' true pairs are lost, in memory, in seconds.

The real path (``bench.public``) takes minutes per data set and says only whether a
true pair ended linked, in review or neither. This scores every candidate pair of a
data set once, as the hub would (the same blocking keys and block limit, the default
model with the prior measured on names as ``ResolutionStore.partner_rate`` does, the
across-councils model for records of two councils, term frequencies of all records)
and counts, for the true pairs, what decided them: never compared (no shared
blocking key), vetoed (which rule), capped to review (which rule), scored below the
link threshold or linked; and, for the false pairs, how many would link. It also
prints the best recall and F1 the twins rule leaves (:meth:`Analysis.twins_bound`).

It ignores clustering (a pair missed may still be joined through a third record) and
the nodes' own matching, so its figures are pairs, not the benchmark's; it is for
finding causes, quickly::

    python -m bench.public_analysis --dataset febrl1 --examples 5

With ``--trained`` it first trains a model on the records as ``national-hub model
train`` does (u on random pairs, m by EM in sessions on the candidate pairs a hard rule
does not veto, the prior by EM over every pair of records: :func:`trained_model`) and
decides with it, and prints the prior measured, estimated and true.
"""

from __future__ import annotations

import datetime
import math
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import click
import numpy as np

from bench import public_data
from bench.public import COUNCILS
from national_hub.services.linking import (
    MAX_PRIOR,
    RESOLUTION_BLOCK_LIMIT,
    across_councils,
    measured_prior,
    person_key,
    with_prior,
)
from national_hub.services.model_training import RANDOM_PAIRS
from protocol.matching import DEFAULT_MODEL, IdentityFields, Model, TermFrequencies, score
from protocol.matching.blocking import candidate_pairs
from protocol.matching.bulk import Columns, random_pairs
from protocol.matching.scoring import Decision, Explanation, Thresholds
from protocol.matching.training import train_columns


def identity(row: dict[str, str]) -> IdentityFields:
    """A feed row as the hub would hold it (a date our validation refuses is absent)."""
    try:
        dob: datetime.date | None = datetime.date.fromisoformat(row["dob"])
    except ValueError:
        dob = None
    return IdentityFields(
        given_name=row["given_name"] or None, family_name=row["family_name"] or None,
        dob=dob, other_given_names=row["other_given_names"] or None,
        postcode=row["postcode"] or None, address_line=row["address_line"] or None)


def name_rate(fields: list[IdentityFields]) -> tuple[int, int, int]:
    """``ResolutionStore.partner_rate`` where no record has an NHS number: records,
    those with given name, family name and date of birth, and those sharing all three
    (as the hub keys them, :func:`~national_hub.services.linking.person_key`) with
    another."""
    persons = [p for p in map(person_key, fields) if p is not None]
    counts = Counter(persons)
    return (len(fields), len(persons), sum(1 for p in persons if counts[p] > 1))


@dataclass
class Analysis:
    name: str
    true_pairs: int
    outcome: Counter[str] = field(default_factory=Counter)   # true pairs, by what decided
    false_links: int = 0
    false_reviews: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)
    # totals of the pairs no hard rule holds back, by whole bits: (true, false) counts
    totals: dict[int, list[int]] = field(default_factory=dict)
    names_only: dict[int, list[int]] = field(default_factory=dict)
    priors: dict[str, float] = field(default_factory=dict)  # measured, estimated, true
    most_records: int = 2  # the most records one person has in the data set

    def twins_bound(self) -> tuple[float, float]:
        """(recall, F1) at best while the twins rule holds: every true pair linked but
        those it vetoes, no false pair. A pair the rule vetoes is never linked
        automatically (only an index team that checks a node's possible twin may merge
        it, which the benchmark, like Splink, does not count); where a person has three
        records or more, a third one may still join the two into one child, so only
        then is it no bound."""
        recall = 1 - self.outcome["vetoed: twins"] / self.true_pairs
        return recall, 2 * recall / (1 + recall)


def _why(explained: Explanation) -> str:
    decision = explained.decision()
    if explained.veto:
        return f"vetoed: {explained.veto}"
    if decision is Decision.LINK:
        return "linked"
    if explained.cap and explained.total >= explained.thresholds.link:
        return f"capped: {explained.cap}"
    return "review (score)" if decision is Decision.REVIEW else "below review (score)"


def _show(a: IdentityFields, b: IdentityFields, e: Explanation) -> str:
    def one(f: IdentityFields) -> str:
        return f"{f.given_name}|{f.family_name}|{f.dob}|{f.postcode}|{f.address_line}"
    levels = " ".join(f"{x.field[:6]}={x.level}:{x.weight:+.1f}" for x in e.fields
                      if x.level != "MISSING")
    return f"{one(a)}\n      {one(b)}\n      total {e.total:+.1f} {levels}"


def trained_model(fields: list[IdentityFields], compared: set[tuple[int, int]],
                  seed: int) -> tuple[Model, float]:
    """A model trained on these records as ``national-hub model train`` trains one (every
    candidate pair, not a sample), and the prior it estimated."""
    rate = name_rate(fields)
    measured = measured_prior(DEFAULT_MODEL, rate)
    columns = Columns.of(fields)
    pairs = sorted(compared)
    run = train_columns(columns, random_pairs(len(fields), RANDOM_PAIRS,
                                              np.random.default_rng(seed)),
                        columns, (np.array([i for i, _ in pairs], dtype=np.int64),
                                  np.array([j for _, j in pairs], dtype=np.int64)),
                        DEFAULT_MODEL, "in-memory", deciding=lambda m: with_prior(m, rate),
                        prior=measured, records=len(fields), max_prior=MAX_PRIOR)
    return with_prior(run.model, rate), run.summary.prior or measured


def analyse(name: str, *, seed: int = 14, examples: int = 0,
            trained: bool = False, review_at: float | None = None) -> Analysis:
    dataset = public_data.load(name)
    council_of = {r.source_ref: c for c, rs in
                  public_data.split(dataset.records, COUNCILS, seed).items() for r in rs}
    fields = [identity(r.row) for r in dataset.records]
    compared = candidate_pairs(fields, max_block_size=RESOLUTION_BLOCK_LIMIT)
    out = Analysis(name, dataset.true_pairs,
                   most_records=max(Counter(r.entity for r in dataset.records).values()))
    model = with_prior(DEFAULT_MODEL, name_rate(fields))
    out.priors = {"measured": model.prior,
                  "true": dataset.true_pairs / (len(fields) * (len(fields) - 1) / 2)}
    if trained:
        model, out.priors["estimated"] = trained_model(fields, compared, seed)
    if review_at is not None:  # the review threshold as a policy to try
        model = replace(model, thresholds=Thresholds(model.thresholds.link, review_at))
    across = across_councils(model)
    tf = TermFrequencies.from_records(fields)
    shown: dict[str, list[str]] = {}
    for i, j in compared:
        ra, rb = dataset.records[i], dataset.records[j]
        same = council_of[ra.source_ref] == council_of[rb.source_ref]
        explained = score(fields[i], fields[j], model if same else across, tf)
        if explained.veto is None and explained.cap is None:
            alone = all(f.level == "MISSING" for f in explained.fields
                        if f.field not in ("given_name", "family_name", "dob"))
            if alone:
                nb = out.names_only.setdefault(int(explained.total // 1), [0, 0])
                nb[ra.entity != rb.entity] += 1
            bucket = out.totals.setdefault(int(explained.total // 1), [0, 0])
            bucket[ra.entity != rb.entity] += 1
        if ra.entity == rb.entity:
            why = _why(explained)
            out.outcome[why] += 1
            if why != "linked" and len(shown.setdefault(why, [])) < examples:
                shown[why].append(_show(fields[i], fields[j], explained))
        elif explained.decision() is Decision.LINK:
            out.false_links += 1
            shown.setdefault("FALSE LINK", []).append(_show(fields[i], fields[j], explained))
        elif explained.decision() is Decision.REVIEW:
            out.false_reviews += 1
    out.outcome["never compared"] = out.true_pairs - sum(out.outcome.values())
    if examples:
        by_person: dict[str, list[int]] = {}
        for k, r in enumerate(dataset.records):
            by_person.setdefault(r.entity, []).append(k)
        missing = [(i, j) for ks in by_person.values() for x, i in enumerate(ks)
                   for j in ks[x + 1:] if (min(i, j), max(i, j)) not in compared]
        shown["never compared"] = [_show(fields[i], fields[j], score(fields[i], fields[j]))
                                   for i, j in missing]
    for why, texts in shown.items():
        random.Random(seed).shuffle(texts)
        out.examples[why] = texts[:max(examples, 10 if why == "FALSE LINK" else 0)]
    return out


def lines(a: Analysis) -> Iterator[str]:
    linked = a.outcome["linked"]
    precision = linked / (linked + a.false_links) if linked + a.false_links else 1.0
    recall = linked / a.true_pairs
    f1 = 2 * precision * recall / (precision + recall) if linked else 0.0
    yield (f"== {a.name}: {a.true_pairs:,} true pairs; pairwise P {precision:.4f} "
           f"R {recall:.4f} F1 {f1:.4f}; false pairs linked {a.false_links:,}, "
           f"in review {a.false_reviews:,}")
    for why, n in a.outcome.most_common():
        yield f"  {why:<40} {n:>6,} {n / a.true_pairs:>7.1%}"
    if a.outcome["vetoed: twins"]:
        bound_recall, bound_f1 = a.twins_bound()
        yield (f"  the twins rule alone holds back {a.outcome['vetoed: twins']:,}: "
               f"at best R {bound_recall:.4f} F1 {bound_f1:.4f}"
               + (" (no person has a third record to join them)" if a.most_records <= 2
                  else f" (not a bound: a person has up to {a.most_records} records)"))
    if a.priors:
        yield "  prior (log2): " + ", ".join(f"{k} {math.log2(v):.2f}"
                                             for k, v in a.priors.items())
    if a.examples:
        yield "  total (bits) of pairs no rule holds back: true / false"
        for bits in sorted(a.totals):
            if -8 <= bits <= 16:
                yield (f"    {bits:>4}: {a.totals[bits][0]:>6,} {a.totals[bits][1]:>6,}"
                       f"   names and dob alone: {a.names_only.get(bits, [0, 0])}")
    for why, texts in a.examples.items():
        yield f"  -- {why}"
        for t in texts:
            yield f"    {t}"


@click.command(help=__doc__)
@click.option("--dataset", "names", multiple=True, type=click.Choice(public_data.DATASETS))
@click.option("--examples", default=0, show_default=True, help="Pairs to show per outcome.")
@click.option("--seed", default=14, show_default=True)
@click.option("--trained", is_flag=True,
              help="Train a model on the records first, as national-hub model train does.")
@click.option("--review-at", type=float, default=None,
              help="Review threshold in bits, instead of the model's (a policy to try).")
def main(names: tuple[str, ...], examples: int, seed: int, trained: bool,
         review_at: float | None) -> None:
    for name in names or public_data.DATASETS:
        for line in lines(analyse(name, seed=seed, examples=examples, trained=trained,
                                  review_at=review_at)):
            click.echo(line)


if __name__ == "__main__":
    main()
