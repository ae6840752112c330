"""What search tolerates (protocol.search): swapped names, a date of birth
one digit off, a record lacking a field; and what it still refuses."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings

from protocol.matching import IdentityFields, blocking_keys, score
from protocol.search import SearchQuery, _years_one_digit_away, answer
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


def test_year_probes_stay_in_a_childs_range_and_few() -> None:
    keys = SearchQuery.parse({"given_name": "Olivia", "family_name": "Grubb",
                              "dob": "2015-03-04"}).keys()
    years = {k.split(":")[1][:4] for k in keys if k.startswith("d:")}
    assert "2015" in years and "2016" in years and "2005" in years
    assert all(1990 <= int(y) <= date.today().year for y in years)
    assert len(keys) < 60
    # a leap day has no twin in most years: those readings are skipped, not an error
    assert SearchQuery.parse({"given_name": "Leo", "family_name": "Hart",
                              "dob": "2016-02-29"}).keys()


def _keys_one_call_per_year(query: SearchQuery) -> list[str]:
    """``SearchQuery.keys`` as first written: ``blocking_keys`` of the query at each birth
    year one digit away, keeping the exact-date keys. The keys re-dated from the query's
    own must be these."""
    readings = query.readings()
    keys: set[str] = set()
    for reading in readings:
        keys |= blocking_keys(reading)
        if reading.dob is not None:
            keys |= blocking_keys(replace(reading, dob=None))
    straight = readings[0]
    if straight.dob is not None:
        for year in _years_one_digit_away(straight.dob):
            try:
                dob = straight.dob.replace(year=year)
            except ValueError:
                continue
            day = dob.isoformat()
            keys |= {k for k in blocking_keys(replace(straight, dob=dob))
                     if k.startswith((f"d:{day}:", f"dg:{day}:"))}
    return sorted(keys)


@settings(max_examples=300, deadline=None)
@given(strategies.identity_pairs())
def test_year_probes_are_the_keys_of_each_year(pair: tuple[IdentityFields, IdentityFields]
                                               ) -> None:
    for asked in pair:
        query = SearchQuery(given_name=asked.given_name or None,
                            family_name=asked.family_name or None, dob=asked.dob,
                            postcode=asked.postcode or None, nhs_number=asked.nhs_number,
                            upn=asked.upn)
        assert query.keys() == _keys_one_call_per_year(query)


@pytest.mark.parametrize("dob", [date(2016, 2, 29), date(2012, 2, 29), date(2015, 3, 4),
                                 date(2011, 11, 11), date(1990, 1, 31)])
def test_year_probes_of_awkward_dates(dob: date) -> None:
    query = SearchQuery(given_name="Izzy", family_name="Okonkwo-Reily", dob=dob)
    assert query.keys() == _keys_one_call_per_year(query)
