"""``python -m bench.public_analysis`` on FEBRL1: every true pair is accounted for once
(linked, held back by a named rule, scored short, or never compared), and what it
prints is that count."""

from __future__ import annotations

import subprocess
import sys

from bench.public_analysis import analyse, lines


def test_every_true_pair_is_counted_once_by_what_decided_it() -> None:
    result = analyse("febrl1", examples=1)
    assert sum(result.outcome.values()) == result.true_pairs == 500
    assert result.outcome["linked"] > 300
    assert result.outcome["vetoed: twins"] > 0  # FEBRL replaces given names: looks like twins
    assert set(result.outcome) <= {"linked", "never compared", "review (score)",
                                   "below review (score)"} | {
        w for w in result.outcome if w.startswith(("vetoed: ", "capped: "))}
    assert result.false_links == 0
    printed = list(lines(result))
    assert f"R {result.outcome['linked'] / 500:.4f}" in printed[0]
    assert [line.split()[0] for line in printed[1:3]] == [
        why.split()[0] for why, _ in result.outcome.most_common(2)]


def test_it_prints_the_best_the_twins_rule_allows() -> None:
    """FEBRL's generator replaces given names, so some duplicates look exactly like twins;
    with one duplicate a person nothing can join them, and recall is bounded."""
    result = analyse("febrl1")
    vetoed = result.outcome["vetoed: twins"]
    recall, f1 = result.twins_bound()
    assert result.most_records == 2 and recall == 1 - vetoed / 500
    assert f1 == 2 * recall / (1 + recall) < 0.97  # short of Splink's 0.9701 on FEBRL1
    assert (f"  the twins rule alone holds back {vetoed}: at best R {recall:.4f} F1 {f1:.4f}"
            " (no person has a third record to join them)") in list(lines(result))


def test_it_runs_by_its_name() -> None:
    done = subprocess.run([sys.executable, "-m", "bench.public_analysis", "--dataset", "febrl1"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.startswith("== febrl1: 500 true pairs; pairwise P 1.0000")


def test_trained_decides_with_a_model_trained_on_the_records_and_prints_the_priors() -> None:
    """``--trained``: the prior EM estimates lands nearer the truth than the measured one
    (FEBRL1: partners a typo hides are counted), and a stricter review threshold
    (``--review-at``) leaves fewer pairs of two people in review, the links unchanged."""
    trained = analyse("febrl1", trained=True)
    priors = trained.priors
    assert priors["measured"] < priors["estimated"] <= priors["true"] * 1.05
    assert abs(priors["estimated"] - priors["true"]) < abs(priors["measured"] - priors["true"])
    assert sum(trained.outcome.values()) == 500 and trained.false_links == 0
    strict = analyse("febrl1", trained=True, review_at=0.0)
    assert strict.outcome["linked"] == trained.outcome["linked"]
    assert strict.false_reviews < trained.false_reviews
    assert any(line.startswith("  prior (log2): measured ") for line in lines(trained))
