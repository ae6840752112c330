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


def test_it_runs_by_its_name() -> None:
    done = subprocess.run([sys.executable, "-m", "bench.public_analysis", "--dataset", "febrl1"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.startswith("== febrl1: 500 true pairs; pairwise P 1.0000")
