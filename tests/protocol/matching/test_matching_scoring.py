"""Fellegi–Sunter weights, term frequencies, hard rules, the model file and EM
(protocol.matching.scoring)."""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings

from protocol.matching import (
    COMPARISONS,
    DEFAULT_MODEL,
    FIELDS,
    Decision,
    IdentityFields,
    Model,
    TermFrequencies,
    Thresholds,
    decide,
    estimate_m_u,
    score,
)
from protocol.records import ChildRecord
from tests import strategies

CHILD = IdentityFields(
    given_name="Amelia", family_name="Okafor", dob=date(2015, 3, 14), sex=2,
    other_given_names="Rose", postcode="BN1 1AA", address_line="12 Church Road, Hove",
)
# A sample of names as a council's index might hold them: a few common, many rare.
RARE = ["".join(letters) for letters in itertools.product("bcdfg", "aeiou", "klmnr", "aeiou")]
SAMPLE_FAMILY = ["Smith"] * 120 + ["Jones"] * 80 + ["Taylor"] * 60 + ["Brown"] * 50 + [
    f"{name}son" for name in RARE] + ["Okonkwo-Reilly"]
SAMPLE_GIVEN = ["Oliver"] * 40 + ["Amelia"] * 35 + RARE
TF = TermFrequencies.from_names(SAMPLE_GIVEN, SAMPLE_FAMILY)


def test_weights_are_log2_m_over_u_and_missing_weighs_nothing() -> None:
    for i, comparison in enumerate(COMPARISONS):
        for level in comparison.levels:
            weight = DEFAULT_MODEL.weights[i][level.value]
            if level.value < 0:
                assert weight == 0.0
            else:
                m, u = DEFAULT_MODEL.fields[comparison.field][level.name]
                assert weight == pytest.approx(math.log2(m / u))
        # Agreement is evidence for, the weakest level evidence against.
        best, worst = max(comparison.levels), min(lv for lv in comparison.levels if lv >= 0)
        assert DEFAULT_MODEL.weight(comparison.field, best) > 0
        assert DEFAULT_MODEL.weight(comparison.field, worst) < 0


def test_m_and_u_of_each_field_sum_to_one() -> None:
    for field, levels in DEFAULT_MODEL.fields.items():
        assert sum(m for m, _ in levels.values()) == pytest.approx(1.0, abs=1e-6), field
        assert sum(u for _, u in levels.values()) == pytest.approx(1.0, abs=1e-6), field


def test_explanation_lists_every_field_and_adds_up() -> None:
    other = replace(CHILD, given_name="Millie", postcode="BN1 1AB")
    result = score(CHILD, other, DEFAULT_MODEL, TF)
    assert [f.field for f in result.fields] == list(FIELDS)
    assert result.level("given_name") == "NICKNAME"
    assert result.level("postcode") == "SECTOR"
    assert result.total == pytest.approx(result.prior_weight + sum(f.weight for f in result.fields))
    assert result.probability == pytest.approx(1 / (1 + 2 ** -result.total))
    assert result.decision() is Decision.LINK
    data = result.to_dict()
    assert data["decision"] == "link" and len(data["fields"]) == len(FIELDS)
    json.dumps(data)


def test_decide_thresholds() -> None:
    thresholds = Thresholds(link=6.0, review=-4.0)
    assert decide(6.0, thresholds) is Decision.LINK
    assert decide(5.9, thresholds) is Decision.REVIEW
    assert decide(-4.0, thresholds) is Decision.REVIEW
    assert decide(-4.1, thresholds) is Decision.NEW
    with pytest.raises(ValueError):
        Thresholds(link=-5.0, review=0.0)


# -- term frequencies ----------------------------------------------------------------


def test_common_surname_counts_less_than_a_rare_one() -> None:
    smith = replace(CHILD, family_name="Smith")
    rare = replace(CHILD, family_name="Okonkwo-Reilly")
    smith_weight = score(smith, smith, DEFAULT_MODEL, TF).fields[FIELDS.index("family_name")]
    rare_weight = score(rare, rare, DEFAULT_MODEL, TF).fields[FIELDS.index("family_name")]
    assert smith_weight.level == rare_weight.level == "EXACT"
    assert smith_weight.weight < rare_weight.weight
    assert smith_weight.tf_adjustment < 0 < rare_weight.tf_adjustment
    # Without term frequencies both weigh the same.
    assert (score(smith, smith).weights[FIELDS.index("family_name")]
            == score(rare, rare).weights[FIELDS.index("family_name")])


def test_term_frequencies_normalise_and_cap() -> None:
    assert TF.adjustment("family_name", "SMITH") == TF.adjustment("family_name", "smith")
    assert TF.adjustment("family_name", "Okonkwo Reilly") == TF.adjustment(
        "family_name", "Okonkwo-Reilly")
    never_seen = TF.adjustment("family_name", "Zzyzx")
    assert never_seen == TF.adjustment("family_name", "Okonkwo-Reilly")  # as if seen once
    # 500 surnames a hundred times each: as diverse as the model's u (1 in 500), so Zed,
    # seen once, is adjusted by log2(average / frequency) = 6.6 bits, capped at 5
    names = ["".join(p) for p in itertools.product("abcdefghij", repeat=3)][:500]
    diverse = TermFrequencies.from_names(["A"] * 50_001, names * 100 + ["Zed"])
    rare = replace(CHILD, family_name="Zed")
    weight = score(rare, rare, DEFAULT_MODEL, diverse).fields[FIELDS.index("family_name")]
    assert weight.tf_adjustment == DEFAULT_MODEL.tf_max_adjustment
    assert TermFrequencies().adjustment("given_name", "Amelia") == 0.0


def test_concentrated_values_weigh_no_more_than_their_own_frequency() -> None:
    """Where nearly every record is a Smith, agreeing on Zed (one in 10,001) weighs
    log2(m / frequency), Splink's weight, not the model's weight moved by how much rarer
    than the (here huge) average Zed is; agreeing on Smith weighs the least it can."""
    common = TermFrequencies.from_names(["A"] * 10_001, ["Smith"] * 10_000 + ["Zed"])
    m, u = DEFAULT_MODEL.fields["family_name"]["EXACT"]
    assert common.concentration("family_name", u) < 0
    varied = TermFrequencies.from_names(
        [], ["".join(p) for p in itertools.product("abcdefghij", repeat=3)])
    assert varied.concentration("family_name", u) == 0.0  # more varied than u: no change
    # a handful of records is no population, even one of a single surname
    few = TermFrequencies.from_names([], ["Hart", "Hart", "Hart", "Oduya"])
    assert few.concentration("family_name", u) == 0.0
    # a population of distinct names shares none
    distinct = TermFrequencies.from_names(
        [], ["".join(p) for p in itertools.product("abcdefghijk", repeat=3)])
    assert distinct.concentration("family_name", u) == 0.0
    rare, smith = replace(CHILD, family_name="Zed"), replace(CHILD, family_name="Smith")
    zed = score(rare, rare, DEFAULT_MODEL, common).fields[FIELDS.index("family_name")]
    assert zed.weight == pytest.approx(math.log2(m / (1 / 10_001)))
    assert zed.tf_adjustment < DEFAULT_MODEL.tf_max_adjustment
    smiths = score(smith, smith, DEFAULT_MODEL, common).fields[FIELDS.index("family_name")]
    assert smiths.tf_adjustment == -DEFAULT_MODEL.tf_max_adjustment


def test_term_frequencies_from_records() -> None:
    tf = TermFrequencies.from_records([CHILD, replace(CHILD, given_name="AMELIA"),
                                       replace(CHILD, given_name="Oscar")])
    assert tf.given == {"amelia": 2, "oscar": 1}
    assert tf.family == {"okafor": 3}


# -- hard rules ----------------------------------------------------------------------


def test_twins_never_link_even_when_everything_else_agrees() -> None:
    twin = replace(CHILD, given_name="Olivia", other_given_names="Rose")
    result = score(CHILD, twin, DEFAULT_MODEL, TF)
    assert result.total > DEFAULT_MODEL.thresholds.link  # the weights alone would link
    assert result.veto == "twins"
    assert result.decision() is Decision.NEW
    # Also when the surname shows as one part of a double-barrelled one, or the DOB swapped.
    variant = replace(twin, family_name="Okafor-Smith", dob=date(2015, 3, 14))
    assert score(replace(CHILD, family_name="Okafor-Smith"), variant).veto == "twins"
    swapped = replace(CHILD, dob=date(2015, 3, 4))
    assert score(swapped, replace(twin, dob=date(2015, 4, 3))).veto == "twins"


def test_twins_with_a_shared_identifier_go_to_review() -> None:
    a = replace(CHILD, nhs_number="9434765919")
    twin = replace(a, given_name="Olivia")  # twins' NHS numbers mixed up
    result = score(a, twin)
    assert result.veto is None and result.cap == "twins"
    assert result.decision() is Decision.REVIEW


def test_same_child_with_a_typo_or_nickname_is_not_taken_for_a_twin() -> None:
    for name in ("Amelai", "Millie", "AMELIA"):
        result = score(CHILD, replace(CHILD, given_name=name), DEFAULT_MODEL, TF)
        assert result.veto is None, name
        assert result.decision() is Decision.LINK, name


def test_siblings_do_not_link() -> None:
    sibling = replace(CHILD, given_name="Oscar", other_given_names=None, sex=1,
                      dob=date(2017, 6, 2))
    assert score(CHILD, sibling, DEFAULT_MODEL, TF).decision() is Decision.NEW
    # Even a sibling whose name is a nickname-like match goes no further than review.
    sister = replace(CHILD, given_name="Millie", other_given_names=None, dob=date(2018, 1, 9))
    assert score(CHILD, sister, DEFAULT_MODEL, TF).decision() is not Decision.LINK


def test_two_different_valid_nhs_numbers_never_link() -> None:
    a = replace(CHILD, nhs_number="9434765919", upn="H801200001001")
    b = replace(a, nhs_number="4010232137")
    result = score(a, b, DEFAULT_MODEL, TF)
    assert result.veto == "nhs_number_differs"
    assert result.decision(Thresholds(link=-1000.0, review=-1000.0)) is Decision.NEW
    # An invalid number is no evidence either way, so no veto.
    assert score(a, replace(a, nhs_number="9434765918")).veto is None


def test_two_different_valid_upns_never_link() -> None:
    a = replace(CHILD, upn="H801200001001")
    result = score(a, replace(a, upn="X801200001002"))
    assert result.veto == "upn_differs"
    assert result.decision() is Decision.NEW


def test_day_month_swapped_dob_still_links() -> None:
    a = replace(CHILD, dob=date(2015, 3, 4))
    b = replace(CHILD, dob=date(2015, 4, 3))
    result = score(a, b, DEFAULT_MODEL, TF)
    assert result.level("dob") == "SWAPPED"
    assert result.decision() is Decision.LINK


def test_hyphenated_surname_part_and_former_surname_link() -> None:
    a = replace(CHILD, family_name="Smith-Jones")
    result = score(a, replace(CHILD, family_name="Jones"), DEFAULT_MODEL, TF)
    assert result.level("family_name") == "PART"
    assert result.decision() is Decision.LINK
    renamed = replace(CHILD, family_name="Taylor", former_family_names=("Okafor",))
    result = score(CHILD, renamed, DEFAULT_MODEL, TF)
    assert result.level("family_name") == "FORMER"
    assert result.decision() is Decision.LINK


def test_mover_with_an_nhs_number_links_across_councils() -> None:
    a = replace(CHILD, nhs_number="9434765919")
    moved = replace(a, postcode="TF1 2AB", address_line="3 Mill Lane, Telford")
    assert score(a, moved, DEFAULT_MODEL, TF).decision() is Decision.LINK


def test_dob_far_apart_goes_no_further_than_review() -> None:
    result = score(CHILD, replace(CHILD, dob=date(2012, 11, 30)), DEFAULT_MODEL, TF)
    assert result.cap == "dob_differs"
    assert result.decision() is not Decision.LINK


@settings(max_examples=60, deadline=None)
@given(strategies.child_records(), strategies.child_records())
def test_scores_are_symmetric(a: ChildRecord, b: ChildRecord) -> None:
    x, y = IdentityFields.from_record(a), IdentityFields.from_record(b)
    forward, backward = score(x, y, DEFAULT_MODEL, TF), score(y, x, DEFAULT_MODEL, TF)
    assert forward.total == pytest.approx(backward.total)
    assert (forward.veto, forward.cap, forward.vector) == (
        backward.veto, backward.cap, backward.vector)
    assert score(x, x).veto is None


# -- the model as data ---------------------------------------------------------------


def test_model_round_trips_through_json() -> None:
    text = DEFAULT_MODEL.to_json()
    assert Model.from_json(text) == DEFAULT_MODEL
    assert Model.from_dict(json.loads(text)).weights == DEFAULT_MODEL.weights
    assert json.loads(text)["version"] == DEFAULT_MODEL.version


@pytest.mark.parametrize("spoil", [
    lambda d: d.pop("prior"),
    lambda d: d.update(prior=1.5),
    lambda d: d["fields"].pop("dob"),
    lambda d: d["fields"]["dob"].update(NEARLY={"m": 0.1, "u": 0.1}),
    lambda d: d["fields"]["dob"]["EXACT"].update(m=0.0),
    lambda d: d["fields"].update(shoe_size={}),
    lambda d: d["thresholds"].update(review=99.0),
    lambda d: d.update(fields=[]),
])
def test_model_rejects_bad_data(spoil: Callable[[dict[str, Any]], object]) -> None:
    data = DEFAULT_MODEL.to_dict()
    spoil(data)
    with pytest.raises(ValueError):
        Model.from_dict(data)


# -- EM ------------------------------------------------------------------------------


def _sample_vectors(model: Model, matches: int, others: int, seed: int) -> list[tuple[int, ...]]:
    """Comparison vectors drawn from the model's own m (matches) and u (others)."""
    rng = random.Random(seed)
    vectors = []
    for count, index in ((matches, 0), (others, 1)):
        for _ in range(count):
            vector = []
            for comparison in COMPARISONS:
                levels = model.fields[comparison.field]
                names = list(levels)
                name = rng.choices(names, [levels[n][index] for n in names])[0]
                vector.append(comparison.levels[name].value)
            vectors.append(tuple(vector))
    return vectors


def test_em_recovers_known_m_and_u() -> None:
    truth = replace(DEFAULT_MODEL, fields={
        f: {level: (m, min(1.0, max(u, 0.02))) for level, (m, u) in levels.items()}
        for f, levels in DEFAULT_MODEL.fields.items()})
    truth = replace(truth, fields={f: _normalised(levels) for f, levels in truth.fields.items()})
    vectors = _sample_vectors(truth, 3000, 7000, seed=1)
    start = replace(DEFAULT_MODEL, fields={   # a flat start: m leans to agreement, u does not
        f: {level: (1 / len(levels) * (2 if i == 0 else 1), 1 / len(levels))
            for i, level in enumerate(levels)} for f, levels in DEFAULT_MODEL.fields.items()})
    start = replace(start, fields={f: _normalised(levels) for f, levels in start.fields.items()})
    fitted = estimate_m_u(vectors, start, iterations=30, update_u=True, version="test-em")
    assert fitted.version == "test-em"
    for field in ("given_name", "family_name", "dob", "postcode"):
        m_exact = fitted.fields[field][next(iter(truth.fields[field]))][0]
        assert m_exact == pytest.approx(truth.fields[field][next(iter(truth.fields[field]))][0],
                                        abs=0.05), field
    assert fitted.thresholds == start.thresholds and fitted.prior == start.prior


def test_em_keeps_u_by_default_and_is_numerically_safe() -> None:
    vectors = [tuple(max(lv) for lv in (c.levels for c in COMPARISONS))] * 50  # all agree
    fitted = estimate_m_u(vectors, DEFAULT_MODEL, iterations=5)
    for field, levels in fitted.fields.items():
        for level, (m, u) in levels.items():
            assert 0.0 < m < 1.0 and math.isfinite(math.log2(m / u)), (field, level)
            assert u == DEFAULT_MODEL.fields[field][level][1]
    assert estimate_m_u([], DEFAULT_MODEL) is DEFAULT_MODEL
    missing_only = [tuple(-1 for _ in FIELDS)] * 10
    assert estimate_m_u(missing_only, DEFAULT_MODEL).weights  # no division by zero


def _normalised(levels: Mapping[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    m_total = sum(m for m, _ in levels.values())
    u_total = sum(u for _, u in levels.values())
    return {level: (m / m_total, u / u_total) for level, (m, u) in levels.items()}
