"""Blocking key scheme 3: one child's names as other councils' systems write them meet
through the keys even when the date of birth slipped too (a year, a month or a day
apart), and comparison then takes them for one child, as it would the same spelling.

Under scheme 2 each of these pairs, moved to another council with a date slip, shared
no key at all: never compared, never linked, never put to review."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from protocol.matching import Decision, blocking_keys, compare_all, score
from protocol.matching.compare import GivenNameLevel, IdentityFields
from protocol.matching.names import (
    comparable_name,
    given_name_keys,
    latin_name,
    normalise_name,
    surname_without_particle,
)
from protocol.search import SearchQuery, answer
from tests.protocol.matching.test_matching_other_systems import HOME, both_ways

SLIPS = {"year": date(2016, 3, 14), "month": date(2015, 4, 14), "day": date(2015, 3, 15)}


def moved(record: IdentityFields, dob: date) -> IdentityFields:
    """The child's record at another council, the date of birth slipped."""
    return replace(record, dob=dob, postcode="TF1 2AB", address_line="3 High Street")


def names(given: str, family: str) -> IdentityFields:
    return replace(HOME, given_name=given, family_name=family)


SAME_CHILD = [  # (one system's names, another's): the same levels as one spelling
    (names("Amelia", "O'Brien"), names("Amelia", "Brien")),
    (names("Amelia", "O’Neill"), names("Amelia", "Neill")),
    (names("Amelia", "D'Souza"), names("Amelia", "Souza")),
    (names("Amelia", "M'Donald"), names("Amelia", "McDonald")),
    (names("Amelia", "O Brien"), names("Amelia", "Brien")),
    (names("Master John", "Okafor"), names("John", "Okafor")),
    (names("Miss Amelia", "Okafor"), names("Amelia", "Okafor")),
    (names("Иван", "Петров"), names("Ivan", "Petrov")),
    (names("Наталья", "Смирнова"), names("Natalya", "Smirnova")),
]
NICKNAMES = [  # a diminutive whose initial is not its formal name's
    (names("Kate", "Okafor"), names("Catherine", "Okafor")),
    (names("Katie", "Okafor"), names("Catherine", "Okafor")),
    (names("Sasha", "Okafor"), names("Alexander", "Okafor")),
    (names("Sasha", "Okafor"), names("Alexandra", "Okafor")),
]


@pytest.mark.parametrize("slip", SLIPS)
@pytest.mark.parametrize("a, b", SAME_CHILD)
def test_a_spelling_of_another_system_meets_through_the_keys_and_scores_as_one(
        a: IdentityFields, b: IdentityFields, slip: str) -> None:
    other = moved(b, SLIPS[slip])
    assert blocking_keys(a) & blocking_keys(other), "never compared"
    # compared as the same spelling would be: every level and the score alike
    same = moved(a, SLIPS[slip])
    assert both_ways(a, other) == compare_all(a, same)
    assert score(a, other).total == pytest.approx(score(a, same).total)


@pytest.mark.parametrize("slip", SLIPS)
@pytest.mark.parametrize("a, b", NICKNAMES)
def test_a_nickname_of_another_initial_meets_through_the_keys(
        a: IdentityFields, b: IdentityFields, slip: str) -> None:
    other = moved(b, SLIPS[slip])
    assert blocking_keys(a) & blocking_keys(other), "never compared"
    assert both_ways(a, other)[0] == GivenNameLevel.NICKNAME


def test_a_year_slip_of_a_mover_goes_to_review_as_the_same_spelling_would() -> None:
    a, b = names("Amelia", "O'Brien"), moved(names("Amelia", "Brien"), SLIPS["year"])
    assert score(a, b).decision() == Decision.REVIEW
    assert score(a, moved(a, SLIPS["year"])).decision() == Decision.REVIEW


def test_only_names_that_need_them_get_more_keys() -> None:
    """Every key is an index entry at the hub: a name in Latin letters without a
    particle, a title or a nickname of another initial gets what it got before."""
    assert latin_name("Zoë O'Brien") == normalise_name("Zoë O'Brien")
    assert given_name_keys("Amelia") == {"amelia"}
    assert given_name_keys("Иван") == {"иван", "ivan"}
    assert surname_without_particle("Okafor") == surname_without_particle("Oliver") == ""
    assert surname_without_particle("Obrien") == ""  # no mark: the O may be the name's
    # a title alone is a name (a child may be called Miss in a feed's error, never dropped)
    assert comparable_name("Miss") == "miss"
    keys = blocking_keys(HOME)
    assert {k.rsplit(":", 1)[-1] for k in keys if k.startswith("ym:")} == {"a"}


def test_a_middle_name_alone_is_not_keyed_as_the_scorer_rejects_it() -> None:
    """"Mary Jane" / "Jane": comparison takes them for two children (the given names
    differ), so scheme 3 does not key each word of a given name: the keys would find a
    pair the scorer throws away."""
    a, b = names("Mary Jane", "Okafor"), moved(names("Jane", "Okafor"), SLIPS["month"])
    assert both_ways(a, b)[0] == GivenNameLevel.OTHER
    assert not blocking_keys(a) & blocking_keys(b)


@pytest.mark.parametrize("query, child", [
    ({"given_name": "Ivan", "family_name": "Petrov"}, names("Иван", "Петров")),
    ({"given_name": "Amelia", "family_name": "Brien"}, names("Amelia", "O'Brien")),
    ({"given_name": "Kate", "family_name": "Okafor"}, names("Catherine", "Okafor")),
])
def test_a_search_written_as_another_system_writes_the_name_finds_the_child(
        query: dict[str, str], child: IdentityFields) -> None:
    """A practitioner's search reads the keys and the comparison: one typing "Ivan
    Petrov" with the year of birth one out finds the Иван Петров a council holds."""
    searched = SearchQuery.parse({**query, "dob": "2016-03-14"})
    assert set(searched.keys()) & blocking_keys(child)
    assert answer(searched, child) is not None
