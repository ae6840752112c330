"""Training a model from the records themselves, as Splink does (docs/design.md §5).

Two samples of comparison vectors make a model:

* **u by random sampling**: pairs of records drawn at random are (almost all) two
  different children, so each level's share among them is its u. A level too rare
  in the sample to measure (two random children with one NHS number) keeps the
  starting model's u, and the measured ones share what is left;
* **m by expectation maximisation** on candidate pairs (those sharing a blocking
  key), with u fixed at the sampled u, in sessions as Splink trains
  (:data:`SESSIONS`, :func:`estimate_m`): the pairs whose date of birth agrees
  estimate the other fields' m, the pairs whose names are close estimate the rest,
  each by a full EM over its free fields. A field never vouches for itself, and
  neither session holds a household: a plain two-class EM over every field takes
  siblings (who agree on surname, postcode and address) for one child, and judging
  each field by the others takes namesakes (who agree on both names) for one child.

Given the number of records, the prior too (:func:`estimate_prior`): the matches EM
expects among the candidate pairs over every pair of records, never below the measured
prior (the hub's, on NHS numbers or exact names), kept as a share of the records
(``Model.partner_share``). The thresholds
stay the starting model's: they are a policy (precision before recall), not something
the data can say.

    >>> from protocol.matching.scoring import DEFAULT_MODEL
    >>> agree_on_sex = (0, 0, 0, 0, 1, 0, 0, 0, 0)  # sex AGREE, every other field OTHER
    >>> pairs = [agree_on_sex] * 6 + [(0,) * 9] * 4
    >>> estimate_u(pairs, DEFAULT_MODEL, min_count=3).fields["sex"]
    mappingproxy({'AGREE': (0.995, 0.6), 'DISAGREE': (0.005, 0.4)})
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from protocol.matching.bulk import Columns, Ints, compare_columns
from protocol.matching.bulk_score import PairScores, score_columns
from protocol.matching.compare import (
    COMPARISONS,
    FIELDS,
    DobLevel,
    FamilyNameLevel,
    GivenNameLevel,
)
from protocol.matching.scoring import Model

__all__ = [
    "EM_ITERATIONS",
    "MIN_COUNT",
    "SESSIONS",
    "Session",
    "TrainingRun",
    "TrainingSummary",
    "estimate_m",
    "estimate_m_u",
    "estimate_prior",
    "estimate_u",
    "level_weights",
    "train",
    "train_columns",
]

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
    prior: float | None = None        # estimated by EM for the records trained on

    def to_dict(self) -> dict[str, Any]:
        return {"random_pairs": self.random_pairs, "candidate_pairs": self.candidate_pairs,
                "em_iterations": self.em_iterations, "u_measured": self.u_measured,
                "m_change": self.m_change,
                **({"prior_estimated": self.prior} if self.prior is not None else {})}



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


# EM in sessions, as Splink trains (``estimate_parameters_using_expectation_maximisation``
# with a blocking rule per session): each session takes the candidate pairs whose fixed
# fields agree and estimates every other field's m, and the share of matches among them,
# by a full EM on the free fields alone. A field never vouches for itself, and a
# session's pairs are not a household: siblings share neither a date of birth (twins are
# left out: the hard rule vetoes them) nor close given names.
@dataclass(frozen=True, slots=True)
class Session:
    name: str
    fixed: tuple[str, ...]        # fields whose agreement selects the session's pairs
    agreeing: tuple[frozenset[int], ...]  # per fixed field, the levels that select


SESSIONS: tuple[Session, ...] = (
    Session("date of birth agrees", ("dob",), (frozenset({int(DobLevel.EXACT)}),)),
    Session("names close", ("given_name", "family_name"),
            (frozenset(int(x) for x in (GivenNameLevel.EXACT, GivenNameLevel.NICKNAME,
                                        GivenNameLevel.JW_92, GivenNameLevel.SWAPPED)),
             frozenset(int(x) for x in (FamilyNameLevel.EXACT, FamilyNameLevel.JW_HIGH,
                                        FamilyNameLevel.SWAPPED, FamilyNameLevel.PART,
                                        FamilyNameLevel.FORMER)))),
)
EM_ITERATIONS = 25
MIN_SESSION_MATCHES = 10.0  # expected matches below which a session says nothing
PSEUDO_MATCHES = 50.0       # how many matches' worth the start model's m weighs in EM


def estimate_m(candidate_vectors: Iterable[Sequence[int]], model: Model, *,
               iterations: int = EM_ITERATIONS,
               sessions: Sequence[Session] = SESSIONS) -> Model:
    """m re-estimated on candidate pairs with u fixed, by EM in :data:`SESSIONS` (see
    above). A field free in several sessions takes the mean of their estimates; a field
    no session could measure (too few matches, or every value MISSING) keeps the
    model's m. MISSING levels count for nothing; no level's m reaches zero, and an
    agreeing level never has m below u (:func:`_agreement_not_against`)."""
    counts = Counter(tuple(int(x) for x in v) for v in candidate_vectors)
    if not counts:
        return model
    levels, m, u = _start(model)
    index = {c.field: i for i, c in enumerate(COMPARISONS)}
    estimates: dict[int, list[dict[int, float]]] = {}
    for session in sessions:
        fixed = [index[f] for f in session.fixed]
        chosen = {v: n for v, n in counts.items()
                  if all(v[i] in ok for i, ok in zip(fixed, session.agreeing, strict=True))}
        free = [i for i in range(len(COMPARISONS)) if i not in fixed]
        found = _session_em(chosen, free, levels, m, u, iterations)
        for i, shares in found.items():
            estimates.setdefault(i, []).append(shares)
    new_m = [
        _agreement_not_against({lv: sum(e[lv] for e in estimates[i]) / len(estimates[i])
                                for lv in m[i]}, u[i]) if i in estimates else m[i]
        for i in range(len(COMPARISONS))]
    fields = {c.field: {lv.name: (new_m[i][lv.value], model.fields[c.field][lv.name][1])
                        for lv in levels[i]} for i, c in enumerate(COMPARISONS)}
    return replace(model, fields=fields)


def _session_em(counts: Mapping[tuple[int, ...], int], free: Sequence[int], levels: Levels,
                m: Probabilities, u: Probabilities,
                iterations: int) -> dict[int, dict[int, float]]:
    """One session's EM over its ``free`` fields: the share of matches starts at one
    half and is estimated with m (u fixed). Returns each free field's m, for the fields
    the session saw at all; nothing when it expects fewer than
    :data:`MIN_SESSION_MATCHES` matches (its m would be noise)."""
    if not counts:
        return {}
    start, m = m, [dict(x) for x in m]
    pairs = sum(counts.values())
    share = 0.5
    mass: dict[int, dict[int, float]] = {}
    matched = 0.0
    for _ in range(iterations):
        mass = {i: {lv.value: 0.0 for lv in levels[i]} for i in free}
        matched = 0.0
        for vector, count in counts.items():
            log_match, log_other = math.log(share), math.log(1.0 - share)
            for i in free:
                level = vector[i]
                if level >= 0:
                    log_match += math.log(m[i][level])
                    log_other += math.log(u[i][level])
            p = 1.0 / (1.0 + math.exp(max(-700.0, min(700.0, log_other - log_match))))
            matched += count * p
            for i in free:
                if vector[i] >= 0:
                    mass[i][vector[i]] += count * p
        share = min(1 - 1e-6, max(1e-6, matched / pairs))
        for i in free:
            if sum(mass[i].values()) > 0:
                # the start model's m counts as PSEUDO_MATCHES pairs already seen: a
                # level no match in the session shows is rare, not impossible
                m[i] = _shares({lv: x + PSEUDO_MATCHES * start[i][lv]
                                for lv, x in mass[i].items()})
    if matched < MIN_SESSION_MATCHES:
        return {}
    return {i: m[i] for i in free if sum(mass[i].values()) > 0}


def estimate_prior(candidate_vectors: Iterable[Sequence[int]], model: Model, *,
                   record_pairs: float, scale: float = 1.0, floor: float = 0.0,
                   ceiling: float = 1.0, iterations: int = 50) -> float:
    """The chance two records drawn at random are one child, by EM: the matches
    expected among the candidate pairs (each pair's match probability under ``model``
    and the prior, summed; times ``scale`` when the vectors are a sample of the
    candidate pairs, candidate pairs per pair sampled) over every pair of the records
    (``record_pairs``), until it settles. True pairs blocking never compared, and those
    a hard rule vetoed, are not counted, so it errs low: within a fifth of the truth
    on the public benchmarks (docs/matching-engine.md). Kept within
    [``floor``, ``ceiling``]."""
    counts = Counter(tuple(int(x) for x in v) for v in candidate_vectors)
    if not counts or record_pairs <= 0:
        return min(ceiling, max(floor, model.prior))
    _, m, u = _start(model)
    weights = {v: sum(math.log2(m[i][lv] / u[i][lv]) for i, lv in enumerate(v) if lv >= 0)
               for v in counts}
    prior = min(ceiling, max(floor, model.prior))
    for _ in range(iterations):
        prior_weight = math.log2(prior / (1.0 - prior))
        expected = scale * sum(
            n / (1.0 + 2.0 ** -max(-500.0, min(500.0, prior_weight + weights[v])))
            for v, n in counts.items())
        settled = min(ceiling, max(floor, 1e-12, expected / record_pairs))
        if abs(math.log(settled / prior)) < 1e-4:
            return settled
        prior = settled
    return prior


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
          start: Model, version: str, *, prior: float | None = None,
          records: int | None = None, scale: float = 1.0, max_prior: float = 1.0,
          iterations: int = EM_ITERATIONS,
          min_count: int = MIN_COUNT) -> tuple[Model, TrainingSummary]:
    """u by random sampling, m by EM in sessions on the candidate pairs; then, given
    the number of ``records`` the candidates were drawn from, the prior by EM
    (:func:`estimate_prior`: never below ``prior``, the measured one, nor above
    ``max_prior``), kept as the model's ``partner_share`` (the prior times ``records``)
    so that it shrinks as the records grow. The model's own ``prior`` stays the start
    model's. The new model is ``version``."""
    with_u = estimate_u(random_vectors, start, min_count=min_count)
    trained = replace(estimate_m(candidate_vectors, with_u, iterations=iterations),
                      version=version)
    estimated = None
    if records is not None and records > 1:
        floor = prior or start.prior
        estimated = estimate_prior(candidate_vectors, trained,
                                   record_pairs=records * (records - 1) / 2, scale=scale,
                                   floor=floor, ceiling=max(max_prior, floor))
        trained = replace(trained, partner_share=estimated * records)
    change = max((abs(trained.fields[f][level][0] - start.fields[f][level][0])
                  for f in start.fields for level in start.fields[f]), default=0.0)
    counts = _level_counts(random_vectors)
    measured = {c.field: _measured(counts[i], c, start.fields[c.field], min_count)
                for i, c in enumerate(COMPARISONS)}
    return trained, TrainingSummary(len(random_vectors), len(candidate_vectors),
                                    iterations, measured, change, estimated)


@dataclass(frozen=True, slots=True)
class TrainingRun:
    """A trained model, and the candidate pairs as the start model and it decide them."""

    model: Model
    summary: TrainingSummary
    start_scores: PairScores
    trained_scores: PairScores


def _as_is(model: Model) -> Model:
    return model


def train_columns(sample: Columns, random: tuple[Ints, Ints], candidates: Columns,
                  pairs: tuple[Ints, Ints], start: Model, version: str, *,
                  deciding: Callable[[Model], Model] = _as_is,
                  say: Callable[[str], None] | None = None, **options: Any) -> TrainingRun:
    """What every trainer does, in bulk (the hub's and the node's ``model train``, and
    ``bench.public_analysis --trained``): compare the ``random`` pairs of ``sample`` (for
    u) and score the candidate ``pairs`` of ``candidates`` with ``start``; train on those
    no hard rule vetoes (:func:`train`, given ``options``); score the candidates again
    with the trained model. ``deciding`` gives a model the prior it decides with (the
    hub's measure, or the trained share)."""
    tell = say or (lambda _: None)
    random_vectors = compare_columns(sample, *random).tolist()
    tell(f"compared {len(random_vectors):,} random pairs")
    a, b = pairs
    at_start = score_columns(candidates, a, b, [deciding(start)])
    candidate_vectors = at_start.vectors[at_start.veto == 0].tolist()
    tell(f"compared {len(a):,} candidate pairs, {len(candidate_vectors):,} not vetoed by "
         "a hard rule")
    model, summary = train(random_vectors, candidate_vectors, start, version, **options)
    return TrainingRun(model, summary, at_start,
                       score_columns(candidates, a, b, [deciding(model)]))


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
