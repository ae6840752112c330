"""What search tolerates (protocol.search): swapped names, a date of birth
with one part wrong, a record lacking a field; and what it still refuses."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.matching import IdentityFields, blocking_keys, score
from protocol.matching.blocking import family_codes
from protocol.search import SearchQuery, answer
from tests import strategies

OLIVIA = IdentityFields("Olivia", "Grubb", date(2015, 3, 4), 2, postcode="BN1 1AA",
                        nhs_number="9434765919")


def found(record: IdentityFields, **params: str) -> bool:
    query = SearchQuery.parse(params)
    return bool(set(query.keys()) & blocking_keys(record)) and answer(query, record) is not None


@pytest.mark.parametrize("params", [
    {"given_name": "Grubb", "family_name": "Olivia", "dob": "2015-03-04"},  # swapped
    {"given_name": "Olivia", "family_name": "Grubb", "dob": "2016-03-04"},  # year digit
    {"given_name": "Olivia", "family_name": "Grubb", "dob": "2005-03-04"},  # decade digit
    {"given_name": "Olivia", "family_name": "Grubb", "dob": "2015-03-07"},  # day digit
    {"given_name": "Olivia", "family_name": "Grubb", "dob": "2015-08-04"},  # month digit
    {"given_name": "Olivia", "family_name": "Grubb", "dob": "2015-04-03"},  # day <-> month
    {"given_name": "Olivia", "family_name": "Grubb", "dob": "2016-04-03"},  # year, swapped
    {"given_name": "Livvy", "family_name": "Grubb", "dob": "2016-03-04"},  # year, nickname
])
def test_the_child_is_found_despite_the_error(params: dict[str, str]) -> None:
    assert found(OLIVIA, **params)


def test_names_swapped_in_the_record_are_found_and_score_as_the_straight_ones() -> None:
    query = SearchQuery.parse({"given_name": "Olivia", "family_name": "Grubb",
                               "dob": "2015-03-04"})
    swapped = IdentityFields("Grubb", "Olivia", date(2015, 3, 4), 2)
    straight = IdentityFields("Olivia", "Grubb", date(2015, 3, 4), 2)
    assert found(swapped, given_name="Olivia", family_name="Grubb", dob="2015-03-04")
    assert answer(query, swapped) == answer(query, straight)


def test_invisible_characters_typed_into_names_change_nothing() -> None:
    """A soft hyphen or a zero-width space pasted into the search form is not a name
    part: the child is found, its names agreeing exactly, not as a typo."""
    params = {"given_name": "Oli\u00advia", "family_name": "Gr\u200bubb", "dob": "2015-03-04"}
    assert found(OLIVIA, **params)
    typed = score(SearchQuery.parse(params).readings()[0], OLIVIA)
    assert typed.level("given_name") == typed.level("family_name") == "EXACT"


@pytest.mark.parametrize("absent", ["given_name", "family_name", "dob"])
def test_a_record_lacking_a_field_is_found_by_the_rest(absent: str) -> None:
    blank: dict[str, Any] = {absent: None}
    record = replace(OLIVIA, nhs_number=None, postcode=None, **blank)
    assert found(record, given_name="Olivia", family_name="Grubb", dob="2015-03-04")


def test_an_identifier_that_differs_is_never_undone_by_the_swapped_reading() -> None:
    assert not found(OLIVIA, given_name="Grubb", family_name="Olivia", dob="2015-03-04",
                     nhs_number="9434765870")


def test_a_year_keyed_wrong_is_probed_by_day_and_month_not_every_other_year() -> None:
    keys = SearchQuery.parse({"given_name": "Bill", "family_name": "Grubb",
                              "dob": "2015-03-04"}).keys()
    # the exact date only in its own year (and its day-month swap): a year away it would
    # meet every namesake born that day, in blocks that grow with the index
    assert {k.split(":")[1] for k in keys if k.startswith(("d:", "dg:"))} == {
        "2015-03-04", "2015-04-03"}
    grubb = next(iter(family_codes("Grubb")))
    assert {f"md:{grubb}:{day}:{initial}" for day in ("03-04", "04-03")
            for initial in "bw"} <= set(keys)
    assert len(keys) < 30
    assert found(IdentityFields("William", "Grubb", date(2016, 3, 4)),
                 given_name="Bill", family_name="Grubb", dob="2015-03-04")


@pytest.mark.parametrize(("typed", "held"), [("Kaitlyn", "Caitlyn"), ("Jemma", "Gemma"),
                                             ("Karl", "Carl"), ("Isabel", "Ysabel")])
def test_a_year_wrong_and_a_name_spelt_as_it_sounds_is_found(typed: str, held: str) -> None:
    assert found(IdentityFields(held, "Grubb", date(2015, 3, 4)),
                 given_name=typed, family_name="Grubb", dob="2016-03-04")


@settings(max_examples=300, deadline=None)
@given(strategies.identity_pairs(), st.integers(min_value=1990, max_value=2026))
def test_a_record_whose_year_alone_differs_shares_a_key_with_the_query(
        pair: tuple[IdentityFields, IdentityFields], year: int) -> None:
    for asked in pair:
        if asked.dob is None or not asked.given_name or not asked.family_name:
            continue
        query = SearchQuery(given_name=asked.given_name, family_name=asked.family_name,
                            dob=asked.dob, postcode=asked.postcode or None,
                            nhs_number=asked.nhs_number, upn=asked.upn)
        try:
            record = replace(asked, dob=asked.dob.replace(year=year))
        except ValueError:
            continue  # 29 February in a year without one
        held = blocking_keys(record)
        if any(k.startswith("md:") for k in held):  # a family name and an initial
            assert set(query.keys()) & held, (asked, year)


