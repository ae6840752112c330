"""Which identifiers two children's records hold differently: as the matching's hard
rule compares two records, pair by pair (``compare_all``)."""

from __future__ import annotations

import doctest
from dataclasses import replace
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.matching import IdentityFields, compare_all
from protocol.matching import child_identifiers as module
from protocol.matching.child_identifiers import differing_identifiers
from protocol.matching.compare import FIELDS, IdentifierLevel
from tests import strategies

pair_lists = st.lists(strategies.identity_pairs(), min_size=1, max_size=30)


@settings(max_examples=100, deadline=None)
@given(pair_lists, st.integers(min_value=0, max_value=29))
def test_differing_identifiers_equal_compare_all_over_every_pair(
        pairs: list[tuple[IdentityFields, IdentityFields]], cut: int) -> None:
    """Two children's records (one side of the pairs, split in two): which identifiers
    disagree between a record of one and a record of the other, as ``compare_all`` says."""
    records = [r for pair in pairs for r in pair]
    left, right = records[:cut], records[cut:]
    at = {name: FIELDS.index(name) for name in ("nhs_number", "upn")}
    expected = tuple(name for name, i in at.items()
                     if any(compare_all(x, y)[i] == IdentifierLevel.DISAGREE
                            for x in left for y in right))
    assert differing_identifiers(left, right) == expected


def test_differing_identifiers_normalise_as_the_resolver_does() -> None:
    ada = IdentityFields("Ada", "Nwosu", date(2019, 5, 1), 2, nhs_number="943 476 5919",
                         upn="Z846203417010")
    same = replace(ada, nhs_number="9434765919", upn="z846203417010")
    assert differing_identifiers([ada], [same]) == ()
    # an invalid or missing identifier is no evidence either way
    assert differing_identifiers([ada], [replace(ada, nhs_number="1234567890", upn=None)]) == ()
    other = replace(ada, nhs_number="4010232137")
    assert differing_identifiers([ada, same], [replace(ada, nhs_number=None), other]) == (
        "nhs_number",)
    assert differing_identifiers([], [other]) == ()


def test_doctests() -> None:
    assert doctest.testmod(module).failed == 0
