"""Training a model from records: u measured on random pairs, m by EM on candidates."""

from __future__ import annotations

import math
import random

import pytest

from protocol.matching import COMPARISONS, DEFAULT_MODEL, FIELDS, Model, estimate_u, train
from protocol.matching.training import estimate_m, estimate_prior


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
    # Sessions never see the siblings: m is the true pairs' own (given names agree in
    # nine of ten).
    assert model.fields["given_name"]["EXACT"][0] == pytest.approx(0.9, abs=0.03)
    assert model.fields["dob"]["EXACT"][0] > 0.85
    assert "OTHER" in summary.u_measured["given_name"]
    assert model.prior == DEFAULT_MODEL.prior and model.thresholds == DEFAULT_MODEL.thresholds
    # Agreeing is never evidence against: every agreeing level keeps m >= u.
    for field, levels in model.fields.items():
        for level, (m, u) in levels.items():
            if COMPARISONS[i[field]].levels[level].value > 0:
                assert m >= u * 0.999, (field, level)


def _namesakes_and_true_pairs(rng: random.Random) -> list[tuple[int, ...]]:
    """Candidate pairs of a names-and-dates-of-birth population (no location, no
    identifiers) as an independent corruption model makes them: 1,000 true pairs, each
    with one error (a given-name or family-name typo, or a date of birth a digit out),
    and 4,000 namesakes (the same common given and family names, born on other days)."""
    i = {f: FIELDS.index(f) for f in FIELDS}
    level = {f: COMPARISONS[i[f]].levels for f in FIELDS}
    pairs = []
    for n in range(5000):
        v = [-1] * len(FIELDS)
        v[i["given_name"]] = int(level["given_name"]["EXACT"])
        v[i["family_name"]] = int(level["family_name"]["EXACT"])
        if n < 1000:
            v[i["dob"]] = int(level["dob"]["EXACT"])
            error = rng.choice(("given_name", "family_name", "dob"))
            v[i[error]] = int(level[error]["JW_92" if error == "given_name" else
                                          "JW_HIGH" if error == "family_name" else
                                          "ONE_DIGIT"])
        else:
            v[i["dob"]] = int(level["dob"]["OTHER"])
        pairs.append(tuple(v))
    return pairs


def test_namesakes_do_not_teach_that_a_child_s_dates_of_birth_differ() -> None:
    """Judging each field by the others made four in ten true pairs' dates of birth
    disagree (RLdata10000's namesakes: MUELLERs and SCHMIDTs sharing a given name);
    a session of pairs agreeing on the date of birth estimates names, a session of
    pairs with close names estimates the date, each by a full EM. (One error per pair
    is not independent across fields, so a session's m leans: a pair agreeing on the
    date of birth has its error in a name, half the time the given name.)"""
    model = estimate_m(_namesakes_and_true_pairs(random.Random(5)), DEFAULT_MODEL)
    dob = model.fields["dob"]
    assert dob["OTHER"][0] < 0.05  # 0.88 judged by the other fields
    assert dob["EXACT"][0] > 0.6 and 0.2 < dob["ONE_DIGIT"][0] < 0.4
    assert 0.25 < model.fields["given_name"]["JW_92"][0] < 0.55


def test_the_prior_is_the_share_of_record_pairs_that_are_one_child() -> None:
    """5,000 records of which 1,000 pairs are one child: the prior is 1,000 of the
    12,497,500 pairs of records (8.0e-5), whether from every candidate pair or from a
    fifth of them standing for the rest, within a quarter (the namesakes' names agree
    exactly, and the default model's u takes that for evidence); the measured prior is
    a floor, and a ceiling holds it."""
    pairs = _namesakes_and_true_pairs(random.Random(5))
    model = estimate_m(pairs, DEFAULT_MODEL)
    record_pairs = 5000 * 4999 / 2
    truth = 1000 / record_pairs
    assert estimate_prior(pairs, model, record_pairs=record_pairs) == pytest.approx(
        truth, rel=0.25)
    fifth = random.Random(6).sample(pairs, 1000)
    assert estimate_prior(fifth, model, record_pairs=record_pairs, scale=5.0) == pytest.approx(
        truth, rel=0.3)
    assert estimate_prior(pairs, model, record_pairs=record_pairs, floor=1e-3) == 1e-3
    assert estimate_prior(pairs, model, record_pairs=record_pairs, ceiling=1e-5) == 1e-5
    # no candidate pair at all: the measured prior, as it was
    assert estimate_prior([], model, record_pairs=record_pairs, floor=3e-5) == 3e-5
    trained, summary = train([(0,) * len(FIELDS)] * 100, pairs, DEFAULT_MODEL, "em-prior",
                             records=5000)
    assert summary.prior is not None and summary.prior == pytest.approx(truth, rel=0.25)
    # kept as a share of the records, so the prior shrinks as the records grow; the
    # model's own prior stays the start's
    assert trained.partner_share == pytest.approx(summary.prior * 5000)
    assert trained.prior == DEFAULT_MODEL.prior
    assert Model.from_json(trained.to_json()).partner_share == trained.partner_share
