"""Training a model from the records themselves, as Splink does (DESIGN §5).

Two samples of comparison vectors make a model:

* **u by random sampling**: pairs of records drawn at random are (almost all) two
  different children, so each level's share among them is its u. A level too rare
  in the sample to measure (two random children with one NHS number) keeps the
  starting model's u, and the measured ones share what is left;
* **m by expectation maximisation** on candidate pairs (those sharing a blocking
  key): :func:`~protocol.matching.scoring.estimate_m_u`, which separates the
  candidate pairs into matches and the siblings, neighbours and namesakes blocking
  lets through, and writes back only m (the u of those non-matches is not the u of
  two children drawn at random).

The prior and the thresholds stay the starting model's: the hub measures the prior
from NHS numbers as records arrive, and the thresholds are a policy (precision
before recall), not something the data can say.

    >>> from protocol.matching.scoring import DEFAULT_MODEL
    >>> agree_on_sex = (0, 0, 0, 0, 1, 0, 0, 0, 0)  # sex AGREE, every other field OTHER
    >>> pairs = [agree_on_sex] * 6 + [(0,) * 9] * 4
    >>> estimate_u(pairs, DEFAULT_MODEL, min_count=3).fields["sex"]
    mappingproxy({'AGREE': (0.995, 0.6), 'DISAGREE': (0.005, 0.4)})
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from protocol.matching.compare import COMPARISONS
from protocol.matching.scoring import Model, estimate_m_u

__all__ = ["MIN_COUNT", "TrainingSummary", "estimate_u", "train"]

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
    for vector in vectors:
        for i, level in enumerate(vector):
            if level >= 0:  # MISSING says nothing about u
                counts[i][int(level)] += 1
    return counts


def _measured(counts: Counter[int], comparison: Any, params: Mapping[str, Any],
              min_count: int) -> list[str]:
    return sorted(name for name in params if counts[int(comparison.levels[name])] >= min_count)


def train(random_vectors: Sequence[Sequence[int]], candidate_vectors: Sequence[Sequence[int]],
          start: Model, version: str, *, iterations: int = 10,
          min_count: int = MIN_COUNT) -> tuple[Model, TrainingSummary]:
    """u by random sampling, then m by EM on candidate pairs; the new model is ``version``."""
    with_u = estimate_u(random_vectors, start, min_count=min_count)
    trained = estimate_m_u(candidate_vectors, with_u, iterations=iterations, version=version)
    change = max((abs(trained.fields[f][level][0] - start.fields[f][level][0])
                  for f in start.fields for level in start.fields[f]), default=0.0)
    counts = _level_counts(random_vectors)
    measured = {c.field: _measured(counts[i], c, start.fields[c.field], min_count)
                for i, c in enumerate(COMPARISONS)}
    return trained, TrainingSummary(len(random_vectors), len(candidate_vectors), iterations,
                                    measured, change)
