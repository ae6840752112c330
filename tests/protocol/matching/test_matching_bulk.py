"""The bulk engine equals the per-pair one: levels, weights, totals, rules, decisions."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.matching import DEFAULT_MODEL, IdentityFields, TermFrequencies, compare_all, score
from protocol.matching.bulk import Columns, compare_pairs
from protocol.matching.bulk_score import VETOES, ceilings, score_columns, worth_scoring
from tests import strategies

ACROSS = replace(DEFAULT_MODEL, version="across", fields={
    **DEFAULT_MODEL.fields,
    "postcode": {level: (0.9 if level == "OTHER" else 0.02, u)
                 for level, (_, u) in DEFAULT_MODEL.fields["postcode"].items()}},
    tf_max_adjustment=2.0)
pair_lists = st.lists(strategies.identity_pairs(), min_size=1, max_size=30)


def without_location(fields: IdentityFields) -> IdentityFields:
    """As the hub reads a shielded record: no postcode, no address line."""
    return replace(fields, postcode=None, address_line=None)


@settings(max_examples=150, deadline=None)
@given(pair_lists)
def test_bulk_levels_equal_compare_all(pairs: list[tuple[IdentityFields, IdentityFields]]
                                       ) -> None:
    left, right = [a for a, _ in pairs], [b for _, b in pairs]
    levels = compare_pairs(left, right)
    assert [tuple(row) for row in levels.tolist()] == [compare_all(a, b) for a, b in pairs]
    backwards = compare_pairs(right, left)
    assert [tuple(row) for row in backwards.tolist()] == [compare_all(b, a) for a, b in pairs]


@settings(max_examples=100, deadline=None)
@given(pair_lists, st.data())
def test_bulk_scores_equal_score(pairs: list[tuple[IdentityFields, IdentityFields]],
                                 data: st.DataObject) -> None:
    shield = data.draw(st.lists(st.booleans(), min_size=len(pairs), max_size=len(pairs)))
    pairs = [(a, without_location(b)) if s else (a, b)
             for (a, b), s in zip(pairs, shield, strict=True)]
    everyone = [r for pair in pairs for r in pair]
    tf = TermFrequencies.from_records(everyone[: len(everyone) // 2 + 1])
    models = [DEFAULT_MODEL, ACROSS]
    which = np.array(data.draw(st.lists(st.integers(0, 1), min_size=len(pairs),
                                        max_size=len(pairs))))
    columns = Columns.of(everyone)
    scores = score_columns(columns, np.arange(0, 2 * len(pairs), 2),
                           np.arange(1, 2 * len(pairs), 2), models, which, tf)
    for k, (a, b) in enumerate(pairs):
        expected = score(a, b, models[which[k]], tf)
        assert scores.explanation(k) == expected
        assert scores.decided(k) is expected.decision()
        if shield[k]:  # where a shielded child lives never scores
            assert expected.level("postcode") == "MISSING"
            assert expected.level("address_line") == "MISSING"
            assert scores.weights[k][5] == scores.weights[k][6] == 0.0


@settings(max_examples=100, deadline=None)
@given(pair_lists, st.data())
def test_no_pair_scores_above_its_ceiling(pairs: list[tuple[IdentityFields, IdentityFields]],
                                          data: st.DataObject) -> None:
    """A pair left unscored for its ceiling would have decided NEW."""
    everyone = [r for pair in pairs for r in pair]
    tf = data.draw(st.sampled_from([None, TermFrequencies.from_records(everyone)]))
    models = [DEFAULT_MODEL, ACROSS]
    which = np.array(data.draw(st.lists(st.integers(0, 1), min_size=len(pairs),
                                        max_size=len(pairs))))
    columns = Columns.of(everyone)
    a, b = np.arange(0, 2 * len(pairs), 2), np.arange(1, 2 * len(pairs), 2)
    scores = score_columns(columns, a, b, models, which, tf)
    ceiling = ceilings(columns, a, b, models, which, tf)
    vetoed = np.isin(scores.veto, [VETOES.index("nhs_number_differs"),
                                   VETOES.index("upn_differs")])
    assert np.all(ceiling[vetoed] == -np.inf)
    assert np.all(scores.totals[~vetoed] <= ceiling[~vetoed] + 1e-9)
    worth = worth_scoring(columns, a, b, models, which, tf)
    assert np.all(scores.decision[~worth] == 0)


def test_ceilings_leave_out_two_children_who_share_a_name_and_district() -> None:
    amelia = IdentityFields("Amelia", "Okafor", date(2015, 3, 14), 2, postcode="BN1 1AA",
                            address_line="12 Church Road")
    pairs = [
        (amelia, IdentityFields("Amelia", "Zielinska", date(2011, 9, 2), 2,
                                postcode="BN1 7QR", address_line="3 Mill Lane")),
        (replace(amelia, nhs_number="9434765919"), replace(amelia, nhs_number="9434765870")),
        (amelia, replace(amelia, given_name="Amelai")),                # a typo: scored
        (amelia, replace(amelia, dob=date(2015, 8, 14))),             # a slipped month
    ]
    columns = Columns.of([r for p in pairs for r in p])
    a, b = np.arange(0, 8, 2), np.arange(1, 8, 2)
    assert worth_scoring(columns, a, b, [DEFAULT_MODEL]).tolist() == [False, False, True,
                                                                     True]
    assert score_columns(columns, a, b, [DEFAULT_MODEL]).decision.tolist()[:2] == [0, 0]


def test_named_cases_at_every_rule() -> None:
    """Twins, swapped names, a slipped digit, identifiers: the rules fire in bulk too."""
    twin = IdentityFields("Amelia", "Okafor", date(2015, 3, 14), 2, postcode="BN1 1AA",
                          address_line="12 Church Road")
    pairs = [
        (twin, replace(twin, given_name="Zofia")),                       # twins: veto
        (twin, replace(twin, given_name="Okafor", family_name="Amelia")),  # swapped
        (twin, replace(twin, dob=date(2015, 8, 14), postcode="TF1 2AB", address_line=None)),
        (replace(twin, nhs_number="9434765919"), replace(twin, nhs_number="9434765870")),
        # no given name on one side or both: a person decides (twins share the rest)
        (twin, replace(twin, given_name=None)),
        (replace(twin, given_name=None), replace(twin, given_name=None)),
        (twin, replace(twin, given_name=None, postcode="TF1 2AB", address_line=None)),
        (twin, replace(twin, given_name="Okafor", family_name="Amelia", postcode="BN1 1AB",
                       address_line=None)),                            # swapped, near home
        (twin, replace(twin, given_name="Amelai")),                      # a typo: links
        # names and a date of birth alone, nothing else recorded: 10 bits to link
        (IdentityFields("Amelia", "Okafor", date(2015, 3, 14)),
         IdentityFields("Amelia", "Okafor", date(2015, 3, 14))),
    ]
    columns = Columns.of([r for p in pairs for r in p])
    n = len(pairs)
    scores = score_columns(columns, np.arange(0, 2 * n, 2), np.arange(1, 2 * n, 2),
                           [DEFAULT_MODEL])
    got = [(scores.explanation(k).veto, scores.explanation(k).cap, scores.decided(k).value)
           for k in range(len(pairs))]
    assert got == [(score(a, b).veto, score(a, b).cap, score(a, b).decision().value)
                   for a, b in pairs]
    assert [g[:2] for g in got] == [("twins", None), (None, None),
                                   (None, "dob_differs_elsewhere"),
                                   ("nhs_number_differs", None),
                                   (None, "identity_incomplete"),
                                   (None, "identity_incomplete"),
                                   (None, "identity_incomplete"), (None, None), (None, None),
                                   (None, "names_and_dob_alone")]
    assert got[7][2] == got[8][2] == "link" and got[4][2] == "review"
    assert scores.totals[-1] > DEFAULT_MODEL.thresholds.link


def test_no_pairs() -> None:
    scores = score_columns(Columns.of([]), np.array([], dtype=np.int64),
                           np.array([], dtype=np.int64), [DEFAULT_MODEL])
    assert len(scores) == 0
