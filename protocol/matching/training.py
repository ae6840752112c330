"""Training a model from the records themselves, as Splink does (docs/design.md §5).

Two samples of comparison vectors make a model:

* **u by random sampling**: pairs of records drawn at random are (almost all) two
  different children, so each level's share among them is its u. A level too rare
  in the sample to measure (two random children with one NHS number) keeps the
  starting model's u, and the measured ones share what is left;
* **m by expectation maximisation** on candidate pairs (those sharing a blocking
  key), with u fixed at the sampled u and the prior at the hub's measured one, as
  Splink fixes u during EM (:func:`estimate_m`). Each field's m is estimated from
  the match probability the *other* fields give a pair, as Splink estimates in each
  session only the fields its training blocking rule leaves free: a field must not
  vouch for itself, or siblings (who agree on surname, postcode and address) teach
  the model that a household is a child. A plain two-class EM over every field does
  exactly that on blocked pairs (the household is the stronger cluster).

The prior and the thresholds stay the starting model's: the hub measures the prior
from NHS numbers as records arrive (and passes it in for the E-step), and the
thresholds are a policy (precision before recall), not something the data can say.

    >>> from protocol.matching.scoring import DEFAULT_MODEL
    >>> agree_on_sex = (0, 0, 0, 0, 1, 0, 0, 0, 0)  # sex AGREE, every other field OTHER
    >>> pairs = [agree_on_sex] * 6 + [(0,) * 9] * 4
    >>> estimate_u(pairs, DEFAULT_MODEL, min_count=3).fields["sex"]
    mappingproxy({'AGREE': (0.995, 0.6), 'DISAGREE': (0.005, 0.4)})
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from protocol.matching.compare import COMPARISONS, FIELDS
from protocol.matching.scoring import Model

__all__ = ["MIN_COUNT", "TrainingSummary", "estimate_m", "estimate_m_u", "estimate_u",
           "level_weights", "train"]

_EPSILON = 1e-9
MIN_COUNT = 20  # sampled pairs a level needs before its measured share replaces the model's
_FLOOR = 1e-7


@dataclass(frozen=True, slots=True)
class TrainingSummary:
    """What a training run saw: stored beside the model it made."""

    random_pairs: int
    candidate_pairs: int
    em_iterations: int
    u_measured: dict[str, list[str]]   # field -> levels whose u the sample measured
    m_change: float                   # largest |m_new - m_start| over every level

    def to_dict(self) -> dict[str, Any]:
        return {"random_pairs": self.random_pairs, "candidate_pairs": self.candidate_pairs,
                "em_iterations": self.em_iterations, "u_measured": self.u_measured,
                "m_change": self.m_change}



Levels = list[list[Any]]
Probabilities = list[dict[int, float]]


def _start(model: Model) -> tuple[Levels, Probabilities, Probabilities]:
    """Where EM starts: each comparison's observable levels, and the model's m and u of
    each, keyed by the level's value."""
    levels = [[lv for lv in c.levels if lv.value >= 0] for c in COMPARISONS]
    m = [{lv.value: model.fields[c.field][lv.name][0] for lv in levels[i]}
         for i, c in enumerate(COMPARISONS)]
    u = [{lv.value: model.fields[c.field][lv.name][1] for lv in levels[i]}
         for i, c in enumerate(COMPARISONS)]
    return levels, m, u

def estimate_u(random_vectors: Iterable[Sequence[int]], model: Model, *,
               min_count: int = MIN_COUNT) -> Model:
    """The model with each level's u measured on pairs drawn at random (see above)."""
    counts = _level_counts(random_vectors)
    fields: dict[str, dict[str, tuple[float, float]]] = {}
    for i, comparison in enumerate(COMPARISONS):
        params = model.fields[comparison.field]
        measured = _measured(counts[i], comparison, params, min_count)
        if not measured:
            fields[comparison.field] = dict(params)
            continue
        kept = {name: params[name][1] for name in params if name not in measured}
        # The unmeasured levels keep their u; the measured share the rest in proportion.
        rest = max(_FLOOR, 1.0 - sum(kept.values()))
        measured_total = sum(counts[i][int(comparison.levels[n])] for n in measured)
        fields[comparison.field] = {
            name: (m, kept[name] if name in kept else max(
                _FLOOR, rest * counts[i][int(comparison.levels[name])] / measured_total))
            for name, (m, _) in params.items()}
    return replace(model, fields=fields)


def _level_counts(vectors: Iterable[Sequence[int]]) -> list[Counter[int]]:
    counts = [Counter[int]() for _ in COMPARISONS]
    # distinct vectors first: hundreds of thousands of pairs show a few thousand
    for vector, n in Counter(map(tuple, vectors)).items():
        for i, level in enumerate(vector):
            if level >= 0:  # MISSING says nothing about u
                counts[i][int(level)] += n
    return counts


def _measured(counts: Counter[int], comparison: Any, params: Mapping[str, Any],
              min_count: int) -> list[str]:
    return sorted(name for name in params if counts[int(comparison.levels[name])] >= min_count)


def estimate_m(candidate_vectors: Iterable[Sequence[int]], model: Model, prior: float, *,
               iterations: int = 1) -> Model:
    """m re-estimated on candidate pairs with u and the prior fixed (see above): in each
    iteration, each field's level shares weighted by the pair's match probability by
    every other field. MISSING levels count for nothing; no level's m reaches zero.

    One iteration by default: fields are not independent (siblings agree on surname,
    postcode *and* address), so iterating drifts toward the household, a little more
    each time; one step from the current model is stable, and training again starts
    from the newest stored model anyway."""
    counts = Counter(tuple(int(x) for x in v) for v in candidate_vectors)
    if not counts:
        return model
    levels, m, u = _start(model)
    prior_weight = math.log2(prior / (1.0 - prior))
    for _ in range(iterations):
        weights = {v: [math.log2(m[i][lv] / u[i][lv]) if lv >= 0 else 0.0
                       for i, lv in enumerate(v)] for v in counts}
        totals = {v: prior_weight + sum(w) for v, w in weights.items()}
        new_m = []
        for i in range(len(COMPARISONS)):
            mass = {lv.value: 0.0 for lv in levels[i]}
            for v, count in counts.items():
                if v[i] >= 0:
                    others = max(-500.0, min(500.0, totals[v] - weights[v][i]))
                    mass[v[i]] += count / (1.0 + 2.0 ** -others)
            new_m.append(_agreement_not_against(_shares(mass), u[i])
                         if sum(mass.values()) > 0 else m[i])
        m = new_m
    fields = {c.field: {lv.name: (m[i][lv.value], model.fields[c.field][lv.name][1])
                        for lv in levels[i]} for i, c in enumerate(COMPARISONS)}
    return replace(model, fields=fields)


def _agreement_not_against(m: dict[int, float], u: Mapping[int, float]) -> dict[int, float]:
    """Any agreement (every level above 0, the disagreeing one) keeps m ≥ u: agreeing is
    never evidence *against* one child. Without this, a hub whose only true pairs are
    movers learns that one postcode means two children, and a council's duplicate
    record at one address would never link."""
    raised = {level: u[level] for level, p in m.items() if level > 0 and p < u[level]}
    rest = 1.0 - sum(raised.values())
    free = sum(p for level, p in m.items() if level not in raised)
    if not raised or rest <= 0 or free <= 0:
        return m
    return {level: raised.get(level, p * rest / free) for level, p in m.items()}


def _shares(mass: Mapping[int, float], floor: float = 1e-6) -> dict[int, float]:
    total = sum(mass.values())
    probs = {level: max(floor, value / total) for level, value in mass.items()}
    norm = sum(probs.values())
    return {level: p / norm for level, p in probs.items()}


def train(random_vectors: Sequence[Sequence[int]], candidate_vectors: Sequence[Sequence[int]],
          start: Model, version: str, *, prior: float | None = None, iterations: int = 1,
          min_count: int = MIN_COUNT) -> tuple[Model, TrainingSummary]:
    """u by random sampling, then m by EM on candidate pairs (``prior``: the chance two
    records drawn at random are one child, the start model's unless given); the new
    model is ``version``."""
    with_u = estimate_u(random_vectors, start, min_count=min_count)
    trained = replace(estimate_m(candidate_vectors, with_u, prior or start.prior,
                                 iterations=iterations), version=version)
    change = max((abs(trained.fields[f][level][0] - start.fields[f][level][0])
                  for f in start.fields for level in start.fields[f]), default=0.0)
    counts = _level_counts(random_vectors)
    measured = {c.field: _measured(counts[i], c, start.fields[c.field], min_count)
                for i, c in enumerate(COMPARISONS)}
    return trained, TrainingSummary(len(random_vectors), len(candidate_vectors), iterations,
                                    measured, change)


# -- EM over every field (both classes), as a plain Splink EM -------------------------


def estimate_m_u(pairs_levels: Iterable[Sequence[int]], model: Model, *,
                 iterations: int = 10, update_u: bool = False,
                 version: str | None = None) -> Model:
    """Re-estimate m (and u, if ``update_u``) by expectation maximisation.

    ``pairs_levels`` are the comparison vectors (:func:`compare_all`) of candidate
    pairs. Starting from ``model``, each iteration computes every distinct vector's
    match probability (E) and re-estimates each level's m and u as the weighted
    share of pairs showing it (M), as Splink does. ``MISSING`` levels are left out.

    Both m and u are estimated, but by default only m is written back: true matches
    look the same among candidate pairs as anywhere, while the non-matches blocking
    lets through (siblings, neighbours, namesakes) agree far more often than two
    children drawn at random, which is what the model's u and prior describe.

    Numerically safe: work is in log space, probabilities stay in ``[1e-6, 1 - 1e-6]``
    and a level never seen gets a small probability, never zero.
    """
    counts = Counter(tuple(int(x) for x in v) for v in pairs_levels)
    if not counts:
        return model
    levels, m, u = _start(model)
    share = 0.5  # of candidate pairs that match; estimated along the way
    pairs = sum(counts.values())
    for _ in range(iterations):
        posterior = {v: _posterior(v, m, u, share) for v in counts}
        matched = sum(c * posterior[v] for v, c in counts.items())
        share = min(1 - 1e-6, max(1e-6, matched / pairs))
        m = [_m_step(counts, posterior, i, levels[i], match=True) for i in range(len(FIELDS))]
        u = [_m_step(counts, posterior, i, levels[i], match=False) for i in range(len(FIELDS))]
    fields = {c.field: {lv.name: (m[i][lv.value], u[i][lv.value] if update_u
                                  else model.fields[c.field][lv.name][1])
                        for lv in levels[i]}
              for i, c in enumerate(COMPARISONS)}
    return replace(model, fields=fields, version=version or f"{model.version}+em")


def _posterior(vector: tuple[int, ...], m: list[dict[int, float]], u: list[dict[int, float]],
               share: float) -> float:
    log_match, log_other = math.log(share), math.log(1.0 - share)
    for i, level in enumerate(vector):
        if level >= 0:
            log_match += math.log(m[i][level])
            log_other += math.log(u[i][level])
    diff = max(-700.0, min(700.0, log_other - log_match))
    return 1.0 / (1.0 + math.exp(diff))


def _m_step(counts: Counter[tuple[int, ...]], posterior: Mapping[tuple[int, ...], float],
            i: int, levels: Sequence[Any], *, match: bool) -> dict[int, float]:
    mass = {lv.value: 0.0 for lv in levels}
    for vector, count in counts.items():
        level = vector[i]
        if level >= 0:
            p = posterior[vector]
            mass[level] += count * (p if match else 1.0 - p)
    total = sum(mass.values())
    if total <= _EPSILON:
        return {level: 1.0 / len(mass) for level in mass}
    floor = 1e-6
    probs = {level: max(floor, value / total) for level, value in mass.items()}
    norm = sum(probs.values())
    return {level: min(1.0 - floor, p / norm) for level, p in probs.items()}


def level_weights(model: Model) -> dict[str, dict[str, float]]:
    """Each level's match weight, log2(m/u), rounded: what an operator reads."""
    return {c.field: {name: round(math.log2(m / u), 2)
                      for name, (m, u) in model.fields[c.field].items()}
            for c in COMPARISONS}
