"""Training a model from records: u measured on random pairs, m by EM on candidates."""

from __future__ import annotations

import math
import random

import pytest

from protocol.matching import COMPARISONS, DEFAULT_MODEL, FIELDS, estimate_u, train


def _vector(**levels: int) -> tuple[int, ...]:
    """A comparison vector: every field at its lowest agreeing level (OTHER/DISAGREE: 0)
    unless given."""
    return tuple(levels.get(f, 0) for f in FIELDS)


def test_u_is_the_share_among_random_pairs_and_rare_levels_keep_the_model_u() -> None:
    sex = COMPARISONS[FIELDS.index("sex")].levels
    agree, disagree = sex["AGREE"], sex["DISAGREE"]  # members of the field's IntEnum
    random_pairs = ([_vector(sex=int(agree))] * 600 + [_vector(sex=int(disagree))] * 400
                    + [_vector(sex=-1)] * 500)  # MISSING does not count
    model = estimate_u(random_pairs, DEFAULT_MODEL, min_count=20)
    assert model.fields["sex"]["AGREE"][1] == pytest.approx(0.6)
    assert model.fields["sex"]["DISAGREE"][1] == pytest.approx(0.4)
    # No random pair shared an NHS number: AGREE is unmeasured and keeps its u; the
    # measured DISAGREE takes the rest, so the level shares still sum to one.
    nhs = model.fields["nhs_number"]
    assert nhs["AGREE"][1] == DEFAULT_MODEL.fields["nhs_number"]["AGREE"][1]
    assert sum(u for _, u in nhs.values()) == pytest.approx(1.0)
    for field, levels in model.fields.items():
        for level, (m, u) in levels.items():
            assert m == DEFAULT_MODEL.fields[field][level][0]  # u only
            assert 0 < u <= 1 and math.isfinite(math.log2(m / u)), (field, level)


def test_train_measures_u_estimates_m_and_names_the_version() -> None:
    rng = random.Random(3)
    agree = tuple(max(lv.value for lv in c.levels) for c in COMPARISONS)
    i = {f: FIELDS.index(f) for f in FIELDS}
    # Candidate pairs: 70% the same child (everything agrees, bar one given-name typo in
    # ten), 30% siblings (surname, sex, postcode and address agree; given names, other
    # names and dates of birth do not; no identifiers). A plain EM over every field
    # takes the household for the child; each field judged by the others does not.
    candidates = []
    for _ in range(2000):
        v = list(agree)
        if rng.random() < 0.7:
            if rng.random() < 0.1:
                v[i["given_name"]] = 0
        else:
            v[i["given_name"]] = v[i["other_given_names"]] = v[i["dob"]] = 0
            v[i["nhs_number"]] = v[i["upn"]] = -1
        candidates.append(tuple(v))
    randoms = [_vector() for _ in range(500)]
    model, summary = train(randoms, candidates, DEFAULT_MODEL, "em-test")
    assert model.version == "em-test"
    assert summary.random_pairs == 500 and summary.candidate_pairs == 2000
    # One step from the default: the siblings pull m a little (0.84 where the truth is 0.9).
    assert model.fields["given_name"]["EXACT"][0] > 0.8
    assert model.fields["dob"]["EXACT"][0] > 0.85
    assert "OTHER" in summary.u_measured["given_name"]
    assert model.prior == DEFAULT_MODEL.prior and model.thresholds == DEFAULT_MODEL.thresholds
    # Agreeing is never evidence against: every agreeing level keeps m >= u.
    for field, levels in model.fields.items():
        for level, (m, u) in levels.items():
            if COMPARISONS[i[field]].levels[level].value > 0:
                assert m >= u * 0.999, (field, level)
