"""The review screens' plain words: every level of every comparison the model has is
said in words (never its code name), and the rules too."""

from __future__ import annotations

import doctest
from datetime import date

import pytest

from protocol.matching import IdentityFields, words
from protocol.matching.compare import COMPARISONS, Comparison
from protocol.matching.scoring import DEFAULT_MODEL, score
from protocol.matching.words import evidence, in_words, rule_in_words


def test_the_docstring_examples() -> None:
    assert doctest.testmod(words).failed == 0


@pytest.mark.parametrize("comparison", COMPARISONS, ids=lambda c: c.field)
def test_every_level_has_words_not_its_code(comparison: Comparison) -> None:
    said: set[str] = set()
    for level in comparison.levels:
        label, text = in_words(comparison.field, level.name)
        assert label and "_" not in label
        assert text and level.name not in text and "_" not in text, (comparison.field, level)
        said.add(text)
    # no two levels of one field read alike
    assert len(said) == len(comparison.levels), comparison.field


def test_the_examples_the_issue_asks_for() -> None:
    assert in_words("dob", "EXACT") == ("Date of birth", "same")
    assert in_words("postcode", "AREA") == ("Postcode", "same area")
    assert in_words("given_name", "JW_85") == ("Given name", "similar spelling")


def test_a_scored_pair_reads_in_words() -> None:
    a = IdentityFields(given_name="amelia", family_name="hart", dob=date(2015, 3, 14),
                       postcode="BN1 1AA")
    b = IdentityFields(given_name="amelai", family_name="hart", dob=date(2015, 3, 14),
                       postcode="BN2 9ZZ")
    fields = score(a, b, DEFAULT_MODEL).to_dict()["fields"]
    said = dict(in_words(f["field"], f["level"]) for f in fields)
    assert said["Date of birth"] == "same" and said["Family name"] == "same"
    assert said["Postcode"] == "same area"
    assert said["Given name"] == "very similar spelling"


def test_evidence_and_rules() -> None:
    assert evidence(0.01) == "points to the same child"
    assert evidence(-3) == "points to different children"
    assert rule_in_words("twins").startswith("They could be twins")
    assert rule_in_words("some_new_rule") == "Some new rule."
