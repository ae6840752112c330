"""Scores in bulk: :func:`~protocol.matching.scoring.score` for a whole chunk of pairs.

The comparison vectors come from :mod:`protocol.matching.bulk`; weights are looked up
in one table per model (numpy fancy indexing), term-frequency adjustments are
computed once per record, and the hard rules of ``scoring`` are evaluated as boolean
columns. Each pair may be scored by one of several models (the hub scores pairs of
one council with its model and pairs across councils with ``across_councils``'s).
Totals are summed field by field in ``FIELDS`` order, as ``score`` sums them, so they
are equal to the last bit and a pair at a threshold decides the same way.

    >>> from datetime import date
    >>> from protocol.matching.bulk import Columns
    >>> from protocol.matching.compare import IdentityFields
    >>> from protocol.matching.scoring import DEFAULT_MODEL, score
    >>> a = IdentityFields("Amelia", "Okafor", date(2015, 3, 14), 2, postcode="BN1 1AA")
    >>> b = IdentityFields("Millie", "Okafor", date(2015, 3, 14), 2, postcode="BN1 1AA")
    >>> scores = score_columns(Columns.of([a, b]), np.array([0]), np.array([1]),
    ...                        [DEFAULT_MODEL])
    >>> scores.explanation(0) == score(a, b)
    True
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from rapidfuzz.distance import OSA, JaroWinkler

from protocol.matching.bulk import (
    FIELD_LEVELS,
    Columns,
    Ints,
    _distance,
    _ordered,
    _similarity,
    compare_columns,
)
from protocol.matching.compare import (
    COMPARISONS,
    FIELDS,
    AddressLevel,
    DobLevel,
    FamilyNameLevel,
    GivenNameLevel,
    IdentifierLevel,
    PostcodeLevel,
    SexLevel,
)
from protocol.matching.frequencies import TF_FIELDS, TermFrequencies
from protocol.matching.names import CLOSE_EDITS, CLOSE_JW
from protocol.matching.scoring import (
    NAMES_ALONE_LINK,
    OTHER_THAN_NAMES,
    Decision,
    Explanation,
    Model,
    Thresholds,
)

__all__ = ["CAPS", "DECISIONS", "VETOES", "PairScores", "ceilings", "decision_counts",
           "score_columns", "worth_scoring"]

Floats = npt.NDArray[np.float64]
VETOES = (None, "nhs_number_differs", "upn_differs", "twins")
CAPS = (None, "identity_incomplete", "dob_differs", "dob_differs_elsewhere",
        "names_swapped_elsewhere", "twins", "given_names_differ", "names_and_dob_alone")
DECISIONS = (Decision.NEW, Decision.REVIEW, Decision.LINK)

_I = {name: i for i, name in enumerate(FIELDS)}
# field -> the level whose agreement term frequencies adjust (as scoring's _TF_FIELD_INDEX)
_EXACT = {name: int(COMPARISONS[_I[name]].levels["FULL" if name == "postcode" else "EXACT"])
          for name in TF_FIELDS}


@dataclass(frozen=True)
class PairScores:
    """Per pair: the comparison vector, the weights (adjustments included), the
    term-frequency adjustments, the total, the hard rules hit and the decision."""

    vectors: npt.NDArray[np.int8]
    weights: Floats
    adjustments: Floats
    totals: Floats
    prior_weights: Floats
    veto: Ints                 # index into VETOES (0: none)
    cap: Ints                  # index into CAPS
    decision: Ints             # index into DECISIONS
    thresholds: tuple[Thresholds, ...]
    model: Ints                # which model scored the pair

    def __len__(self) -> int:
        return len(self.totals)

    def decided(self, k: int) -> Decision:
        return DECISIONS[int(self.decision[k])]

    def explanation(self, k: int) -> Explanation:
        """Pair ``k``'s explanation, equal to what ``score`` gives for it."""
        return Explanation(
            tuple(int(v) for v in self.vectors[k]), tuple(float(w) for w in self.weights[k]),
            tuple(float(w) for w in self.adjustments[k]), float(self.prior_weights[k]),
            float(self.totals[k]), self.thresholds[int(self.model[k])],
            VETOES[int(self.veto[k])], CAPS[int(self.cap[k])])


def _table(model: Model) -> Floats:
    """Field × (level + 1) → weight; MISSING (-1) is column 0 and weighs nothing."""
    table = np.zeros((len(FIELDS), 8), dtype=np.float64)
    for f, weights in enumerate(model.weights):
        for level, weight in weights.items():
            table[f, level + 1] = weight
    return table


def _record_adjustments(c: Columns, tf: TermFrequencies, name: str, records: Ints) -> Floats:
    """The adjustment of ``records`` for an exact match on their values of field
    ``name``, each record's worked out once per ``Columns`` and ``tf`` (a chunk's
    ceilings and its scores both ask, and only of the records that come first in a
    pair: the chunk's own, not the others read beside them)."""
    memo = c.memo.get(("tf", name))
    if memo is None or memo[0] is not tf:
        memo = (tf, np.full(len(c.records), np.nan), {})
        c.memo[("tf", name)] = memo
    out: Floats = memo[1]
    seen: dict[str | None, float] = memo[2]
    for i in np.unique(records[np.isnan(out[records])]).tolist():
        value = getattr(c.records[i], name)
        if value not in seen:
            seen[value] = tf.adjustment(name, value)
        out[i] = seen[value]
    return np.asarray(out[records], dtype=np.float64)


def _tf_adjustments(c: Columns, tf: TermFrequencies, name: str, models: Sequence[Model],
                    which: Ints, a: Ints) -> Floats:
    """The term-frequency adjustment of pairs exact on field ``name`` whose first records
    are ``a``, scored by ``models[which]``: the first record's value's, plus how
    concentrated the field's values are, within the model's limit."""
    limit = np.array([m.tf_max_adjustment for m in models])[which]
    exact = COMPARISONS[_I[name]].levels(_EXACT[name]).name
    concentration = np.array([tf.concentration(name, m.fields[name][exact][1])
                              for m in models])[which]
    raw = _record_adjustments(c, tf, name, a) + concentration
    return np.asarray(np.clip(raw, -limit, limit), dtype=np.float64)


def _given_close(c: Columns, a: Ints, b: Ints) -> npt.NDArray[np.bool_]:
    """``names.given_names_close`` for pairs whose names are neither equal nor
    nickname-equivalent: same first letter, and one edit apart or two with JW >= 0.92."""
    x, y = c.given[a], c.given[b]
    out = (x != "") & (y != "") & (c.given_first[a] == c.given_first[b])
    idx = np.flatnonzero(out)
    xs, ys = _ordered(x[idx], y[idx])
    edits = _distance(OSA.distance, xs, ys, CLOSE_EDITS)
    jw = _similarity(JaroWinkler.similarity, xs, ys)
    out[idx] = (edits <= 1) | ((jw >= CLOSE_JW) & (edits <= CLOSE_EDITS))
    return out


def _hard_rules(c: Columns, a: Ints, b: Ints, v: npt.NDArray[np.int8]) -> tuple[Ints, Ints]:
    """``scoring.hard_rules`` as columns: (veto index, cap index) per pair."""
    n = len(a)
    given, family, dob = v[:, _I["given_name"]], v[:, _I["family_name"]], v[:, _I["dob"]]
    nhs, upn = v[:, _I["nhs_number"]], v[:, _I["upn"]]
    identifier = (nhs == IdentifierLevel.AGREE) | (upn == IdentifierLevel.AGREE)
    missing = (given == -1).astype(int) + (family == -1) + (dob == -1)
    same_home = ((v[:, _I["postcode"]] == PostcodeLevel.FULL)
                 | np.isin(v[:, _I["address_line"]], [AddressLevel.EXACT, AddressLevel.HIGH]))
    near_home = (np.isin(v[:, _I["postcode"]], [PostcodeLevel.FULL, PostcodeLevel.TYPO,
                                                PostcodeLevel.SECTOR])
                 | np.isin(v[:, _I["address_line"]], [AddressLevel.EXACT, AddressLevel.HIGH,
                                                      AddressLevel.MEDIUM]))
    family_same = np.isin(family, [FamilyNameLevel.EXACT, FamilyNameLevel.PART,
                                   FamilyNameLevel.FORMER, FamilyNameLevel.JW_HIGH])
    too_little = (missing >= 2) | (given == -1)
    agree = np.isin(given, [GivenNameLevel.EXACT, GivenNameLevel.NICKNAME,
                            GivenNameLevel.SWAPPED, GivenNameLevel.MISSING])
    maybe = np.flatnonzero(~agree & (v[:, _I["sex"]] != SexLevel.DISAGREE))
    agree[maybe] = _given_close(c, a[maybe], b[maybe])
    near = np.isin(dob, [DobLevel.ONE_DIGIT, DobLevel.YEAR_OFF, DobLevel.SAME_YEAR_MONTH])
    twins = np.isin(dob, [DobLevel.EXACT, DobLevel.SWAPPED]) & family_same & same_home
    nhs_veto, upn_veto = nhs == IdentifierLevel.DISAGREE, upn == IdentifierLevel.DISAGREE
    vetoed = nhs_veto | upn_veto
    veto = np.select([nhs_veto, upn_veto, ~agree & twins & ~identifier & ~too_little],
                     [1, 2, 3], 0)
    open_ = ~vetoed & ~identifier
    cap = np.select(
        [vetoed, open_ & too_little, agree & identifier, agree & (dob == DobLevel.OTHER),
         agree & near & ~same_home,
         agree & (given == GivenNameLevel.SWAPPED) & ~near_home, agree,
         twins & identifier, twins, identifier],
        [0, 1, 0, 2, 3, 4, 0, 5, 0, 0], 6)
    return veto.astype(np.int64).reshape(n), cap.astype(np.int64).reshape(n)


def score_columns(c: Columns, a: Ints, b: Ints, models: Sequence[Model],
                  which: Ints | None = None, tf: TermFrequencies | None = None) -> PairScores:
    """Score pairs ``(a[k], b[k])`` of ``c``'s records, pair k by ``models[which[k]]``
    (the first model for all when ``which`` is None), names, postcode and address
    adjusted by ``tf`` as ``score`` adjusts them (by the first record's value)."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    n = len(a)
    which = np.zeros(n, dtype=np.int64) if which is None else np.asarray(which, np.int64)
    v = compare_columns(c, a, b)
    tables = np.stack([_table(m) for m in models])
    weights = tables[which[:, None], np.arange(len(FIELDS))[None, :], v.astype(np.int64) + 1]
    pc, ad = _I["postcode"], _I["address_line"]
    differ = np.isin(v[:, pc], [PostcodeLevel.OTHER, PostcodeLevel.AREA,
                                PostcodeLevel.DISTRICT, PostcodeLevel.SECTOR])
    weights[differ & (weights[:, ad] < 0), ad] = 0.0
    adjustments = np.zeros((n, len(FIELDS)), dtype=np.float64)
    if tf is not None and n:
        for name in TF_FIELDS:
            i = _I[name]
            rows = np.flatnonzero(v[:, i] == _EXACT[name])
            adjustments[rows, i] = _tf_adjustments(c, tf, name, models, which[rows], a[rows])
            weights[rows, i] += adjustments[rows, i]
    summed = weights[:, 0].copy() if n else np.zeros(0)
    for f in range(1, len(FIELDS)):  # left to right, as Python's sum() adds them
        summed = summed + weights[:, f]
    priors = np.array([m.prior_weight for m in models])[which]
    totals = priors + summed
    veto, cap = _hard_rules(c, a, b, v)
    alone = np.all(v[:, [_I[f] for f in OTHER_THAN_NAMES]] == -1, axis=1)
    cap = np.where((veto == 0) & (cap == 0) & alone & (totals < NAMES_ALONE_LINK),
                   CAPS.index("names_and_dob_alone"), cap)
    link = np.array([m.thresholds.link for m in models])[which]
    review = np.array([m.thresholds.review for m in models])[which]
    decision = np.where(totals >= link, 2, np.where(totals >= review, 1, 0))
    decision = np.where(veto > 0, 0, np.where((cap > 0) & (decision == 2), 1, decision))
    return PairScores(v, weights, adjustments, totals, priors, veto, cap,
                      decision.astype(np.int64), tuple(m.thresholds for m in models), which)


# The fields whose levels bound a pair's total, compared in this order, each only for
# the pairs whose ceiling still reaches review after the fields before it: the numbers
# first (identifiers, date of birth, sex: numpy over every pair), then the string
# similarities (computed only where the values differ), the family name, the costliest,
# last. Measured on a 50,000-record chunk: the identifiers put half the pairs out (a
# veto); the date of birth, sex, given name and postcode few more; the family name all
# but one in fifty of the rest, so it is still compared for most pairs.
_BOUNDING = ("nhs_number", "upn", "dob", "sex", "given_name", "postcode", "family_name")
# where a field is blank on either side it weighs nothing: known before any comparison
# (the field -> its column of ``Columns``)
_BLANK = {"given_name": "given", "other_given_names": "other", "family_name": "family",
          "postcode": "postcode", "address_line": "address"}
# a ceiling this far under a threshold is under it whatever order the total is summed in
_ROUNDING = 1e-9


def ceilings(c: Columns, a: Ints, b: Ints, models: Sequence[Model],
             which: Ints | None = None, tf: TermFrequencies | None = None) -> Floats:
    """The most each pair's :func:`score_columns` total could be (``-inf`` where an NHS
    number or UPN vetoes it), computed from the fields that are cheap to compare with
    every other field at its greatest weight: a pair whose ceiling is under its model's
    review threshold decides NEW whatever its other fields hold (a hard rule only ever
    lowers a decision), so it need not be scored. Most pairs a blocking key brings are
    such: two children sharing a given name in one postcode district."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    n = len(a)
    which = np.zeros(n, dtype=np.int64) if which is None else np.asarray(which, np.int64)
    tables = np.stack([_table(m) for m in models])
    limit = (np.array([m.tf_max_adjustment for m in models]) if tf is not None
             else np.zeros(len(models)))
    review = np.array([m.thresholds.review for m in models])[which]
    most = tables.max(axis=2)  # model x field; >= 0, as a blank field weighs 0
    for name in TF_FIELDS:
        most[:, _I[name]] += limit
    present = {name: getattr(c, attribute) != "" for name, attribute in _BLANK.items()}

    def most_of(name: str, x: Ints, y: Ints, w: Ints) -> Floats:
        field_most = most[w, _I[name]]
        if name not in present:
            return field_most
        return np.where(present[name][x] & present[name][y], field_most, 0.0)

    ceiling = np.array([m.prior_weight for m in models])[which]
    for name in FIELDS:
        ceiling = ceiling + most_of(name, a, b, which)
    # A field's weight is never more than its ``most``, so a ceiling only falls as fields
    # are compared: a pair under review after some of them is under it after all, and is
    # compared no further (its ceiling stays the looser bound it reached).
    alive = np.arange(n)
    for name in _BOUNDING:
        x, y, w = a[alive], b[alive], which[alive]
        i = _I[name]
        levels = FIELD_LEVELS[name](c, x, y)
        weight = tables[w, i, levels + 1]
        if tf is not None and name in TF_FIELDS:
            rows = np.flatnonzero(levels == _EXACT[name])
            weight[rows] += _tf_adjustments(c, tf, name, models, w[rows], x[rows])
        ceiling[alive] += weight - most_of(name, x, y, w)
        if name in ("nhs_number", "upn"):
            ceiling[alive[levels == IdentifierLevel.DISAGREE]] = -np.inf
            if name == "nhs_number":  # every pair's UPN too: a vetoed pair's is -inf
                continue
        alive = alive[ceiling[alive] >= review[alive] - _ROUNDING]
    return ceiling


def worth_scoring(c: Columns, a: Ints, b: Ints, models: Sequence[Model],
                  which: Ints | None = None, tf: TermFrequencies | None = None,
                  ) -> npt.NDArray[np.bool_]:
    """Pairs whose :func:`ceilings` reach their model's review threshold: the only
    pairs of these whose decision may be other than NEW."""
    n = len(a)
    which = np.zeros(n, dtype=np.int64) if which is None else np.asarray(which, np.int64)
    review = np.array([m.thresholds.review for m in models])[which]
    return np.asarray(ceilings(c, a, b, models, which, tf) >= review - _ROUNDING)


def decision_counts(scores: PairScores) -> dict[str, Any]:
    """How scored pairs decide (hard rules included): link, review, new, and how often
    each hard rule was hit (a pair hits a veto or a cap, never both): what a model's
    training summary shows an index team or an operator."""
    counts = Counter(DECISIONS[int(d)].value for d in scores.decision)
    rules = Counter(VETOES[int(v)] for v in scores.veto if v) + Counter(
        CAPS[int(c)] for c in scores.cap if c)
    return {"link": counts["link"], "review": counts["review"], "new": counts["new"],
            "rules": dict(sorted(rules.items()))}
